// SPDX-License-Identifier: MIT
/*
 * sbxctl against a real sbxd with real VMs: each test runs the sbxctl
 * program, as a user would, and checks its output and exit status. Covers
 * the sandbox round trip, server errors, socket discovery, usage errors,
 * force-stop, TCP and "node --watch" following a drain to the end, once
 * from the pinned BPF map and once from the API.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>

#include <criterion/criterion.h>

#include "harness.h"

#define SBXCTL SBX_BIN_DIR "/sbxctl"
#define RUN_TIMEOUT_MS 30000
#define MAX_CHILDREN 8

/* A running sbxctl with its output collected so far. */
struct ctl_child {
	pid_t pid;
	int out_fd, err_fd;	/* -1 once at EOF */
	char *out, *err;	/* NUL-terminated */
	size_t out_len, err_len;
	int status;		/* exit code; 128 + signal when killed */
};

/* Static, because fini must still reach them after a failed assert. */
static struct sbxd_proc sbxd;
static pid_t children[MAX_CHILDREN];

static void kill_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
	}
}

static void suite_fini(void)
{
	kill_children();
	harness_fini();
}

TestSuite(ctl, .init = harness_init, .fini = suite_fini);

static void child_track(pid_t pid, bool add)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (add && children[i] == 0) {
			children[i] = pid;
			return;
		}
		if (!add && children[i] == pid) {
			children[i] = 0;
			return;
		}
	}
	cr_assert(!add, "more than %d sbxctl processes at once", MAX_CHILDREN);
}

/*
 * Start sbxctl with argv (argv[0] is ignored) and extra environment
 * entries. Variables that steer sbxctl to a socket or an instance are not
 * inherited.
 */
static void ctl_spawn(struct ctl_child *c, const char *const argv[],
		      const char *const env[])
{
	int out[2], err[2];
	pid_t pid;

	memset(c, 0, sizeof(*c));
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
	cr_assert_eq(pipe2(err, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		unsetenv("SBXD_SOCKET");
		unsetenv("SBXD_STATE_DIR");
		unsetenv("SBXD_INSTANCE");
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execv(SBXCTL, (char *const *)argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", SBXCTL,
			strerror(errno));
		_exit(126);
	}
	close(out[1]);
	close(err[1]);
	child_track(pid, true);
	c->pid = pid;
	c->out_fd = out[0];
	c->err_fd = err[0];
	c->out = calloc(1, 1);
	c->err = calloc(1, 1);
	cr_assert(c->out && c->err, "out of memory");
}

static void append_from(int *fd, char **buf, size_t *len)
{
	char chunk[4096];
	ssize_t n = read(*fd, chunk, sizeof(chunk));

	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	*buf = realloc(*buf, *len + (size_t)n + 1);
	cr_assert_not_null(*buf, "out of memory");
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
}

/* Read what is available, waiting at most timeout_ms for something. */
static void ctl_pump(struct ctl_child *c, int timeout_ms)
{
	struct pollfd fds[2] = {
		{ .fd = c->out_fd, .events = POLLIN },
		{ .fd = c->err_fd, .events = POLLIN },
	};

	if (c->out_fd < 0 && c->err_fd < 0)
		return;
	if (poll(fds, 2, timeout_ms) <= 0)
		return;
	if (c->out_fd >= 0 && fds[0].revents)
		append_from(&c->out_fd, &c->out, &c->out_len);
	if (c->err_fd >= 0 && fds[1].revents)
		append_from(&c->err_fd, &c->err, &c->err_len);
}

/* Wait until stdout contains text; false after timeout_ms or at EOF. */
static bool ctl_wait_output(struct ctl_child *c, const char *text,
			    int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;

	while (!strstr(c->out, text)) {
		if (c->out_fd < 0 || harness_now_ms() >= deadline)
			return false;
		ctl_pump(c, 100);
	}
	return true;
}

/* Collect the rest of the output and the exit status; kill on timeout. */
static void ctl_finish(struct ctl_child *c, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	bool timed_out = false;
	int wstatus;

	while (c->out_fd >= 0 || c->err_fd >= 0) {
		if (harness_now_ms() >= deadline) {
			timed_out = true;
			kill(c->pid, SIGKILL);
			break;
		}
		ctl_pump(c, 100);
	}
	waitpid(c->pid, &wstatus, 0);
	child_track(c->pid, false);
	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->err_fd >= 0)
		close(c->err_fd);
	c->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
				       : 128 + WTERMSIG(wstatus);
	cr_assert_not(timed_out, "sbxctl did not finish in %d ms; stdout: %s",
		      timeout_ms, c->out);
}

