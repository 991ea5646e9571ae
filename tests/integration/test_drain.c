// SPDX-License-Identifier: MIT
/*
 * Drain integration tests: SIGTERM, SIGINT and force-stop against a real
 * sbxd with real VMs. Each test keeps the drain open with live sandboxes
 * and checks what still works, when the forced phase starts, the exit
 * status, the lock file and that no VMM outlives sbxd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "harness.h"

#define CREATE_BODY "{\"vcpus\":1,\"memory_mib\":16}"
#define STUBBORN_BODY "{\"vcpus\":1,\"memory_mib\":16,\"ignore_stop\":true}"
/* Bound on any exit that should come within seconds; not a target. */
#define EXIT_BOUND_MS 20000

static struct sbxd_proc sbxd;

TestSuite(drain, .init = harness_init, .fini = harness_fini);

static const char *json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static json_int_t node_int(const char *key)
{
	json_t *node = sbx_node(&sbxd);
	json_int_t v = json_integer_value(json_object_get(node, key));

	json_decref(node);
	return v;
}

static void create_ok(const char *body, char *id, size_t len)
{
	int status = sbx_create(&sbxd, body, id, len);

	cr_assert_eq(status, 201, "create %s: expected 201, got %d", body,
		     status);
}

static void send_signal(int sig)
{
	cr_assert_eq(sbxd_signal(&sbxd, sig), 0, "kill(%d, %d) failed",
		     sbxd.pid, sig);
}

static void wait_draining(void)
{
	cr_assert_eq(sbx_wait_node_state(&sbxd, "draining", 5000), 0,
		     "/v1/node state never became draining after SIGTERM");
}

static void assert_lock_removed(void)
{
	cr_assert(!harness_path_exists(sbxd.lock_path),
		  "clean exit left the lock file %s", sbxd.lock_path);
}

static void assert_no_vmm(const char *when)
{
	char desc[512];
	int count = sbxd_count_vmms(&sbxd, desc, sizeof(desc));

	cr_assert_eq(count, 0, "%s: %d VMM process(es) still running: %s",
		     when, count, desc);
}

/* Send POST /v1/node/force-stop, check the response's shape, return it. */
static json_t *force_stop(void)
{
	struct http_resp resp;
	json_t *json;
	int status;

	status = http_request(&sbxd, "POST", "/v1/node/force-stop", NULL,
			      &resp);
	cr_assert_eq(status, 200, "force-stop: expected 200, got %d: %s",
		     status, status > 0 ? resp.body : strerror(-status));
	json = json_incref(resp.json);
	http_resp_free(&resp);
	cr_assert(json_is_integer(json_object_get(json, "requested")),
		  "force-stop: requested is not an integer");
	cr_assert(json_is_array(json_object_get(json, "stopped")),
		  "force-stop: stopped is not an array");
	cr_assert(json_is_array(json_object_get(json, "failed")),
		  "force-stop: failed is not an array");
	return json;
}

static bool array_has_string(json_t *array, const char *want)
{
	json_t *item;
	size_t i;

	json_array_foreach(array, i, item)
		if (json_is_string(item) &&
		    strcmp(json_string_value(item), want) == 0)
			return true;
	return false;
}

