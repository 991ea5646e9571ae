/* SPDX-License-Identifier: MIT */
/*
 * The daemon's state, shared by its modules. There is one instance, owned
 * by main() and only touched from the loop thread.
 */
#ifndef SBXD_SBXD_H
#define SBXD_SBXD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "sbxd/config.h"
#include "sbxd/conn.h"
#include "sbxd/drain.h"
#include "sbxd/drained.h"
#include "sbxd/gate.h"
#include "sbxd/loop.h"
#include "sbxd/metrics.h"
#include "sbxd/notify.h"
#include "sbxd/sandbox.h"

#define SBXD_CLOSER_MAX 16

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/* Undoes one startup step at shutdown; returns 0 or a negative errno. */
typedef int (*closer_fn)(struct sbxd *d);

struct closer {
	const char *name;
	closer_fn fn;
};

struct sbxd {
	struct config cfg;
	struct loop loop;
	struct gate gate;
	struct sandbox_table sandboxes;
	struct conn_table conns;
	struct drain drain;
	struct drained_state drained;
	struct metrics metrics;
	struct notify notify;

	int lock_fd;
	char sock_path[PATH_MAX];
	int signal_fd;
	int self_pidfd;		/* for spawned VMMs to check that sbxd lives */

	struct closer closers[SBXD_CLOSER_MAX];	/* in opening order */
	int nclosers;

	bool stop;		/* leave the loop */
	int exit_status;
};

void sbxd_add_closer(struct sbxd *d, const char *name, closer_fn fn);

#endif
