/* SPDX-License-Identifier: MIT */
/* Helpers shared by the libFuzzer harnesses: failure reports and memfds. */
#ifndef SBX_FUZZ_UTIL_H
#define SBX_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Keep a copy of stderr for fuzz_fail(). Call it from LLVMFuzzerInitialize,
 * which runs before -close_fd_mask=2 closes stderr.
 */
void fuzz_util_init(void);

/*
 * Print "fuzz invariant failed: <message>" and abort, so that libFuzzer
 * saves the input as a crash artifact.
 */
__attribute__((format(printf, 1, 2), noreturn)) void
fuzz_fail(const char *fmt, ...);

#define FUZZ_CHECK(cond, fmt, ...)                                        \
	do {                                                              \
		if (!(cond))                                              \
			fuzz_fail("%s:%d: %s: " fmt, __FILE__, __LINE__,  \
				  #cond, ##__VA_ARGS__);                  \
	} while (0)

/* Create a memfd and return its descriptor; aborts on failure. */
int fuzz_memfd(const char *name);

/* Make the memfd hold exactly `len` bytes of `data`; aborts on failure. */
void fuzz_memfd_fill(int fd, const uint8_t *data, size_t len);

/* "/proc/self/fd/N" for fd, in a static buffer. */
const char *fuzz_fd_path(int fd);

#endif