Test(drain, open_ops_still_work, .timeout = 90)
{
	static const char *const args[] = { "--stop-grace", "1s", NULL };
	char a[80], b[80], c[80], path[160], *out = NULL;
	struct http_resp resp;
	json_int_t code = -1;
	json_t *sb, *res;
	int status;

	sbxd_start_checked(&sbxd, args, NULL);
	create_ok(CREATE_BODY, a, sizeof(a));
	create_ok(CREATE_BODY, b, sizeof(b));
	create_ok(CREATE_BODY, c, sizeof(c));
	send_signal(SIGTERM);
	wait_draining();

	status = http_request(&sbxd, "POST", "/v1/sandboxes", CREATE_BODY,
			      &resp);
	sbx_assert_error(&resp, 503, NULL, "create while draining");
	cr_assert_str_eq(json_str(json_object_get(resp.json, "error"), "code"),
			 "draining");
	cr_assert(resp.retry_after[0], "503 while draining has no Retry-After");
	http_resp_free(&resp);
	cr_assert_geq(node_int("rejected"), 1,
		      "a create rejected by the drain is not counted");

	status = http_request(&sbxd, "GET", "/healthz", NULL, &resp);
	cr_assert_eq(status, 503, "/healthz while draining: expected 503, "
		     "got %d", status);
	http_resp_free(&resp);

	status = http_request(&sbxd, "GET", "/v1/sandboxes", NULL, &resp);
	cr_assert_eq(status, 200, "list while draining: %d", status);
	cr_assert_eq(json_array_size(json_object_get(resp.json, "sandboxes")),
		     3, "list while draining: %s", resp.body);
	http_resp_free(&resp);

	sb = sbx_get(&sbxd, a);
	cr_assert_str_eq(json_str(sb, "state"), "running");
	json_decref(sb);

	status = sbx_exec(&sbxd, a, "echo draining", &out, &code);
	cr_assert_eq(status, 200, "exec while draining: %d", status);
	cr_assert_str_eq(out ? out : "(null)", "draining");
	free(out);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", a);
	status = http_request(&sbxd, "POST", path, "{\"grace_ms\":5000}", &resp);
	cr_assert_eq(status, 200, "stop while draining: %d %s", status,
		     resp.body);
	cr_assert_str_eq(json_str(resp.json, "state"), "exited");
	http_resp_free(&resp);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", b);
	status = http_request(&sbxd, "DELETE", path, NULL, &resp);
	cr_assert_eq(status, 200, "DELETE while draining: %d %s", status,
		     resp.body);
	http_resp_free(&resp);

	/* c still lives, so the drain is still open. */
	cr_assert(sbxd_running(&sbxd), "sbxd exited with sandbox %s live", c);
	cr_assert_eq(node_int("live"), 1);

	res = force_stop();
	cr_assert_eq(json_integer_value(json_object_get(res, "requested")), 1,
		     "force-stop while draining: requested != 1");
	cr_assert(array_has_string(json_object_get(res, "stopped"), c),
		  "force-stop did not report %s as stopped", c);
	cr_assert_eq(json_array_size(json_object_get(res, "failed")), 0);
	json_decref(res);

	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	assert_lock_removed();
	assert_no_vmm("after the drain");
}

static void check_admitted_start(const char *gate)
{
	const char *const args[] = { "--stop-grace", "1s", "--gate", gate,
				     NULL };
	struct http_async slow;
	struct http_resp resp;
	char path[160];
	int status;

	sbxd_start_checked(&sbxd, args, NULL);
	cr_assert_eq(http_request_start(&slow, &sbxd, "POST", "/v1/sandboxes",
					"{\"boot_delay_ms\":1500}"), 0);
	cr_assert_eq(sbx_wait_inflight(&sbxd, 1, 5000), 0,
		     "inflight_starts never reached 1 during a slow start");
	send_signal(SIGTERM);
	wait_draining();

	/* Admission is closed even while the admitted start runs. */
	status = http_request(&sbxd, "POST", "/v1/sandboxes", CREATE_BODY,
			      &resp);
	sbx_assert_error(&resp, 503, NULL, "create during an admitted start");
	http_resp_free(&resp);

	status = http_request_join(&slow, &resp);
	cr_assert_eq(status, 201, "start admitted before SIGTERM: expected "
		     "201, got %d: %s", status,
		     status > 0 ? resp.body : strerror(-status));
	cr_assert_str_eq(json_str(resp.json, "state"), "running");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop",
		 json_str(resp.json, "id"));
	http_resp_free(&resp);

	/* The drain waits for the sandbox that start produced. */
	cr_assert_eq(node_int("inflight_starts"), 0);
	cr_assert_eq(node_int("live"), 1);
	harness_sleep_ms(500);
	cr_assert(sbxd_running(&sbxd),
		  "sbxd exited while the late sandbox still runs");

	status = http_request(&sbxd, "POST", path, "{\"grace_ms\":5000}", &resp);
	cr_assert_eq(status, 200, "stop: %d %s", status, resp.body);
	http_resp_free(&resp);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	assert_lock_removed();
	assert_no_vmm("after the drain");
}

