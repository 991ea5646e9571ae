// SPDX-License-Identifier: MIT
/*
 * Lock file and exit status tests. A clean end removes STATE_DIR/sbxd.lock
 * and exits 0, and an unclean end exits 1 and keeps it. A second sbxd on
 * the same state dir exits 2 naming the holder, and a lock left by a
 * SIGKILLed sbxd is taken over with a warning. Bad configuration exits 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "harness.h"

#define STUBBORN_BODY "{\"vcpus\":1,\"memory_mib\":16,\"ignore_stop\":true}"
#define EXIT_BOUND_MS 20000

static struct sbxd_proc first, second;

TestSuite(lock, .init = harness_init, .fini = harness_fini);

/* The pid written in a lock file, or -1 when it cannot be read. */
static long lock_pid(const char *path)
{
	long pid = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = -1;
	fclose(f);
	return pid;
}

static void assert_lock_holds(const struct sbxd_proc *p, pid_t pid)
{
	long got = lock_pid(p->lock_path);

	cr_assert_eq(got, pid, "%s holds pid %ld, expected %d", p->lock_path,
		     got, pid);
}

static void assert_last_line(const struct sbxd_proc *p, const char *want)
{
	char *last = sbxd_log_last_line(p);

	cr_assert(last && strstr(last, want),
		  "last log line is \"%s\", expected it to contain \"%s\"",
		  last ? last : "", want);
	free(last);
}

static bool node_uses_bpf(struct sbxd_proc *p)
{
	json_t *node = sbx_node(p);
	json_t *gate = json_object_get(node, "gate");
	bool bpf = json_is_string(gate) &&
		   strcmp(json_string_value(gate), "bpf") == 0;

	json_decref(node);
	return bpf;
}

Test(lock, clean_exit_removes_lock, .timeout = 60)
{
	char pin_dir[PATH_MAX], want[PATH_MAX + 16];
	bool bpf;

	sbxd_start_checked(&first, NULL, NULL);
	assert_lock_holds(&first, first.pid);
	snprintf(want, sizeof(want), "serving on unix:%s", first.sock_path);
	cr_assert(sbxd_log_contains(&first, want),
		  "the log lacks \"%s\"", want);
	bpf = node_uses_bpf(&first);

	cr_assert_eq(sbxd_signal(&first, SIGTERM), 0);
	sbxd_assert_exit(&first, EXIT_BOUND_MS, 0);
	cr_assert(!harness_path_exists(first.lock_path),
		  "clean exit left %s", first.lock_path);
	assert_last_line(&first, "exiting status=0");
	if (bpf) {
		snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/sbxd/%s",
			 first.instance);
		cr_assert(!harness_path_exists(pin_dir),
			  "clean exit left the BPF pin dir %s", pin_dir);
	}
}

Test(lock, second_sbxd_exits_2, .timeout = 60)
{
	char pid_text[32];
	struct http_resp resp;
	int status;

	sbxd_start_checked(&first, NULL, NULL);
	cr_assert_eq(sbxd_spawn(&second, &first, NULL, NULL), 0);
	sbxd_assert_exit(&second, EXIT_BOUND_MS, 2);
	snprintf(pid_text, sizeof(pid_text), "%d", first.pid);
	cr_assert(sbxd_log_contains(&second, pid_text),
		  "the refused sbxd does not name the running pid %s",
		  pid_text);

	/* The loser must leave the winner's socket and lock alone. */
	assert_lock_holds(&first, first.pid);
	status = http_request(&first, "GET", "/v1/node", NULL, &resp);
	cr_assert_eq(status, 200, "first sbxd no longer serves after a "
		     "second one was refused: %s",
		     status > 0 ? resp.body : strerror(-status));
	http_resp_free(&resp);
}

Test(lock, same_instance_exits_2, .timeout = 60)
{
	const char *args[] = { "--gate", "bpf", "--instance", NULL, NULL };
	char instance[64], pid_text[32], pin[160];
	struct http_resp resp;
	int status;

	harness_require_root("pinning BPF maps needs root");
	if (access("/sys/fs/bpf", W_OK) < 0)
		cr_skip_test("skipped: bpffs is not mounted at /sys/fs/bpf");
	snprintf(instance, sizeof(instance), "itest-same-%d", getpid());
	args[3] = instance;
	sbxd_start_checked(&first, args, NULL);

	/* A second sbxd on its own state dir but the same instance name must
	 * not replace the live pins of the first. */
	cr_assert_eq(sbxd_spawn(&second, NULL, args, NULL), 0);
	sbxd_assert_exit(&second, EXIT_BOUND_MS, 2);
	snprintf(pid_text, sizeof(pid_text), "in use by pid %d", first.pid);
	cr_assert(sbxd_log_contains(&second, pid_text),
		  "the rejected sbxd does not name pid %d", first.pid);
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/sbxd/%s/drain_state",
		 instance);
	cr_assert(harness_path_exists(pin), "%s was removed", pin);
	status = http_request(&first, "GET", "/v1/node", NULL, &resp);
	cr_assert_eq(status, 200);
	cr_assert_str_eq(json_string_value(json_object_get(resp.json, "gate")),
			 "bpf");
	http_resp_free(&resp);

	/* The harness removes only the pins of its own instance names, so
	 * the first sbxd must remove these itself on a clean exit. */
	cr_assert_eq(sbxd_signal(&first, SIGTERM), 0);
	sbxd_assert_exit(&first, EXIT_BOUND_MS, 0);
	cr_assert_not(harness_path_exists(pin), "%s left after a clean exit",
		      pin);
}

