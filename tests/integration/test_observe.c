// SPDX-License-Identifier: MIT
/*
 * Observability integration tests against a real sbxd with real VMs.
 * They read the pinned BPF drain map with the real bpftool, parse
 * /metrics with Debian's python3-prometheus-client and receive sd_notify
 * messages on a socket of their own. They also run sbxd as user nobody
 * on the memfd gate, measure the waiter's CPU cost while a drain waits,
 * and compare the kernel's live VM count with sbxd's. The last tests
 * cover daemon fixes: queued clients answered at the drain's end,
 * concurrent force-stops, the pid of an exited sandbox, and memory_mib
 * checked against the guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

#define CREATE_BODY "{\"vcpus\":1,\"memory_mib\":16}"
#define STUBBORN_BODY "{\"memory_mib\":16,\"ignore_stop\":true}"
#define SLOW_BODY "{\"memory_mib\":16,\"boot_delay_ms\":1500}"
/* Bound on any exit that should come within seconds, not a target. */
#define EXIT_BOUND_MS 20000
#define BPFFS "/sys/fs/bpf"
#define PYTHON "/usr/bin/python3"
#define TEST_GUEST SBX_BIN_DIR "/tests/guests/sbx-test-guest"

static struct sbxd_proc sbxd;
/* An sbxd that runs as nobody, spawned here rather than by the harness. */
static struct sbxd_proc nobody_sbxd;
/* Scratch dir for sockets, scripts and captured text, or "". */
static char scratch[64];

/*
 * Criterion 2.4 skips the suite's .fini after cr_skip_test, so a test
 * creates what it must clean up only after its last possible skip.
 */
static void observe_init(void)
{
	harness_init();
	/* Only the notify tests set a socket, so no test notifies systemd. */
	unsetenv("NOTIFY_SOCKET");
	scratch[0] = '\0';
}

static void observe_fini(void)
{
	harness_fini();
	sbxd_cleanup(&nobody_sbxd);
	if (scratch[0])
		harness_remove_tree(scratch);
}

/* Create the scratch dir, after the test's checks that may skip it. */
static const char *scratch_dir(void)
{
	if (!scratch[0]) {
		snprintf(scratch, sizeof(scratch), "/tmp/sbxd-observe-XXXXXX");
		cr_assert_not_null(mkdtemp(scratch), "mkdtemp: %s",
				   strerror(errno));
	}
	return scratch;
}

/* The checks of sbxd_start_checked, run before anything is created. */
static void require_kvm_and_bins(void)
{
	harness_require_bins();
	harness_require_kvm();
}

TestSuite(observe, .init = observe_init, .fini = observe_fini);

/* ---- small helpers ---------------------------------------------------- */

/* dir followed by name into out, failing the test on truncation. */
static void join(char *out, size_t len, const char *dir, const char *name)
{
	int n = snprintf(out, len, "%s%s", dir, name);

	cr_assert(n > 0 && (size_t)n < len, "path %s%s is too long", dir,
		  name);
}

static const char *json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static json_t *node_get(struct sbxd_proc *p, const char *key)
{
	json_t *node = sbx_node(p);
	json_t *v = json_incref(json_object_get(node, key));

	json_decref(node);
	return v;
}

static json_int_t node_int(struct sbxd_proc *p, const char *key)
{
	json_t *v = node_get(p, key);
	json_int_t n;

	cr_assert(json_is_integer(v), "/v1/node %s is not an integer", key);
	n = json_integer_value(v);
	json_decref(v);
	return n;
}

static void create_ok(struct sbxd_proc *p, const char *body, char *id,
		      size_t len)
{
	int status = sbx_create(p, body, id, len);

	cr_assert_eq(status, 201, "create %s: expected 201, got %d", body,
		     status);
}

static void send_signal(struct sbxd_proc *p, int sig)
{
	cr_assert_eq(sbxd_signal(p, sig), 0, "kill(%d, %d) failed", p->pid,
		     sig);
}

static void wait_draining(struct sbxd_proc *p)
{
	cr_assert_eq(sbx_wait_node_state(p, "draining", 5000), 0,
		     "/v1/node state never became draining after SIGTERM");
}

static void delete_ok(struct sbxd_proc *p, const char *id)
{
	struct http_resp resp;
	char path[160];
	int status;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	status = http_request(p, "DELETE", path, NULL, &resp);
	cr_assert_eq(status, 200, "DELETE %s: %d %s", id, status,
		     status > 0 ? resp.body : strerror(-status));
	http_resp_free(&resp);
}

static void force_stop_ok(struct sbxd_proc *p)
{
	struct http_resp resp;
	int status;

	status = http_request(p, "POST", "/v1/node/force-stop", NULL, &resp);
	cr_assert_eq(status, 200, "force-stop: %d %s", status,
		     status > 0 ? resp.body : strerror(-status));
	http_resp_free(&resp);
}

