/* SPDX-License-Identifier: MIT */
/*
 * Pause and resume of the real sbx-vmm on real KVM, driven over a
 * SOCK_SEQPACKET socketpair as sbxd drives it. Needs /dev/kvm; skips
 * without it.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sbxd/vmm_proto.h"
#include "test_vmm_util.h"

#define TIMEOUT_S 60
#define VMM_MAX 24 /* VMMs one test may run at once */
#define RESTORE_COUNT 20

struct packet {
	struct sbx_msg msg;
	uint8_t payload[SBX_MSG_PAYLOAD_MAX + 1];
};

/* One sbx-vmm under a control channel, owned by the running test. */
struct child {
	pid_t pid;
	int sock;
	int err_fd;
};

static struct child children[VMM_MAX];
static int child_count;
static char dir[] = "/tmp/sbx-snap-test-XXXXXX";
static bool dir_made;
static struct vmm_result res;

static void setup(void)
{
	require_kvm();
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	dir_made = true;
}

/* Remove `path` and, for a directory, everything in it. */
static void remove_tree(const char *path)
{
	struct dirent *de;
	char sub[PATH_MAX];
	DIR *d = opendir(path);

	if (!d) {
		unlink(path);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		remove_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

static void teardown(void)
{
	for (int i = 0; i < child_count; i++) {
		if (children[i].pid > 0) {
			kill(children[i].pid, SIGKILL);
			vmm_wait(children[i].pid, TIMEOUT_S);
		}
		if (children[i].sock >= 0)
			close(children[i].sock);
		if (children[i].err_fd >= 0)
			close(children[i].err_fd);
	}
	child_count = 0;
	vmm_result_free(&res);
	if (dir_made)
		remove_tree(dir);
}

static struct child *start(const char *const *argv)
{
	struct child *c;

	cr_assert_lt(child_count, VMM_MAX);
	c = &children[child_count++];
	c->pid = vmm_spawn_control(argv, &c->sock, &c->err_fd);
	return c;
}

static void send_raw(struct child *c, uint32_t type, uint64_t seq,
		     const void *payload, uint32_t len)
{
	uint8_t buf[sizeof(struct sbx_msg) + PATH_MAX + 16];
	struct sbx_msg msg = { .type = type, .len = len, .seq = seq };

	cr_assert_leq(len, PATH_MAX + 16);
	memcpy(buf, &msg, sizeof(msg));
	if (len)
		memcpy(buf + sizeof(msg), payload, len);
	cr_assert_eq(send(c->sock, buf, sizeof(msg) + len, 0),
		     (ssize_t)(sizeof(msg) + len), "send: %s", strerror(errno));
}

static void send_text(struct child *c, uint32_t type, uint64_t seq,
		      const char *text)
{
	send_raw(c, type, seq, text, text ? (uint32_t)strlen(text) : 0);
}

/* Wait up to `timeout_ms` for a packet. Returns false on timeout. */
static bool try_recv(struct child *c, struct packet *p, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) != 1)
		return false;
	n = recv(c->sock, p, sizeof(*p) - 1, 0);
	cr_assert_geq(n, (ssize_t)sizeof(p->msg), "recv returned %zd: %s", n,
		      strerror(errno));
	cr_assert_eq(p->msg.len, (size_t)n - sizeof(p->msg));
	p->payload[p->msg.len] = '\0';
	return true;
}

static void recv_type(struct child *c, struct packet *p, uint32_t type)
{
	cr_assert(try_recv(c, p, TIMEOUT_S * 1000),
		  "no message type %u from sbx-vmm within %d s", type,
		  TIMEOUT_S);
	cr_assert_eq(p->msg.type, type, "message type %u, expected %u (%s)",
		     p->msg.type, type, (const char *)p->payload);
}

static void expect_ready(struct child *c)
{
	struct packet p;

	recv_type(c, &p, SBX_MSG_READY);
	cr_assert_gt(p.msg.arg, 0, "READY arg %ld ns", (long)p.msg.arg);
}

static void expect_reply(struct child *c, uint32_t type, uint64_t seq,
			 int64_t arg)
{
	struct packet p;

	recv_type(c, &p, type);
	cr_assert_eq(p.msg.seq, seq, "type %u seq %lu, expected %lu", type,
		     (unsigned long)p.msg.seq, (unsigned long)seq);
	cr_assert_eq(p.msg.arg, arg, "type %u arg %ld, expected %ld", type,
		     (long)p.msg.arg, (long)arg);
}

static void expect_result(struct child *c, uint64_t seq, int32_t code,
			  const char *output)
{
	struct packet p;

	recv_type(c, &p, SBX_MSG_EXEC_RESULT);
	cr_assert_eq(p.msg.seq, seq);
	cr_assert_eq(p.msg.arg, code);
	cr_assert_str_eq((const char *)p.payload, output);
}

static void expect_silence(struct child *c, int ms, const char *why)
{
	struct packet p;

	cr_assert_not(try_recv(c, &p, ms), "%s: got message type %u (%s)", why,
		      p.msg.type, (const char *)p.payload);
}

