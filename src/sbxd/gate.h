/* SPDX-License-Identifier: MIT */
/*
 * Admission gate: counts in-flight starts and closes admission for the
 * drain, with one compare-and-swap on the {draining, inflight_starts} word
 * of struct sbxd_drain_state so that admission and the drain bit never race.
 *
 * Two backends share this interface: BPF (a pinned, mmapable array map
 * updated by SEC("syscall") programs) and memfd (the same algorithm over a
 * shared memfd word, for hosts without CAP_BPF or bpffs).
 * All functions return 0 or a negative errno unless stated otherwise.
 */
#ifndef SBXD_GATE_H
#define SBXD_GATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sbxd/drain_state.h"

enum gate_backend {
	GATE_BACKEND_AUTO = 0, /* BPF if allowed, else memfd with a warning */
	GATE_BACKEND_BPF,
	GATE_BACKEND_MEMFD,
};

struct gate_ops;

struct gate {
	const struct gate_ops *ops;
	enum gate_backend backend; /* the one in use after gate_open */
	/* Read-only mapping of the state; valid between open and close. */
	volatile struct sbxd_drain_state *state;
	void *priv;
	/* Why BPF was not used, when AUTO fell back to memfd; else "". */
	char fallback_reason[256];
	/*
	 * One line for the daemon's log about the pins, such as "replaced
	 * stale pins in /sys/fs/bpf/sbxd/default"; else "".
	 */
	char pin_note[256];
};

struct gate_config {
	enum gate_backend backend;
	const char *instance;	/* names the pin dir /sys/fs/bpf/sbxd/INSTANCE */
	const char *bpffs;	/* bpffs mount point, default "/sys/fs/bpf" */
};

/*
 * Open the gate in serving state. When the instance name is invalid or an
 * explicit BPF backend cannot load, returns the error and writes the
 * reason into fallback_reason.
 */
int gate_open(struct gate *gate, const struct gate_config *config);
/* Remove pins (BPF) and unmap. Safe on a zeroed or already closed gate. */
int gate_close(struct gate *gate);

/*
 * Admit one start. Returns 0 when admitted (inflight_starts and admitted
 * incremented), -EAGAIN when draining (rejected incremented).
 */
int gate_enter(struct gate *gate);
/* End one admitted start; ok=true counts it as started, else failed. */
int gate_exit(struct gate *gate, bool ok);
/* Close admission and move to `state` (>= SBXD_DRAINING); idempotent. */
int gate_drain(struct gate *gate, enum sbxd_node_state state, uint64_t now_ns);
/* Publish the number of live sandboxes. */
int gate_set_live(struct gate *gate, uint32_t live);

/* Snapshot of the state, read without locks. */
void gate_read(const struct gate *gate, struct sbxd_drain_state *out);

const char *gate_backend_name(enum gate_backend backend);

/*
 * Add or remove a VMM process whose KVM VMs count as live. BPF only:
 * the memfd backend returns -EOPNOTSUPP.
 */
int gate_track_vmm(struct gate *gate, pid_t pid);
int gate_untrack_vmm(struct gate *gate, pid_t pid);
/*
 * Count the KVM VMs ("kvm-vm" anonymous-inode files) held by tracked VMMs,
 * as the kernel sees them. Returns the count, or -EOPNOTSUPP on memfd.
 */
int gate_count_live_vms(struct gate *gate);

#endif
