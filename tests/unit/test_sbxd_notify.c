// SPDX-License-Identifier: MIT
/*
 * Unit tests of the systemd notifications: the stop timeout extension
 * rule, the STATUS= text, and the messages notify_drain sends over a
 * drain, captured in place of sd_notify.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sbxd/notify.h"

#define MS 1000000ull
#define MAX_MESSAGES 32

static char messages[MAX_MESSAGES][512];
static int nmessages;

static int capture(const char *message)
{
	cr_assert_lt(nmessages, MAX_MESSAGES, "too many notifications");
	snprintf(messages[nmessages++], sizeof(messages[0]), "%s", message);
	return 1;
}

static void setup(void)
{
	nmessages = 0;
	setenv("NOTIFY_SOCKET", "/run/unit-test/notify", 1);
}

TestSuite(notify, .init = setup);

static struct notify_counts counts(enum sbxd_node_state state,
				   int32_t inflight, uint32_t live,
				   uint32_t unreaped)
{
	struct notify_counts c = { state, inflight, live, unreaped };

	return c;
}

Test(notify, window_is_at_least_10s)
{
	cr_assert_eq(notify_window_ms(10), 10000);
	cr_assert_eq(notify_window_ms(5000), 10000);
	cr_assert_eq(notify_window_ms(8000), 16000);
}

Test(notify, extension_rule)
{
	/* Bounded: the time left plus the margin, progress or not. */
	cr_assert_eq(notify_extend_ms(30000, false, 10000),
		     30000 + NOTIFY_MARGIN_MS);
	cr_assert_eq(notify_extend_ms(0, true, 10000), NOTIFY_MARGIN_MS);
	/* Unbounded: one window, only after progress. */
	cr_assert_eq(notify_extend_ms(NOTIFY_UNBOUNDED, true, 10000), 10000);
	cr_assert_eq(notify_extend_ms(NOTIFY_UNBOUNDED, false, 10000), 0);
	/* Never the "infinity" of systemd, even for huge bounds. */
	cr_assert_lt(notify_extend_ms(NOTIFY_UNBOUNDED - 1, false, 10000),
		     UINT64_MAX / 2 + 1);
}

Test(notify, progress_means_a_count_went_down)
{
	struct notify_counts before = counts(SBXD_DRAINING, 1, 2, 3);
	struct notify_counts same = before;
	struct notify_counts ready = counts(SBXD_DRAINING, 0, 3, 3);
	struct notify_counts reaped = counts(SBXD_DRAINING, 1, 2, 2);

	cr_assert_not(notify_progressed(&before, &same));
	cr_assert(notify_progressed(&before, &ready),
		  "a start that became ready is progress");
	cr_assert(notify_progressed(&before, &reaped));
}

Test(notify, status_text)
{
	struct notify_counts c = counts(SBXD_DRAINING, 1, 2, 3);
	char text[128];

	notify_format_status(text, sizeof(text), &c, 17);
	cr_assert_str_eq(text, "draining: inflight=1 live=2 for 17s");
}

Test(notify, disabled_without_socket)
{
	struct notify n;
	struct notify_counts c = counts(SBXD_DRAINING, 0, 1, 1);

	unsetenv("NOTIFY_SOCKET");
	notify_init(&n, 10, capture);
	notify_ready(&n, "bpf", 8);
	notify_drain(&n, &c, 1000 * MS, 1000 * MS, NOTIFY_UNBOUNDED, true);
	cr_assert_eq(nmessages, 0);
}

Test(notify, ready_message)
{
	struct notify n;

	notify_init(&n, 10, capture);
	notify_ready(&n, "memfd", 8);
	cr_assert_eq(nmessages, 1);
	cr_assert(strncmp(messages[0], "READY=1\n", 8) == 0, "%s",
		  messages[0]);
	cr_assert(strstr(messages[0], "STATUS=serving: gate=memfd"), "%s",
		  messages[0]);
}

