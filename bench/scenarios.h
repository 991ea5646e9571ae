/* SPDX-License-Identifier: MIT */
/* Scenarios of sbx-bench; each prints one JSON object on stdout. */
#ifndef SBX_BENCH_SCENARIOS_H
#define SBX_BENCH_SCENARIOS_H

#include <jansson.h>
#include <stdbool.h>

#include "client.h"

struct bench_opts {
	struct client_addr addr;	/* sbxd API address */
	bool have_addr;
	unsigned long count;		/* samples, sandboxes or runs */
	unsigned long warmup;		/* untimed iterations first */
	unsigned long clients;		/* concurrent connections (rate) */
	unsigned long seconds;		/* duration (rate) */
	unsigned long memory_mib;	/* guest RAM per sandbox */
	unsigned long reserve_mib;	/* density stops above this MemAvailable */
	unsigned long interval_ms;	/* drain: time between sandbox ends */
	unsigned long idle_ms;		/* drain: wait before the first end */
	unsigned long expect_status;	/* run: the command's exit status */
	bool ignore_stop;		/* create sandboxes with ignore_stop */
	const char *instance;		/* sbxd --instance, for the BPF pin */
	const char *log_path;		/* stderr of a spawned sbxd */
	char **command;			/* argv after "--" */
};

int scenario_start(const struct bench_opts *opts);
int scenario_exec(const struct bench_opts *opts);
int scenario_rate(const struct bench_opts *opts);
int scenario_density(const struct bench_opts *opts);
int scenario_restore(const struct bench_opts *opts);
int scenario_drain(const struct bench_opts *opts);
int scenario_run(const struct bench_opts *opts);

/*
 * Create one sandbox on @c and store its id (at most 64 bytes) and VMM
 * pid. Returns 0, -EPROTO for a status other than 201 (printed), or
 * -errno.
 */
int sandbox_create(struct client *c, unsigned long memory_mib,
		   bool ignore_stop, char *id, size_t id_len, pid_t *pid);

/* DELETE one sandbox; returns 0, -EPROTO for a status other than 200. */
int sandbox_delete(struct client *c, const char *id);

#endif
