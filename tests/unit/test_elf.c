/* SPDX-License-Identifier: MIT */
/*
 * The sbx-vmm ELF loader on the real sbx-agent and on broken copies of it,
 * and the hypercall range check. Runs without KVM.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbx/guest.h"
#include "vmm/elf.h"
#include "vmm/vmm.h"

#define MIB (1024 * 1024)
#define MEM_SIZE (16 * MIB)

static uint8_t *file, *mem;
static size_t file_size;
static char err[256];
static struct elf_image image;

static void load_agent(void)
{
	FILE *f = fopen(SBX_BIN_DIR "/sbx-agent", "rb");

	cr_assert_not_null(f, "cannot open %s: %s", SBX_BIN_DIR "/sbx-agent",
			   strerror(errno));
	fseek(f, 0, SEEK_END);
	file_size = (size_t)ftell(f);
	rewind(f);
	file = malloc(file_size);
	cr_assert_not_null(file);
	cr_assert_eq(fread(file, 1, file_size, f), file_size);
	fclose(f);
	mem = calloc(1, MEM_SIZE);
	cr_assert_not_null(mem);
}

static void free_agent(void)
{
	free(file);
	free(mem);
}

static Elf64_Ehdr *ehdr(void)
{
	return (Elf64_Ehdr *)file;
}

static Elf64_Phdr *phdr(unsigned int i)
{
	return (Elf64_Phdr *)(file + ehdr()->e_phoff) + i;
}

/* Index of the first PT_LOAD segment with `flags` set. */
static unsigned int load_segment(uint32_t flags)
{
	for (unsigned int i = 0; i < ehdr()->e_phnum; i++) {
		if (phdr(i)->p_type == PT_LOAD && (phdr(i)->p_flags & flags))
			return i;
	}
	cr_assert_fail("sbx-agent has no PT_LOAD segment with flags %#x",
		       flags);
	return 0;
}

static int load(uint64_t mem_size)
{
	return elf_load(file, file_size, mem, mem_size, &image, err,
			sizeof(err));
}

/* The load fails with -ENOEXEC, a message containing `text`, and leaves
 * guest memory untouched. */
static void expect_reject(const char *text)
{
	int ret = load(MEM_SIZE);

	cr_assert_eq(ret, -ENOEXEC, "elf_load returned %d (%s)", ret, err);
	cr_assert_not_null(strstr(err, text), "message \"%s\" lacks \"%s\"",
			   err, text);
	for (size_t i = 0; i < MEM_SIZE; i += 4096)
		cr_assert_eq(mem[i], 0, "guest memory written at 0x%zx", i);
}

TestSuite(elf, .init = load_agent, .fini = free_agent);

Test(elf, agent_loads)
{
	unsigned int text = load_segment(PF_X);
	Elf64_Phdr *ph = phdr(text);

	cr_assert_eq(load(MEM_SIZE), 0, "elf_load: %s", err);
	cr_assert_eq(image.entry, ehdr()->e_entry);
	cr_assert_geq(image.load_end, SBX_GUEST_LOAD_MIN);
	cr_assert_eq(image.load_end % 4096, 0);
	cr_assert_eq(memcmp(mem + ph->p_vaddr, file + ph->p_offset,
			    ph->p_filesz),
		     0, "text segment not copied");
}

Test(elf, short_file)
{
	file_size = 10;
	expect_reject("too short for an ELF header");
}

Test(elf, bad_magic)
{
	file[1] = 'X';
	expect_reject("bad magic");
}

Test(elf, class_32bit)
{
	file[EI_CLASS] = ELFCLASS32;
	expect_reject("not ELFCLASS64");
}

Test(elf, big_endian)
{
	file[EI_DATA] = ELFDATA2MSB;
	expect_reject("little-endian");
}

Test(elf, wrong_machine)
{
	ehdr()->e_machine = EM_AARCH64;
	expect_reject("machine 183 is not x86_64");
}

Test(elf, shared_object)
{
	ehdr()->e_type = ET_DYN;
	expect_reject("not ET_EXEC");
}

