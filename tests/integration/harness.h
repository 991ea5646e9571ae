/* SPDX-License-Identifier: MIT */
/*
 * Integration test harness: starts a real sbxd in a private temporary state
 * directory, speaks HTTP/1.1 to it over its unix socket, and cleans up only
 * what it started (processes by pid, its own directory and BPF pin dir).
 *
 * Functions return 0 or a negative errno unless stated otherwise. The
 * sbxd_*_checked and harness_require_* helpers use Criterion asserts and
 * skips, so call them only from a test body or fixture.
 *
 * Link the static library sbx_itest_harness (target defined in
 * integration.cmake) into a Criterion test and give the suite
 * `.init = harness_init, .fini = harness_fini`.
 */
#ifndef SBX_ITEST_HARNESS_H
#define SBX_ITEST_HARNESS_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define HARNESS_MAX_VMMS 256
#define HARNESS_READY_TIMEOUT_MS 10000
#define HARNESS_HTTP_TIMEOUT_MS 30000

/* One VMM pid seen in an API response, with its start time against pid reuse. */
struct harness_vmm {
	pid_t pid;
	unsigned long long start_time; /* field 22 of /proc/PID/stat */
	char id[80];
};

struct sbxd_proc {
	pid_t pid;		/* 0 before spawn */
	bool reaped;		/* waitpid collected the exit status */
	int status;		/* wait status once reaped */
	bool owns_state_dir;	/* false when sharing another proc's dir */
	char dir[PATH_MAX];	/* private mkdtemp dir: log, maybe state/ */
	char state_dir[PATH_MAX];
	char sock_path[108];	/* sizeof(sun_path) */
	char lock_path[PATH_MAX];
	char log_path[PATH_MAX];
	char instance[64];	/* --instance, unique per state dir */
	int http_timeout_ms;	/* per request; create and stop block long */

	pthread_mutex_t vmm_lock; /* requests may run on several threads */
	struct harness_vmm vmms[HARNESS_MAX_VMMS];
	size_t n_vmms;
};

/*
 * Set up the test process: become a child subreaper so that VMMs orphaned
 * by a killed sbxd are reparented here and can be checked and reaped.
 */
void harness_init(void);
/* Clean up every sbxd this process started that is not yet cleaned up. */
void harness_fini(void);

/* Skip the test when /dev/kvm cannot be opened for reading and writing. */
void harness_require_kvm(void);
/* Skip the test unless it runs as root, naming `why`. */
void harness_require_root(const char *why);
/* Fail the test when sbxd, sbx-vmm or sbx-agent are missing. */
void harness_require_bins(void);

/*
 * Start sbxd with a fresh state dir and wait until it serves.
 * extra_args and extra_env are NULL-terminated arrays or NULL. Variables
 * that configure sbxd (SBXD_*, SHUTDOWN_*, FORCE_STOP) are removed from
 * the inherited environment so only extra_env sets them. Unless
 * extra_args has --instance, a unique instance name is passed so that
 * the BPF pin dir never collides with another sbxd on this machine.
 * With --state-dir in extra_args, the caller's dir is used instead of
 * p->state_dir, and the caller removes it.
 * Returns -ECHILD when sbxd exited before it was ready.
 */
int sbxd_start(struct sbxd_proc *p, const char *const extra_args[],
	       const char *const extra_env[]);
/* Like sbxd_start, but use the state dir and instance of `owner`. */
int sbxd_start_shared(struct sbxd_proc *p, const struct sbxd_proc *owner,
		      const char *const extra_args[],
		      const char *const extra_env[]);
/* Spawn without waiting; with owner != NULL, share its state dir. */
int sbxd_spawn(struct sbxd_proc *p, const struct sbxd_proc *owner,
	       const char *const extra_args[], const char *const extra_env[]);
/*
 * Wait until sbxd logs "serving on unix:SOCK" and the socket accepts a
 * connection. Returns -ECHILD if sbxd exited first.
 */
int sbxd_wait_ready(struct sbxd_proc *p, int timeout_ms);

/* Start and assert success (skips without KVM, fails with the log tail). */
void sbxd_start_checked(struct sbxd_proc *p, const char *const extra_args[],
			const char *const extra_env[]);

int sbxd_signal(struct sbxd_proc *p, int sig);
/*
 * Wait up to timeout_ms for sbxd to exit and store its wait status.
 * Returns -ETIMEDOUT while it still runs.
 */
int sbxd_wait_exit(struct sbxd_proc *p, int timeout_ms, int *status);
/* SIGTERM, then sbxd_wait_exit. */
int sbxd_stop(struct sbxd_proc *p, int timeout_ms, int *status);
/* True while the process has not exited (reaps it if it has). */
bool sbxd_running(struct sbxd_proc *p);

/* Whole log (stdout and stderr) as a NUL-terminated string; free() it. */
char *sbxd_log_read(const struct sbxd_proc *p);
bool sbxd_log_contains(const struct sbxd_proc *p, const char *text);
/* True when one log line contains both a and b, ignoring case. */
bool sbxd_log_line_contains(const struct sbxd_proc *p, const char *a,
			    const char *b);
/* Last non-empty log line, or "" when empty; free() it. */
char *sbxd_log_last_line(const struct sbxd_proc *p);
/* Last `max` bytes of the log for failure messages; free() it. */
char *sbxd_log_tail(const struct sbxd_proc *p, size_t max);

/*
 * Count live sbx-vmm processes that belong to this sbxd: pids seen in API
 * responses (start time checked), sbx-vmm children of the sbxd pid or of
 * this process (the subreaper), and any process whose command line contains
 * the state dir. Zombies reparented here are reaped, not counted. With
 * desc, a short list of "pid(comm)" is written there.
 */