static void require_bpffs(void)
{
	struct statfs fs;

	harness_require_root("the BPF gate loads BPF programs and pins maps");
	if (statfs(BPFFS, &fs) < 0 || fs.f_type != BPF_FS_MAGIC)
		cr_skip_test("skipped: %s is not a mounted bpffs", BPFFS);
}

/* Run a shell command and return its stdout and stderr (malloc'd). */
static char *run_command(const char *command, int *exit_status)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = popen(command, "r");
	int status;

	cr_assert_not_null(f, "popen %s: %s", command, strerror(errno));
	for (;;) {
		char chunk[4096];
		size_t n = fread(chunk, 1, sizeof(chunk), f);
		char *grown;

		if (n == 0)
			break;
		grown = realloc(out, len + n + 1);
		cr_assert_not_null(grown, "out of memory");
		out = grown;
		memcpy(out + len, chunk, n);
		len += n;
	}
	status = pclose(f);
	if (!out)
		out = strdup("");
	out[len] = '\0';
	*exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return out;
}

static void write_text(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, len), (ssize_t)len, "write %s", path);
	close(fd);
}

/* ---- pinned drain_state read by bpftool --------------------------------- */

/* bpftool -j map dump of the instance's drain_state, as [0].formatted.value. */
static json_t *dump_drain_state(struct sbxd_proc *p)
{
	char command[PATH_MAX + 128];
	json_error_t jerr;
	json_t *root, *value;
	char *out;
	int status;

	snprintf(command, sizeof(command),
		 "bpftool -j map dump pinned %s/sbxd/%s/drain_state 2>&1",
		 BPFFS, p->instance);
	out = run_command(command, &status);
	cr_assert_eq(status, 0, "%s failed (exit %d): %s; install bpftool "
		     "with scripts/install-deps.sh", command, status, out);
	root = json_loads(out, 0, &jerr);
	cr_assert_not_null(root, "bpftool output is not JSON (%s): %s",
			   jerr.text, out);
	value = json_object_get(json_object_get(json_array_get(root, 0),
						"formatted"), "value");
	cr_assert(json_is_object(value), "no [0].formatted.value in bpftool "
		  "output, so the map has no BTF: %s", out);
	json_incref(value);
	json_decref(root);
	free(out);
	return value;
}

static json_int_t field_int(json_t *obj, const char *key, const char *ctx)
{
	json_t *v = json_object_get(obj, key);

	cr_assert(json_is_integer(v), "%s: field %s missing or not an integer",
		  ctx, key);
	return json_integer_value(v);
}

Test(observe, bpftool_sees_inflight_start, .timeout = 60)
{
	static const char *const args[] = { "--gate", "bpf", NULL };
	struct http_async slow;
	struct http_resp resp;
	json_t *state;
	int status;

	require_bpffs();
	sbxd_start_checked(&sbxd, args, NULL);
	cr_assert_eq(http_request_start(&slow, &sbxd, "POST", "/v1/sandboxes",
					SLOW_BODY), 0);
	cr_assert_eq(sbx_wait_inflight(&sbxd, 1, 5000), 0,
		     "inflight_starts never reached 1 during a slow start");
	send_signal(&sbxd, SIGTERM);
	wait_draining(&sbxd);

	state = dump_drain_state(&sbxd);
	cr_assert_geq(field_int(state, "draining", "drain_state"), 1,
		      "bpftool shows draining=0 after SIGTERM");
	cr_assert_eq(field_int(state, "inflight_starts", "drain_state"), 1,
		     "bpftool does not show the slow start in flight");
	cr_assert_eq(field_int(state, "admitted", "drain_state"), 1);
	cr_assert_neq(field_int(state, "drain_started_ns", "drain_state"), 0);
	json_decref(state);

	status = http_request_join(&slow, &resp);
	cr_assert_eq(status, 201, "slow start admitted before SIGTERM: %d %s",
		     status, status > 0 ? resp.body : strerror(-status));
	state = dump_drain_state(&sbxd);
	cr_assert_eq(field_int(state, "inflight_starts", "after READY"), 0);
	cr_assert_eq(field_int(state, "live", "after READY"), 1);
	json_decref(state);

	delete_ok(&sbxd, json_str(resp.json, "id"));
	http_resp_free(&resp);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
}

/* ---- /metrics through prometheus_client ---------------------------------- */

/*
 * Parse the text with prometheus_client and print
 * {"families": {name: type}, "samples": [{"name", "labels", "value"}]}.
 */
static const char parse_script[] =
	"import json, sys\n"
	"from prometheus_client.parser import text_string_to_metric_families\n"
	"families, samples = {}, []\n"
	"with open(sys.argv[1]) as f:\n"
	"    for fam in text_string_to_metric_families(f.read()):\n"
	"        families[fam.name] = fam.type\n"
	"        for s in fam.samples:\n"
	"            samples.append({'name': s.name, 'labels': s.labels,\n"
	"                            'value': s.value})\n"
	"print(json.dumps({'families': families, 'samples': samples}))\n";

