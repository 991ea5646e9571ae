// SPDX-License-Identifier: MIT
/*
 * Unit tests of guest_read_layout: the guest RAM that an ELF's PT_LOAD
 * segments and the stack need, on ELF files written to a temporary dir.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbx/guest.h"
#include "sbxd/guest.h"

static char dir[] = "/tmp/sbxd-guest-test-XXXXXX";
static char path[sizeof(dir) + 16];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/guest", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

TestSuite(guest_layout, .init = setup, .fini = teardown);

/* Write an ELF64 header and the given PT_LOAD segments (vaddr, memsz). */
static void write_elf(const uint64_t (*segments)[2], size_t count)
{
	Elf64_Ehdr eh = { 0 };
	int fd;

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (Elf64_Half)count;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, &eh, sizeof(eh)), (ssize_t)sizeof(eh));
	for (size_t i = 0; i < count; i++) {
		Elf64_Phdr ph = {
			.p_type = PT_LOAD,
			.p_vaddr = segments[i][0],
			.p_paddr = segments[i][0],
			.p_memsz = segments[i][1],
		};

		cr_assert_eq(write(fd, &ph, sizeof(ph)), (ssize_t)sizeof(ph));
	}
	close(fd);
}

Test(guest_layout, highest_segment_sets_need)
{
	static const uint64_t segments[][2] = {
		{ 0x400000, 0x1000 },
		{ 0x600000, 0x20000 },
		{ 0x500000, 0x1000 },
	};
	struct guest_layout layout;

	write_elf(segments, 3);
	cr_assert_eq(guest_read_layout(path, &layout), 0);
	cr_assert_eq(layout.load_end, 0x620000);
	/* 0x620000 + 256 KiB of stack = 6.375 MiB, rounded up. */
	cr_assert_eq(layout.min_memory_mib, 7);
}

Test(guest_layout, exact_fit_is_not_rounded_up)
{
	static const uint64_t segments[][2] = {
		{ 0x400000, 0x400000 - SBX_STACK_SIZE },
	};
	struct guest_layout layout;

	write_elf(segments, 1);
	cr_assert_eq(guest_read_layout(path, &layout), 0);
	cr_assert_eq(layout.min_memory_mib, 8);
}

Test(guest_layout, not_elf_is_enoexec)
{
	static const char text[] = "#!/bin/sh\necho not a guest\n";
	struct guest_layout layout;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1),
		     (ssize_t)sizeof(text) - 1);
	close(fd);
	cr_assert_eq(guest_read_layout(path, &layout), -ENOEXEC);
}

Test(guest_layout, no_load_segment_is_enoexec)
{
	static const uint64_t segments[][2] = { { 0x400000, 0 } };
	struct guest_layout layout;

	write_elf(segments, 1);
	cr_assert_eq(guest_read_layout(path, &layout), -ENOEXEC);
}

Test(guest_layout, overflowing_segment_is_enoexec)
{
	static const uint64_t segments[][2] = {
		{ 0xfffffffffffff000ull, 0x2000 },
	};
	struct guest_layout layout;

	write_elf(segments, 1);
	cr_assert_eq(guest_read_layout(path, &layout), -ENOEXEC);
}

Test(guest_layout, missing_file_is_enoent)
{
	struct guest_layout layout;

	cr_assert_eq(guest_read_layout("/nonexistent/sbx-guest", &layout),
		     -ENOENT);
}

Test(guest_layout, built_agent_fits_default)
{
	struct guest_layout layout;

	cr_assert_eq(guest_read_layout(SBX_BIN_DIR "/sbx-agent", &layout), 0,
		     "the build's sbx-agent is missing or not an ELF");
	/* It links at 4 MiB, so 4 MiB of RAM can never hold it. */
	cr_assert_gt(layout.min_memory_mib, 4, "load_end 0x%llx",
		     (unsigned long long)layout.load_end);
	cr_assert_leq(layout.min_memory_mib, 16,
		      "sbx-agent needs %u MiB, more than the default "
		      "memory_mib of 16", layout.min_memory_mib);
}