Test(drain, admitted_start_finishes, .timeout = 90)
{
	check_admitted_start("auto");
}

Test(drain, admitted_start_memfd_gate, .timeout = 90)
{
	check_admitted_start("memfd");
}

Test(drain, no_timeout_waits, .timeout = 90)
{
	char id[80], path[160], sandbox_dir[PATH_MAX + 96], *last;
	struct http_resp resp;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	create_ok(CREATE_BODY, id, sizeof(id));
	send_signal(SIGTERM);
	wait_draining();

	harness_sleep_ms(3000);
	cr_assert(sbxd_running(&sbxd),
		  "sbxd without a drain timeout exited with a live sandbox");
	cr_assert_eq(node_int("live"), 1);
	cr_assert_geq(node_int("draining_for_ms"), 1000,
		      "draining_for_ms does not grow during the drain");
	cr_assert_neq(node_int("draining_for_ms"), 0);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", id);
	status = http_request(&sbxd, "POST", path, "{\"grace_ms\":5000}", &resp);
	cr_assert_eq(status, 200, "stop: %d %s", status, resp.body);
	http_resp_free(&resp);

	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	assert_lock_removed();
	snprintf(sandbox_dir, sizeof(sandbox_dir), "%s/sandboxes/%s",
		 sbxd.state_dir, id);
	cr_assert(!harness_path_exists(sandbox_dir),
		  "a clean drain left the sandbox dir %s", sandbox_dir);
	last = sbxd_log_last_line(&sbxd);
	cr_assert(last && strstr(last, "exiting status=0"),
		  "last log line is \"%s\"", last ? last : "");
	free(last);
}

Test(drain, guest_exit_ends_drain, .timeout = 60)
{
	json_int_t code;
	char id[80];

	sbxd_start_checked(&sbxd, NULL, NULL);
	create_ok(CREATE_BODY, id, sizeof(id));
	send_signal(SIGTERM);
	wait_draining();
	/* The last guest ends on its own: the child exit ends the drain. */
	sbx_exec(&sbxd, id, "exit 0", NULL, &code);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	assert_lock_removed();
}

/* Poll until /v1/node shows "forcing" or sbxd exits; true when seen. */
static bool saw_forcing(int timeout_ms)
{
	int64_t end = harness_now_ms() + timeout_ms;
	char state[32];

	while (harness_now_ms() < end && sbxd_running(&sbxd)) {
		sbx_node_state(&sbxd, state, sizeof(state));
		if (strcmp(state, "forcing") == 0)
			return true;
		harness_sleep_ms(10);
	}
	return false;
}

Test(drain, timeout_forces, .timeout = 90)
{
	static const char *const env[] = {
		"SHUTDOWN_DRAIN_TIMEOUT=1s", "SBXD_STOP_GRACE=1s", NULL,
	};
	static const char *const args[] = { "--force-timeout", "15s", NULL };
	char a[80], b[80];
	int64_t t0, waited;

	sbxd_start_checked(&sbxd, args, env);
	create_ok(STUBBORN_BODY, a, sizeof(a));
	create_ok(STUBBORN_BODY, b, sizeof(b));
	t0 = harness_now_ms();
	send_signal(SIGTERM);
	wait_draining();
	/* Stubborn guests keep the forced phase open for the stop grace. */
	cr_assert(saw_forcing(10000),
		  "node never reported forcing after the drain timeout");

	/* drain timeout 1s + stop grace 1s + generous slack. */
	sbxd_assert_exit(&sbxd, 1000 + 1000 + EXIT_BOUND_MS, 0);
	waited = harness_now_ms() - t0;
	cr_assert_geq(waited, 1000, "sbxd forced after %lld ms, before its "
		      "1s drain timeout", (long long)waited);
	assert_no_vmm("right after the forced drain");
	assert_lock_removed();
}

