/* SPDX-License-Identifier: MIT */
/*
 * sbx-vmm under a control channel, driven from the test over a real
 * SOCK_SEQPACKET socketpair as sbxd drives it: READY, EXEC and
 * EXEC_RESULT, STOP, EXITED, and garbage packets. Needs /dev/kvm.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sbxd/vmm_proto.h"
#include "test_vmm_util.h"

#define TIMEOUT_S 60

static pid_t pid = -1;
static int sock = -1, err_fd = -1;

struct packet {
	struct sbx_msg msg;
	uint8_t payload[SBX_MSG_PAYLOAD_MAX + 1];
};

static void start(const char *const *argv)
{
	pid = vmm_spawn_control(argv, &sock, &err_fd);
}

static void cleanup(void)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		vmm_wait(pid, TIMEOUT_S);
	}
	if (sock >= 0)
		close(sock);
	if (err_fd >= 0)
		close(err_fd);
}

static void send_msg(uint32_t type, uint64_t seq, const char *text)
{
	uint8_t buf[sizeof(struct sbx_msg) + 256];
	struct sbx_msg msg = { .type = type, .seq = seq };
	size_t len = text ? strlen(text) : 0;

	cr_assert_lt(len, 256);
	msg.len = (uint32_t)len;
	memcpy(buf, &msg, sizeof(msg));
	if (len)
		memcpy(buf + sizeof(msg), text, len);
	cr_assert_eq(send(sock, buf, sizeof(msg) + len, 0),
		     (ssize_t)(sizeof(msg) + len), "send: %s", strerror(errno));
}

/* Receive one packet within TIMEOUT_S; payload is NUL-terminated. */
static void recv_msg(struct packet *p)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	ssize_t n;

	cr_assert_eq(poll(&pfd, 1, TIMEOUT_S * 1000), 1,
		     "no control message from sbx-vmm within %d s", TIMEOUT_S);
	n = recv(sock, p, sizeof(*p) - 1, 0);
	cr_assert_geq(n, (ssize_t)sizeof(p->msg), "recv returned %zd: %s", n,
		      strerror(errno));
	cr_assert_eq(p->msg.len, (size_t)n - sizeof(p->msg),
		     "len field %u, packet has %zu payload bytes", p->msg.len,
		     (size_t)n - sizeof(p->msg));
	p->payload[p->msg.len] = '\0';
}

static void expect_ready(void)
{
	struct packet p;

	recv_msg(&p);
	cr_assert_eq(p.msg.type, SBX_MSG_READY, "first message type %u",
		     p.msg.type);
	cr_assert_gt(p.msg.arg, 0, "READY arg %ld ns", (long)p.msg.arg);
}

static void expect_result(uint64_t seq, int32_t code, const char *output)
{
	struct packet p;

	recv_msg(&p);
	cr_assert_eq(p.msg.type, SBX_MSG_EXEC_RESULT, "message type %u",
		     p.msg.type);
	cr_assert_eq(p.msg.seq, seq);
	cr_assert_eq(p.msg.arg, code);
	cr_assert_str_eq((const char *)p.payload, output);
}

static void expect_exited(uint32_t reason, int32_t code)
{
	struct sbx_exit_info info;
	struct packet p;

	recv_msg(&p);
	cr_assert_eq(p.msg.type, SBX_MSG_EXITED, "message type %u",
		     p.msg.type);
	cr_assert_eq(p.msg.len, sizeof(info));
	memcpy(&info, p.payload, sizeof(info));
	cr_assert_eq(info.reason, reason, "reason %u (%s), expected %u",
		     info.reason, info.message, reason);
	cr_assert_eq(info.exit_code, code);
	cr_assert_neq(memchr(info.message, '\0', sizeof(info.message)), NULL);
}

/* Wait for the VMM to exit and check its status. */
static void expect_status(int status)
{
	int got = vmm_wait(pid, TIMEOUT_S);

	pid = -1;
	cr_assert_eq(got, status, "sbx-vmm exit status %d, expected %d", got,
		     status);
}

TestSuite(control, .init = require_kvm, .fini = cleanup, .timeout = 120);

Test(control, exec_and_stop)
{
	start(NULL);
	expect_ready();
	send_msg(SBX_MSG_EXEC, 42, "echo hi");
	expect_result(42, 0, "hi");
	send_msg(SBX_MSG_STOP, 0, NULL);
	expect_exited(SBX_EXIT_STOPPED, 0);
	expect_status(0);
}

Test(control, counter_keeps_state)
{
	start(NULL);
	expect_ready();
	send_msg(SBX_MSG_EXEC, 1, "counter");
	send_msg(SBX_MSG_EXEC, 2, "counter");
	expect_result(1, 0, "1");
	expect_result(2, 0, "2");
	send_msg(SBX_MSG_STOP, 0, NULL);
	expect_exited(SBX_EXIT_STOPPED, 0);
	expect_status(0);
}

