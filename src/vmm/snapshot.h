/* SPDX-License-Identifier: MIT */
/* Snapshot files of one sbx-vmm VM: layout, writing and restoring. */
#ifndef SBX_VMM_SNAPSHOT_H
#define SBX_VMM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "sbx/guest.h"
#include "vmm/kvm.h"

struct vmm;

/*
 * File layout (docs/snapshot-format.md has the full description):
 *
 *   header      struct snap_header at offset 0
 *   vCPU state  struct vm_cpu_state
 *   VMM state   struct snap_vmm_state, then queue_len exec records
 *   RAM         mem_size bytes at a page-aligned offset, so that restore
 *               can mmap it
 *
 * Integers are little endian, as on the x86_64 hosts that read them.
 */
#define SNAP_MAGIC "SBX-SNAP"
#define SNAP_MAGIC_SIZE 8
#define SNAP_VERSION 1
#define SNAP_PAGE_SIZE 4096
#define SNAP_META_MAX (32u << 20) /* cap on everything before the RAM */

struct snap_header {
	char magic[SNAP_MAGIC_SIZE];	/* SNAP_MAGIC, no NUL */
	uint32_t version;		/* SNAP_VERSION */
	uint32_t flags;			/* none defined yet: 0 */
	uint32_t header_size;		/* sizeof(struct snap_header) */
	uint32_t page_size;		/* SNAP_PAGE_SIZE */
	uint64_t created_ns;		/* CLOCK_REALTIME at the snapshot */
	uint64_t file_size;		/* bytes in the whole file */
	uint64_t mem_size;		/* bytes of guest RAM */
	uint64_t vcpu_offset, vcpu_size;
	uint64_t vmm_offset, vmm_size;
	uint64_t ram_offset, ram_size;
	uint32_t meta_crc; /* CRC-32C of [0, ram_offset), this field as 0 */
	uint32_t ram_crc;  /* CRC-32C of the RAM section */
	char sandbox_id[SBX_BOOT_ID_MAX]; /* NUL-terminated */
};

/* struct snap_vmm_state flags */
#define SNAP_VMM_READY (1u << 0)	  /* the guest has sent READY */
#define SNAP_VMM_STOP_PENDING (1u << 1)	  /* stop not yet given */
#define SNAP_VMM_STOP_DELIVERED (1u << 2) /* stop given to the guest */
#define SNAP_VMM_CONSOLE_CAPPED (1u << 3) /* console cap note written */
#define SNAP_VMM_IGNORE_STOP (1u << 4)	  /* booted with --ignore-stop */
#define SNAP_VMM_CPL0 (1u << 5)		  /* booted with --cpl0 */
#define SNAP_VMM_HC_ACTIVE (1u << 6)	  /* hc_* describe a hypercall */
#define SNAP_VMM_HC_DEADLINE (1u << 7)	  /* hc_deadline_ns is set */
#define SNAP_VMM_RUNNING (1u << 8)	  /* running_seq awaits a REPLY */
#define SNAP_VMM_FLAGS_KNOWN 0x1ffu

/* VMM-side state: what the guest cannot see but depends on. */
struct snap_vmm_state {
	uint32_t flags;			/* SNAP_VMM_* */
	uint32_t boot_delay_ms;		/* as booted */
	uint64_t guest_clock_ns;	/* guest CLOCK_NS at the snapshot */
	uint64_t console_bytes;		/* console bytes written so far */
	uint64_t hc_gpa;		/* the pending hypercall's request */
	struct sbx_hypercall hc_request;
	uint64_t hc_deadline_ns;	/* SLEEP_NS end, guest clock */
	uint64_t running_seq;		/* exec waiting for its REPLY */
	uint32_t queue_len;		/* exec records that follow */
	uint32_t reserved;		/* 0 */
};

/* One queued exec: this header, `len` bytes of text, zero padding to 8. */
struct snap_exec {
	uint64_t seq;
	uint32_t len;
	uint32_t reserved; /* 0 */
};

/* A snapshot file opened and checked by snap_open(). */
struct snap_file {
	int fd;
	uint8_t *meta;	  /* bytes [0, ram_offset): header and state */
	const struct snap_header *header;
	const struct vm_cpu_state *cpu;
	const struct snap_vmm_state *state;
};

/*
 * Save the paused VM to `path`: write `path`.tmp.PID, fsync it, rename it
 * to `path` and fsync the directory, so a crash never leaves a partial
 * file under `path`. A path directly in the --snapshot-dir is written
 * through the fd that the VMM opened at start. Returns 0, or a negative
 * errno with `err` set to a message that names the path and the failed
 * step.
 */
int snap_write(struct vmm *vmm, const char *path, char *err,
	       size_t err_size);

/*
 * Open, while the VMM may still open any file, what snap_write() needs
 * later: /proc/self/pagemap for a restored VM, whose written pages it
 * lists. Returns 0, or a negative errno with `err` set.
 */
int snap_prepare(struct vmm *vmm, char *err, size_t err_size);

/*
 * Open `path` and check its header, layout and state checksum (not the
 * RAM's). Returns 0, or a negative errno with `err` naming the problem.
 * On success the caller owns `snap` and frees it with snap_close().
 */
int snap_open(struct snap_file *snap, const char *path, char *err,
	      size_t err_size);

/* Check the RAM checksum over `mem`, the mapped RAM section. */
int snap_check_ram(const struct snap_file *snap, const uint8_t *mem,
		   char *err, size_t err_size);

/*
 * Load the vCPU and VMM state of `snap` into `vmm`, whose VM was created
 * with vm_create_from_file() over the RAM section. Returns 0, or a
 * negative errno with `err` set.
 */
int snap_load(struct vmm *vmm, const struct snap_file *snap, char *err,
	      size_t err_size);

void snap_close(struct snap_file *snap);

#endif