/* GET /metrics, check its type, and parse it with prometheus_client. */
static json_t *scrape(struct sbxd_proc *p)
{
	char script[PATH_MAX], text[PATH_MAX], command[3 * PATH_MAX];
	struct http_resp resp;
	json_error_t jerr;
	json_t *summary;
	char *out;
	int status;

	status = http_request(p, "GET", "/metrics", NULL, &resp);
	cr_assert_eq(status, 200, "GET /metrics: %d", status);
	cr_assert_str_eq(resp.content_type, "text/plain; version=0.0.4");
	join(text, sizeof(text), scratch_dir(), "/metrics.txt");
	write_text(text, resp.body, resp.body_len);
	http_resp_free(&resp);

	join(script, sizeof(script), scratch_dir(), "/parse_metrics.py");
	write_text(script, parse_script, sizeof(parse_script) - 1);
	snprintf(command, sizeof(command), PYTHON " %s %s 2>&1", script, text);
	out = run_command(command, &status);
	cr_assert_eq(status, 0, "prometheus_client failed to parse /metrics "
		     "(exit %d; install python3-prometheus-client with "
		     "scripts/install-deps.sh): %s", status, out);
	summary = json_loads(out, 0, &jerr);
	cr_assert_not_null(summary, "parser output is not JSON: %s", out);
	free(out);
	return summary;
}

static void assert_family(json_t *summary, const char *name,
			  const char *type)
{
	json_t *t = json_object_get(json_object_get(summary, "families"),
				    name);

	cr_assert(json_is_string(t), "family %s missing", name);
	cr_assert_str_eq(json_string_value(t), type, "type of %s", name);
}

/* The value of a sample with one label (or none); fails when absent. */
static double sample(json_t *summary, const char *name, const char *label,
		     const char *label_value)
{
	json_t *item;
	size_t i;

	json_array_foreach(json_object_get(summary, "samples"), i, item) {
		json_t *labels = json_object_get(item, "labels");

		if (strcmp(json_str(item, "name"), name) != 0)
			continue;
		if (label && strcmp(json_str(labels, label), label_value) != 0)
			continue;
		return json_number_value(json_object_get(item, "value"));
	}
	cr_assert_fail("sample %s{%s=\"%s\"} missing", name,
		       label ? label : "", label ? label_value : "");
	return 0;
}

static bool has_sample(json_t *summary, const char *name)
{
	json_t *item;
	size_t i;

	json_array_foreach(json_object_get(summary, "samples"), i, item) {
		if (strcmp(json_str(item, "name"), name) == 0)
			return true;
	}
	return false;
}

static void assert_histogram(json_t *summary, double starts)
{
	const char *name = "sbxd_start_duration_seconds_bucket";
	double last = 0;
	json_t *item;
	size_t i;
	int buckets = 0;

	json_array_foreach(json_object_get(summary, "samples"), i, item) {
		double v = json_number_value(json_object_get(item, "value"));

		if (strcmp(json_str(item, "name"), name) != 0)
			continue;
		cr_assert_geq(v, last, "bucket le=%s below the one before",
			      json_str(json_object_get(item, "labels"), "le"));
		last = v;
		buckets++;
	}
	cr_assert_eq(buckets, 14, "expected 13 bounds and +Inf");
	cr_assert_eq(sample(summary, name, "le", "+Inf"), starts);
	cr_assert_eq(sample(summary, "sbxd_start_duration_seconds_count",
			    NULL, NULL), starts,
		     "histogram count is not the number of ready starts");
	cr_assert_gt(sample(summary, "sbxd_start_duration_seconds_sum", NULL,
			    NULL), 0);
}

