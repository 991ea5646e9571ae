// SPDX-License-Identifier: MIT
/*
 * Soak tests: run the real sbx-soak program against a harness-started
 * sbxd and check its exit status and the before/after counts that its
 * last line ("sbx-soak result: key=value ...") reports. The test also
 * counts sbxd's fds, pins, state dir entries and VMMs itself, so a count
 * that sbx-soak got wrong fails too, and it removes a sandbox behind
 * sbx-soak's back to check that a changed count makes sbx-soak fail.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

#define SOAK_CYCLES "300"
#define SOAK_CONCURRENCY "8"
/* Bound on one sbx-soak run; 300 cycles took about 3 s here. */
#define SOAK_BOUND_MS 90000
#define SETTLE_BOUND_MS 5000
#define RESULT_PREFIX "sbx-soak result: "

static struct sbxd_proc sbxd;

TestSuite(soak, .init = harness_init, .fini = harness_fini);

/* A running sbx-soak with its stdout and stderr on one pipe. */
struct soak_child {
	pid_t pid;
	int out_fd;
	char *out;		/* everything read so far, NUL-terminated */
	size_t out_len;
};

/* The BPF gate where it can load, so that a broken BPF gate fails. */
static const char *const *sbxd_args(void)
{
	static const char *const bpf[] = { "--gate", "bpf", NULL };

	if (geteuid() == 0 && access("/sys/fs/bpf", W_OK) == 0)
		return bpf;
	return NULL;
}

/*
 * Allowed growth of sbxd's RSS over the run. ASan keeps freed memory in a
 * quarantine of up to 256 MiB by default, so an ASan build of sbxd grows
 * without leaking, and only the plain build checks RSS closely.
 */
#ifdef __SANITIZE_ADDRESS__
#define SOAK_RSS_SLACK_MIB "320"
#else
#define SOAK_RSS_SLACK_MIB "4"
#endif

static void soak_spawn(struct soak_child *c, const char *cycles,
		       const char *concurrency, const char *settle_ms)
{
	char bin[PATH_MAX];
	pid_t parent = getpid();
	int fds[2];

	snprintf(bin, sizeof(bin), "%s/sbx-soak", SBX_BIN_DIR);
	cr_assert(access(bin, X_OK) == 0, "%s is missing (%s): build the "
		  "sbx-soak target", bin, strerror(errno));
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
	memset(c, 0, sizeof(*c));
	c->pid = fork();
	cr_assert_geq(c->pid, 0, "fork: %s", strerror(errno));
	if (c->pid == 0) {
		/* sbx-soak dies with the test instead of running on. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
		    getppid() != parent)
			_exit(127);
		if (dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0)
			_exit(127);
		execl(bin, bin, "--state-dir", sbxd.state_dir, "--instance",
		      sbxd.instance, "--cycles", cycles, "--concurrency",
		      concurrency, "--settle-ms", settle_ms,
		      "--progress-every", "100", "--rss-slack-mib",
		      SOAK_RSS_SLACK_MIB, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	c->out_fd = fds[0];
	c->out = calloc(1, 1);
	cr_assert_not_null(c->out);
}

/*
 * Read output until it contains @want (NULL: until EOF) or @timeout_ms
 * pass. Returns true when @want was found or EOF was reached.
 */
static bool soak_read_until(struct soak_child *c, const char *want,
			    int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = c->out_fd, .events = POLLIN };
	char chunk[4096];
	ssize_t n;

	while (!want || !strstr(c->out, want)) {
		int64_t left = deadline - harness_now_ms();

		if (left <= 0)
			return false;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = read(c->out_fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return want == NULL;
		c->out = realloc(c->out, c->out_len + (size_t)n + 1);
		cr_assert_not_null(c->out);
		memcpy(c->out + c->out_len, chunk, (size_t)n);
		c->out_len += (size_t)n;
		c->out[c->out_len] = '\0';
	}
	return true;
}

/* Read to EOF, reap sbx-soak and return its exit status. */
static int soak_finish(struct soak_child *c)
{
	int status = 0;

	if (!soak_read_until(c, NULL, SOAK_BOUND_MS)) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		cr_assert_fail("sbx-soak did not finish within %d ms; "
			       "output:\n%s", SOAK_BOUND_MS, c->out);
	}
	close(c->out_fd);
	cr_assert_eq(waitpid(c->pid, &status, 0), c->pid);
	cr_assert(WIFEXITED(status), "sbx-soak ended by signal %d; output:\n"
		  "%s", WIFSIGNALED(status) ? WTERMSIG(status) : 0, c->out);
	return WEXITSTATUS(status);
}

/* The value of @key in the result line, failing the test when absent. */
static long result_long(const char *out, const char *key)
{
	const char *line = strstr(out, RESULT_PREFIX);
	char pattern[64];
	const char *pos;

	cr_assert_not_null(line, "sbx-soak printed no \"%s\" line; output:\n"
			   "%s", RESULT_PREFIX, out);
	snprintf(pattern, sizeof(pattern), " %s=", key);
	pos = strstr(line, pattern);
	cr_assert_not_null(pos, "the result line lacks %s: %s", key, line);
	return strtol(pos + strlen(pattern), NULL, 10);
}

static void result_str(const char *out, const char *key, char *value,
		       size_t len)
{
	const char *line = strstr(out, RESULT_PREFIX);
	char pattern[64];
	const char *pos;

	cr_assert_not_null(line, "sbx-soak printed no result line; output:\n"
			   "%s", out);
	snprintf(pattern, sizeof(pattern), " %s=", key);
	pos = strstr(line, pattern);
	cr_assert_not_null(pos, "the result line lacks %s: %s", key, line);
	pos += strlen(pattern);
	snprintf(value, len, "%.*s", (int)strcspn(pos, " \n"), pos);
}

static void assert_same(const char *out, const char *name)
{
	char before[64], after[64];
	long b, a;

	snprintf(before, sizeof(before), "%s_before", name);
	snprintf(after, sizeof(after), "%s_after", name);
	b = result_long(out, before);
	a = result_long(out, after);
	cr_assert_eq(b, a, "%s: %ld before, %ld after; output:\n%s", name, b,
		     a, out);
}

static long count_dir(const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	long n = 0;

	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(dir);
	return n;
}

/* Files and dirs under @path, recursively, plus @path itself. */
static long count_tree(const char *path)
{
	char child[PATH_MAX + 256];
	struct dirent *de;
	long n = 1;
	DIR *dir = opendir(path);

	if (!dir)
		return errno == ENOTDIR ? 1 : 0;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		n += count_tree(child);
	}
	closedir(dir);
	return n;
}

