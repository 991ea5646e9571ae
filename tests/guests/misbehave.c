/* SPDX-License-Identifier: MIT */
/*
 * sbx-test-guest: a guest that ends in the way its boot args name, so the
 * tests can drive every end reason of sbx-vmm. Modes: hlt, port,
 * hypercall-outside-ram, hypercall-unknown-op, buffer-outside-ram,
 * emulation, read-outside-ram, flood, ready-then-spin.
 *
 * Hostile modes, which report READY and then load the host for as long as
 * they run: ready-then-hypercall-flood (CLOCK_NS hypercalls without end),
 * ready-then-write-gigabyte (1 GiB of console output, then it sleeps until
 * a stop request and exits 0).
 */
#include "hc.h"

static int args_are(const struct sbx_boot_info *bi, const char *mode)
{
	size_t n = strlen(mode);

	return !memcmp(bi->args, mode, n) && bi->args[n] == '\0';
}

/* 1 KiB of console output, written over and over by the flood mode. */
static char flood_line[1024];

/* 64 KiB of console output, written over and over for the gigabyte. */
static char big_chunk[64 * 1024];

__attribute__((noreturn)) static void hypercall_flood(void)
{
	hc_op(SBX_HC_READY, 0, 0, 0);
	for (;;)
		hc_clock_ns();
}

__attribute__((noreturn)) static void write_gigabyte(void)
{
	const uint64_t total = 1ull << 30;

	hc_op(SBX_HC_READY, 0, 0, 0);
	memset(big_chunk, 'g', sizeof(big_chunk));
	big_chunk[sizeof(big_chunk) - 1] = '\n';
	for (uint64_t done = 0; done < total; done += sizeof(big_chunk))
		hc_write(1, big_chunk, sizeof(big_chunk));
	/* SLEEP_NS returns 1 when a stop request cut it short. */
	while (hc_op(SBX_HC_SLEEP_NS, 1000000000ull, 0, 0) == 0)
		;
	hc_exit(0);
}

__attribute__((noreturn, section(".text.start"))) void
_start(const struct sbx_boot_info *bi);

__attribute__((noreturn, section(".text.start"))) void
_start(const struct sbx_boot_info *bi)
{
	if (args_are(bi, "hlt")) {
		__asm__ volatile("hlt");
	} else if (args_are(bi, "port")) {
		__asm__ volatile("outb %%al, %%dx" : : "a"(0), "d"(0x3f8));
	} else if (args_are(bi, "hypercall-outside-ram")) {
		uint32_t gpa = (uint32_t)bi->mem_size + 0x1000;

		__asm__ volatile("outl %0, %1"
				 :
				 : "a"(gpa), "Nd"((uint16_t)SBX_HC_PORT));
	} else if (args_are(bi, "hypercall-unknown-op")) {
		hc_op(999, 0, 0, 0);
	} else if (args_are(bi, "buffer-outside-ram")) {
		/* The end of the buffer wraps past 2^64 back into RAM. */
		hc_op(SBX_HC_WRITE, 1, bi->heap_start, UINT64_MAX);
	} else if (args_are(bi, "emulation")) {
		uint64_t out;

		/* KVM cannot emulate POPCNT on an MMIO address. */
		__asm__ volatile("popcnt (%1), %0"
				 : "=r"(out)
				 : "r"(bi->mem_size + 0x1000)
				 : "memory");
	} else if (args_are(bi, "read-outside-ram")) {
		(void)*(volatile uint32_t *)(uintptr_t)(bi->mem_size + 0x2000);
	} else if (args_are(bi, "flood")) {
		memset(flood_line, 'x', sizeof(flood_line));
		flood_line[sizeof(flood_line) - 1] = '\n';
		for (int i = 0; i < 2048; i++)
			hc_write(1, flood_line, sizeof(flood_line));
		hc_exit(0);
	} else if (args_are(bi, "ready-then-hypercall-flood")) {
		hypercall_flood();
	} else if (args_are(bi, "ready-then-write-gigabyte")) {
		write_gigabyte();
	} else if (args_are(bi, "ready-then-spin")) {
		/* Never makes another hypercall: only SIGKILL ends it. */
		hc_op(SBX_HC_READY, 0, 0, 0);
		for (;;)
			__asm__ volatile("pause");
	}
	hc_exit(99);
}
