/* SPDX-License-Identifier: MIT */
/*
 * systemd notifications with sd_notify: READY=1 once serving, then
 * STOPPING=1, STATUS= lines and EXTEND_TIMEOUT_USEC= during the drain.
 *
 * The stop timeout extension is always finite:
 * - while the drain has a bound (--drain-timeout set, the forced phase or
 *   closing), each extension is the time left to that bound plus
 *   NOTIFY_MARGIN_MS;
 * - while the graceful phase waits without a bound, sbxd checks every
 *   half window whether inflight, live or unreaped VMMs went down since
 *   the last check, and only then extends by one window, max(2 x
 *   --drain-poll, 10 s). A drain that stops making progress therefore
 *   lets the unit's TimeoutStopSec= expire.
 */
#ifndef SBXD_NOTIFY_H
#define SBXD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbxd/drain_state.h"

/* Time to run the closers and reap the last VMMs after a bound. */
#define NOTIFY_MARGIN_MS 5000
#define NOTIFY_WINDOW_MIN_MS 10000
/* bound_left_ms when the drain has no bound. */
#define NOTIFY_UNBOUNDED UINT64_MAX
/* STATUS= lines that only update counts are sent at most this often. */
#define NOTIFY_STATUS_INTERVAL_MS 1000

/*
 * Sends one notification. Returns > 0 when sent, 0 when not under
 * systemd, or a negative errno.
 */
typedef int (*notify_send_fn)(const char *message);

struct notify_counts {
	enum sbxd_node_state state;
	int32_t inflight;
	uint32_t live;
	uint32_t unreaped;
};

struct notify {
	bool enabled;		/* NOTIFY_SOCKET was set at start */
	notify_send_fn send;
	int probe_fd;		/* connected to NOTIFY_SOCKET, or -1 */
	uint64_t dropped;	/* messages not sent: the queue was full */
	uint64_t window_ms;
	bool stopping_sent;
	uint64_t status_ns;		/* last STATUS= line */
	struct notify_counts status_counts;
	uint64_t check_ns;		/* last extension check */
	struct notify_counts check_counts;
	bool error_logged;
};

/*
 * Enable notifications when NOTIFY_SOCKET is set. send may be NULL for
 * sd_notify itself. A message that the receiver has no room to queue is
 * dropped with a warning, so that a stalled receiver cannot block the
 * loop.
 */
void notify_init(struct notify *n, uint64_t drain_poll_ms,
		 notify_send_fn send);

/* Close what notify_init opened. */
void notify_exit(struct notify *n);

/* READY=1 with a STATUS= line naming the gate backend. */
void notify_ready(struct notify *n, const char *gate,
		  unsigned int max_sandboxes);

/*
 * Report the drain. changed is true on a phase change (begin, forced,
 * closing): STATUS= and EXTEND_TIMEOUT_USEC= go out at once, preceded by
 * STOPPING=1 the first time. Otherwise this is the waiter's tick: it
 * renews the extension per the rule above and sends STATUS= when the
 * counts changed, at most once a second. bound_left_ms is the time left
 * to the drain's bound, or NOTIFY_UNBOUNDED.
 */
void notify_drain(struct notify *n, const struct notify_counts *counts,
		  uint64_t now_ns, uint64_t started_ns, uint64_t bound_left_ms,
		  bool changed);

/* max(2 x drain_poll_ms, NOTIFY_WINDOW_MIN_MS). */
uint64_t notify_window_ms(uint64_t drain_poll_ms);
/* Whether inflight, live or unreaped went down from before to now. */
bool notify_progressed(const struct notify_counts *before,
		       const struct notify_counts *now);
/*
 * The extension to send in milliseconds, or 0 for none: the bound plus
 * NOTIFY_MARGIN_MS when bounded, else window_ms if progressed.
 */
uint64_t notify_extend_ms(uint64_t bound_left_ms, bool progressed,
			  uint64_t window_ms);
/* "draining: inflight=1 live=2 for 3s" into buf; returns snprintf's value. */
int notify_format_status(char *buf, size_t len,
			 const struct notify_counts *counts,
			 uint64_t elapsed_s);

#endif