Test(observe, metrics_parse_as_prometheus, .timeout = 90)
{
	char a[80], b[80], c[80], path[160];
	struct http_resp resp;
	bool bpf_gate;
	json_t *m, *gate;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	gate = node_get(&sbxd, "gate");
	bpf_gate = strcmp(json_string_value(gate), "bpf") == 0;
	json_decref(gate);
	create_ok(&sbxd, CREATE_BODY, a, sizeof(a));
	create_ok(&sbxd, CREATE_BODY, b, sizeof(b));
	create_ok(&sbxd, CREATE_BODY, c, sizeof(c));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", c);
	status = http_request(&sbxd, "POST", path, NULL, &resp);
	cr_assert_eq(status, 200, "stop %s: %d", c, status);
	http_resp_free(&resp);
	/* A guest that halts before READY: one failed start. */
	status = sbx_create(&sbxd, "{\"guest\":\"" TEST_GUEST "\","
			    "\"args\":\"hlt\"}", NULL, 0);
	cr_assert_eq(status, 500, "create of a halting guest: %d", status);

	m = scrape(&sbxd);
	assert_family(m, "sbxd_sandboxes", "gauge");
	assert_family(m, "sbxd_start_duration_seconds", "histogram");
	assert_family(m, "sbxd_starts_admitted", "counter");
	assert_family(m, "sbxd_drain_state", "gauge");
	assert_family(m, "sbxd_node_state", "gauge");
	assert_family(m, "sbxd_drain_duration_seconds", "gauge");
	cr_assert_eq(sample(m, "sbxd_sandboxes", "state", "running"), 2);
	cr_assert_eq(sample(m, "sbxd_sandboxes", "state", "exited"), 2,
		     "the stopped and the failed sandbox are listed as exited");
	cr_assert_eq(sample(m, "sbxd_sandboxes", "state", "starting"), 0);
	cr_assert_eq(sample(m, "sbxd_sandboxes", "state", "stopping"), 0);
	cr_assert_eq(sample(m, "sbxd_inflight_starts", NULL, NULL), 0);
	cr_assert_eq(sample(m, "sbxd_sandboxes_live", NULL, NULL), 2);
	cr_assert_eq(sample(m, "sbxd_starts_admitted_total", NULL, NULL), 4);
	cr_assert_eq(sample(m, "sbxd_starts_succeeded_total", NULL, NULL), 3);
	cr_assert_eq(sample(m, "sbxd_starts_failed_total", NULL, NULL), 1);
	cr_assert_eq(sample(m, "sbxd_starts_rejected_total", NULL, NULL), 0);
	assert_histogram(m, 3);
	cr_assert_eq(sample(m, "sbxd_drain_state", NULL, NULL), 0);
	cr_assert_eq(sample(m, "sbxd_node_state", "state", "serving"), 1);
	cr_assert_eq(sample(m, "sbxd_node_state", "state", "draining"), 0);
	cr_assert_eq(sample(m, "sbxd_drain_duration_seconds", NULL, NULL), 0);
	if (bpf_gate)
		cr_assert_eq(sample(m, "sbxd_live_vms", NULL, NULL), 2);
	else
		cr_assert_not(has_sample(m, "sbxd_live_vms"),
			      "the memfd gate reports sbxd_live_vms");
	json_decref(m);

	send_signal(&sbxd, SIGTERM);
	wait_draining(&sbxd);
	status = sbx_create(&sbxd, CREATE_BODY, NULL, 0);
	cr_assert_eq(status, 503, "create while draining: %d", status);
	harness_sleep_ms(100);
	m = scrape(&sbxd);
	cr_assert_eq(sample(m, "sbxd_drain_state", NULL, NULL), 1);
	cr_assert_eq(sample(m, "sbxd_node_state", "state", "draining"), 1);
	cr_assert_eq(sample(m, "sbxd_node_state", "state", "serving"), 0);
	cr_assert_gt(sample(m, "sbxd_drain_duration_seconds", NULL, NULL), 0);
	cr_assert_eq(sample(m, "sbxd_starts_rejected_total", NULL, NULL), 1);
	json_decref(m);

	force_stop_ok(&sbxd);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
}

/* ---- sd_notify ------------------------------------------------------- */

#define NOTES_MAX 64

struct notes {
	char text[NOTES_MAX][512];
	int count;
};

static int notify_socket(char *path, size_t len)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	join(path, len, scratch_dir(), "/notify.sock");
	cr_assert_lt(strlen(path), sizeof(addr.sun_path));
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0,
		     "bind %s: %s", path, strerror(errno));
	return fd;
}

/* Collect messages for up to timeout_ms, until one contains `until`. */
static bool collect_notes(int fd, struct notes *notes, const char *until,
			  int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - harness_now_ms();
		char *slot;
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		cr_assert_lt(notes->count, NOTES_MAX, "too many notifications");
		slot = notes->text[notes->count];
		n = recv(fd, slot, sizeof(notes->text[0]) - 1, MSG_DONTWAIT);
		if (n < 0)
			continue;
		slot[n] = '\0';
		notes->count++;
		if (until && strstr(slot, until))
			return true;
	}
}

/* Index of the first message containing text, or -1. */
static int note_index(const struct notes *notes, const char *text)
{
	for (int i = 0; i < notes->count; i++)
		if (strstr(notes->text[i], text))
			return i;
	return -1;
}

static void dump_notes(const struct notes *notes, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; i < notes->count && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "[%s] ",
					 notes->text[i]);
}

