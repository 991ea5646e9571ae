/* SPDX-License-Identifier: MIT */
/* Validating loader for the static x86_64 ELF that a guest boots from. */
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sbx/guest.h"
#include "vmm/elf.h"

#define PAGE_SIZE 4096
#define MIB (1024 * 1024)

__attribute__((format(printf, 3, 4))) static int
reject(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return -ENOEXEC;
}

static int check_header(const Elf64_Ehdr *eh, size_t size, char *err,
			size_t err_size)
{
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG))
		return reject(err, err_size,
			      "bad magic, not an ELF file; pass a static x86_64 ELF");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64)
		return reject(err, err_size,
			      "class %u is not ELFCLASS64; build a 64-bit executable",
			      eh->e_ident[EI_CLASS]);
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return reject(err, err_size,
			      "data encoding %u is not little-endian (ELFDATA2LSB)",
			      eh->e_ident[EI_DATA]);
	if (eh->e_machine != EM_X86_64)
		return reject(err, err_size,
			      "machine %u is not x86_64 (%u); build for x86_64",
			      eh->e_machine, EM_X86_64);
	if (eh->e_type != ET_EXEC)
		return reject(err, err_size,
			      "type %u is not ET_EXEC; link with -static -no-pie",
			      eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return reject(err, err_size,
			      "program header size %u, expected %zu",
			      eh->e_phentsize, sizeof(Elf64_Phdr));
	if (eh->e_phnum == 0 || eh->e_phnum == PN_XNUM)
		return reject(err, err_size,
			      "%u program headers; expected 1 to %u",
			      eh->e_phnum, PN_XNUM - 1);
	if (eh->e_phoff > size ||
	    (size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum)
		return reject(err, err_size,
			      "program header table (offset 0x%" PRIx64
			      ", %u entries) ends beyond the file (%zu bytes); "
			      "the file is truncated",
			      (uint64_t)eh->e_phoff, eh->e_phnum, size);
	return 0;
}

/* Check one PT_LOAD segment against the file and the guest memory map. */
static int check_segment(const Elf64_Phdr *ph, unsigned int index,
			 size_t size, uint64_t mem_size, char *err,
			 size_t err_size)
{
	uint64_t stack_bottom = mem_size - SBX_STACK_SIZE;

	if (ph->p_filesz > ph->p_memsz)
		return reject(err, err_size,
			      "segment %u file size 0x%" PRIx64
			      " exceeds its memory size 0x%" PRIx64,
			      index, (uint64_t)ph->p_filesz,
			      (uint64_t)ph->p_memsz);
	if (ph->p_offset > size || size - ph->p_offset < ph->p_filesz)
		return reject(err, err_size,
			      "segment %u (offset 0x%" PRIx64 ", 0x%" PRIx64
			      " bytes) ends beyond the file (%zu bytes); the file is truncated",
			      index, (uint64_t)ph->p_offset,
			      (uint64_t)ph->p_filesz, size);
	if (ph->p_vaddr < SBX_GUEST_LOAD_MIN)
		return reject(err, err_size,
			      "segment %u starts at 0x%" PRIx64
			      " below the load minimum 0x%x; relink at or above 0x%x",
			      index, (uint64_t)ph->p_vaddr, SBX_GUEST_LOAD_MIN,
			      SBX_GUEST_LOAD_MIN);
	if (ph->p_vaddr > mem_size || mem_size - ph->p_vaddr < ph->p_memsz)
		return reject(err, err_size,
			      "segment %u ends at 0x%" PRIx64
			      " beyond guest RAM (%" PRIu64
			      " MiB); raise --memory-mib or relink",
			      index,
			      ph->p_vaddr + ph->p_memsz < ph->p_vaddr ?
				      UINT64_MAX :
				      (uint64_t)(ph->p_vaddr + ph->p_memsz),
			      mem_size / MIB);
	if (ph->p_vaddr + ph->p_memsz > stack_bottom)
		return reject(err, err_size,
			      "segment %u ends at 0x%" PRIx64
			      " inside the stack region at 0x%" PRIx64
			      "; raise --memory-mib or relink",
			      index, (uint64_t)(ph->p_vaddr + ph->p_memsz),
			      stack_bottom);
	return 0;
}

/* Copy program header `i` out: e_phoff need not be aligned. */
static Elf64_Phdr read_phdr(const uint8_t *file, const Elf64_Ehdr *eh,
			    unsigned int i)
{
	Elf64_Phdr ph;

	memcpy(&ph, file + eh->e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
	return ph;
}

static bool is_loaded(const Elf64_Phdr *ph)
{
	return ph->p_type == PT_LOAD && ph->p_memsz != 0;
}

static bool segments_overlap(const Elf64_Phdr *a, const Elf64_Phdr *b)
{
	return a->p_vaddr < b->p_vaddr + b->p_memsz &&
	       b->p_vaddr < a->p_vaddr + a->p_memsz;
}

static int check_segments(const uint8_t *file, const Elf64_Ehdr *eh,
			  size_t size, uint64_t mem_size, char *err,
			  size_t err_size)
{
	bool entry_ok = false;
	unsigned int loads = 0;
	int ret;

	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph = read_phdr(file, eh, i);

		if (!is_loaded(&ph))
			continue;
		ret = check_segment(&ph, i, size, mem_size, err, err_size);
		if (ret)
			return ret;
		for (unsigned int j = 0; j < i; j++) {
			Elf64_Phdr prev = read_phdr(file, eh, j);

			if (is_loaded(&prev) && segments_overlap(&ph, &prev))
				return reject(err, err_size,
					      "segments %u and %u overlap; relink",
					      j, i);
		}
		loads++;
		if ((ph.p_flags & PF_X) && eh->e_entry >= ph.p_vaddr &&
		    eh->e_entry - ph.p_vaddr < ph.p_filesz)
			entry_ok = true;
	}
	if (!loads)
		return reject(err, err_size, "no PT_LOAD segment to load");
	if (!entry_ok)
		return reject(err, err_size,
			      "entry point 0x%" PRIx64
			      " is not inside an executable segment",
			      (uint64_t)eh->e_entry);
	return 0;
}

int elf_load(const uint8_t *file, size_t size, uint8_t *mem,
	     uint64_t mem_size, struct elf_image *image, char *err,
	     size_t err_size)
{
	Elf64_Ehdr eh;
	uint64_t end = 0;
	int ret;

	if (size < sizeof(eh))
		return reject(err, err_size,
			      "file is %zu bytes, too short for an ELF header (%zu)",
			      size, sizeof(eh));
	memcpy(&eh, file, sizeof(eh));
	if (mem_size < SBX_GUEST_LOAD_MIN + SBX_STACK_SIZE)
		return reject(err, err_size,
			      "guest RAM of %" PRIu64
			      " bytes leaves no room to load; raise --memory-mib",
			      mem_size);
	ret = check_header(&eh, size, err, err_size);
	if (ret)
		return ret;
	ret = check_segments(file, &eh, size, mem_size, err, err_size);
	if (ret)
		return ret;

	/* Every segment is valid: only now touch guest memory. */
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph = read_phdr(file, &eh, i);

		if (!is_loaded(&ph))
			continue;
		memcpy(mem + ph.p_vaddr, file + ph.p_offset, ph.p_filesz);
		memset(mem + ph.p_vaddr + ph.p_filesz, 0,
		       ph.p_memsz - ph.p_filesz);
		if (ph.p_vaddr + ph.p_memsz > end)
			end = ph.p_vaddr + ph.p_memsz;
	}
	image->entry = eh.e_entry;
	image->load_end = (end + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
	return 0;
}