Test(drain, drain_timeout_zero_forces, .timeout = 60)
{
	static const char *const args[] = {
		"--drain-timeout", "0", "--stop-grace", "1s", NULL,
	};
	char id[80];

	sbxd_start_checked(&sbxd, args, NULL);
	create_ok(STUBBORN_BODY, id, sizeof(id));
	send_signal(SIGTERM);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	assert_no_vmm("after --drain-timeout 0");
	assert_lock_removed();
}

/* FORCE_STOP skips the graceful phase: a 1 h drain timeout never runs. */
static void check_force_stop(const char *const args[], const char *const env[])
{
	char id[80];
	int64_t t0;

	sbxd_start_checked(&sbxd, args, env);
	create_ok(STUBBORN_BODY, id, sizeof(id));
	t0 = harness_now_ms();
	send_signal(SIGTERM);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	cr_log_info("forced drain took %lld ms",
		    (long long)(harness_now_ms() - t0));
	cr_assert(sbxd_log_line_contains(&sbxd, "forc", ""),
		  "the log does not mention the forced phase");
	assert_no_vmm("after a FORCE_STOP drain");
	assert_lock_removed();
}

Test(drain, force_stop_env, .timeout = 60)
{
	static const char *const env[] = {
		"FORCE_STOP=1", "SHUTDOWN_DRAIN_TIMEOUT=1h", "SBXD_STOP_GRACE=1s",
		NULL,
	};

	check_force_stop(NULL, env);
}

Test(drain, force_stop_flag, .timeout = 60)
{
	static const char *const args[] = {
		"--force-stop", "--drain-timeout", "1h", "--stop-grace", "1s",
		NULL,
	};

	check_force_stop(args, NULL);
}

Test(drain, force_stop_call_serving, .timeout = 60)
{
	static const char *const args[] = { "--stop-grace", "1s", NULL };
	struct http_resp resp;
	char a[80], b[80], c[80];
	json_t *res, *sb;
	int status;

	sbxd_start_checked(&sbxd, args, NULL);
	create_ok(CREATE_BODY, a, sizeof(a));
	create_ok(STUBBORN_BODY, b, sizeof(b));

	res = force_stop();
	cr_assert_eq(json_integer_value(json_object_get(res, "requested")), 2);
	cr_assert(array_has_string(json_object_get(res, "stopped"), a),
		  "stopped lacks %s", a);
	cr_assert(array_has_string(json_object_get(res, "stopped"), b),
		  "stopped lacks the stubborn %s", b);
	cr_assert_eq(json_array_size(json_object_get(res, "failed")), 0);
	json_decref(res);

	/* The response comes once all are reaped. */
	sb = sbx_get(&sbxd, a);
	cr_assert_str_eq(json_str(sb, "state"), "exited");
	json_decref(sb);
	sb = sbx_get(&sbxd, b);
	cr_assert_str_eq(json_str(sb, "state"), "exited");
	json_decref(sb);
	assert_no_vmm("after the force-stop response");

	/* The node keeps serving. */
	cr_assert_eq(node_int("live"), 0);
	cr_assert_eq(sbx_wait_node_state(&sbxd, "serving", 0), 0,
		     "force-stop while serving changed the node state");
	status = http_request(&sbxd, "GET", "/healthz", NULL, &resp);
	cr_assert_eq(status, 200, "/healthz after force-stop: %d", status);
	http_resp_free(&resp);

	res = force_stop();
	cr_assert_eq(json_integer_value(json_object_get(res, "requested")), 0,
		     "second force-stop found sandboxes to stop");
	cr_assert_eq(json_array_size(json_object_get(res, "stopped")), 0);
	json_decref(res);

	create_ok(CREATE_BODY, c, sizeof(c));
	cr_assert(sbxd_running(&sbxd));
}

Test(drain, force_stop_call_draining, .timeout = 60)
{
	static const char *const args[] = { "--stop-grace", "1s", NULL };
	char a[80], b[80];
	json_t *res;

	sbxd_start_checked(&sbxd, args, NULL);
	create_ok(STUBBORN_BODY, a, sizeof(a));
	create_ok(CREATE_BODY, b, sizeof(b));
	send_signal(SIGTERM);
	wait_draining();
	harness_sleep_ms(300);
	cr_assert(sbxd_running(&sbxd), "sbxd exited with live sandboxes");

	res = force_stop();
	cr_assert_eq(json_integer_value(json_object_get(res, "requested")), 2);
	cr_assert(array_has_string(json_object_get(res, "stopped"), a));
	cr_assert(array_has_string(json_object_get(res, "stopped"), b));
	json_decref(res);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	assert_no_vmm("after force-stop during the drain");
	assert_lock_removed();
}

