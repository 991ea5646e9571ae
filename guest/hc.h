/* SPDX-License-Identifier: MIT */
/* Guest-side hypercall wrappers and the few libc helpers the agent needs. */
#ifndef SBX_GUEST_HC_H
#define SBX_GUEST_HC_H

#include <stddef.h>
#include <stdint.h>

#include "sbx/guest.h"

/*
 * Send one hypercall: RAM is identity mapped below 4 GiB, so the request's
 * address is also its GPA and fits the 32-bit port write. The VMM fills
 * `ret` (and `flags` for WAIT_COMMAND) before the guest resumes.
 */
static inline int64_t hc_call(struct sbx_hypercall *hc)
{
	uint32_t gpa = (uint32_t)(uintptr_t)hc;

	__asm__ volatile("outl %0, %1"
			 :
			 : "a"(gpa), "Nd"((uint16_t)SBX_HC_PORT)
			 : "memory");
	return hc->ret;
}

static inline int64_t hc_op(uint32_t op, uint64_t a0, uint64_t a1,
			    uint64_t a2)
{
	struct sbx_hypercall hc = {
		.op = op,
		.arg = { a0, a1, a2, 0 },
	};

	return hc_call(&hc);
}

static inline uint64_t hc_clock_ns(void)
{
	return (uint64_t)hc_op(SBX_HC_CLOCK_NS, 0, 0, 0);
}

static inline void hc_write(int fd, const char *buf, size_t len)
{
	hc_op(SBX_HC_WRITE, (uint64_t)fd, (uint64_t)(uintptr_t)buf, len);
}

__attribute__((noreturn)) static inline void hc_exit(int code)
{
	hc_op(SBX_HC_EXIT, (uint64_t)(int64_t)code, 0, 0);
	/* EXIT does not return. If a broken VMM resumes us, ud2 ends it. */
	for (;;)
		__asm__ volatile("ud2");
}

/* The compiler may emit calls to these even in freestanding code. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
