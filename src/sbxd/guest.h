/* SPDX-License-Identifier: MIT */
/* Guest RAM that a guest ELF needs, checked before a create spawns a VMM. */
#ifndef SBXD_GUEST_H
#define SBXD_GUEST_H

#include <stddef.h>
#include <stdint.h>

struct guest_layout {
	uint64_t load_end;		/* end of the highest PT_LOAD segment */
	unsigned int min_memory_mib;	/* load_end plus the stack, rounded up */
};

/*
 * Read the program headers of the ELF at path and compute the least RAM
 * that sbx-vmm accepts for it: its segments must end below the stack
 * region (SBX_STACK_SIZE) at the top of guest RAM. Returns 0, -ENOEXEC
 * when the file is not a 64-bit ELF with PT_LOAD segments (sbx-vmm then
 * reports the exact problem), or another negative errno from open/read.
 */
int guest_read_layout(const char *path, struct guest_layout *out);

#endif