static void check_second_signal(int first, int second)
{
	static const char *const args[] = { "--stop-grace", "1s", NULL };
	char id[80];

	sbxd_start_checked(&sbxd, args, NULL);
	create_ok(STUBBORN_BODY, id, sizeof(id));
	send_signal(first);
	wait_draining();
	harness_sleep_ms(300);
	cr_assert(sbxd_running(&sbxd), "sbxd exited with a live sandbox "
		  "and no drain timeout");
	send_signal(second);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	cr_assert(sbxd_log_line_contains(&sbxd, "second signal", "forcing"),
		  "no log line with \"second signal\" and \"forcing\"");
	assert_no_vmm("after the escalated drain");
	assert_lock_removed();
}

Test(drain, second_sigterm_forces, .timeout = 60)
{
	check_second_signal(SIGTERM, SIGTERM);
}

Test(drain, sigint_then_sigterm_forces, .timeout = 60)
{
	check_second_signal(SIGINT, SIGTERM);
}

Test(drain, sigkill_leaves_no_vmm, .timeout = 60)
{
	static struct http_async slow;
	struct http_resp resp;
	char ids[3][80], desc[512];
	int status, count;

	sbxd_start_checked(&sbxd, NULL, NULL);
	for (int i = 0; i < 3; i++)
		create_ok(i ? CREATE_BODY : STUBBORN_BODY, ids[i],
			  sizeof(ids[i]));
	cr_assert_eq(sbxd_count_vmms(&sbxd, desc, sizeof(desc)), 3,
		     "expected 3 VMMs before SIGKILL, found: %s", desc);
	/* A VMM still starting must die with sbxd too. */
	cr_assert_eq(http_request_start(&slow, &sbxd, "POST", "/v1/sandboxes",
					"{\"boot_delay_ms\":3000}"), 0);
	cr_assert_eq(sbx_wait_inflight(&sbxd, 1, 5000), 0);
	send_signal(SIGKILL);
	cr_assert_eq(sbxd_wait_exit(&sbxd, 5000, &status), 0);
	count = sbxd_wait_no_vmms(&sbxd, 5000, desc, sizeof(desc));
	cr_assert_eq(count, 0, "%d VMM(s) outlived a SIGKILLed sbxd by 5 s: "
		     "%s", count, desc);
	cr_assert_lt(http_request_join(&slow, &resp), 0,
		     "a create got a response from a SIGKILLed sbxd");
	http_resp_free(&resp);
}

#define RACERS 8

/*
 * Creates racing SIGTERM on kept-alive connections that sbxd has already
 * accepted (each served a request first), with the create sent in full
 * before the signal. Each must get 201 or 503, every 201 sandbox must be
 * listed and keep the drain open, and the node's counters must agree.
 */