Test(control, queued_execs_run_in_order)
{
	char text[32], want[32];

	start(NULL);
	expect_ready();
	for (int i = 0; i < 20; i++) {
		snprintf(text, sizeof(text), "echo %d", i);
		send_msg(SBX_MSG_EXEC, 100 + (uint64_t)i, text);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(want, sizeof(want), "%d", i);
		expect_result(100 + (uint64_t)i, 0, want);
	}
}

Test(control, unknown_command_result)
{
	start(NULL);
	expect_ready();
	send_msg(SBX_MSG_EXEC, 5, "nope 1 2");
	expect_result(5, 127, "unknown command: nope");
}

Test(control, stop_cuts_sleep_short)
{
	start(NULL);
	expect_ready();
	send_msg(SBX_MSG_EXEC, 9, "sleep 600000");
	/* A 10-minute sleep: only the stop can end it within the timeout. */
	usleep(100000);
	send_msg(SBX_MSG_STOP, 0, NULL);
	expect_result(9, 130, "sleep: interrupted by a stop request");
	expect_exited(SBX_EXIT_STOPPED, 0);
	expect_status(0);
}

Test(control, stop_during_boot_delay)
{
	const char *argv[] = { "--boot-delay-ms", "600000", NULL };

	start(argv);
	usleep(100000);
	send_msg(SBX_MSG_STOP, 0, NULL);
	expect_ready();
	expect_exited(SBX_EXIT_STOPPED, 0);
	expect_status(0);
}

Test(control, boot_delay_delays_ready)
{
	const char *argv[] = { "--boot-delay-ms", "200", NULL };
	struct packet p;

	start(argv);
	recv_msg(&p);
	cr_assert_eq(p.msg.type, SBX_MSG_READY);
	cr_assert_geq(p.msg.arg, 200000000, "READY after %ld ns",
		      (long)p.msg.arg);
}

Test(control, ignore_stop_keeps_serving)
{
	const char *argv[] = { "--ignore-stop", NULL };

	start(argv);
	expect_ready();
	send_msg(SBX_MSG_STOP, 0, NULL);
	send_msg(SBX_MSG_EXEC, 7, "echo still here");
	expect_result(7, 0, "still here");
	send_msg(SBX_MSG_EXEC, 8, "exit 3");
	expect_exited(SBX_EXIT_STOPPED, 3);
	expect_status(3);
}

Test(control, guest_exit_code)
{
	start(NULL);
	expect_ready();
	send_msg(SBX_MSG_EXEC, 1, "exit 5");
	expect_exited(SBX_EXIT_GUEST, 5);
	expect_status(5);
}

Test(control, crash_reports_triple_fault)
{
	start(NULL);
	expect_ready();
	send_msg(SBX_MSG_EXEC, 1, "crash");
	expect_exited(SBX_EXIT_TRIPLE_FAULT, -1);
	expect_status(SBX_VMM_STATUS_CRASH);
}

Test(control, garbage_is_ignored)
{
	static const uint8_t junk[] = { 1, 2, 3 };
	struct sbx_msg bad_len = { .type = SBX_MSG_EXEC, .len = 100 };
	struct sbx_msg bad_type = { .type = 12345 };
	char *err;

	start(NULL);
	expect_ready();
	cr_assert_eq(send(sock, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	cr_assert_eq(send(sock, &bad_len, sizeof(bad_len), 0),
		     (ssize_t)sizeof(bad_len));
	cr_assert_eq(send(sock, &bad_type, sizeof(bad_type), 0),
		     (ssize_t)sizeof(bad_type));
	send_msg(SBX_MSG_EXEC, 3, "echo ok");
	expect_result(3, 0, "ok");
	send_msg(SBX_MSG_STOP, 0, NULL);
	expect_exited(SBX_EXIT_STOPPED, 0);
	expect_status(0);

	err = read_all(err_fd);
	cr_assert_not_null(strstr(err, "short control packet"), "stderr: %s",
			   err);
	cr_assert_not_null(strstr(err, "len field 100"), "stderr: %s", err);
	cr_assert_not_null(strstr(err, "unknown type 12345"), "stderr: %s",
			   err);
	free(err);
}

Test(control, closed_channel_ends_vmm)
{
	start(NULL);
	expect_ready();
	close(sock);
	sock = -1;
	expect_status(SBX_VMM_STATUS_ERROR);
}

Test(control, stuck_guest_needs_kill)
{
	const char *argv[] = { "--guest", SBX_TEST_GUEST, "--args",
			       "ready-then-spin", NULL };

	/* The guest makes no hypercall after READY, so a stop request is
	 * never seen; sbxd's SIGKILL after the grace period ends it. */
	start(argv);
	expect_ready();
	send_msg(SBX_MSG_STOP, 0, NULL);
	usleep(200000);
	cr_assert_eq(kill(pid, 0), 0, "sbx-vmm exited without a hypercall");
	kill(pid, SIGKILL);
	expect_status(128 + SIGKILL);
}

Test(control, command_with_control_fd_rejected)
{
	const char *argv[] = { "--", "echo", "hi", NULL };

	start(argv);
	expect_status(SBX_VMM_STATUS_USAGE);
}