/*
 * Poll sbxd's fd count until it equals @want or a few seconds pass, since
 * sbxd closes a connection's fd only after it reads the client's EOF.
 */
static long sbxd_fds_settled(long want)
{
	int64_t deadline = harness_now_ms() + SETTLE_BOUND_MS;
	char path[64];
	long n;

	snprintf(path, sizeof(path), "/proc/%d/fd", sbxd.pid);
	for (;;) {
		n = count_dir(path);
		if (n == want || harness_now_ms() >= deadline)
			return n;
		harness_sleep_ms(20);
	}
}

static bool node_uses_bpf(void)
{
	json_t *node = sbx_node(&sbxd);
	json_t *gate = json_object_get(node, "gate");
	bool bpf = json_is_string(gate) &&
		   strcmp(json_string_value(gate), "bpf") == 0;

	json_decref(node);
	return bpf;
}

Test(soak, cycles_leave_nothing, .timeout = 150)
{
	char pin_dir[PATH_MAX], entries_dir[PATH_MAX + 16], mismatch[128];
	char desc[512];
	struct soak_child child;
	long fds_after, fds_now;
	int status;
	bool bpf;

	sbxd_start_checked(&sbxd, sbxd_args(), NULL);
	bpf = node_uses_bpf();
	soak_spawn(&child, SOAK_CYCLES, SOAK_CONCURRENCY, "5000");
	status = soak_finish(&child);
	cr_assert_eq(status, 0, "sbx-soak exited %d, expected 0; output:\n%s",
		     status, child.out);

	cr_assert_eq(result_long(child.out, "ok"), 1);
	cr_assert_eq(result_long(child.out, "cycles"), 300,
		     "sbx-soak ran fewer cycles than asked; output:\n%s",
		     child.out);
	cr_assert_eq(result_long(child.out, "errors"), 0,
		     "sbx-soak saw failed requests; output:\n%s", child.out);
	result_str(child.out, "mismatch", mismatch, sizeof(mismatch));
	cr_assert_str_eq(mismatch, "none", "output:\n%s", child.out);
	assert_same(child.out, "fds");
	assert_same(child.out, "children");
	assert_same(child.out, "live_vms");
	assert_same(child.out, "sandboxes");
	assert_same(child.out, "pins");
	assert_same(child.out, "entries");
	cr_assert_leq(result_long(child.out, "rss_kib_after") -
			      result_long(child.out, "rss_kib_before"),
		      result_long(child.out, "rss_slack_kib"),
		      "sbxd's RSS grew beyond the slack; output:\n%s",
		      child.out);

	/* The counts are real: sbxd is idle now, so they hold here too. */
	cr_assert_eq(result_long(child.out, "children_after"), 0);
	cr_assert_eq(result_long(child.out, "sandboxes_after"), 0);
	cr_assert_eq(result_long(child.out, "entries_after"), 0);
	snprintf(entries_dir, sizeof(entries_dir), "%s/sandboxes",
		 sbxd.state_dir);
	cr_assert_eq(count_dir(entries_dir), 0, "%s is not empty",
		     entries_dir);
	cr_assert_eq(sbxd_count_vmms(&sbxd, desc, sizeof(desc)), 0,
		     "VMMs still run after the soak: %s", desc);
	fds_after = result_long(child.out, "fds_after");
	fds_now = sbxd_fds_settled(fds_after);
	cr_assert_eq(fds_now, fds_after, "sbxd has %ld fds, sbx-soak "
		     "reported %ld", fds_now, fds_after);
	if (bpf) {
		snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/sbxd/%s",
			 sbxd.instance);
		cr_assert_eq(result_long(child.out, "live_vms_after"), 0);
		cr_assert_eq(result_long(child.out, "pins_after"),
			     count_dir(pin_dir),
			     "sbx-soak's pin count differs from %s", pin_dir);
		cr_assert_eq(count_dir(pin_dir), 2,
			     "expected drain_state and live_vms in %s",
			     pin_dir);
	}

	cr_assert_eq(sbxd_signal(&sbxd, SIGTERM), 0);
	sbxd_assert_exit(&sbxd, 20000, 0);
	free(child.out);
}