static void check_racing_creates(const char *gate, int delay_ms)
{
	const char *const args[] = { "--stop-grace", "1s", "--gate", gate,
				     NULL };
	static const char create[] =
		"POST /v1/sandboxes HTTP/1.1\r\nHost: sbxd\r\n"
		"Content-Length: 21\r\n\r\n{\"boot_delay_ms\":200}";
	static struct http_conn conns[RACERS];
	int status[RACERS], created = 0, rejected = 0;
	char ids[RACERS][80];
	json_int_t admitted, started, refused;
	struct http_resp resp;
	json_t *node;

	sbxd_start_checked(&sbxd, args, NULL);
	for (int i = 0; i < RACERS; i++) {
		cr_assert_eq(http_connect(&sbxd, &conns[i]), 0);
		cr_assert_eq(http_conn_request(&conns[i], "GET", "/healthz",
					       NULL, &resp), 200);
		http_resp_free(&resp);
	}
	for (int i = 0; i < RACERS; i++)
		cr_assert_eq(http_send_raw(&conns[i], create,
					   sizeof(create) - 1), 0);
	harness_sleep_ms(delay_ms);
	send_signal(SIGTERM);

	for (int i = 0; i < RACERS; i++) {
		status[i] = http_read_response(&conns[i], &resp);
		cr_assert(status[i] == 201 || status[i] == 503,
			  "create %d sent before SIGTERM: expected 201 or 503, "
			  "got %d (%s)", i, status[i],
			  status[i] > 0 ? resp.body : strerror(-status[i]));
		ids[i][0] = '\0';
		if (status[i] == 201) {
			created++;
			snprintf(ids[i], sizeof(ids[i]), "%s",
				 json_str(resp.json, "id"));
		} else {
			rejected++;
		}
		http_resp_free(&resp);
		http_close(&conns[i]);
	}
	if (created == 0) {
		sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
		return;
	}

	node = sbx_node(&sbxd);
	admitted = json_integer_value(json_object_get(node, "admitted"));
	started = json_integer_value(json_object_get(node, "started"));
	refused = json_integer_value(json_object_get(node, "rejected"));
	cr_assert_str_eq(json_str(node, "state"), "draining");
	json_decref(node);
	cr_assert_eq(admitted, created, "admitted %lld, but %d creates got 201",
		     (long long)admitted, created);
	cr_assert_eq(started, created);
	cr_assert_eq(refused, rejected, "rejected %lld, but %d creates got 503",
		     (long long)refused, rejected);
	cr_assert(sbxd_running(&sbxd),
		  "sbxd exited with %d sandboxes created during the drain",
		  created);
	cr_assert_eq(node_int("live"), created);
	for (int i = 0; i < RACERS; i++) {
		json_t *sb;

		if (status[i] != 201)
			continue;
		sb = sbx_get(&sbxd, ids[i]);
		cr_assert_str_eq(json_str(sb, "state"), "running");
		json_decref(sb);
	}
	node = force_stop();
	cr_assert_eq(json_integer_value(json_object_get(node, "requested")),
		     created);
	json_decref(node);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	assert_no_vmm("after the racing drain");
}

Test(drain, creates_race_sigterm, .timeout = 90)
{
	check_racing_creates("auto", 0);
	sbxd_cleanup(&sbxd);
	check_racing_creates("auto", 100);
}

Test(drain, creates_race_sigterm_memfd, .timeout = 90)
{
	check_racing_creates("memfd", 0);
	sbxd_cleanup(&sbxd);
	check_racing_creates("memfd", 100);
}

/* The whole text of a file (free() it), or NULL with errno set. */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t cap = 0;
	char *text = NULL;

	if (!f)
		return NULL;
	if (getdelim(&text, &cap, '\0', f) < 0) {
		free(text);
		text = strdup("");
	}
	fclose(f);
	return text;
}

/* The pinned drain_state value as bpftool prints it, or NULL. */
static json_t *dump_drain_map(const char *pin)
{
	char cmd[PATH_MAX + 64];
	json_t *dump, *value;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "bpftool -j map dump pinned %s", pin);
	f = popen(cmd, "r");
	if (!f)
		return NULL;
	dump = json_loadf(f, 0, NULL);
	pclose(f);
	value = json_object_get(json_object_get(json_array_get(dump, 0),
						"formatted"), "value");
	json_incref(value);
	json_decref(dump);
	return value;
}

