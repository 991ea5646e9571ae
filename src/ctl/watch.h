/* SPDX-License-Identifier: MIT */
/* "sbxctl node --watch": live drain progress from the BPF map or the API. */
#ifndef SBXCTL_WATCH_H
#define SBXCTL_WATCH_H

#include "addr.h"
#include "cli.h"
#include "request.h"

#define WATCH_INTERVAL_MS 500		/* default of --interval */
#define WATCH_RESPONSE_TIMEOUT_MS 10000	/* per GET /v1/node */
#define WATCH_EXIT_INTERRUPTED 130	/* 128 + SIGINT, as shells report it */

/*
 * Show the node status every --interval until sbxd exits or a SIGINT or
 * SIGTERM arrives. Reads the drain-state map that sbxd pins for the
 * instance from --instance, SBXD_INSTANCE or "default", and polls @req
 * (GET /v1/node) at @addr when that map cannot be opened. Returns the exit
 * status: 0 once sbxd has gone, 1 when the first poll or a map read
 * fails, 2 for an invalid SBXD_INSTANCE, WATCH_EXIT_INTERRUPTED on a
 * signal.
 */
int watch_run(const struct cli *cli, const struct ctl_addr *addr,
	      const struct ctl_request *req);

#endif