/*
 * A sandbox that exists before sbx-soak takes its first counts and is
 * deleted before its last ones must make it fail. sbx-soak is stopped
 * with SIGSTOP while the test deletes it, and the output read so far
 * shows that its cycles were not finished then, so the order is certain.
 */
Test(soak, removed_sandbox_fails_soak, .timeout = 150)
{
	char id[80], path[128], mismatch[128], sandbox_dir[PATH_MAX + 96];
	struct soak_child child;
	struct http_resp resp;
	long sandbox_entries;
	int status;
	bool bpf;

	sbxd_start_checked(&sbxd, sbxd_args(), NULL);
	bpf = node_uses_bpf();
	cr_assert_eq(sbx_create(&sbxd, "{\"memory_mib\":16}", id, sizeof(id)),
		     201);
	snprintf(sandbox_dir, sizeof(sandbox_dir), "%s/sandboxes/%s",
		 sbxd.state_dir, id);
	sandbox_entries = count_tree(sandbox_dir);
	cr_assert_gt(sandbox_entries, 0, "%s does not exist", sandbox_dir);
	/* The counts never return here, so do not wait long for them. */
	soak_spawn(&child, "100", "2", "500");
	cr_assert(soak_read_until(&child, "sbx-soak: before:", SOAK_BOUND_MS),
		  "sbx-soak printed no \"before:\" line; output:\n%s",
		  child.out);
	cr_assert_eq(kill(child.pid, SIGSTOP), 0);
	/* Whatever it printed before the stop is in the pipe by now. */
	soak_read_until(&child, "cycles in", 200);
	cr_assert_null(strstr(child.out, "cycles in"),
		       "sbx-soak finished its 100 cycles before the test "
		       "could stop it; the check is void. Output:\n%s",
		       child.out);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	status = http_request(&sbxd, "DELETE", path, NULL, &resp);
	cr_assert_eq(status, 200, "DELETE %s: %d %s", path, status,
		     status > 0 ? resp.body : strerror(-status));
	http_resp_free(&resp);
	cr_assert_eq(kill(child.pid, SIGCONT), 0);

	status = soak_finish(&child);
	cr_assert_eq(status, 1, "sbx-soak exited %d after a sandbox vanished, "
		     "expected 1; output:\n%s", status, child.out);
	cr_assert_eq(result_long(child.out, "ok"), 0);
	cr_assert_eq(result_long(child.out, "errors"), 0,
		     "output:\n%s", child.out);
	cr_assert_eq(result_long(child.out, "children_before") -
			     result_long(child.out, "children_after"), 1);
	cr_assert_eq(result_long(child.out, "sandboxes_before") -
			     result_long(child.out, "sandboxes_after"), 1);
	/* The sandbox's directory and everything in it, such as its log. */
	cr_assert_eq(result_long(child.out, "entries_before") -
			     result_long(child.out, "entries_after"),
		     sandbox_entries, "output:\n%s", child.out);
	/* sbxd keeps descriptors per VMM, such as its pidfd. */
	cr_assert_gt(result_long(child.out, "fds_before") -
			     result_long(child.out, "fds_after"), 0,
		     "output:\n%s", child.out);
	result_str(child.out, "mismatch", mismatch, sizeof(mismatch));
	cr_assert(strstr(mismatch, "fds") && strstr(mismatch, "children") &&
			  strstr(mismatch, "sandboxes") &&
			  strstr(mismatch, "entries"),
		  "mismatch=%s lacks a changed count", mismatch);
	if (bpf) {
		cr_assert_eq(result_long(child.out, "live_vms_before") -
				     result_long(child.out, "live_vms_after"),
			     1);
		cr_assert(strstr(mismatch, "live_vms"),
			  "mismatch=%s lacks live_vms", mismatch);
	}
	free(child.out);
}