static void ctl_free(struct ctl_child *c)
{
	free(c->out);
	free(c->err);
}

static void ctl_run_env(struct ctl_child *c, const char *const argv[],
			const char *const env[])
{
	ctl_spawn(c, argv, env);
	ctl_finish(c, RUN_TIMEOUT_MS);
}

/* Run "sbxctl --socket <sbxd's socket> ARGS..." to the end. */
#define CTL(c, ...)                                                        \
	ctl_run_env((c),                                                   \
		    (const char *const[]){ "sbxctl", "--socket",           \
					   sbxd.sock_path, __VA_ARGS__,    \
					   NULL },                         \
		    NULL)

static void assert_status(const struct ctl_child *c, int want,
			  const char *what)
{
	cr_assert_eq(c->status, want,
		     "%s: exit status %d, expected %d\nstdout: %s\nstderr: %s",
		     what, c->status, want, c->out, c->err);
}

/* Create a sandbox with sbxctl and copy its ID into id. */
static void ctl_create(char *id, size_t len, const char *extra)
{
	struct ctl_child c;

	if (extra)
		CTL(&c, "create", "--quiet", extra);
	else
		CTL(&c, "create", "--quiet");
	assert_status(&c, 0, "create");
	c.out[strcspn(c.out, "\n")] = '\0';
	cr_assert_neq(c.out[0], '\0', "create printed no ID");
	snprintf(id, len, "%s", c.out);
	ctl_free(&c);
}

Test(ctl, usage_error_exits_2)
{
	struct ctl_child c;

	ctl_run_env(&c, (const char *const[]){ "sbxctl", "create",
					       "--memory-mib", "lots", NULL },
		    NULL);
	assert_status(&c, 2, "create --memory-mib lots");
	cr_assert(strstr(c.err, "sbxctl: invalid value 'lots' for --memory-mib"),
		  "stderr: %s", c.err);
	cr_assert(strstr(c.err, "Usage: sbxctl create"), "stderr: %s", c.err);
	ctl_free(&c);

	ctl_run_env(&c, (const char *const[]){ "sbxctl", "exec", "--help",
					       NULL },
		    NULL);
	assert_status(&c, 0, "exec --help");
	cr_assert(strstr(c.out, "Usage: sbxctl exec ID"), "stdout: %s", c.out);
	ctl_free(&c);
}

Test(ctl, missing_socket_named)
{
	char dir[] = "/tmp/sbxctl-test.XXXXXX";
	char sock[PATH_MAX], env_dir[PATH_MAX + 32];
	struct ctl_child c;

	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(sock, sizeof(sock), "%s/sbxd.sock", dir);
	snprintf(env_dir, sizeof(env_dir), "SBXD_STATE_DIR=%s", dir);

	ctl_run_env(&c, (const char *const[]){ "sbxctl", "--socket", sock,
					       "ls", NULL },
		    NULL);
	rmdir(dir);
	assert_status(&c, 1, "ls on a missing socket");
	cr_assert(strstr(c.err, sock), "stderr does not name %s: %s", sock,
		  c.err);
	cr_assert(strstr(c.err, "--socket"), "no hint in stderr: %s", c.err);
	ctl_free(&c);

	ctl_run_env(&c, (const char *const[]){ "sbxctl", "node", NULL },
		    (const char *const[]){ env_dir, NULL });
	assert_status(&c, 1, "node with SBXD_STATE_DIR");
	cr_assert(strstr(c.err, "from SBXD_STATE_DIR"), "stderr: %s", c.err);
	ctl_free(&c);
}

