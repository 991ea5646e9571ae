/* SPDX-License-Identifier: MIT */
/*
 * Pause, resume, snapshot and restore of the real sbx-vmm on real KVM,
 * driven over a SOCK_SEQPACKET socketpair as sbxd drives it, plus the
 * checks that reject broken snapshot files and the CRC-32C behind them.
 * Needs /dev/kvm; skips without it.
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
#include "vmm/crc32c.h"
#include "vmm/snapshot.h"

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

static char *path_in_dir(const char *name)
{
	static char paths[8][PATH_MAX];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	return p;
}

/*
 * Start sbx-vmm --control-fd 3 with `argv`. It is confined, as under sbxd,
 * and given the test's directory as --snapshot-dir so that it can still
 * write snapshots there once it runs as the sbx-vmm user.
 */
static struct child *start(const char *const *argv)
{
	const char *full[16] = { "--snapshot-dir", dir };
	struct child *c;
	int n = 2;

	for (; argv && *argv; argv++) {
		cr_assert_lt(n, 15, "too many flags for start()");
		full[n++] = *argv;
	}
	full[n] = NULL;
	cr_assert_lt(child_count, VMM_MAX);
	c = &children[child_count++];
	c->pid = vmm_spawn_control(full, &c->sock, &c->err_fd);
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

/* SNAPSHOT carries the path with its NUL terminator. */
static void send_snapshot(struct child *c, uint64_t seq, const char *path)
{
	send_raw(c, SBX_MSG_SNAPSHOT, seq, path, (uint32_t)strlen(path) + 1);
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

/* Snapshot `c` to `path` and expect PAUSED (when it ran) and success. */
static void snapshot(struct child *c, uint64_t seq, const char *path,
		     bool running)
{
	struct packet p;

	send_snapshot(c, seq, path);
	if (running)
		expect_reply(c, SBX_MSG_PAUSED, seq, 0);
	recv_type(c, &p, SBX_MSG_SNAPSHOT_DONE);
	cr_assert_eq(p.msg.seq, seq);
	cr_assert_eq(p.msg.arg, 0, "SNAPSHOT_DONE %ld: %s", (long)p.msg.arg,
		     (const char *)p.payload);
	cr_assert_str_eq((const char *)p.payload, path);
}

static void kill_child(struct child *c)
{
	kill(c->pid, SIGKILL);
	vmm_wait(c->pid, TIMEOUT_S);
	c->pid = -1;
}

static struct child *restore(const char *path)
{
	const char *argv[] = { "--restore", path, NULL };

	return start(argv);
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

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Files in the test directory whose name contains `part`. */
static int count_files(const char *part)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, part))
			n++;
	closedir(d);
	return n;
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

/* ---- snapshot and restore --------------------------------------------- */

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = 120);

Test(snapshot, counter_continues)
{
	const char *argv[] = { "--id", "snap-7", NULL };
	const char *path = path_in_dir("counter.snap");
	struct child *c = start(argv), *r;
	char *err;

	expect_ready(c);
	exec(c, 1, "counter", "1");
	exec(c, 2, "counter", "2");
	exec(c, 3, "counter", "3");
	snapshot(c, 4, path, true);
	kill_child(c);

	r = restore(path);
	expect_ready(r);
	exec(r, 5, "counter", "4");
	kill_child(r);
	err = read_all(r->err_fd);
	cr_assert_not_null(strstr(err, "sbx-vmm snap-7: restored snapshot"),
			   "restored VMM did not keep the id: %s", err);
	free(err);
}

Test(snapshot, no_temporary_file_left)
{
	const char *path = path_in_dir("clean.snap");
	struct child *c = start(NULL);
	struct stat st;

	expect_ready(c);
	snapshot(c, 1, path, true);
	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(count_files(".tmp."), 0);
	cr_assert_eq(count_files(""), 3); /* ".", ".." and the snapshot */
}

