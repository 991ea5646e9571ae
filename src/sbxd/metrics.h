/* SPDX-License-Identifier: MIT */
/*
 * GET /metrics in the Prometheus text exposition format 0.0.4, and the
 * start-latency histogram that sbxd records for it.
 */
#ifndef SBXD_METRICS_H
#define SBXD_METRICS_H

#include <stdint.h>

#include "sbxd/buf.h"

struct sbxd;

/* Upper bounds of the finite start-latency buckets, in seconds. */
#define METRICS_START_BOUNDS                                          \
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,  \
		2.5, 5.0, 10.0
#define METRICS_START_BUCKETS 13

struct metrics {
	/*
	 * Starts per bucket, not cumulative: [i] counts latencies above
	 * bound i-1 and at most bound i; the last slot counts those above
	 * the largest bound.
	 */
	uint64_t start_buckets[METRICS_START_BUCKETS + 1];
	uint64_t start_count;
	double start_sum_seconds;
	uint64_t live_vms_warned_ns;	/* last failed count, rate limit */
	int live_vms_cached;		/* last iterator count */
	uint64_t live_vms_cached_ns;	/* when it was taken; 0: invalid */

	/* Snapshots (API and drain), checkpoints and restores, by result. */
	uint64_t snapshots_ok;
	uint64_t snapshots_failed;
	uint64_t checkpoints_ok;
	uint64_t checkpoints_failed;
	uint64_t restores_ok;
	uint64_t restores_failed;
};

/* Record one start, from admission to READY, of `seconds`. */
void metrics_observe_start(struct metrics *m, double seconds);

/*
 * The kernel's count of KVM VMs held by this instance's VMMs, from the
 * BPF gate's iterator. Returns -EOPNOTSUPP on the memfd gate, or another
 * negative errno, which is logged at most once a second.
 */
int metrics_count_live_vms(struct sbxd *d);
/* Drop the cached live-VM count after a VMM started, became ready or ended. */
void metrics_live_vms_changed(struct sbxd *d);

/* Append every metric to out; 0 or -ENOMEM. */
int metrics_format(struct sbxd *d, struct buf *out);

#endif