Test(ctl, sandbox_round_trip, .timeout = 120)
{
	char id[128], other[128];
	json_t *root;
	struct ctl_child c;

	sbxd_start_checked(&sbxd, NULL, NULL);
	ctl_create(id, sizeof(id), "--meta=team=red");

	CTL(&c, "ls");
	assert_status(&c, 0, "ls");
	cr_assert(strncmp(c.out, "ID ", 3) == 0, "no header: %s", c.out);
	cr_assert(strstr(c.out, id), "ls lacks %s: %s", id, c.out);
	cr_assert(strstr(c.out, "running"), "ls: %s", c.out);
	ctl_free(&c);

	CTL(&c, "get", id);
	assert_status(&c, 0, "get");
	cr_assert(strstr(c.out, "team=red"), "get: %s", c.out);
	ctl_free(&c);

	CTL(&c, "--json", "get", id);
	assert_status(&c, 0, "--json get");
	root = json_loads(c.out, 0, NULL);
	cr_assert_not_null(root, "--json output is not JSON: %s", c.out);
	cr_assert_str_eq(json_string_value(json_object_get(root, "id")), id);
	json_decref(root);
	ctl_free(&c);

	CTL(&c, "exec", id, "--", "echo", "hello", "there");
	assert_status(&c, 0, "exec echo");
	cr_assert_str_eq(c.out, "hello there\n");
	ctl_free(&c);

	CTL(&c, "exec", id, "no-such-verb");
	assert_status(&c, 127, "exec of an unknown command");
	cr_assert(strstr(c.out, "no-such-verb"), "output: %s", c.out);
	ctl_free(&c);

	CTL(&c, "stop", id, "--grace-ms", "5000");
	assert_status(&c, 0, "stop");
	cr_assert(strncmp(c.out, id, strlen(id)) == 0, "stop: %s", c.out);
	ctl_free(&c);

	ctl_create(other, sizeof(other), NULL);
	CTL(&c, "kill", other);
	assert_status(&c, 0, "kill");
	cr_assert(strncmp(c.out, other, strlen(other)) == 0, "kill: %s", c.out);
	ctl_free(&c);
}

Test(ctl, server_error_printed, .timeout = 60)
{
	struct http_resp resp;
	const char *message;
	char want[1024];
	struct ctl_child c;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	status = http_request(&sbxd, "GET", "/v1/sandboxes/no-such-id", NULL,
			      &resp);
	cr_assert_eq(status, 404, "GET of an unknown ID: status %d", status);
	message = json_string_value(json_object_get(
		json_object_get(resp.json, "error"), "message"));
	cr_assert_not_null(message, "404 without error.message: %s",
			   resp.body);
	snprintf(want, sizeof(want), "sbxctl: %s\n", message);
	http_resp_free(&resp);

	CTL(&c, "get", "no-such-id");
	assert_status(&c, 1, "get of an unknown ID");
	cr_assert_str_eq(c.err, want);
	cr_assert_str_eq(c.out, "");
	ctl_free(&c);
}

Test(ctl, env_finds_socket, .timeout = 60)
{
	char state_env[PATH_MAX + 32], socket_env[PATH_MAX + 32];
	struct ctl_child c;

	sbxd_start_checked(&sbxd, NULL, NULL);
	snprintf(state_env, sizeof(state_env), "SBXD_STATE_DIR=%s",
		 sbxd.state_dir);
	snprintf(socket_env, sizeof(socket_env), "SBXD_SOCKET=unix:%s",
		 sbxd.sock_path);

	ctl_run_env(&c, (const char *const[]){ "sbxctl", "node", NULL },
		    (const char *const[]){ state_env, NULL });
	assert_status(&c, 0, "node with SBXD_STATE_DIR");
	cr_assert(strstr(c.out, "serving"), "node: %s", c.out);
	ctl_free(&c);

	ctl_run_env(&c, (const char *const[]){ "sbxctl", "node", NULL },
		    (const char *const[]){ socket_env, NULL });
	assert_status(&c, 0, "node with SBXD_SOCKET");
	cr_assert(strstr(c.out, "serving"), "node: %s", c.out);
	ctl_free(&c);
}