int sbxd_count_vmms(struct sbxd_proc *p, char *desc, size_t desc_len);
/* Poll sbxd_count_vmms until it is 0 or timeout_ms pass; return last count. */
int sbxd_wait_no_vmms(struct sbxd_proc *p, int timeout_ms, char *desc,
		      size_t desc_len);

/*
 * SIGKILL sbxd if it still runs, reap it, SIGKILL and reap leftover VMMs
 * that this process started (by pid), remove the BPF pin dir of the
 * instance and the temporary directory. Returns the number of VMMs that
 * were left running, or a negative errno. Idempotent.
 */
int sbxd_cleanup(struct sbxd_proc *p);

/* HTTP response. Header values are "" when absent. */
struct http_resp {
	int status;
	char retry_after[64];
	char allow[128];
	char connection[64];
	char content_type[128];
	char *body;		/* NUL-terminated, may contain NULs */
	size_t body_len;
	json_t *json;		/* parsed body, NULL unless valid JSON */
	bool keep_alive;	/* http_should_keep_alive of the response */
};

void http_resp_free(struct http_resp *resp);

/* A connection over the unix socket, kept alive across requests. */
struct http_conn {
	int fd;
	struct sbxd_proc *proc;	/* records VMM pids seen, or NULL */
	int timeout_ms;
	char *buf;		/* bytes read past the previous response */
	size_t buf_len;
};

int http_connect(struct sbxd_proc *p, struct http_conn *c);
/* Connect to 127.0.0.1:port, for sbxd started with --listen tcp:... */
int http_connect_tcp(struct sbxd_proc *p, int port, struct http_conn *c);
/* A TCP port on 127.0.0.1 that was free a moment ago, or -errno. */
int harness_free_port(void);
void http_close(struct http_conn *c);
/*
 * Send one request on c and read its response. body may be NULL (no
 * Content-Length header is sent then, except for POST which sends 0).
 * Returns the status code, or a negative errno (-ECONNRESET when the
 * server closed the connection before a full response).
 */
int http_conn_request(struct http_conn *c, const char *method,
		      const char *path, const char *body,
		      struct http_resp *resp);
/* One request on a fresh connection; returns the status or -errno. */
int http_request(struct sbxd_proc *p, const char *method, const char *path,
		 const char *body, struct http_resp *resp);

/* Raw mode: write bytes as they are (partial or garbage requests). */
int http_send_raw(struct http_conn *c, const void *data, size_t len);
/* Read one response; returns the status or a negative errno. */
int http_read_response(struct http_conn *c, struct http_resp *resp);
/*
 * Wait up to timeout_ms for the server to close c. Returns 1 when it was
 * closed (EOF or reset), 0 on timeout, -errno on other errors. Bytes that
 * arrive meanwhile are kept in c->buf.
 */
int http_wait_closed(struct http_conn *c, int timeout_ms);

/* A request running on its own thread, for starts that block. */
struct http_async {
	pthread_t thread;
	struct sbxd_proc *proc;
	char *method, *path, *body;
	struct http_resp resp;
	int rc;
	bool started;
};

int http_request_start(struct http_async *a, struct sbxd_proc *p,
		       const char *method, const char *path,
		       const char *body);
/* Join; moves the response to resp and returns the request's result. */
int http_request_join(struct http_async *a, struct http_resp *resp);

/*
 * Small API helpers that assert on transport errors (not on the status).
 * sbx_create stores the new id in id (when 201) and returns the status.
 */
int sbx_create(struct sbxd_proc *p, const char *body, char *id, size_t len);
/* GET /v1/sandboxes/ID; returns the sandbox object (json_decref it). */
json_t *sbx_get(struct sbxd_proc *p, const char *id);
/* GET /v1/node; returns the node object (json_decref it). */
json_t *sbx_node(struct sbxd_proc *p);
/* The "state" string of /v1/node, copied to out; "" on error. */
void sbx_node_state(struct sbxd_proc *p, char *out, size_t len);
/* Poll /v1/node until state == want; returns 0 or -ETIMEDOUT. */
int sbx_wait_node_state(struct sbxd_proc *p, const char *want,
			int timeout_ms);
/* Poll /v1/node until inflight_starts == want; 0 or -ETIMEDOUT. */
int sbx_wait_inflight(struct sbxd_proc *p, json_int_t want, int timeout_ms);
/* Poll GET /v1/sandboxes/ID until state == want; 0 or -ETIMEDOUT. */
int sbx_wait_sandbox_state(struct sbxd_proc *p, const char *id,
			   const char *want, int timeout_ms);
/* Exec `command`; stores the output (free() it) and returns the status. */
int sbx_exec(struct sbxd_proc *p, const char *id, const char *command,
	     char **output, json_int_t *exit_code);

/*
 * Assert an error response: the status, a JSON body {"error":{"code",
 * "message"}} with non-empty strings, and, when field is not NULL, a
 * message that names field. ctx names the request in failure messages.
 */
void sbx_assert_error(const struct http_resp *resp, int status,
		      const char *field, const char *ctx);
/*
 * Wait up to timeout_ms for sbxd to exit and assert that it exited
 * normally with `code`; failure messages carry the log tail.
 */
void sbxd_assert_exit(struct sbxd_proc *p, int timeout_ms, int code);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t harness_now_ms(void);
void harness_sleep_ms(int ms);
/* Remove a file or directory tree without following symlinks. */
void harness_remove_tree(const char *path);
/* True when path exists (lstat succeeds). */
bool harness_path_exists(const char *path);

#endif