Test(observe, sd_notify_during_drain, .timeout = 60)
{
	static struct notes notes;
	char socket_path[PATH_MAX], env_line[PATH_MAX + 16], all[8192];
	const char *env[] = { env_line, NULL };
	const char *extend;
	unsigned long long usec;
	int fd, ready, stopping, draining, closing;
	char id[80];

	memset(&notes, 0, sizeof(notes));
	require_kvm_and_bins();
	fd = notify_socket(socket_path, sizeof(socket_path));
	snprintf(env_line, sizeof(env_line), "NOTIFY_SOCKET=%s", socket_path);
	sbxd_start_checked(&sbxd, NULL, env);
	cr_assert(collect_notes(fd, &notes, "READY=1", 5000),
		  "no READY=1 within 5 s of serving");

	create_ok(&sbxd, CREATE_BODY, id, sizeof(id));
	send_signal(&sbxd, SIGTERM);
	cr_assert(collect_notes(fd, &notes, "STOPPING=1", 5000),
		  "no STOPPING=1 after SIGTERM");
	/* Let the drain wait a moment with the sandbox live. */
	harness_sleep_ms(1200);
	delete_ok(&sbxd, id);
	collect_notes(fd, &notes, "STATUS=closing", 5000);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	close(fd);

	dump_notes(&notes, all, sizeof(all));
	ready = note_index(&notes, "READY=1");
	stopping = note_index(&notes, "STOPPING=1");
	draining = note_index(&notes, "STATUS=draining: inflight=0 live=1 "
			      "for ");
	closing = note_index(&notes, "STATUS=closing: inflight=0 live=0");
	cr_assert_eq(ready, 0, "READY=1 is not the first message: %s", all);
	cr_assert(strstr(notes.text[0], "STATUS=serving: gate="),
		  "READY=1 without a serving STATUS: %s", all);
	cr_assert_gt(stopping, ready, "no STOPPING=1 after READY=1: %s", all);
	cr_assert_geq(draining, stopping, "no STATUS=draining line with the "
		      "live sandbox: %s", all);
	cr_assert_gt(closing, draining, "no STATUS=closing at the end: %s",
		     all);

	/* No --drain-timeout: one window of max(2 x 10ms, 10 s). */
	extend = strstr(notes.text[stopping], "EXTEND_TIMEOUT_USEC=");
	cr_assert_not_null(extend, "STOPPING=1 without EXTEND_TIMEOUT_USEC: "
			   "%s", all);
	usec = strtoull(extend + strlen("EXTEND_TIMEOUT_USEC="), NULL, 10);
	cr_assert_eq(usec, 10000000ull, "extension of an unbounded drain: %s",
		     all);
	/* The closing phase is bounded: 1 s flush plus the 5 s margin. */
	extend = strstr(notes.text[closing], "EXTEND_TIMEOUT_USEC=");
	cr_assert_not_null(extend, "closing without an extension: %s", all);
	usec = strtoull(extend + strlen("EXTEND_TIMEOUT_USEC="), NULL, 10);
	cr_assert_gt(usec, 0);
	cr_assert_leq(usec, 6000000ull, "closing extension: %s", all);
}

Test(observe, sd_notify_bounded_extension, .timeout = 60)
{
	static struct notes notes;
	static const char *const args[] = {
		"--drain-timeout", "1h", "--force-timeout", "30s", NULL,
	};
	char socket_path[PATH_MAX], env_line[PATH_MAX + 16], all[8192];
	const char *env[] = { env_line, NULL };
	unsigned long long usec;
	const char *extend;
	int fd, stopping;

	memset(&notes, 0, sizeof(notes));
	require_kvm_and_bins();
	fd = notify_socket(socket_path, sizeof(socket_path));
	snprintf(env_line, sizeof(env_line), "NOTIFY_SOCKET=%s", socket_path);
	sbxd_start_checked(&sbxd, args, env);
	send_signal(&sbxd, SIGTERM);
	collect_notes(fd, &notes, "STATUS=closing", 5000);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	close(fd);

	dump_notes(&notes, all, sizeof(all));
	stopping = note_index(&notes, "STOPPING=1");
	cr_assert_geq(stopping, 0, "no STOPPING=1: %s", all);
	extend = strstr(notes.text[stopping], "EXTEND_TIMEOUT_USEC=");
	cr_assert_not_null(extend, "no extension: %s", all);
	usec = strtoull(extend + strlen("EXTEND_TIMEOUT_USEC="), NULL, 10);
	/* 1 h + 30 s + 1 s flush + 5 s margin, less what already passed. */
	cr_assert_leq(usec, 3636000000ull, "extension beyond the bound: %s",
		      all);
	cr_assert_geq(usec, 3630000000ull, "extension below the bound: %s",
		      all);
}

/* ---- unprivileged sbxd on the memfd gate ------------------------------- */

/* Whether uid/gid can open /dev/kvm for reading and writing. */
static int probe_kvm_as(uid_t uid, gid_t gid)
{
	pid_t pid = fork();
	int status;

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 ||
		    setuid(uid) < 0)
			_exit(126);
		_exit(open("/dev/kvm", O_RDWR | O_CLOEXEC) < 0 ? errno : 0);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}

/* Fill p for a fresh state dir owned by uid, like the harness does. */
static void nobody_dirs(struct sbxd_proc *p, uid_t uid, gid_t gid)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->vmm_lock, NULL);
	p->http_timeout_ms = HARNESS_HTTP_TIMEOUT_MS;
	p->owns_state_dir = true;
	snprintf(p->dir, sizeof(p->dir), "/tmp/sbxd-itest-XXXXXX");
	cr_assert_not_null(mkdtemp(p->dir), "mkdtemp: %s", strerror(errno));
	join(p->state_dir, sizeof(p->state_dir), p->dir, "/state");
	join(p->log_path, sizeof(p->log_path), p->dir, "/sbxd.log");
	join(p->sock_path, sizeof(p->sock_path), p->state_dir, "/sbxd.sock");
	join(p->lock_path, sizeof(p->lock_path), p->state_dir, "/sbxd.lock");
	snprintf(p->instance, sizeof(p->instance), "itest-%s",
		 p->dir + strlen("/tmp/sbxd-itest-"));
	cr_assert_eq(mkdir(p->state_dir, 0700), 0, "mkdir: %s",
		     strerror(errno));
	cr_assert_eq(chown(p->dir, uid, gid), 0, "chown: %s",
		     strerror(errno));
	cr_assert_eq(chown(p->state_dir, uid, gid), 0, "chown: %s",
		     strerror(errno));
}

