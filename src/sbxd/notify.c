// SPDX-License-Identifier: MIT
/* sd_notify messages for systemd: readiness, drain status, stop timeout. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "sbxd/drain.h"
#include "sbxd/log.h"
#include "sbxd/notify.h"

#define NS_PER_MS 1000000ull

static int send_sd_notify(const char *message)
{
	/* Keep NOTIFY_SOCKET: every later message needs it too. */
	return sd_notify(0, message);
}

/*
 * Connect a non-blocking datagram socket to NOTIFY_SOCKET, only to poll
 * whether the receiver's queue has room. Returns the fd or -1.
 */
static int open_probe(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	socklen_t addr_len;
	int fd;

	/* "@name" is a name in the abstract namespace. */
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(addr.sun_path))
		return -1;
	memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
			       (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void notify_init(struct notify *n, uint64_t drain_poll_ms,
		 notify_send_fn send)
{
	const char *socket = getenv("NOTIFY_SOCKET");

	memset(n, 0, sizeof(*n));
	n->enabled = socket && socket[0];
	n->send = send ? send : send_sd_notify;
	n->window_ms = notify_window_ms(drain_poll_ms);
	n->probe_fd = n->enabled ? open_probe(socket) : -1;
}

void notify_exit(struct notify *n)
{
	if (n->probe_fd >= 0)
		close(n->probe_fd);
	n->probe_fd = -1;
}

/*
 * Whether the receiver can queue one more message. sd_notify sends on a
 * blocking socket, so a full queue would stop the loop until the receiver
 * reads. systemd reads at once, but a stalled receiver may never read.
 */
static bool receiver_has_room(const struct notify *n)
{
	struct pollfd pfd = { .fd = n->probe_fd, .events = POLLOUT };

	if (n->probe_fd < 0)
		return true;
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT);
}

uint64_t notify_window_ms(uint64_t drain_poll_ms)
{
	if (drain_poll_ms > UINT64_MAX / 2)
		return UINT64_MAX / 2;
	return 2 * drain_poll_ms > NOTIFY_WINDOW_MIN_MS ? 2 * drain_poll_ms :
							 NOTIFY_WINDOW_MIN_MS;
}

bool notify_progressed(const struct notify_counts *before,
		       const struct notify_counts *now)
{
	return now->inflight < before->inflight || now->live < before->live ||
	       now->unreaped < before->unreaped;
}

uint64_t notify_extend_ms(uint64_t bound_left_ms, bool progressed,
			  uint64_t window_ms)
{
	if (bound_left_ms != NOTIFY_UNBOUNDED)
		return bound_left_ms > UINT64_MAX / 2 - NOTIFY_MARGIN_MS ?
		       UINT64_MAX / 2 : bound_left_ms + NOTIFY_MARGIN_MS;
	return progressed ? window_ms : 0;
}

int notify_format_status(char *buf, size_t len,
			 const struct notify_counts *counts,
			 uint64_t elapsed_s)
{
	return snprintf(buf, len, "%s: inflight=%d live=%u for %llus",
			drain_state_name(counts->state), counts->inflight,
			counts->live, (unsigned long long)elapsed_s);
}

static void send_message(struct notify *n, const char *message)
{
	char line[512];
	int ret;

	/* The log shows the message on one line. */
	snprintf(line, sizeof(line), "%s", message);
	for (char *p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	log_debug("sd_notify %s", line);

	/*
	 * NOTE: another sender can fill the queue between this check and
	 * sd_notify, which then waits until the receiver reads.
	 */
	if (!receiver_has_room(n)) {
		n->dropped++;
		if (n->dropped == 1 || n->dropped % 100 == 0)
			log_warn("dropped a notification because the queue of "
				 "NOTIFY_SOCKET=%s is full, rather than block: "
				 "\"%s\" dropped_total=%llu",
				 getenv("NOTIFY_SOCKET"), line,
				 (unsigned long long)n->dropped);
		return;
	}
	ret = n->send(message);
	if (ret >= 0 || n->error_logged)
		return;
	n->error_logged = true;
	log_warn("failed to notify systemd through NOTIFY_SOCKET=%s: %s; "
		 "the unit will not see READY, STATUS or timeout extensions "
		 "(logged once)", getenv("NOTIFY_SOCKET") ?
		 getenv("NOTIFY_SOCKET") : "", strerror(-ret));
}

void notify_ready(struct notify *n, const char *gate,
		  unsigned int max_sandboxes)
{
	char message[256];

	if (!n->enabled)
		return;
	snprintf(message, sizeof(message),
		 "READY=1\nSTATUS=serving: gate=%s max_sandboxes=%u", gate,
		 max_sandboxes);
	send_message(n, message);
}

static bool counts_equal(const struct notify_counts *a,
			 const struct notify_counts *b)
{
	return a->state == b->state && a->inflight == b->inflight &&
	       a->live == b->live;
}

/* Send STATUS= and, when extend_ms is not 0, EXTEND_TIMEOUT_USEC=. */
static void send_status(struct notify *n, const struct notify_counts *counts,
			uint64_t now_ns, uint64_t started_ns,
			uint64_t extend_ms)
{
	char status[160];
	char message[320];
	uint64_t elapsed_s = now_ns > started_ns ?
			     (now_ns - started_ns) / (1000 * NS_PER_MS) : 0;
	size_t used = 0;

	notify_format_status(status, sizeof(status), counts, elapsed_s);
	if (!n->stopping_sent) {
		used = (size_t)snprintf(message, sizeof(message),
					"STOPPING=1\n");
		n->stopping_sent = true;
	}
	used += (size_t)snprintf(message + used, sizeof(message) - used,
				 "STATUS=%s", status);
	if (extend_ms)
		snprintf(message + used, sizeof(message) - used,
			 "\nEXTEND_TIMEOUT_USEC=%llu",
			 (unsigned long long)extend_ms * 1000ull);
	send_message(n, message);
	n->status_ns = now_ns;
	n->status_counts = *counts;
}

void notify_drain(struct notify *n, const struct notify_counts *counts,
		  uint64_t now_ns, uint64_t started_ns, uint64_t bound_left_ms,
		  bool changed)
{
	uint64_t half_window_ns = n->window_ms / 2 * NS_PER_MS;
	uint64_t extend_ms;

	if (!n->enabled)
		return;
	if (changed) {
		/* A new phase gets one window to show progress. */
		extend_ms = notify_extend_ms(bound_left_ms, true, n->window_ms);
		send_status(n, counts, now_ns, started_ns, extend_ms);
		n->check_ns = now_ns;
		n->check_counts = *counts;
		return;
	}
	if (now_ns - n->check_ns >= half_window_ns) {
		extend_ms = notify_extend_ms(bound_left_ms,
					     notify_progressed(&n->check_counts,
							       counts),
					     n->window_ms);
		n->check_ns = now_ns;
		n->check_counts = *counts;
		if (extend_ms) {
			send_status(n, counts, now_ns, started_ns, extend_ms);
			return;
		}
	}
	if (!counts_equal(counts, &n->status_counts) &&
	    now_ns - n->status_ns >= NOTIFY_STATUS_INTERVAL_MS * NS_PER_MS)
		send_status(n, counts, now_ns, started_ns, 0);
}
