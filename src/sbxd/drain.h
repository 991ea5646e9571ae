/* SPDX-License-Identifier: MIT */
/*
 * Signals and the drain: serving -> draining (admission closed, wait for
 * in-flight starts, then for every sandbox to end) -> forcing (stop and
 * SIGKILL every sandbox, bounded) -> closing (closers, exit status).
 */
#ifndef SBXD_DRAIN_H
#define SBXD_DRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "sbxd/drain_state.h"
#include "sbxd/loop.h"

struct sbxd;

struct drain {
	enum sbxd_node_state state;
	uint64_t started_ns;
	uint64_t last_progress_ns;
	uint64_t last_vm_warn_ns;
	bool timed_out;		/* the forced phase ran out of time */
	const char *reason;	/* why the drain started */
	struct loop_req tick_req;
	struct loop_req signal_req;
	struct signalfd_siginfo *siginfo;
	struct timer drain_timer;	/* --drain-timeout */
	struct timer force_timer;	/* --force-timeout */
	struct timer flush_timer;	/* bound on writing last responses */
	unsigned int ticks;
};

int drain_init(struct sbxd *d);
void drain_start_signals(struct sbxd *d);
/* Start the drain; idempotent. */
void drain_begin(struct sbxd *d, const char *reason);
/* Enter the forced phase; idempotent. Starts the drain when serving. */
void drain_force(struct sbxd *d, const char *reason);
/* Re-check whether the drain can move on; cheap, call after any change. */
void drain_check(struct sbxd *d);

void drain_on_signal(struct sbxd *d, int res);
void drain_on_tick(struct sbxd *d, int res, unsigned int flags);

const char *drain_state_name(enum sbxd_node_state state);

#endif
