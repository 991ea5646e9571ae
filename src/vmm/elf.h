/* SPDX-License-Identifier: MIT */
/* Validating loader for the static x86_64 ELF that a guest boots from. */
#ifndef SBX_VMM_ELF_H
#define SBX_VMM_ELF_H

#include <stddef.h>
#include <stdint.h>

struct elf_image {
	uint64_t entry;	   /* e_entry, inside an executable segment */
	uint64_t load_end; /* first GPA past the last segment, 4 KiB aligned */
};

/*
 * Check the ELF in `file` against a guest with `mem_size` bytes of RAM and,
 * only if every check passes, copy its PT_LOAD segments into `mem` (the
 * guest RAM mapped at GPA 0). Returns 0, or -ENOEXEC with a message in
 * `err` that names the bad field and the fix.
 */
int elf_load(const uint8_t *file, size_t size, uint8_t *mem,
	     uint64_t mem_size, struct elf_image *image, char *err,
	     size_t err_size);

#endif