Test(snapshot, vm_stays_paused_after)
{
	const char *path = path_in_dir("paused.snap");
	struct child *c = start(NULL);

	expect_ready(c);
	send_text(c, SBX_MSG_PAUSE, 1, NULL);
	expect_reply(c, SBX_MSG_PAUSED, 1, 0);
	snapshot(c, 2, path, false);
	send_text(c, SBX_MSG_EXEC, 3, "echo later");
	expect_silence(c, 300, "exec ran after a snapshot, before RESUME");
	send_text(c, SBX_MSG_RESUME, 4, NULL);
	expect_reply(c, SBX_MSG_RESUMED, 4, 0);
	expect_result(c, 3, 0, "later");
}

Test(snapshot, during_sleep_keeps_remaining_time)
{
	const char *path = path_in_dir("sleep.snap");
	struct child *c = start(NULL), *r;
	struct packet p;
	double ready_at, elapsed;

	expect_ready(c);
	send_text(c, SBX_MSG_EXEC, 7, "sleep 4000");
	usleep(1500000);
	snapshot(c, 8, path, true);
	kill_child(c);

	/* The guest is inside SLEEP_NS with about 2.5 s left. A restore that
	 * dropped the pending hypercall would return at once, and one that
	 * restarted it would take 4 s. */
	r = restore(path);
	expect_ready(r);
	ready_at = now_s();
	expect_silence(r, 500, "the sleep ended early after the restore");
	recv_type(r, &p, SBX_MSG_EXEC_RESULT);
	elapsed = now_s() - ready_at;
	cr_log_info("sleep ended %.2f s after the restore", elapsed);
	cr_assert_eq(p.msg.seq, 7);
	cr_assert_eq(p.msg.arg, 0);
	cr_assert_lt(elapsed, 3.5, "sleep restarted: %.2f s", elapsed);
	exec(r, 9, "counter", "1");
}

Test(snapshot, queued_exec_survives)
{
	const char *path = path_in_dir("queue.snap");
	struct child *c = start(NULL), *r;

	expect_ready(c);
	send_text(c, SBX_MSG_PAUSE, 1, NULL);
	expect_reply(c, SBX_MSG_PAUSED, 1, 0);
	send_text(c, SBX_MSG_EXEC, 21, "echo from the queue");
	send_text(c, SBX_MSG_EXEC, 22, "counter");
	snapshot(c, 2, path, false);
	kill_child(c);

	r = restore(path);
	expect_ready(r);
	expect_result(r, 21, 0, "from the queue");
	expect_result(r, 22, 0, "1");
}

Test(snapshot, before_ready_sends_ready_later)
{
	const char *argv[] = { "--boot-delay-ms", "1500", NULL };
	const char *path = path_in_dir("boot.snap");
	struct child *c = start(argv), *r;

	/* The guest sleeps in SLEEP_NS before its READY. */
	usleep(300000);
	snapshot(c, 1, path, true);
	kill_child(c);

	r = restore(path);
	expect_silence(r, 300, "READY before the boot delay ended");
	expect_ready(r);
	exec(r, 2, "echo booted", "booted");
}

Test(snapshot, of_restored_vm)
{
	const char *path = path_in_dir("chain.snap");
	struct child *c = start(NULL), *r;

	expect_ready(c);
	exec(c, 1, "counter", "1");
	snapshot(c, 2, path, true);
	kill_child(c);

	/* r maps the file it overwrites: the rename keeps its inode. */
	r = restore(path);
	expect_ready(r);
	exec(r, 3, "counter", "2");
	snapshot(r, 4, path, true);
	kill_child(r);

	r = restore(path);
	expect_ready(r);
	exec(r, 5, "counter", "3");
}