Test(ctl, force_stop_lists_ids, .timeout = 120)
{
	char id[128];
	struct ctl_child c;

	/* The guest ignores the stop request, so force-stop waits this long. */
	sbxd_start_checked(&sbxd,
			   (const char *const[]){ "--stop-grace", "1s", NULL },
			   NULL);
	ctl_create(id, sizeof(id), "--ignore-stop");

	CTL(&c, "force-stop");
	assert_status(&c, 0, "force-stop");
	cr_assert(strstr(c.out, "requested: 1\n"), "force-stop: %s", c.out);
	cr_assert(strstr(c.out, id), "force-stop lacks %s: %s", id, c.out);
	ctl_free(&c);

	cr_assert_eq(sbx_wait_sandbox_state(&sbxd, id, "exited", 30000), 0,
		     "%s did not exit after force-stop", id);
}

/* A loopback port that was free a moment ago. */
static int free_port(void)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0,
		     "bind: %s", strerror(errno));
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

Test(ctl, tcp_listener, .timeout = 60)
{
	char listen[64], addr[64];
	struct ctl_child c;
	int port = free_port();

	snprintf(listen, sizeof(listen), "tcp:127.0.0.1:%d", port);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%d", port);
	sbxd_start_checked(&sbxd,
			   (const char *const[]){ "--listen", listen, NULL },
			   NULL);

	ctl_run_env(&c, (const char *const[]){ "sbxctl", "--socket", addr,
					       "node", NULL },
		    NULL);
	assert_status(&c, 0, "node over TCP");
	cr_assert(strstr(c.out, "serving"), "node: %s", c.out);
	ctl_free(&c);
}

/* Count the lines of text that start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
	size_t len = strlen(prefix);
	const char *line = text;
	int count = 0;

	while (*line) {
		const char *end = strchr(line, '\n');

		count += strncmp(line, prefix, len) == 0;
		if (!end)
			break;
		line = end + 1;
	}
	return count;
}

/*
 * The demo's story, followed by "node --watch" over the API. sbxd runs the
 * memfd gate, which pins no map, so the watch says why it polls the API.
 * It shows serving, then draining after SIGTERM while a sandbox lives.
 * Create is rejected with 503. Stopping the last sandbox lets sbxd exit 0,
 * and then the watch ends by itself.
 */
Test(ctl, watch_follows_drain, .timeout = 180)
{
	char instance_env[128], want[PATH_MAX + 128];
	struct ctl_child watch, c;
	char id[128];

	sbxd_start_checked(&sbxd,
			   (const char *const[]){ "--gate", "memfd", NULL },
			   NULL);
	ctl_create(id, sizeof(id), NULL);

	snprintf(instance_env, sizeof(instance_env), "SBXD_INSTANCE=%s",
		 sbxd.instance);
	ctl_spawn(&watch,
		  (const char *const[]){ "sbxctl", "--socket", sbxd.sock_path,
					 "node", "--watch", "--interval",
					 "100ms", NULL },
		  (const char *const[]){ instance_env, NULL });
	cr_assert(ctl_wait_output(&watch, "\nserving  live 1", 10000),
		  "watch never showed serving: %s%s", watch.out, watch.err);
	snprintf(want, sizeof(want), "source: API GET /v1/node at unix:%s ",
		 sbxd.sock_path);
	cr_assert(strncmp(watch.out, want, strlen(want)) == 0,
		  "first line is not the API source: %s", watch.out);
	if (geteuid() == 0) {
		snprintf(want, sizeof(want),
			 "because /sys/fs/bpf/sbxd/%s/drain_state does not "
			 "exist (sbxd uses the memfd gate",
			 sbxd.instance);
		cr_assert(strstr(watch.out, want), "no reason: %s",
			  watch.out);
	}

	cr_assert_eq(sbxd_signal(&sbxd, SIGTERM), 0);
	cr_assert(ctl_wait_output(&watch, "\ndraining  live 1", 10000),
		  "watch never showed draining: %s%s", watch.out, watch.err);

	CTL(&c, "create");
	assert_status(&c, 1, "create while draining");
	cr_assert(strstr(c.err, "retry after"), "stderr: %s", c.err);
	ctl_free(&c);

	CTL(&c, "stop", id, "--grace-ms", "5000");
	assert_status(&c, 0, "stop while draining");
	ctl_free(&c);

	sbxd_assert_exit(&sbxd, 60000, 0);
	ctl_finish(&watch, 10000);
	cr_assert_eq(watch.status, 0, "watch exit status %d; stderr: %s",
		     watch.status, watch.err);
	cr_assert(strstr(watch.out, "\nlast seen: "), "watch: %s", watch.out);
	snprintf(want, sizeof(want), "\nsbxd at unix:%s went away: ",
		 sbxd.sock_path);
	cr_assert(strstr(watch.out, want), "watch: %s", watch.out);
	cr_assert_str_eq(watch.err, "");
	ctl_free(&watch);
}

