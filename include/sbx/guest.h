/* SPDX-License-Identifier: MIT */
/*
 * Guest ABI between sbx-vmm and a kernel-less guest running at CPL3.
 * Shared by the VMM (host side) and sbx-agent (guest side); it must stay
 * freestanding, so only fixed-width integer types are used.
 */
#ifndef SBX_GUEST_H
#define SBX_GUEST_H

#include <stdint.h>

/* The guest writes the GPA of a struct sbx_hypercall with `outl` here. */
#define SBX_HC_PORT 0x5b00

/*
 * Fixed guest-physical layout. RAM starts at GPA 0 and is identity mapped
 * with 2 MiB user pages. The ELF must load at or above SBX_GUEST_LOAD_MIN
 * and below the stack region at the top of RAM.
 */
#define SBX_GDT_GPA 0x1000
#define SBX_PML4_GPA 0x2000
#define SBX_PDPT_GPA 0x3000
#define SBX_PD_GPA 0x4000 /* 4 page directories: up to 4 GiB of RAM */
#define SBX_BOOT_INFO_GPA 0x8000
#define SBX_GUEST_LOAD_MIN 0x200000
#define SBX_STACK_SIZE 0x40000 /* 256 KiB at the top of RAM */

#define SBX_CODE_SELECTOR 0x1b /* GDT entry 3, RPL 3 */
#define SBX_DATA_SELECTOR 0x23 /* GDT entry 4, RPL 3 */

enum sbx_hc_op {
	SBX_HC_READY = 1,	 /* guest finished booting */
	SBX_HC_WRITE = 2,	 /* arg0 fd (1 or 2), arg1 GPA, arg2 length */
	SBX_HC_WAIT_COMMAND = 3, /* arg0 GPA, arg1 capacity; see below */
	SBX_HC_REPLY = 4,	 /* arg0 exit code, arg1 GPA, arg2 length */
	SBX_HC_CLOCK_NS = 5,	 /* ret = CLOCK_MONOTONIC in ns */
	SBX_HC_SLEEP_NS = 6,	 /* arg0 ns; ret 0, or 1 if cut short by stop */
	SBX_HC_EXIT = 7,	 /* arg0 exit code; does not return */
};

/*
 * WAIT_COMMAND blocks until the host sends a command. On return `flags`
 * holds the command kind and `ret` the length of the text copied to arg0
 * (NUL-terminated when it fits), or a negative errno.
 */
enum sbx_cmd_kind {
	SBX_CMD_EXEC = 1, /* text is "verb args", e.g. "echo hi" */
	SBX_CMD_STOP = 2, /* graceful stop requested; no text */
};

struct sbx_hypercall {
	uint32_t op;
	uint32_t flags;
	uint64_t arg[4];
	int64_t ret;
};

#define SBX_BOOT_MAGIC 0x5342584254304f31ULL /* "SBXBT0O1" */
#define SBX_BOOT_ID_MAX 64
#define SBX_BOOT_ARGS_MAX 1024

#define SBX_BOOT_IGNORE_STOP (1u << 0)

/* Boot-info page at SBX_BOOT_INFO_GPA; RDI holds its address at entry. */
struct sbx_boot_info {
	uint64_t magic;
	uint64_t mem_size;	  /* bytes of guest RAM from GPA 0 */
	uint64_t heap_start;	  /* first free GPA after the ELF image */
	uint64_t heap_end;	  /* bottom of the stack region */
	uint32_t flags;		  /* SBX_BOOT_* */
	uint32_t boot_delay_ms;	  /* delay before READY */
	char sandbox_id[SBX_BOOT_ID_MAX];
	char args[SBX_BOOT_ARGS_MAX];
};

#endif