/*
 * In the forked child, still root: give uid a /dev/kvm it can open, in a
 * private mount namespace so that the host's /dev/kvm keeps its mode. The
 * node is a second name for the same KVM device, so the guests are real.
 * Returns 0, or -1 when any step failed.
 */
static int private_kvm_node(const char *dir, uid_t uid, gid_t gid)
{
	char node[PATH_MAX];
	struct stat kvm;

	if (stat("/dev/kvm", &kvm) < 0 || !S_ISCHR(kvm.st_mode))
		return -1;
	if ((size_t)snprintf(node, sizeof(node), "%s/kvm", dir) >=
	    sizeof(node))
		return -1;
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	if (mknod(node, S_IFCHR | 0600, kvm.st_rdev) < 0 ||
	    chown(node, uid, gid) < 0)
		return -1;
	return mount(node, "/dev/kvm", NULL, MS_BIND, NULL);
}

/*
 * Fork and exec sbxd as uid/gid with no supplementary groups. With
 * private_kvm, sbxd and its VMMs see a /dev/kvm that uid may open.
 */
static void spawn_as(struct sbxd_proc *p, uid_t uid, gid_t gid,
		     bool private_kvm)
{
	char *const argv[] = {
		SBX_BIN_DIR "/sbxd", "--state-dir", p->state_dir,
		"--instance", p->instance, "--stop-grace", "2s", NULL,
	};
	pid_t parent = getpid();
	int log_fd;

	log_fd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		      0600);
	cr_assert_geq(log_fd, 0, "open %s: %s", p->log_path, strerror(errno));
	p->pid = fork();
	cr_assert_geq(p->pid, 0, "fork: %s", strerror(errno));
	if (p->pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (private_kvm && private_kvm_node(p->dir, uid, gid) < 0)
			_exit(126);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
		    getppid() != parent || setgroups(0, NULL) < 0 ||
		    setgid(gid) < 0 || setuid(uid) < 0 ||
		    dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	close(log_fd);
}

static int count_log_lines(struct sbxd_proc *p, const char *text)
{
	char *log = sbxd_log_read(p);
	int count = 0;

	for (char *at = log; (at = strstr(at, text)); at += strlen(text))
		count++;
	free(log);
	return count;
}

Test(observe, nobody_uses_memfd_gate, .timeout = 90)
{
	struct sbxd_proc *p = &nobody_sbxd;
	struct passwd *pw;
	struct http_resp resp;
	json_t *gate, *live_vms;
	char id[80], path[160], *tail;
	int kvm_errno, ret, status;

	harness_require_root("dropping to user nobody needs setuid");
	harness_require_bins();
	pw = getpwnam("nobody");
	cr_assert_not_null(pw, "no user nobody in the passwd database");
	kvm_errno = probe_kvm_as(pw->pw_uid, pw->pw_gid);

	nobody_dirs(p, pw->pw_uid, pw->pw_gid);
	/* /dev/kvm is often mode 0600 root; nobody then gets its own node. */
	spawn_as(p, pw->pw_uid, pw->pw_gid, kvm_errno != 0);
	ret = sbxd_wait_ready(p, HARNESS_READY_TIMEOUT_MS);
	tail = sbxd_log_tail(p, 2048);
	cr_assert_eq(ret, 0, "sbxd as nobody did not serve: %s; log:\n%s",
		     strerror(-ret), tail);
	free(tail);

	cr_assert_eq(count_log_lines(p, "BPF unavailable"), 1,
		     "the fallback reason is not logged exactly once");
	cr_assert(sbxd_log_line_contains(p, "using the memfd gate",
					 "Operation not permitted"),
		  "the fallback line does not say why BPF failed");
	gate = node_get(p, "gate");
	cr_assert_str_eq(json_string_value(gate), "memfd");
	json_decref(gate);
	live_vms = node_get(p, "live_vms");
	cr_assert(json_is_null(live_vms), "live_vms on memfd is not null");
	json_decref(live_vms);

	create_ok(p, CREATE_BODY, id, sizeof(id));
	send_signal(p, SIGTERM);
	wait_draining(p);
	status = sbx_create(p, CREATE_BODY, NULL, 0);
	cr_assert_eq(status, 503, "create while draining: %d", status);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", id);
	status = http_request(p, "POST", path, NULL, &resp);
	cr_assert_eq(status, 200, "stop: %d %s", status,
		     status > 0 ? resp.body : strerror(-status));
	http_resp_free(&resp);
	sbxd_assert_exit(p, EXIT_BOUND_MS, 0);
	cr_assert_eq(count_log_lines(p, "BPF unavailable"), 1,
		     "the fallback reason is logged again later");
}