static void exec(struct child *c, uint64_t seq, const char *command,
		 const char *output)
{
	send_text(c, SBX_MSG_EXEC, seq, command);
	expect_result(c, seq, 0, output);
}

/* User plus system CPU time of `pid`, in clock ticks. */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long utime, stime;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	/* Fields after the ")" that ends the command name: state is the
	 * 3rd field of the line, utime the 14th and stime the 15th. */
	p = strrchr(buf, ')');
	cr_assert_not_null(p);
	cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
			    "%*u %lu %lu", &utime, &stime), 2);
	return (long)(utime + stime);
}

/* ---- pause and resume ------------------------------------------------- */

TestSuite(pause, .init = setup, .fini = teardown, .timeout = 120);

Test(pause, spinning_guest_uses_no_cpu)
{
	const char *argv[] = { "--guest", SBX_TEST_GUEST, "--args",
			       "ready-then-spin", NULL };
	struct child *c = start(argv);
	long before, after, resumed;

	/* This guest spins without any hypercall after READY: only a kick
	 * out of KVM_RUN can pause it. */
	expect_ready(c);
	usleep(200000);
	send_text(c, SBX_MSG_PAUSE, 1, NULL);
	expect_reply(c, SBX_MSG_PAUSED, 1, 0);
	before = cpu_ticks(c->pid);
	sleep(1);
	after = cpu_ticks(c->pid);
	cr_log_info("CPU while paused for 1 s: %ld ticks of %ld/s",
		    after - before, sysconf(_SC_CLK_TCK));
	cr_assert_leq(after - before, 5, "paused VMM used %ld ticks in 1 s",
		      after - before);

	send_text(c, SBX_MSG_RESUME, 2, NULL);
	expect_reply(c, SBX_MSG_RESUMED, 2, 0);
	sleep(1);
	resumed = cpu_ticks(c->pid);
	cr_assert_gt(resumed - after, 10,
		     "resumed guest used only %ld ticks in 1 s",
		     resumed - after);
}

Test(pause, spin_command_then_exec)
{
	struct child *c = start(NULL);
	long before, after;

	expect_ready(c);
	send_text(c, SBX_MSG_EXEC, 1, "spin 2000");
	usleep(300000);
	send_text(c, SBX_MSG_PAUSE, 2, NULL);
	expect_reply(c, SBX_MSG_PAUSED, 2, 0);
	before = cpu_ticks(c->pid);
	sleep(1);
	after = cpu_ticks(c->pid);
	cr_assert_leq(after - before, 5, "paused VMM used %ld ticks in 1 s",
		      after - before);
	send_text(c, SBX_MSG_RESUME, 3, NULL);
	expect_reply(c, SBX_MSG_RESUMED, 3, 0);
	expect_result(c, 1, 0, "");
	exec(c, 4, "echo after resume", "after resume");
}

Test(pause, exec_waits_for_resume)
{
	struct child *c = start(NULL);

	expect_ready(c);
	send_text(c, SBX_MSG_PAUSE, 1, NULL);
	expect_reply(c, SBX_MSG_PAUSED, 1, 0);
	send_text(c, SBX_MSG_EXEC, 2, "echo queued");
	expect_silence(c, 300, "exec ran while paused");
	send_text(c, SBX_MSG_RESUME, 3, NULL);
	expect_reply(c, SBX_MSG_RESUMED, 3, 0);
	expect_result(c, 2, 0, "queued");
}

Test(pause, repeated_messages_answered)
{
	struct child *c = start(NULL);

	expect_ready(c);
	send_text(c, SBX_MSG_RESUME, 1, NULL);
	expect_reply(c, SBX_MSG_RESUMED, 1, 1);
	send_text(c, SBX_MSG_PAUSE, 2, NULL);
	expect_reply(c, SBX_MSG_PAUSED, 2, 0);
	send_text(c, SBX_MSG_PAUSE, 3, NULL);
	expect_reply(c, SBX_MSG_PAUSED, 3, 1);
	send_text(c, SBX_MSG_RESUME, 4, NULL);
	expect_reply(c, SBX_MSG_RESUMED, 4, 0);
	exec(c, 5, "counter", "1");
}

Test(pause, stop_waits_for_resume)
{
	struct child *c = start(NULL);
	struct sbx_exit_info info;
	struct packet p;

	expect_ready(c);
	send_text(c, SBX_MSG_PAUSE, 1, NULL);
	expect_reply(c, SBX_MSG_PAUSED, 1, 0);
	send_text(c, SBX_MSG_STOP, 2, NULL);
	expect_silence(c, 300, "the guest stopped while paused");
	send_text(c, SBX_MSG_RESUME, 3, NULL);
	expect_reply(c, SBX_MSG_RESUMED, 3, 0);
	recv_type(c, &p, SBX_MSG_EXITED);
	memcpy(&info, p.payload, sizeof(info));
	cr_assert_eq(info.reason, SBX_EXIT_STOPPED, "reason %u: %s",
		     info.reason, info.message);
	cr_assert_eq(vmm_wait(c->pid, TIMEOUT_S), 0);
	c->pid = -1;
}
