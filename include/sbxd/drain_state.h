/* SPDX-License-Identifier: MIT */
/*
 * Drain state shared by sbxd, bpf/drain.bpf.c and operators' tools.
 * {draining, inflight_starts} is the first 8-byte word so that admission
 * is one compare-and-swap: admit only while draining == 0.
 */
#ifndef SBXD_DRAIN_STATE_H
#define SBXD_DRAIN_STATE_H

#ifdef __BPF__
/* vmlinux.h or linux/types.h already provides the __u32 family. */
#else
#include <linux/types.h>
#endif

enum sbxd_node_state {
	SBXD_SERVING = 0,
	SBXD_DRAINING = 1,
	SBXD_FORCING = 2,
	SBXD_CLOSING = 3,
};

struct sbxd_drain_state {
	__u32 draining;		/* enum sbxd_node_state */
	__s32 inflight_starts;	/* admitted starts not yet ready or failed */
	__u32 live;		/* sandboxes running */
	__u32 reserved;
	__u64 admitted, rejected, started, failed;
	__u64 drain_started_ns; /* CLOCK_MONOTONIC, 0 when serving */
};

#endif