Test(snapshot, unwritable_path_keeps_vm)
{
	const char *file = path_in_dir("plain-file");
	const char *path = path_in_dir("plain-file/x.snap");
	struct child *c = start(NULL);
	struct packet p;
	int fd;

	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", file, strerror(errno));
	close(fd);

	expect_ready(c);
	exec(c, 1, "counter", "1");
	/* A regular file as the parent directory fails even for root. */
	send_snapshot(c, 2, path);
	expect_reply(c, SBX_MSG_PAUSED, 2, 0);
	recv_type(c, &p, SBX_MSG_SNAPSHOT_DONE);
	cr_assert_eq(p.msg.arg, -ENOTDIR, "SNAPSHOT_DONE %ld: %s",
		     (long)p.msg.arg, (const char *)p.payload);
	cr_assert_not_null(strstr((const char *)p.payload, path), "%s",
			   (const char *)p.payload);

	send_text(c, SBX_MSG_RESUME, 3, NULL);
	expect_reply(c, SBX_MSG_RESUMED, 3, 0);
	exec(c, 4, "counter", "2");
	cr_assert_eq(count_files(".tmp."), 0);
}

Test(snapshot, invalid_payload_rejected)
{
	struct child *c = start(NULL);
	struct packet p;

	expect_ready(c);
	send_snapshot(c, 1, "relative.snap");
	recv_type(c, &p, SBX_MSG_SNAPSHOT_DONE);
	cr_assert_eq(p.msg.arg, -EINVAL);
	cr_assert_not_null(strstr((const char *)p.payload, "not absolute"),
			   "%s", (const char *)p.payload);

	send_text(c, SBX_MSG_SNAPSHOT, 2, "/tmp/no-terminator");
	recv_type(c, &p, SBX_MSG_SNAPSHOT_DONE);
	cr_assert_eq(p.msg.arg, -EINVAL);
	cr_assert_not_null(strstr((const char *)p.payload, "NUL-terminated"),
			   "%s", (const char *)p.payload);

	/* Neither paused the VM. */
	exec(c, 3, "echo running", "running");
}

Test(snapshot, restore_standalone)
{
	const char *path = path_in_dir("standalone.snap");
	struct child *c = start(NULL);
	const char *argv[] = { "--restore", path, "--", "counter", NULL };

	expect_ready(c);
	exec(c, 1, "counter", "1");
	exec(c, 2, "counter", "2");
	exec(c, 3, "counter", "3");
	snapshot(c, 4, path, true);
	kill_child(c);

	vmm_run_standalone(argv, TIMEOUT_S, &res);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "4\n");
}

Test(snapshot, snapshot_to_standalone)
{
	const char *path = path_in_dir("made-standalone.snap");
	const char *make[] = { "--snapshot-to", path, "--", "counter", NULL };
	const char *use[] = { "--restore", path, "--verify-ram", "--",
			      "counter", NULL };

	vmm_run_standalone(make, TIMEOUT_S, &res);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "1\n");
	cr_assert_eq(count_files(".tmp."), 0);
	vmm_result_free(&res);

	vmm_run_standalone(use, TIMEOUT_S, &res);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "2\n");
}

/* Sum the Rss and Pss lines of the mappings of `file` in /proc/PID/smaps. */
static void mapping_memory(pid_t pid, const char *file, long *rss_kib,
			   long *pss_kib)
{
	char path[64], line[PATH_MAX + 128];
	bool in_file = false;
	long kib;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	*rss_kib = *pss_kib = 0;
	while (fgets(line, sizeof(line), f)) {
		/* A mapping's first line starts with its hex address range;
		 * the field lines start with a capitalised name. */
		if (line[0] >= 'A' && line[0] <= 'Z') {
			if (!in_file)
				continue;
			if (sscanf(line, "Rss: %ld kB", &kib) == 1)
				*rss_kib += kib;
			else if (sscanf(line, "Pss: %ld kB", &kib) == 1)
				*pss_kib += kib;
			continue;
		}
		line[strcspn(line, "\n")] = '\0';
		in_file = strlen(line) > strlen(file) &&
			  !strcmp(line + strlen(line) - strlen(file), file);
	}
	fclose(f);
}