/* ---- the drain waiter's CPU cost ---------------------------------------- */

/* utime + stime of pid in milliseconds, from /proc/PID/stat. */
static long long cpu_ms(pid_t pid)
{
	unsigned long long utime = 0, stime = 0;
	char path[64], data[1024], *field;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	n = read(fd, data, sizeof(data) - 1);
	close(fd);
	cr_assert_gt(n, 0, "read %s", path);
	data[n] = '\0';
	/* After the ")" that ends comm: state is field 3, utime 14. */
	field = strrchr(data, ')');
	cr_assert_not_null(field);
	field += 2;
	for (int i = 3; i < 14 && field; i++) {
		field = strchr(field, ' ');
		if (field)
			field++;
	}
	cr_assert_not_null(field, "short %s", path);
	cr_assert_eq(sscanf(field, "%llu %llu", &utime, &stime), 2);
	return (long long)((utime + stime) * 1000 / sysconf(_SC_CLK_TCK));
}

Test(observe, idle_drain_waiter_is_cheap, .timeout = 60)
{
	long long before, used;
	char id[80];

	sbxd_start_checked(&sbxd, NULL, NULL);
	for (int i = 0; i < 3; i++)
		create_ok(&sbxd, CREATE_BODY, id, sizeof(id));
	send_signal(&sbxd, SIGTERM);
	wait_draining(&sbxd);
	cr_assert_eq(node_int(&sbxd, "live"), 3);

	/* The 10 ms waiter ticks about 500 times in these 5 s. */
	before = cpu_ms(sbxd.pid);
	harness_sleep_ms(5000);
	used = cpu_ms(sbxd.pid) - before;
	cr_assert(sbxd_running(&sbxd), "sbxd exited with 3 live sandboxes");
	cr_assert_lt(used, 50, "sbxd used %lld ms of CPU in 5 s while its "
		     "drain waited for 3 sandboxes", used);

	force_stop_ok(&sbxd);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
}

/* ---- live VMs as the kernel counts them ---------------------------------- */

/* Lines of the pinned live_vms iterator: "PID FD" per KVM VM. */
static int read_live_vms(struct sbxd_proc *p, pid_t *pids, int max)
{
	char path[PATH_MAX], line[128];
	int count = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/sbxd/%s/live_vms", BPFFS,
		 p->instance);
	f = fopen(path, "re");
	cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		int pid, fd;

		cr_assert_eq(sscanf(line, "%d %d", &pid, &fd), 2,
			     "bad live_vms line \"%s\"", line);
		if (count < max)
			pids[count] = pid;
		count++;
	}
	fclose(f);
	return count;
}