Test(elf, truncated_phdrs)
{
	file_size = ehdr()->e_phoff + sizeof(Elf64_Phdr) / 2;
	expect_reject("program header table");
}

Test(elf, phoff_beyond_file)
{
	ehdr()->e_phoff = UINT64_MAX - 8;
	expect_reject("ends beyond the file");
}

Test(elf, no_phdrs)
{
	ehdr()->e_phnum = 0;
	expect_reject("0 program headers");
}

Test(elf, segment_beyond_file)
{
	phdr(load_segment(PF_X))->p_offset = file_size - 16;
	expect_reject("ends beyond the file");
}

Test(elf, segment_offset_wraps)
{
	Elf64_Phdr *ph = phdr(load_segment(PF_X));

	ph->p_offset = UINT64_MAX - 4;
	expect_reject("ends beyond the file");
}

Test(elf, segment_beyond_ram)
{
	Elf64_Phdr *ph = phdr(load_segment(PF_W));

	ph->p_memsz = 64 * MIB;
	expect_reject("beyond guest RAM (16 MiB); raise --memory-mib");
}

Test(elf, segment_address_wraps)
{
	Elf64_Phdr *ph = phdr(load_segment(PF_W));

	ph->p_vaddr = UINT64_MAX - 4096;
	expect_reject("beyond guest RAM");
}

Test(elf, segment_in_stack)
{
	Elf64_Phdr *ph = phdr(load_segment(PF_W));

	ph->p_memsz = MEM_SIZE - SBX_STACK_SIZE - ph->p_vaddr + 1;
	expect_reject("inside the stack region");
}

Test(elf, below_load_min)
{
	Elf64_Phdr *ph = phdr(load_segment(PF_X));

	ph->p_vaddr = SBX_BOOT_INFO_GPA;
	expect_reject("below the load minimum");
}

Test(elf, filesz_over_memsz)
{
	Elf64_Phdr *ph = phdr(load_segment(PF_X));

	ph->p_memsz = ph->p_filesz - 1;
	expect_reject("exceeds its memory size");
}

Test(elf, overlapping_segments)
{
	Elf64_Phdr *text = phdr(load_segment(PF_X));
	Elf64_Phdr *data = phdr(load_segment(PF_W));

	data->p_vaddr = text->p_vaddr;
	expect_reject("overlap");
}

Test(elf, entry_outside_segments)
{
	ehdr()->e_entry = 0x300000;
	expect_reject("entry point 0x300000");
}

Test(elf, entry_in_data_segment)
{
	ehdr()->e_entry = phdr(load_segment(PF_W))->p_vaddr;
	expect_reject("not inside an executable segment");
}

Test(elf, no_load_segments)
{
	for (unsigned int i = 0; i < ehdr()->e_phnum; i++)
		if (phdr(i)->p_type == PT_LOAD)
			phdr(i)->p_type = PT_NOTE;
	expect_reject("no PT_LOAD segment");
}

Test(elf, ram_too_small)
{
	int ret = load(SBX_GUEST_LOAD_MIN);

	cr_assert_eq(ret, -ENOEXEC);
	cr_assert_not_null(strstr(err, "raise --memory-mib"), "%s", err);
}

Test(hc_range, inside_and_edges)
{
	cr_assert(hc_range_ok(MEM_SIZE, 0, MEM_SIZE));
	cr_assert(hc_range_ok(MEM_SIZE, MEM_SIZE, 0));
	cr_assert(hc_range_ok(MEM_SIZE, MEM_SIZE - 48, 48));
}

Test(hc_range, outside)
{
	cr_assert_not(hc_range_ok(MEM_SIZE, MEM_SIZE - 47, 48));
	cr_assert_not(hc_range_ok(MEM_SIZE, MEM_SIZE + 1, 0));
	cr_assert_not(hc_range_ok(MEM_SIZE, 0, MEM_SIZE + 1));
}

Test(hc_range, overflow)
{
	cr_assert_not(hc_range_ok(MEM_SIZE, 4096, UINT64_MAX));
	cr_assert_not(hc_range_ok(MEM_SIZE, UINT64_MAX, 2));
}