Test(snapshot, restores_share_pages)
{
	const char *path = path_in_dir("shared.snap");
	struct child *c = start(NULL), *r[RESTORE_COUNT];
	long rss_sum = 0, pss_sum = 0, rss, pss;
	const int count = RESTORE_COUNT;

	expect_ready(c);
	exec(c, 1, "counter", "1");
	snapshot(c, 2, path, true);
	kill_child(c);

	for (int i = 0; i < count; i++)
		r[i] = restore(path);
	for (int i = 0; i < count; i++) {
		expect_ready(r[i]);
		exec(r[i], 3, "echo shared", "shared");
	}
	for (int i = 0; i < count; i++) {
		mapping_memory(r[i]->pid, path, &rss, &pss);
		cr_assert_gt(rss, 0, "pid %d does not map %s", r[i]->pid,
			     path);
		rss_sum += rss;
		pss_sum += pss;
	}
	cr_log_info("%d restores: guest RAM mappings RSS %ld KiB, PSS %ld KiB",
		    count, rss_sum, pss_sum);
	fprintf(stderr, "%d restores of one snapshot: RSS sum %ld KiB, "
		"PSS sum %ld KiB of the mapped guest RAM\n",
		count, rss_sum, pss_sum);
	cr_assert_lt(pss_sum * 2, rss_sum,
		     "PSS %ld KiB is not clearly below RSS %ld KiB", pss_sum,
		     rss_sum);
}

Test(snapshot, does_not_grow_rss)
{
	const char *first = path_in_dir("rss-1.snap");
	const char *second = path_in_dir("rss-2.snap");
	struct child *c = start(NULL), *r;
	long before, after, pss;

	/* Reading untouched guest RAM would allocate it: 16 MiB per VM. */
	expect_ready(c);
	mapping_memory(c->pid, "sbx-guest-ram (deleted)", &before, &pss);
	snapshot(c, 1, first, true);
	mapping_memory(c->pid, "sbx-guest-ram (deleted)", &after, &pss);
	cr_log_info("memfd RAM RSS %ld KiB before, %ld KiB after", before,
		    after);
	cr_assert_gt(before, 0);
	cr_assert_lt(after - before, 1024, "RSS grew from %ld to %ld KiB",
		     before, after);
	kill_child(c);

	r = restore(first);
	expect_ready(r);
	exec(r, 2, "counter", "1");
	mapping_memory(r->pid, first, &before, &pss);
	snapshot(r, 3, second, true);
	mapping_memory(r->pid, first, &after, &pss);
	cr_log_info("restored RAM RSS %ld KiB before, %ld KiB after", before,
		    after);
	cr_assert_lt(after - before, 1024, "RSS grew from %ld to %ld KiB",
		     before, after);
	kill_child(r);

	r = restore(second);
	expect_ready(r);
	exec(r, 4, "counter", "2");
}

/* ---- broken files ----------------------------------------------------- */

static char good[PATH_MAX];

/* Make a good snapshot of an sbx-agent that counted to 1. */
static void broken_setup(void)
{
	const char *argv[] = { "--snapshot-to", NULL, "--", "counter", NULL };

	setup();
	snprintf(good, sizeof(good), "%s/good.snap", dir);
	argv[1] = good;
	vmm_run_standalone(argv, TIMEOUT_S, &res);
	cr_assert_eq(res.status, 0, "making a snapshot: status %d; %s",
		     res.status, res.err);
	vmm_result_free(&res);
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	cr_assert_geq(in, 0, "%s: %s", from, strerror(errno));
	cr_assert_geq(out, 0, "%s: %s", to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(write(out, buf, (size_t)n), n);
	cr_assert_eq(n, 0);
	close(in);
	close(out);
}

static void read_header(const char *path, struct snap_header *hdr)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, hdr, sizeof(*hdr), 0), (ssize_t)sizeof(*hdr));
	close(fd);
}