static bool pid_listed(const pid_t *pids, int count, json_int_t pid)
{
	for (int i = 0; i < count; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

Test(observe, live_vms_match_live, .timeout = 60)
{
	static const char *const args[] = { "--gate", "bpf", NULL };
	char ids[3][80];
	pid_t pids[16];
	json_t *sb;
	int count;

	require_bpffs();
	sbxd_start_checked(&sbxd, args, NULL);
	for (int i = 0; i < 3; i++)
		create_ok(&sbxd, CREATE_BODY, ids[i], sizeof(ids[i]));
	cr_assert_eq(node_int(&sbxd, "live"), 3);
	cr_assert_eq(node_int(&sbxd, "live_vms"), 3,
		     "/v1/node live_vms differs from live");

	count = read_live_vms(&sbxd, pids, 16);
	cr_assert_eq(count, 3, "the pinned live_vms lists %d VMs", count);
	for (int i = 0; i < 3; i++) {
		sb = sbx_get(&sbxd, ids[i]);
		cr_assert(pid_listed(pids, count,
				     json_integer_value(json_object_get(sb,
									"pid"))),
			  "the VMM of %s is not in the pinned live_vms",
			  ids[i]);
		json_decref(sb);
	}

	delete_ok(&sbxd, ids[0]);
	cr_assert_eq(node_int(&sbxd, "live"), 2);
	cr_assert_eq(node_int(&sbxd, "live_vms"), 2,
		     "live_vms still counts the deleted sandbox's VM");
	cr_assert_eq(read_live_vms(&sbxd, pids, 16), 2);

	send_signal(&sbxd, SIGTERM);
	wait_draining(&sbxd);
	force_stop_ok(&sbxd);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
}

/* ---- daemon fixes -------------------------------------------------------- */

#define QUEUED_CLIENTS 8

Test(observe, queued_clients_answered_at_close, .timeout = 60)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: sbxd\r\n\r\n";
	struct http_conn conns[QUEUED_CLIENTS];
	struct http_resp resp;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	/*
	 * With sbxd stopped, the clients wait in the listen queue with
	 * their request sent. SIGTERM on an empty node then ends the drain
	 * at once, before sbxd has read any of them.
	 */
	send_signal(&sbxd, SIGSTOP);
	for (int i = 0; i < QUEUED_CLIENTS; i++) {
		cr_assert_eq(http_connect(&sbxd, &conns[i]), 0, "connect %d",
			     i);
		cr_assert_eq(http_send_raw(&conns[i], req, strlen(req)), 0);
	}
	send_signal(&sbxd, SIGTERM);
	send_signal(&sbxd, SIGCONT);

	for (int i = 0; i < QUEUED_CLIENTS; i++) {
		conns[i].timeout_ms = 10000;
		status = http_read_response(&conns[i], &resp);
		cr_assert_gt(status, 0, "queued client %d got no response: %s",
			     i, strerror(-status));
		cr_assert(status == 200 || status == 503,
			  "queued client %d: status %d", i, status);
		http_resp_free(&resp);
		http_close(&conns[i]);
	}
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
}

static bool array_has(json_t *array, const char *want)
{
	json_t *item;
	size_t i;

	json_array_foreach(array, i, item)
		if (json_is_string(item) &&
		    strcmp(json_string_value(item), want) == 0)
			return true;
	return false;
}

Test(observe, concurrent_force_stops_report_once, .timeout = 60)
{
	static const char *const args[] = { "--stop-grace", "2s", NULL };
	struct http_async first, second;
	struct http_resp r1, r2;
	char id[80];
	int s1, s2;

	sbxd_start_checked(&sbxd, args, NULL);
	/* The guest ignores the stop, so the first call waits the grace. */
	create_ok(&sbxd, STUBBORN_BODY, id, sizeof(id));
	cr_assert_eq(http_request_start(&first, &sbxd, "POST",
					"/v1/node/force-stop", NULL), 0);
	cr_assert_eq(sbx_wait_sandbox_state(&sbxd, id, "stopping", 5000), 0,
		     "the first force-stop did not stop %s", id);
	cr_assert_eq(http_request_start(&second, &sbxd, "POST",
					"/v1/node/force-stop", NULL), 0);
	s1 = http_request_join(&first, &r1);
	s2 = http_request_join(&second, &r2);
	cr_assert_eq(s1, 200, "first force-stop: %d", s1);
	cr_assert_eq(s2, 200, "second force-stop: %d", s2);

	cr_assert(array_has(json_object_get(r1.json, "stopped"), id),
		  "first call does not list %s as stopped: %s", id, r1.body);
	cr_assert_eq(json_integer_value(json_object_get(r1.json,
							"requested")), 1);
	cr_assert_eq(json_array_size(json_object_get(r1.json,
						     "already_stopping")), 0);
	cr_assert_not(array_has(json_object_get(r2.json, "stopped"), id),
		      "both calls claim to have stopped %s: %s", id, r2.body);
	cr_assert(array_has(json_object_get(r2.json, "already_stopping"), id),
		  "second call does not report %s as already stopping: %s",
		  id, r2.body);
	cr_assert_eq(json_integer_value(json_object_get(r2.json,
							"requested")), 0);
	http_resp_free(&r1);
	http_resp_free(&r2);
}

Test(observe, exited_sandbox_has_null_pid, .timeout = 60)
{
	struct http_resp resp;
	char id[80], path[160];
	json_t *sb;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	create_ok(&sbxd, CREATE_BODY, id, sizeof(id));
	sb = sbx_get(&sbxd, id);
	cr_assert(json_is_integer(json_object_get(sb, "pid")),
		  "a running sandbox has no pid");
	json_decref(sb);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", id);
	status = http_request(&sbxd, "POST", path, NULL, &resp);
	cr_assert_eq(status, 200, "stop: %d", status);
	cr_assert(json_is_null(json_object_get(resp.json, "pid")),
		  "stop response keeps the reaped pid: %s", resp.body);
	http_resp_free(&resp);

	sb = sbx_get(&sbxd, id);
	cr_assert_str_eq(json_str(sb, "state"), "exited");
	cr_assert(json_is_null(json_object_get(sb, "pid")),
		  "exited sandbox keeps the reaped pid");
	json_decref(sb);
}

Test(observe, create_checks_memory_and_nul, .timeout = 60)
{
	struct http_resp resp;
	json_t *message;

	sbxd_start_checked(&sbxd, NULL, NULL);
	http_request(&sbxd, "POST", "/v1/sandboxes", "{\"memory_mib\":4}",
		     &resp);
	sbx_assert_error(&resp, 400, "memory_mib", "create with 4 MiB");
	message = json_object_get(json_object_get(resp.json, "error"),
				  "message");
	cr_assert(strstr(json_string_value(message), "sbx-agent"),
		  "400 does not name the guest: %s", resp.body);
	http_resp_free(&resp);

	http_request(&sbxd, "POST", "/v1/sandboxes",
		     "{\"args\":\"a\\u0000b\"}", &resp);
	sbx_assert_error(&resp, 400, "strings must not contain NUL",
			 "create with a NUL in args");
	http_resp_free(&resp);
	cr_assert_eq(node_int(&sbxd, "admitted"), 0,
		     "a rejected create reached the gate");
}