Test(drain, bpf_map_during_drain, .timeout = 60)
{
	char id[80], pin_dir[PATH_MAX], pin[PATH_MAX + 32], want[32];
	json_int_t pid;
	json_t *node, *map, *sb;
	char *vms;
	bool bpf;

	harness_require_root("reads the pinned BPF map with bpftool");
	sbxd_start_checked(&sbxd, NULL, NULL);
	node = sbx_node(&sbxd);
	bpf = strcmp(json_str(node, "gate"), "bpf") == 0;
	json_decref(node);
	if (!bpf)
		cr_skip_test("skipped: sbxd fell back to the memfd gate");

	create_ok(CREATE_BODY, id, sizeof(id));
	sb = sbx_get(&sbxd, id);
	pid = json_integer_value(json_object_get(sb, "pid"));
	json_decref(sb);
	send_signal(SIGTERM);
	wait_draining();

	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/sbxd/%s", sbxd.instance);
	snprintf(pin, sizeof(pin), "%s/drain_state", pin_dir);
	map = dump_drain_map(pin);
	cr_assert(json_is_object(map), "bpftool could not dump %s", pin);
	cr_assert_eq(json_integer_value(json_object_get(map, "draining")), 1,
		     "map draining is not 1 during the drain");
	cr_assert_eq(json_integer_value(json_object_get(map, "live")), 1);
	cr_assert_eq(json_integer_value(json_object_get(map,
							"inflight_starts")), 0);
	cr_assert_neq(json_integer_value(json_object_get(map,
							 "drain_started_ns")), 0);
	json_decref(map);

	/* The kernel's own view: the VMM has a KVM VM file open. */
	snprintf(pin, sizeof(pin), "%s/live_vms", pin_dir);
	vms = read_text(pin);
	cr_assert(vms, "cannot read %s: %s", pin, strerror(errno));
	snprintf(want, sizeof(want), "%lld ", (long long)pid);
	cr_assert(vms && strstr(vms, want), "live_vms does not list VMM %lld: "
		  "\"%s\"", (long long)pid, vms ? vms : "");
	free(vms);

	json_decref(force_stop());
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	cr_assert(!harness_path_exists(pin_dir),
		  "clean exit left the BPF pin dir %s", pin_dir);
}

/*
 * With a 1 h --drain-poll the waiter tick never fires during the test, so
 * only the child-exit and start-ready completions can move the drain on.
 */
Test(drain, slow_poll_exit_prompt, .timeout = 60)
{
	static const char *const args[] = { "--drain-poll", "1h", NULL };
	struct http_resp resp;
	char id[80], path[160];
	int status;

	sbxd_start_checked(&sbxd, args, NULL);
	create_ok(CREATE_BODY, id, sizeof(id));
	send_signal(SIGTERM);
	wait_draining();
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", id);
	status = http_request(&sbxd, "POST", path, "{}", &resp);
	cr_assert_eq(status, 200, "stop: %d", status);
	http_resp_free(&resp);
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
}

Test(drain, slow_poll_forced_start, .timeout = 60)
{
	static const char *const args[] = {
		"--drain-poll", "1h", "--force-stop", "--stop-grace", "1s",
		"--force-timeout", "15s", NULL,
	};
	struct http_async slow;
	struct http_resp resp;
	int status;

	sbxd_start_checked(&sbxd, args, NULL);
	cr_assert_eq(http_request_start(&slow, &sbxd, "POST", "/v1/sandboxes",
					"{\"boot_delay_ms\":1000}"), 0);
	cr_assert_eq(sbx_wait_inflight(&sbxd, 1, 5000), 0);
	send_signal(SIGTERM);
	status = http_request_join(&slow, &resp);
	cr_assert_eq(status, 201, "start admitted before SIGTERM: %d", status);
	http_resp_free(&resp);
	/* The forced phase must also stop the start that became ready. */
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	assert_no_vmm("after the forced drain");
}

Test(drain, vmm_killed_ends_drain, .timeout = 60)
{
	json_int_t pid;
	char id[80];
	json_t *sb;

	sbxd_start_checked(&sbxd, NULL, NULL);
	create_ok(CREATE_BODY, id, sizeof(id));
	sb = sbx_get(&sbxd, id);
	pid = json_integer_value(json_object_get(sb, "pid"));
	json_decref(sb);
	send_signal(SIGTERM);
	wait_draining();

	/* The last VMM dies on its own: that ends the sandbox and the drain. */
	cr_assert_eq(kill((pid_t)pid, SIGKILL), 0, "kill VMM %lld: %s",
		     (long long)pid, strerror(errno));
	sbxd_assert_exit(&sbxd, EXIT_BOUND_MS, 0);
	assert_lock_removed();
}