Test(notify, unbounded_drain_extends_on_progress)
{
	uint64_t t0 = 1000 * MS;
	struct notify n;
	struct notify_counts c = counts(SBXD_DRAINING, 0, 2, 2);

	notify_init(&n, 10, capture);
	notify_drain(&n, &c, t0, t0, NOTIFY_UNBOUNDED, true);
	cr_assert_eq(nmessages, 1);
	cr_assert_str_eq(messages[0], "STOPPING=1\n"
			 "STATUS=draining: inflight=0 live=2 for 0s\n"
			 "EXTEND_TIMEOUT_USEC=10000000");

	/* Ticks without change send nothing. */
	notify_drain(&n, &c, t0 + 10 * MS, t0, NOTIFY_UNBOUNDED, false);
	notify_drain(&n, &c, t0 + 2000 * MS, t0, NOTIFY_UNBOUNDED, false);
	cr_assert_eq(nmessages, 1);

	/* A count changed: STATUS= only, and not twice within a second. */
	c.live = 1;
	c.unreaped = 1;
	notify_drain(&n, &c, t0 + 2100 * MS, t0, NOTIFY_UNBOUNDED, false);
	cr_assert_eq(nmessages, 2);
	cr_assert_str_eq(messages[1], "STATUS=draining: inflight=0 live=1 "
			 "for 2s");
	c.live = 0;
	notify_drain(&n, &c, t0 + 2200 * MS, t0, NOTIFY_UNBOUNDED, false);
	cr_assert_eq(nmessages, 2, "second STATUS within 1 s: %s",
		     messages[nmessages - 1]);
	notify_drain(&n, &c, t0 + 3200 * MS, t0, NOTIFY_UNBOUNDED, false);
	cr_assert_eq(nmessages, 3);
	cr_assert_str_eq(messages[2], "STATUS=draining: inflight=0 live=0 "
			 "for 3s");

	/* Half a window on, progress happened: one more window. */
	notify_drain(&n, &c, t0 + 5000 * MS, t0, NOTIFY_UNBOUNDED, false);
	cr_assert_eq(nmessages, 4);
	cr_assert_str_eq(messages[3], "STATUS=draining: inflight=0 live=0 "
			 "for 5s\nEXTEND_TIMEOUT_USEC=10000000");

	/* Another half window without progress: no extension. */
	notify_drain(&n, &c, t0 + 10000 * MS, t0, NOTIFY_UNBOUNDED, false);
	notify_drain(&n, &c, t0 + 15000 * MS, t0, NOTIFY_UNBOUNDED, false);
	cr_assert_eq(nmessages, 4, "extended a stalled drain: %s",
		     messages[nmessages - 1]);
}

Test(notify, bounded_phases_extend_to_the_bound)
{
	uint64_t t0 = 1000 * MS;
	struct notify n;
	struct notify_counts c = counts(SBXD_DRAINING, 1, 1, 2);

	notify_init(&n, 10, capture);
	notify_drain(&n, &c, t0, t0, 60000, true);
	cr_assert_eq(nmessages, 1);
	cr_assert(strstr(messages[0], "\nEXTEND_TIMEOUT_USEC=65000000"),
		  "%s", messages[0]);

	/* No progress, but the bound still holds: renewed to the bound. */
	notify_drain(&n, &c, t0 + 5000 * MS, t0, 55000, false);
	cr_assert_eq(nmessages, 2);
	cr_assert(strstr(messages[1], "\nEXTEND_TIMEOUT_USEC=60000000"),
		  "%s", messages[1]);

	/* The forced phase: STOPPING=1 is not repeated. */
	c.state = SBXD_FORCING;
	notify_drain(&n, &c, t0 + 6000 * MS, t0, 31000, true);
	cr_assert_eq(nmessages, 3);
	cr_assert_str_eq(messages[2], "STATUS=forcing: inflight=1 live=1 "
			 "for 6s\nEXTEND_TIMEOUT_USEC=36000000");
}

/* A receiver that never reads: sd_notify would block once its queue is full. */
Test(notify, full_queue_drops_not_blocks, .timeout = 10)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct notify_counts c = counts(SBXD_DRAINING, 0, 1, 1);
	char dir[] = "/tmp/sbxd-notify-test-XXXXXX";
	struct notify n;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/notify", dir);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0,
		     "bind %s: %s", addr.sun_path, strerror(errno));
	setenv("NOTIFY_SOCKET", addr.sun_path, 1);

	/* The real sd_notify; the test's .timeout catches a block. */
	notify_init(&n, 10, NULL);
	cr_assert_geq(n.probe_fd, 0, "no probe socket for %s", addr.sun_path);
	for (int i = 0; i < 2000; i++)
		notify_drain(&n, &c, (uint64_t)(i + 1) * 1000 * MS, 0,
			     NOTIFY_UNBOUNDED, true);
	cr_assert_gt(n.dropped, 0, "2000 messages fit a queue never read");
	notify_exit(&n);
	cr_assert_eq(n.probe_fd, -1);

	close(fd);
	unlink(addr.sun_path);
	rmdir(dir);
}