static void write_at(const char *path, uint64_t offset, const void *data,
		     size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, data, len, (off_t)offset), (ssize_t)len);
	close(fd);
}

/* Invert one byte of `path` at `offset`. */
static void flip_byte(const char *path, uint64_t offset)
{
	uint8_t byte;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &byte, 1, (off_t)offset), 1);
	byte = (uint8_t)~byte;
	cr_assert_eq(pwrite(fd, &byte, 1, (off_t)offset), 1);
	close(fd);
}

/* Restore `path` standalone and expect exit 2 with `problem` and path. */
static void expect_rejected(const char *path, const char *problem,
			    bool verify_ram)
{
	const char *argv[] = { "--restore", path, "--", "counter", NULL,
			       NULL };

	if (verify_ram) {
		argv[2] = "--verify-ram";
		argv[3] = "--";
		argv[4] = "counter";
	}
	vmm_run_standalone(argv, TIMEOUT_S, &res);
	cr_assert_eq(res.status, SBX_VMM_STATUS_USAGE,
		     "status %d, expected %d; stdout: %s; stderr: %s",
		     res.status, SBX_VMM_STATUS_USAGE, res.out, res.err);
	cr_assert_str_eq(res.out, "");
	cr_assert_not_null(strstr(res.err, problem), "stderr lacks \"%s\": %s",
			   problem, res.err);
	cr_assert_not_null(strstr(res.err, path), "stderr lacks the path: %s",
			   res.err);
}

TestSuite(broken, .init = broken_setup, .fini = teardown, .timeout = 120);

Test(broken, good_file_restores)
{
	const char *argv[] = { "--restore", good, "--verify-ram", "--",
			       "counter", NULL };

	vmm_run_standalone(argv, TIMEOUT_S, &res);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "2\n");
}

Test(broken, state_byte_flipped)
{
	const char *bad = path_in_dir("state.snap");
	struct snap_header hdr;

	copy_file(good, bad);
	read_header(bad, &hdr);
	flip_byte(bad, hdr.vmm_offset + 16);
	expect_rejected(bad, "checksum mismatch in the header and state",
			false);
}

Test(broken, vcpu_byte_flipped)
{
	const char *bad = path_in_dir("vcpu.snap");
	struct snap_header hdr;

	copy_file(good, bad);
	read_header(bad, &hdr);
	flip_byte(bad, hdr.vcpu_offset); /* low byte of RAX */
	expect_rejected(bad, "checksum mismatch in the header and state",
			false);
}

Test(broken, ram_byte_flipped)
{
	const char *bad = path_in_dir("ram.snap");
	struct snap_header hdr;

	copy_file(good, bad);
	read_header(bad, &hdr);
	/* In the guest's image at 4 MiB, which contains data. */
	flip_byte(bad, hdr.ram_offset + 0x400000 + 100);
	expect_rejected(bad, "RAM checksum mismatch", true);
}

Test(broken, ram_hole_written)
{
	const char *bad = path_in_dir("hole.snap");
	struct snap_header hdr;
	const uint8_t byte = 1;

	copy_file(good, bad);
	read_header(bad, &hdr);
	/* Free heap at 10 MiB is zero, a hole in the file. */
	write_at(bad, hdr.ram_offset + 10 * 1024 * 1024, &byte, 1);
	expect_rejected(bad, "RAM checksum mismatch", true);
}

Test(broken, truncated)
{
	const char *bad = path_in_dir("short.snap");
	struct snap_header hdr;

	copy_file(good, bad);
	read_header(bad, &hdr);
	cr_assert_eq(truncate(bad, (off_t)(hdr.file_size - 4096)), 0);
	expect_rejected(bad, "truncated", false);
}

Test(broken, shorter_than_header)
{
	const char *bad = path_in_dir("tiny.snap");

	copy_file(good, bad);
	cr_assert_eq(truncate(bad, 100), 0);
	expect_rejected(bad, "truncated: the file has 100 bytes", false);
}

