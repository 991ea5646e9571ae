/* SPDX-License-Identifier: MIT */
/* Resource counts of a running sbxd that a soak run compares before/after. */
#ifndef SBX_SOAK_COUNTS_H
#define SBX_SOAK_COUNTS_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

/* The sbxd under test and where its resources live. */
struct soak_target {
	char state_dir[PATH_MAX];
	char sock_path[108];		/* sizeof(sun_path) */
	char pin_dir[PATH_MAX];		/* /sys/fs/bpf/sbxd/INSTANCE */
	pid_t pid;			/* from STATE_DIR/sbxd.lock */
	unsigned long long start_time;	/* field 22 of /proc/PID/stat */
	bool bpf_gate;			/* GET /v1/node says gate "bpf" */
};

/*
 * One snapshot of the counts. live_vms is -1 when sbxd cannot count VMs
 * (the memfd gate reports null).
 */
struct soak_counts {
	long fds;		/* entries of /proc/PID/fd */
	long rss_kib;		/* VmRSS of /proc/PID/status */
	long children;		/* processes whose parent is sbxd: its VMMs */
	long live_vms;		/* live_vms of GET /v1/node */
	long sandboxes;		/* sandboxes of GET /v1/node, ended included */
	long pins;		/* files and dirs under pin_dir */
	long entries;		/* files and dirs under STATE_DIR/sandboxes */
};

/*
 * Find the sbxd that holds state_dir's lock, check that it serves
 * sock_path and learn its gate. Prints what is wrong and returns -errno.
 */
int counts_target_open(struct soak_target *t, const char *state_dir,
		       const char *sock_path, const char *instance,
		       int timeout_ms);

/* True while the sbxd found by counts_target_open() still runs. */
bool counts_target_alive(const struct soak_target *t);

/*
 * Read every count. The API request comes first and its connection is
 * closed before the fds are counted, so it is not among them.
 * Returns 0 or -errno after printing what failed.
 */
int counts_read(const struct soak_target *t, struct soak_counts *c,
		int timeout_ms);

#endif