static void require_bpffs(void)
{
	struct statfs fs;

	harness_require_root("sbxctl reads the pinned BPF map as root");
	if (statfs("/sys/fs/bpf", &fs) < 0 || fs.f_type != BPF_FS_MAGIC)
		cr_skip_test("skipped: /sys/fs/bpf is not a bpffs mount");
}

/*
 * With the BPF gate, "node --watch --instance NAME" reads sbxd's pinned
 * map. Its --socket names no server, so every line comes from the map.
 * The watch follows a drain with a live sandbox and a rejected create,
 * prints a line only when a counter or the state changes, and ends with
 * the final state once sbxd removes its pin at exit.
 */
Test(ctl, watch_reads_bpf_map, .timeout = 180)
{
	char no_socket[PATH_MAX + 32], pin[128], want[512];
	struct ctl_child watch, c;
	char id[128];

	require_bpffs();
	sbxd_start_checked(&sbxd,
			   (const char *const[]){ "--gate", "bpf", NULL },
			   NULL);
	ctl_create(id, sizeof(id), NULL);

	snprintf(no_socket, sizeof(no_socket), "%s/no-sbxd.sock", sbxd.dir);
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/sbxd/%s/drain_state",
		 sbxd.instance);
	ctl_spawn(&watch,
		  (const char *const[]){ "sbxctl", "--socket", no_socket,
					 "node", "--watch", "--instance",
					 sbxd.instance, "--interval", "100ms",
					 NULL },
		  NULL);
	cr_assert(ctl_wait_output(&watch, "\nserving  live 1  starting 0",
				  10000),
		  "watch never showed serving: %s%s", watch.out, watch.err);
	snprintf(want, sizeof(want),
		 "source: bpf map %s of sbxd instance \"%s\" (from --instance)",
		 pin, sbxd.instance);
	cr_assert(strncmp(watch.out, want, strlen(want)) == 0,
		  "first line is not the map source: %s", watch.out);

	cr_assert_eq(sbxd_signal(&sbxd, SIGTERM), 0);
	cr_assert(ctl_wait_output(&watch,
				  "\ndraining  live 1  starting 0  admitted 1  rejected 0",
				  10000),
		  "watch never showed draining: %s%s", watch.out, watch.err);
	/* Several reads pass while nothing changes but the time. */
	harness_sleep_ms(500);

	CTL(&c, "create");
	assert_status(&c, 1, "create while draining");
	ctl_free(&c);
	cr_assert(ctl_wait_output(&watch, "rejected 1", 10000),
		  "watch never showed the rejected create: %s%s", watch.out,
		  watch.err);

	CTL(&c, "stop", id, "--grace-ms", "5000");
	assert_status(&c, 0, "stop while draining");
	ctl_free(&c);

	sbxd_assert_exit(&sbxd, 60000, 0);
	ctl_finish(&watch, 10000);
	cr_assert_eq(watch.status, 0, "watch exit status %d; stderr: %s",
		     watch.status, watch.err);
	cr_assert_str_eq(watch.err, "");
	cr_assert_eq(count_lines(watch.out, "draining  live 1  starting 0  "
					    "admitted 1  rejected 0"),
		     1, "an unchanged status printed again: %s", watch.out);
	cr_assert(strstr(watch.out, "  draining for "), "watch: %s",
		  watch.out);
	cr_assert(strstr(watch.out, "\nfinal: closing  live 0  starting 0  "
				    "admitted 1  rejected 1  started 1  "
				    "failed 0  draining for "),
		  "no final state: %s", watch.out);
	snprintf(want, sizeof(want), "\nsbxd removed %s, ", pin);
	cr_assert(strstr(watch.out, want), "watch: %s", watch.out);
	ctl_free(&watch);
}
