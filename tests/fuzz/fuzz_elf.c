// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the guest ELF loader of sbx-vmm: the input is a
 * guest file, loaded by elf_load() into a malloc'd stand-in for 16 MiB of
 * guest RAM (the API's default memory_mib). AddressSanitizer catches any
 * read past the file or write past the RAM.
 *
 * The same file also goes through guest_read_layout(), sbxd's check of
 * memory_mib at create time, which must never ask for more RAM than the
 * loader needs: otherwise sbxd would reject a create that sbx-vmm runs.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "sbx/guest.h"
#include "sbxd/guest.h"
#include "vmm/elf.h"

#define MIB (1024ull * 1024)
#define RAM_MIB 16
#define RAM_SIZE (RAM_MIB * MIB)

static uint8_t *ram;
static int file_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_util_init();
	/* Exactly the RAM size, so that ASan reports a write past it. */
	ram = malloc(RAM_SIZE);
	if (!ram)
		fuzz_fail("failed to allocate %llu MiB of guest RAM",
			  (unsigned long long)RAM_MIB);
	file_fd = fuzz_memfd("fuzz-elf");
	return 0;
}

static void check_image(const struct elf_image *image)
{
	FUZZ_CHECK(image->entry >= SBX_GUEST_LOAD_MIN &&
			   image->entry < RAM_SIZE - SBX_STACK_SIZE,
		   "entry 0x%llx outside the load area",
		   (unsigned long long)image->entry);
	FUZZ_CHECK(image->load_end % 4096 == 0 &&
			   image->load_end <= RAM_SIZE - SBX_STACK_SIZE,
		   "load_end 0x%llx past the stack or unaligned",
		   (unsigned long long)image->load_end);
	FUZZ_CHECK(image->entry < image->load_end,
		   "entry 0x%llx past load_end 0x%llx",
		   (unsigned long long)image->entry,
		   (unsigned long long)image->load_end);
}

/* sbxd's size check must agree with what the loader accepted. */
static void check_layout(const uint8_t *data, size_t size, bool loaded)
{
	struct guest_layout layout;
	int ret;

	fuzz_memfd_fill(file_fd, data, size);
	ret = guest_read_layout(fuzz_fd_path(file_fd), &layout);
	FUZZ_CHECK(ret == 0 || ret == -ENOEXEC || ret == -EINVAL,
		   "guest_read_layout returned %d", ret);
	if (ret)
		return;
	FUZZ_CHECK(layout.load_end > 0, "layout with load_end 0");
	FUZZ_CHECK((uint64_t)layout.min_memory_mib * MIB >=
			   layout.load_end + SBX_STACK_SIZE,
		   "min_memory_mib %u does not cover load_end 0x%llx",
		   layout.min_memory_mib,
		   (unsigned long long)layout.load_end);
	if (loaded)
		FUZZ_CHECK(layout.min_memory_mib <= RAM_MIB,
			   "sbxd asks for %u MiB but sbx-vmm loads the guest "
			   "in %d MiB", layout.min_memory_mib, RAM_MIB);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_image image = { 0 };
	char err[256];
	int ret;

	memset(err, 'x', sizeof(err));
	ret = elf_load(data, size, ram, RAM_SIZE, &image, err, sizeof(err));
	if (ret == 0) {
		check_image(&image);
	} else {
		FUZZ_CHECK(ret == -ENOEXEC, "elf_load returned %d", ret);
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) && err[0],
			   "rejected without a message");
	}
	check_layout(data, size, ret == 0);
	return 0;
}
