// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for sbx-vmm's snapshot reader. The input is the start
 * of a snapshot file: the harness writes it to a memfd and, when the
 * header gives a larger file size, extends it with a hole to that size, so
 * that the RAM section reads as zeros past the input. snap_open() then
 * reads it as `sbx-vmm --restore` does, and snap_check_ram() checks the
 * RAM section of a file that opens.
 *
 * Each input runs twice: once as it is, and once with both CRC-32C fields
 * recomputed, so that the checks behind the state checksum are reached
 * and a file with correct checksums must pass the RAM check.
 *
 * NOTE: snap_load() is not fuzzed, because it loads the vCPU state into
 * KVM first. The harness checks instead that the exec records which
 * load_queue() copies lie inside the VMM section.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "vmm/crc32c.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

#define MIB (1024ull * 1024)
/* A valid file is at most 32 MiB of state plus 4 GiB of RAM. */
#define FILE_SIZE_MAX (SNAP_META_MAX + 4096 * MIB)

static int file_fd = -1;
static uint8_t *copy;
static size_t copy_cap;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_util_init();
	file_fd = fuzz_memfd("fuzz-snapshot");
	return 0;
}

static bool read_header(const uint8_t *data, size_t size,
			struct snap_header *hdr)
{
	if (size < sizeof(*hdr))
		return false;
	memcpy(hdr, data, sizeof(*hdr));
	return true;
}

/* Write the file: the input, then a hole up to the header's file_size. */
static void write_file(const uint8_t *data, size_t size)
{
	struct snap_header hdr;

	fuzz_memfd_fill(file_fd, data, size);
	if (!read_header(data, size, &hdr) || hdr.file_size <= size ||
	    hdr.file_size > FILE_SIZE_MAX)
		return;
	if (ftruncate(file_fd, (off_t)hdr.file_size) < 0)
		fuzz_fail("ftruncate to %" PRIu64 " bytes failed: %s",
			  hdr.file_size, strerror(errno));
}

/* The exec records that load_queue() copies must lie in the section. */
static void check_queue(const struct snap_file *snap)
{
	const struct snap_header *hdr = snap->header;
	uint64_t used = sizeof(struct snap_vmm_state);
	const uint8_t *p = (const uint8_t *)snap->state + used;
	struct snap_exec rec;

	for (uint32_t i = 0; i < snap->state->queue_len; i++) {
		FUZZ_CHECK(used + sizeof(rec) <= hdr->vmm_size,
			   "exec record %" PRIu32 " starts past the section",
			   i);
		memcpy(&rec, p, sizeof(rec));
		FUZZ_CHECK(rec.len <= SBX_MSG_PAYLOAD_MAX,
			   "exec record %" PRIu32 " of %" PRIu32 " bytes", i,
			   rec.len);
		used += sizeof(rec) + (rec.len + 7ull) / 8 * 8;
		FUZZ_CHECK(used <= hdr->vmm_size,
			   "exec record %" PRIu32 " ends past the section", i);
		p = (const uint8_t *)snap->state + used;
	}
}

static void check_layout(const struct snap_file *snap)
{
	const struct snap_header *hdr = snap->header;

	FUZZ_CHECK(memcmp(hdr->magic, SNAP_MAGIC, SNAP_MAGIC_SIZE) == 0,
		   "bad magic accepted");
	FUZZ_CHECK(hdr->version == SNAP_VERSION, "version %" PRIu32,
		   hdr->version);
	FUZZ_CHECK(hdr->vcpu_offset >= sizeof(*hdr) &&
			   hdr->vcpu_offset + hdr->vcpu_size <=
				   hdr->vmm_offset &&
			   hdr->vmm_offset + hdr->vmm_size <= hdr->ram_offset,
		   "sections out of order or overlapping");
	FUZZ_CHECK(hdr->ram_offset + hdr->ram_size == hdr->file_size,
		   "RAM section does not end the file");
	FUZZ_CHECK(hdr->mem_size >= 4 * MIB && hdr->mem_size <= 4096 * MIB,
		   "mem_size %" PRIu64, hdr->mem_size);
	FUZZ_CHECK(memchr(hdr->sandbox_id, '\0', sizeof(hdr->sandbox_id)),
		   "sandbox id unterminated");
	FUZZ_CHECK(snap->state->queue_len <= VMM_EXEC_QUEUE_MAX,
		   "queue_len %" PRIu32, snap->state->queue_len);
	check_queue(snap);
}

/* Check the RAM CRC over a read-only mapping of the RAM section. */
static int check_ram(const struct snap_file *snap, char *err, size_t errlen)
{
	const struct snap_header *hdr = snap->header;
	void *mem;
	int ret;

	mem = mmap(NULL, hdr->ram_size, PROT_READ, MAP_PRIVATE, snap->fd,
		   (off_t)hdr->ram_offset);
	if (mem == MAP_FAILED)
		fuzz_fail("mmap of %" PRIu64 " bytes of RAM failed: %s",
			  hdr->ram_size, strerror(errno));
	ret = snap_check_ram(snap, mem, err, errlen);
	munmap(mem, hdr->ram_size);
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG, "snap_check_ram returned %d",
		   ret);
	return ret;
}

/*
 * Open the file in the memfd. Returns the RAM check's result, or 1 when
 * snap_open() rejects the file.
 */
static int open_file(void)
{
	struct snap_file snap;
	char err[512];
	int ret;

	memset(err, 'x', sizeof(err));
	ret = snap_open(&snap, fuzz_fd_path(file_fd), err, sizeof(err));
	if (ret) {
		FUZZ_CHECK(ret < 0, "snap_open returned %d", ret);
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) && err[0],
			   "rejected without a message");
		FUZZ_CHECK(snap.fd < 0 && !snap.meta,
			   "a failed snap_open kept its file or buffer");
		return 1;
	}
	check_layout(&snap);
	memset(err, 'x', sizeof(err));
	ret = check_ram(&snap, err, sizeof(err));
	if (ret)
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) && err[0],
			   "RAM check failed without a message");
	snap_close(&snap);
	return ret;
}

/*
 * Copy the input and set ram_crc and meta_crc to the checksums of the file
 * built from it. Returns false when the header does not describe such a file.
 */
static bool fix_checksums(const uint8_t *data, size_t size)
{
	struct snap_header hdr;
	uint64_t ram_in_input;
	uint32_t crc;

	if (!read_header(data, size, &hdr) || hdr.ram_offset > size ||
	    hdr.ram_offset < sizeof(hdr) || hdr.file_size < size ||
	    hdr.file_size > FILE_SIZE_MAX ||
	    hdr.ram_offset + hdr.ram_size != hdr.file_size)
		return false;
	if (size > copy_cap) {
		uint8_t *grown = realloc(copy, size);

		if (!grown)
			fuzz_fail("out of memory for a %zu-byte copy", size);
		copy = grown;
		copy_cap = size;
	}
	memcpy(copy, data, size);

	ram_in_input = size - hdr.ram_offset;
	crc = crc32c(0, copy + hdr.ram_offset, ram_in_input);
	hdr.ram_crc = crc32c_zeros(crc, hdr.ram_size - ram_in_input);
	hdr.meta_crc = 0;
	memcpy(copy, &hdr, sizeof(hdr));
	hdr.meta_crc = crc32c(0, copy, hdr.ram_offset);
	memcpy(copy, &hdr, sizeof(hdr));
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	write_file(data, size);
	open_file();

	if (!fix_checksums(data, size))
		return 0;
	write_file(copy, size);
	FUZZ_CHECK(open_file() != -EBADMSG,
		   "RAM checksum mismatch in a file with a correct one");
	return 0;
}