Test(broken, bad_magic)
{
	const char *bad = path_in_dir("magic.snap");

	copy_file(good, bad);
	write_at(bad, 0, "\177ELF", 4);
	expect_rejected(bad, "not an sbx-vmm snapshot: bad magic", false);
}

Test(broken, newer_version)
{
	const char *bad = path_in_dir("version.snap");
	uint32_t version = SNAP_VERSION + 1;
	char want[64];

	copy_file(good, bad);
	write_at(bad, offsetof(struct snap_header, version), &version,
		 sizeof(version));
	snprintf(want, sizeof(want), "format version %u is newer", version);
	expect_rejected(bad, want, false);
}

Test(broken, zero_length)
{
	const char *bad = path_in_dir("empty.snap");
	int fd = open(bad, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0);
	close(fd);
	expect_rejected(bad, "empty (0 bytes)", false);
}

Test(broken, directory)
{
	const char *bad = path_in_dir("a-directory");

	cr_assert_eq(mkdir(bad, 0700), 0);
	expect_rejected(bad, "is a directory", false);
}

Test(broken, missing_file)
{
	expect_rejected(path_in_dir("absent.snap"), "No such file", false);
}

Test(broken, boot_flag_with_restore)
{
	const char *argv[] = { "--restore", good, "--memory-mib", "32", NULL };

	vmm_run_standalone(argv, TIMEOUT_S, &res);
	cr_assert_eq(res.status, SBX_VMM_STATUS_USAGE);
	cr_assert_not_null(strstr(res.err, "--memory-mib cannot be combined "
					   "with --restore"),
			   "%s", res.err);
}

Test(broken, verify_ram_needs_restore)
{
	const char *argv[] = { "--verify-ram", "--", "echo", "hi", NULL };

	vmm_run_standalone(argv, TIMEOUT_S, &res);
	cr_assert_eq(res.status, SBX_VMM_STATUS_USAGE);
	cr_assert_not_null(strstr(res.err, "--verify-ram needs --restore"),
			   "%s", res.err);
}

Test(broken, help_lists_snapshot_flags)
{
	static const char *const flags[] = { "--restore PATH", "--verify-ram",
					     "--snapshot-to PATH" };
	const char *argv[] = { "--help", NULL };

	vmm_run_standalone(argv, TIMEOUT_S, &res);
	cr_assert_eq(res.status, 0);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		cr_assert_not_null(strstr(res.out, flags[i]),
				   "--help lacks %s", flags[i]);
}

/* ---- CRC-32C ---------------------------------------------------------- */

Test(crc32c, check_value)
{
	cr_assert_eq(crc32c(0, "123456789", 9), 0xe3069283u);
	cr_assert_eq(crc32c_portable(0, "123456789", 9), 0xe3069283u);
	cr_assert_eq(crc32c(0, "", 0), 0);
}

Test(crc32c, fast_matches_portable)
{
	size_t size = 1 << 20;
	uint8_t *buf = malloc(size);
	uint32_t seed = 1;

	cr_assert_not_null(buf);
	for (size_t i = 0; i < size; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	/* Lengths around the three-stream threshold and odd offsets. */
	for (size_t len = 0; len < size; len = len * 2 + 7)
		cr_assert_eq(crc32c(7, buf + 3, len),
			     crc32c_portable(7, buf + 3, len), "length %zu",
			     len);
	cr_assert_eq(crc32c(crc32c(0, buf, 5000), buf + 5000, size - 5000),
		     crc32c_portable(0, buf, size));
	free(buf);
}

Test(crc32c, zeros_match_data)
{
	size_t size = 3 << 20;
	uint8_t *zeros = calloc(1, size);

	cr_assert_not_null(zeros);
	for (size_t len = 0; len < size; len = len * 3 + 1)
		cr_assert_eq(crc32c_zeros(0x1234, len),
			     crc32c(0x1234, zeros, len), "length %zu", len);
	free(zeros);
}