Test(lock, stale_lock_taken_over, .timeout = 60)
{
	char id[80], desc[512];
	int status;

	sbxd_start_checked(&first, NULL, NULL);
	cr_assert_eq(sbx_create(&first, STUBBORN_BODY, id, sizeof(id)), 201);
	cr_assert_eq(sbxd_signal(&first, SIGKILL), 0);
	cr_assert_eq(sbxd_wait_exit(&first, 5000, &status), 0);
	cr_assert(harness_path_exists(first.lock_path),
		  "no lock file left after SIGKILL: nothing to take over");
	cr_assert_eq(sbxd_wait_no_vmms(&first, 5000, desc, sizeof(desc)), 0,
		     "VMMs outlived the SIGKILLed sbxd: %s", desc);

	cr_assert_eq(sbxd_start_shared(&second, &first, NULL, NULL), 0,
		     "sbxd did not take over a stale lock; log:\n%s",
		     sbxd_log_tail(&second, 2048));
	cr_assert(sbxd_log_line_contains(&second, "warn", "unclean shutdown"),
		  "no warn line with \"unclean shutdown\" after taking over "
		  "the lock of pid %d", first.pid);
	assert_lock_holds(&second, second.pid);

	cr_assert_eq(sbxd_signal(&second, SIGTERM), 0);
	sbxd_assert_exit(&second, EXIT_BOUND_MS, 0);
	cr_assert(!harness_path_exists(second.lock_path),
		  "clean exit after a takeover left %s", second.lock_path);
}

/*
 * An unclean end made for real. The forced phase is bounded by a 1s
 * --force-timeout, but the stubborn guest ignores the stop request and is
 * only killed after a 10s stop grace, so a sandbox is still live when the
 * bound hits. No other real cause exists: a VMM cannot be made
 * unkillable, and SIGSTOP does not block SIGKILL.
 */
Test(lock, unclean_exit_keeps_lock, .timeout = 60)
{
	static const char *const args[] = {
		"--drain-timeout", "0", "--stop-grace", "10s",
		"--force-timeout", "1s", NULL,
	};
	char id[80], desc[512];
	int count;

	sbxd_start_checked(&first, args, NULL);
	cr_assert_eq(sbx_create(&first, STUBBORN_BODY, id, sizeof(id)), 201);
	cr_assert_eq(sbxd_signal(&first, SIGTERM), 0);
	sbxd_assert_exit(&first, EXIT_BOUND_MS, 1);
	assert_lock_holds(&first, first.pid);
	assert_last_line(&first, "exiting status=1");
	count = sbxd_wait_no_vmms(&first, 5000, desc, sizeof(desc));
	cr_assert_eq(count, 0, "VMM outlived an unclean sbxd exit: %s", desc);

	/* The next start learns that the last shutdown was unclean. */
	cr_assert_eq(sbxd_start_shared(&second, &first, NULL, NULL), 0,
		     "sbxd did not start after an unclean exit; log:\n%s",
		     sbxd_log_tail(&second, 2048));
	cr_assert(sbxd_log_line_contains(&second, "warn", "unclean shutdown"),
		  "no \"unclean shutdown\" warning after an exit 1");
	cr_assert_eq(sbxd_signal(&second, SIGTERM), 0);
	sbxd_assert_exit(&second, EXIT_BOUND_MS, 0);
}

struct bad_config {
	const char *args[3];
	const char *env[2];
	const char *names[2]; /* stderr must contain one of these */
};

static const struct bad_config bad_configs[] = {
	{ { "--drain-timeout", "abc" }, { 0 }, { "--drain-timeout" } },
	{ { "--drain-timeout", "5" }, { 0 }, { "--drain-timeout" } },
	{ { "--drain-timeout", "99999999999999999999h" }, { 0 },
	  { "--drain-timeout" } },
	{ { "--force-timeout", "10x" }, { 0 }, { "--force-timeout" } },
	{ { "--stop-grace", "-1s" }, { 0 }, { "--stop-grace" } },
	{ { "--drain-poll", "ms" }, { 0 }, { "--drain-poll" } },
	{ { "--request-timeout", "" }, { 0 }, { "--request-timeout" } },
	{ { "--max-sandboxes", "many" }, { 0 }, { "--max-sandboxes" } },
	{ { "--max-sandboxes", "-1" }, { 0 }, { "--max-sandboxes" } },
	{ { "--gate", "quantum" }, { 0 }, { "--gate" } },
	{ { "--no-such-flag" }, { 0 }, { "--no-such-flag" } },
	{ { "--instance", ".." }, { 0 }, { "--instance" } },
	{ { "--instance", "a/b" }, { 0 }, { "--instance" } },
	{ { "--instance", "" }, { 0 }, { "--instance" } },
	/* Rejected before any bind: the API has no authentication. */
	{ { "--listen", "tcp:192.0.2.1:9" }, { 0 }, { "--listen" } },
	{ { "--listen", "unix:relative.sock" }, { 0 }, { "--listen" } },
	{ { "--state-dir", "relative-dir" }, { 0 }, { "--state-dir" } },
	{ { "--guest", "/nonexistent/sbx-agent" }, { 0 }, { "--guest" } },
	{ { 0 }, { "SHUTDOWN_DRAIN_TIMEOUT=abc" },
	  { "SHUTDOWN_DRAIN_TIMEOUT", "--drain-timeout" } },
	{ { 0 }, { "SHUTDOWN_FORCE_TIMEOUT=1y" },
	  { "SHUTDOWN_FORCE_TIMEOUT", "--force-timeout" } },
	{ { 0 }, { "SBXD_STOP_GRACE=forever" },
	  { "SBXD_STOP_GRACE", "--stop-grace" } },
	{ { 0 }, { "SBXD_MAX_SANDBOXES=lots" },
	  { "SBXD_MAX_SANDBOXES", "--max-sandboxes" } },
};

Test(lock, bad_config_exits_2, .timeout = 120)
{
	harness_require_bins();
	for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]);
	     i++) {
		const struct bad_config *bc = &bad_configs[i];
		const char *what = bc->args[0] ? bc->args[0] : bc->env[0];
		bool named;

		cr_assert_eq(sbxd_spawn(&first, NULL, bc->args, bc->env), 0);
		sbxd_assert_exit(&first, EXIT_BOUND_MS, 2);
		named = sbxd_log_contains(&first, bc->names[0]) ||
			(bc->names[1] && sbxd_log_contains(&first, bc->names[1]));
		cr_assert(named, "%s %s: the error does not name %s",
			  what, bc->args[1] ? bc->args[1] : "", bc->names[0]);
		/* A usage error must not look like an unclean shutdown. */
		cr_assert(!harness_path_exists(first.lock_path),
			  "%s: a usage error left the lock file", what);
		sbxd_cleanup(&first);
	}
}

/* A state dir whose sbxd.sock path does not fit in sun_path (108 bytes). */
static char long_dir[PATH_MAX];

static void remove_long_dir(void)
{
	char top[PATH_MAX];

	harness_fini();
	if (!long_dir[0])
		return;
	/* Remove from the mkdtemp dir, the first component under /tmp. */
	snprintf(top, sizeof(top), "%.*s", (int)strlen("/tmp/sbxd-itest-XXXXXX"),
		 long_dir);
	harness_remove_tree(top);
	long_dir[0] = '\0';
}

Test(lock, long_state_dir_exits_2, .timeout = 30, .fini = remove_long_dir)
{
	const char *args[] = { "--state-dir", long_dir, NULL };
	size_t len;

	harness_require_bins();
	snprintf(long_dir, sizeof(long_dir), "/tmp/sbxd-itest-XXXXXX");
	cr_assert(mkdtemp(long_dir), "mkdtemp: %s", strerror(errno));
	strcat(long_dir, "/");
	len = strlen(long_dir);
	memset(long_dir + len, 'd', 100);
	long_dir[len + 100] = '\0';
	cr_assert_eq(mkdir(long_dir, 0700), 0, "mkdir: %s", strerror(errno));

	cr_assert_eq(sbxd_spawn(&first, NULL, args, NULL), 0);
	sbxd_assert_exit(&first, EXIT_BOUND_MS, 2);
	cr_assert(sbxd_log_contains(&first, "--state-dir"),
		  "the error does not name --state-dir");
}

Test(lock, help_lists_flags_and_env, .timeout = 30)
{
	static const char *const args[] = { "--help", NULL };
	static const char *const names[] = {
		"--state-dir", "SBXD_STATE_DIR", "--listen", "SBXD_LISTEN",
		"--instance", "SBXD_INSTANCE", "--drain-timeout",
		"SHUTDOWN_DRAIN_TIMEOUT", "--force-timeout",
		"SHUTDOWN_FORCE_TIMEOUT", "--force-stop", "FORCE_STOP",
		"--drain-poll", "SBXD_DRAIN_POLL", "--max-sandboxes",
		"SBXD_MAX_SANDBOXES", "--stop-grace", "SBXD_STOP_GRACE",
		"--request-timeout", "--gate",
	};

	harness_require_bins();
	cr_assert_eq(sbxd_spawn(&first, NULL, args, NULL), 0);
	sbxd_assert_exit(&first, EXIT_BOUND_MS, 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_assert(sbxd_log_contains(&first, names[i]),
			  "--help does not list %s", names[i]);
}
