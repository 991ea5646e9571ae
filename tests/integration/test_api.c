// SPDX-License-Identifier: MIT
/*
 * API integration tests: a real sbxd and real VMs, driven over the unix
 * socket. Covers the sandbox round trip, input validation (bad input must
 * change nothing), capacity, request timeouts, keep-alive, the socket mode
 * and guest crashes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

#define CREATE_BODY "{\"vcpus\":1,\"memory_mib\":16}"

/* Static, because fini must still reach them after a failed assert. */
static struct sbxd_proc sbxd;

TestSuite(api, .init = harness_init, .fini = harness_fini);

static json_t *list_sandboxes(void)
{
	struct http_resp resp;
	json_t *list;
	int status;

	status = http_request(&sbxd, "GET", "/v1/sandboxes", NULL, &resp);
	cr_assert_eq(status, 200, "GET /v1/sandboxes: expected 200, got %d: %s",
		     status, status > 0 ? resp.body : strerror(-status));
	list = json_incref(json_object_get(resp.json, "sandboxes"));
	http_resp_free(&resp);
	cr_assert(json_is_array(list),
		  "GET /v1/sandboxes: no \"sandboxes\" array");
	return list;
}

/* The sandbox with this id in a list, or NULL (borrowed reference). */
static json_t *list_find(json_t *list, const char *id)
{
	json_t *item;
	size_t i;

	json_array_foreach(list, i, item) {
		json_t *jid = json_object_get(item, "id");

		if (json_is_string(jid) && strcmp(json_string_value(jid), id) == 0)
			return item;
	}
	return NULL;
}

static const char *json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static bool pid_alive(json_int_t pid)
{
	char path[64], state = '?';
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	/* A reparented zombie is not running any more. */
	if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
		state = '?';
	fclose(f);
	return state != 'Z' && state != 'X';
}

static int post_json(const char *path, const char *body,
		     struct http_resp *resp)
{
	int status = http_request(&sbxd, "POST", path, body, resp);

	cr_assert(status > 0, "POST %s: no response: %s", path,
		  strerror(-status));
	return status;
}

static void assert_sandbox_fields(json_t *sb, const char *ctx)
{
	json_t *v;

	cr_assert(json_is_string(json_object_get(sb, "id")), "%s: id", ctx);
	cr_assert(json_is_string(json_object_get(sb, "state")), "%s: state",
		  ctx);
	cr_assert(json_is_integer(json_object_get(sb, "pid")), "%s: pid", ctx);
	v = json_object_get(sb, "created_at");
	cr_assert(v && !json_is_null(v), "%s: created_at missing", ctx);
	cr_assert(json_is_number(json_object_get(sb, "ready_ms")),
		  "%s: ready_ms is not a number", ctx);
	cr_assert(json_is_integer(json_object_get(sb, "memory_mib")),
		  "%s: memory_mib", ctx);
	cr_assert(json_is_integer(json_object_get(sb, "vcpus")), "%s: vcpus",
		  ctx);
	cr_assert(json_is_string(json_object_get(sb, "guest")), "%s: guest",
		  ctx);
	cr_assert(json_is_string(json_object_get(sb, "args")), "%s: args", ctx);
	cr_assert(json_is_object(json_object_get(sb, "metadata")),
		  "%s: metadata", ctx);
	cr_assert(json_object_get(sb, "exit"), "%s: exit missing", ctx);
}

Test(api, round_trip, .timeout = 60)
{
	struct http_resp resp;
	json_t *sb, *list, *meta, *exit_info;
	char id[80], path[160], sandbox_dir[PATH_MAX + 96], *out = NULL;
	json_int_t pid, code = -1;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);

	status = post_json("/v1/sandboxes",
			   "{\"vcpus\":1,\"memory_mib\":16,\"args\":\"\","
			   "\"metadata\":{\"team\":\"itest\"}}", &resp);
	cr_assert_eq(status, 201, "create: expected 201, got %d: %s", status,
		     resp.body);
	sb = resp.json;
	assert_sandbox_fields(sb, "create response");
	snprintf(id, sizeof(id), "%s", json_str(sb, "id"));
	cr_assert(id[0], "create response has an empty id");
	cr_assert_str_eq(json_str(sb, "state"), "running");
	pid = json_integer_value(json_object_get(sb, "pid"));
	cr_assert(pid > 0 && pid_alive(pid), "VMM pid %lld is not running",
		  (long long)pid);
	cr_assert_eq(json_integer_value(json_object_get(sb, "memory_mib")), 16);
	cr_assert_eq(json_integer_value(json_object_get(sb, "vcpus")), 1);
	cr_assert_str_eq(json_str(sb, "args"), "");
	meta = json_pack("{s:s}", "team", "itest");
	cr_assert(json_equal(json_object_get(sb, "metadata"), meta),
		  "metadata not returned as sent: %s", resp.body);
	json_decref(meta);
	cr_assert(json_is_null(json_object_get(sb, "exit")),
		  "running sandbox has a non-null exit: %s", resp.body);
	http_resp_free(&resp);

	sb = sbx_get(&sbxd, id);
	cr_assert_str_eq(json_str(sb, "id"), id);
	cr_assert_str_eq(json_str(sb, "state"), "running");
	cr_assert_eq(json_integer_value(json_object_get(sb, "pid")), pid);
	json_decref(sb);

	list = list_sandboxes();
	cr_assert(list_find(list, id), "list does not show %s", id);
	json_decref(list);

	status = sbx_exec(&sbxd, id, "echo hi", &out, &code);
	cr_assert_eq(status, 200, "exec echo: expected 200, got %d", status);
	cr_assert_str_eq(out ? out : "(null)", "hi");
	cr_assert_eq(code, 0);
	free(out);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", id);
	status = post_json(path, "{\"grace_ms\":5000}", &resp);
	cr_assert_eq(status, 200, "stop: expected 200, got %d: %s", status,
		     resp.body);
	cr_assert_str_eq(json_str(resp.json, "state"), "exited");
	exit_info = json_object_get(resp.json, "exit");
	cr_assert(json_is_object(exit_info),
		  "stopped sandbox has no exit object: %s", resp.body);
	cr_assert(json_is_string(json_object_get(exit_info, "reason")),
		  "exit.reason is not a string: %s", resp.body);
	http_resp_free(&resp);
	cr_assert(!pid_alive(pid), "VMM %lld still runs after stop",
		  (long long)pid);

	sb = sbx_get(&sbxd, id);
	cr_assert_str_eq(json_str(sb, "state"), "exited");
	json_decref(sb);
	list = list_sandboxes();
	sb = list_find(list, id);
	cr_assert(sb, "an exited sandbox must stay listed until DELETE");
	cr_assert_str_eq(json_str(sb, "state"), "exited");
	json_decref(list);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	status = http_request(&sbxd, "DELETE", path, NULL, &resp);
	cr_assert_eq(status, 200, "DELETE: expected 200, got %d: %s", status,
		     resp.body);
	cr_assert_str_eq(json_str(resp.json, "id"), id);
	http_resp_free(&resp);

	status = http_request(&sbxd, "GET", path, NULL, &resp);
	sbx_assert_error(&resp, 404, NULL, "GET after DELETE");
	http_resp_free(&resp);
	list = list_sandboxes();
	cr_assert_null(list_find(list, id), "deleted %s is still listed", id);
	json_decref(list);
	snprintf(sandbox_dir, sizeof(sandbox_dir), "%s/sandboxes/%s",
		 sbxd.state_dir, id);
	cr_assert(!harness_path_exists(sandbox_dir), "DELETE left %s",
		  sandbox_dir);
}

Test(api, delete_running_kills, .timeout = 60)
{
	struct http_resp resp;
	char id[80], path[160];
	json_int_t pid;
	json_t *sb;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, "{\"ignore_stop\":true}", id,
				sizeof(id)), 201);
	sb = sbx_get(&sbxd, id);
	pid = json_integer_value(json_object_get(sb, "pid"));
	json_decref(sb);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	status = http_request(&sbxd, "DELETE", path, NULL, &resp);
	cr_assert_eq(status, 200, "DELETE running: expected 200, got %d: %s",
		     status, resp.body);
	http_resp_free(&resp);
	cr_assert(!pid_alive(pid), "VMM %lld still runs after the DELETE response",
		  (long long)pid);
	status = http_request(&sbxd, "GET", path, NULL, &resp);
	sbx_assert_error(&resp, 404, NULL, "GET after DELETE of running");
	http_resp_free(&resp);
}

Test(api, echo_keeps_spaces, .timeout = 60)
{
	char id[80], *out = NULL;
	json_int_t code = -1;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);
	cr_assert_eq(sbx_exec(&sbxd, id, "echo hello  big world", &out, &code),
		     200);
	cr_assert_str_eq(out ? out : "(null)", "hello  big world");
	cr_assert_eq(code, 0);
	free(out);
}

Test(api, counter_increments, .timeout = 60)
{
	char a[80], b[80], want[16], *out = NULL;
	json_int_t code;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, a, sizeof(a)), 201);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, b, sizeof(b)), 201);

	for (int i = 1; i <= 3; i++) {
		cr_assert_eq(sbx_exec(&sbxd, a, "counter", &out, &code), 200);
		snprintf(want, sizeof(want), "%d", i);
		cr_assert_str_eq(out ? out : "(null)", want,
				 "counter call %d returned \"%s\"", i, out);
		cr_assert_eq(code, 0);
		free(out);
	}
	/* Each sandbox has its own guest memory, so its own counter. */
	cr_assert_eq(sbx_exec(&sbxd, b, "counter", &out, &code), 200);
	cr_assert_str_eq(out ? out : "(null)", "1");
	free(out);
}

/* Which sandbox a bad-input case's path names. */
enum target { NO_ID, RUNNING_ID, EXITED_ID, MISSING_ID };

struct bad_case {
	const char *method;
	const char *path;	/* "%s" is replaced by the target's id */
	enum target target;
	const char *body;
	int status;
	const char *field;	/* the error message must name it */
	const char *allow[3];	/* methods the Allow header must list */
};

static const struct bad_case bad_cases[] = {
	{ "POST", "/v1/sandboxes", NO_ID, "{", 400, NULL, { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "[]", 400, NULL, { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "\"vcpus\"", 400, NULL, { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"vcpus\":\"1\"}", 400, "vcpus",
	  { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"vcpus\":2}", 400, "vcpus",
	  { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"vcpus\":0}", 400, "vcpus",
	  { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"memory_mib\":\"16\"}", 400,
	  "memory_mib", { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"memory_mib\":0}", 400,
	  "memory_mib", { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"memory_mib\":-16}", 400,
	  "memory_mib", { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"memory_mib\":16.5}", 400,
	  "memory_mib", { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"memory_mib\":1048576}", 400,
	  "memory_mib", { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID,
	  "{\"memory_mib\":99999999999999999999}", 400, NULL, { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"args\":5}", 400, "args", { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"metadata\":\"x\"}", 400,
	  "metadata", { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"boot_delay_ms\":-1}", 400,
	  "boot_delay_ms", { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"ignore_stop\":\"yes\"}", 400,
	  "ignore_stop", { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"guest\":7}", 400, "guest",
	  { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID,
	  "{\"guest\":\"/nonexistent/sbx-itest-guest\"}", 400, "guest",
	  { 0 } },
	{ "POST", "/v1/sandboxes", NO_ID, "{\"bogus\":1}", 400, "bogus",
	  { 0 } },
	{ "GET", "/v1/nope", NO_ID, NULL, 404, NULL, { 0 } },
	{ "GET", "/", NO_ID, NULL, 404, NULL, { 0 } },
	{ "GET", "/v1/sandboxes/%s/nope", RUNNING_ID, NULL, 404, NULL, { 0 } },
	{ "GET", "/v1/sandboxes/%s", MISSING_ID, NULL, 404, NULL, { 0 } },
	{ "DELETE", "/v1/sandboxes/%s", MISSING_ID, NULL, 404, NULL, { 0 } },
	{ "POST", "/v1/sandboxes/%s/exec", MISSING_ID,
	  "{\"command\":\"echo hi\"}", 404, NULL, { 0 } },
	{ "POST", "/v1/sandboxes/%s/stop", MISSING_ID, "{}", 404, NULL,
	  { 0 } },
	{ "DELETE", "/v1/sandboxes", NO_ID, NULL, 405, NULL,
	  { "GET", "POST" } },
	{ "PUT", "/v1/sandboxes/%s", RUNNING_ID, "{}", 405, NULL,
	  { "GET", "DELETE" } },
	{ "GET", "/v1/sandboxes/%s/exec", RUNNING_ID, NULL, 405, NULL,
	  { "POST" } },
	{ "GET", "/v1/sandboxes/%s/stop", RUNNING_ID, NULL, 405, NULL,
	  { "POST" } },
	{ "POST", "/v1/node", NO_ID, "{}", 405, NULL, { "GET" } },
	{ "GET", "/v1/node/force-stop", NO_ID, NULL, 405, NULL, { "POST" } },
	{ "POST", "/healthz", NO_ID, "{}", 405, NULL, { "GET" } },
	{ "POST", "/v1/sandboxes/%s/exec", RUNNING_ID, "{", 400, NULL,
	  { 0 } },
	{ "POST", "/v1/sandboxes/%s/exec", RUNNING_ID, "{}", 400, "command",
	  { 0 } },
	{ "POST", "/v1/sandboxes/%s/exec", RUNNING_ID, "{\"command\":5}", 400,
	  "command", { 0 } },
	{ "POST", "/v1/sandboxes/%s/exec", RUNNING_ID,
	  "{\"command\":\"echo hi\",\"timeout_ms\":\"x\"}", 400, "timeout_ms",
	  { 0 } },
	{ "POST", "/v1/sandboxes/%s/stop", RUNNING_ID, "{\"grace_ms\":\"x\"}",
	  400, "grace_ms", { 0 } },
	{ "POST", "/v1/sandboxes/%s/stop", RUNNING_ID, "{\"grace_ms\":-1}",
	  400, "grace_ms", { 0 } },
	{ "POST", "/v1/sandboxes/%s/exec", EXITED_ID,
	  "{\"command\":\"echo hi\"}", 409, NULL, { 0 } },
};

/* What bad input must not change: the list and the node's counters. */
static json_t *snapshot(void)
{
	static const char *const counters[] = {
		"live", "sandboxes", "inflight_starts", "admitted", "rejected",
		"started", "failed",
	};
	json_t *list = list_sandboxes();
	json_t *node = sbx_node(&sbxd);
	json_t *snap = json_object();
	json_t *rows = json_array();
	json_t *item;
	size_t i;

	json_array_foreach(list, i, item)
		json_array_append_new(rows, json_pack("{s:O?, s:O?, s:O?, s:O?}",
			"id", json_object_get(item, "id"),
			"state", json_object_get(item, "state"),
			"pid", json_object_get(item, "pid"),
			"metadata", json_object_get(item, "metadata")));
	json_object_set_new(snap, "sandboxes", rows);
	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		json_object_set(snap, counters[i],
				json_object_get(node, counters[i]));
	json_decref(list);
	json_decref(node);
	return snap;
}

/* Copy tmpl to out with its "%s" replaced by id. */
static void fill_path(char *out, size_t len, const char *tmpl,
		      const char *id)
{
	const char *mark = strstr(tmpl, "%s");

	if (!mark)
		snprintf(out, len, "%s", tmpl);
	else
		snprintf(out, len, "%.*s%s%s", (int)(mark - tmpl), tmpl, id,
			 mark + 2);
}

static void run_bad_case(const struct bad_case *bc, const char *running,
			 const char *exited)
{
	const char *ids[] = { "", running, exited, "sbx-itest-no-such-id" };
	char path[256], ctx[512], *before_text, *after_text;
	struct http_resp resp;
	json_t *before, *after;
	int status;

	fill_path(path, sizeof(path), bc->path, ids[bc->target]);
	snprintf(ctx, sizeof(ctx), "%s %s %s", bc->method, path,
		 bc->body ? bc->body : "");
	before = snapshot();
	status = http_request(&sbxd, bc->method, path, bc->body, &resp);
	cr_assert(status > 0, "%s: no response: %s", ctx, strerror(-status));
	sbx_assert_error(&resp, bc->status, bc->field, ctx);
	for (int i = 0; i < 3 && bc->allow[i]; i++)
		cr_assert(strstr(resp.allow, bc->allow[i]),
			  "%s: Allow header \"%s\" lacks %s", ctx, resp.allow,
			  bc->allow[i]);
	http_resp_free(&resp);

	after = snapshot();
	before_text = json_dumps(before, JSON_COMPACT | JSON_SORT_KEYS);
	after_text = json_dumps(after, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert(json_equal(before, after),
		  "%s changed the node:\nbefore %s\nafter  %s", ctx, before_text,
		  after_text);
	free(before_text);
	free(after_text);
	json_decref(before);
	json_decref(after);
}

Test(api, bad_input_changes_nothing, .timeout = 120)
{
	char running[80], exited[80], path[160];
	struct http_resp resp;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, running, sizeof(running)),
		     201);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, exited, sizeof(exited)),
		     201);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", exited);
	cr_assert_eq(post_json(path, "{\"grace_ms\":5000}", &resp), 200,
		     "stop: %s", resp.body);
	http_resp_free(&resp);

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		run_bad_case(&bad_cases[i], running, exited);
}

Test(api, garbage_request_400, .timeout = 60)
{
	static const char *const garbage[] = {
		"GARBAGE\r\n\r\n",
		"GET /v1/node HTTP/9.9\r\n\r\n",
		"GET /v1/node HTTP/1.1\r\nHost sbxd\r\n\r\n",
		"\x01\x02\x03\xff\r\n\r\n",
		"GET /v1/node HTTP/1.1\r\nContent-Length: x\r\n\r\n",
	};
	struct http_resp resp;
	struct http_conn c;
	json_t *list;

	sbxd_start_checked(&sbxd, NULL, NULL);
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		cr_assert_eq(http_connect(&sbxd, &c), 0);
		cr_assert_eq(http_send_raw(&c, garbage[i], strlen(garbage[i])),
			     0);
		cr_assert_eq(http_read_response(&c, &resp), 400,
			     "request %zu: expected 400, got %d: %s", i,
			     resp.status, resp.body);
		http_resp_free(&resp);
		/* After a framing error the connection cannot be reused. */
		cr_assert_eq(http_wait_closed(&c, 5000), 1,
			     "request %zu: connection left open after 400", i);
		http_close(&c);
	}
	list = list_sandboxes();
	cr_assert_eq(json_array_size(list), 0);
	json_decref(list);
}

Test(api, oversized_body_413, .timeout = 60)
{
	size_t len = 1024 * 1024 + 64;
	char head[256], *body;
	struct http_resp resp;
	struct http_conn c;
	json_t *list;
	int n, status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	body = malloc(len);
	cr_assert(body);
	/* Valid JSON, so only the size can be the reason for the error. */
	n = snprintf(body, len, "{\"metadata\":{\"pad\":\"");
	memset(body + n, 'a', len - (size_t)n - 3);
	memcpy(body + len - 3, "\"}}", 3);
	n = snprintf(head, sizeof(head),
		     "POST /v1/sandboxes HTTP/1.1\r\nHost: sbxd\r\n"
		     "Content-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n", len);

	cr_assert_eq(http_connect(&sbxd, &c), 0);
	cr_assert_eq(http_send_raw(&c, head, (size_t)n), 0);
	/* The server may respond and close before taking the whole body. */
	http_send_raw(&c, body, len);
	free(body);
	status = http_read_response(&c, &resp);
	cr_assert(status > 0, "no response to a %zu byte body: %s", len,
		  strerror(-status));
	sbx_assert_error(&resp, 413, NULL, "POST /v1/sandboxes, 1 MiB body");
	http_resp_free(&resp);
	http_close(&c);

	list = list_sandboxes();
	cr_assert_eq(json_array_size(list), 0, "a 413 request created a sandbox");
	json_decref(list);
}

Test(api, size_limit_flags, .timeout = 60)
{
	const char *args[] = { "--max-body-size", "2048", "--max-header-size",
			       "1024", NULL };
	char request[4096], pad[3000];
	struct http_resp resp;
	struct http_conn c;
	int n;

	sbxd_start_checked(&sbxd, args, NULL);

	/* A 3000-byte body is over --max-body-size 2048. */
	memset(pad, 'a', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	n = snprintf(request, sizeof(request),
		     "POST /v1/sandboxes/x/exec HTTP/1.1\r\nHost: sbxd\r\n"
		     "Content-Length: %zu\r\n\r\n%s", strlen(pad), pad);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	cr_assert_eq(http_send_raw(&c, request, (size_t)n), 0);
	cr_assert_eq(http_read_response(&c, &resp), 413);
	sbx_assert_error(&resp, 413, "--max-body-size", "3000-byte body");
	http_resp_free(&resp);
	http_close(&c);

	/* A 2000-byte header is over --max-header-size 1024. */
	pad[2000] = '\0';
	n = snprintf(request, sizeof(request),
		     "GET /v1/node HTTP/1.1\r\nHost: sbxd\r\nX-Pad: %s"
		     "\r\n\r\n", pad);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	cr_assert_eq(http_send_raw(&c, request, (size_t)n), 0);
	cr_assert_eq(http_read_response(&c, &resp), 431);
	http_resp_free(&resp);
	http_close(&c);

	/* Requests under both limits are served. */
	cr_assert_eq(http_request(&sbxd, "GET", "/v1/node", NULL, &resp), 200);
	http_resp_free(&resp);
}

Test(api, max_sandboxes_429, .timeout = 60)
{
	static const char *const args[] = { "--max-sandboxes", "2", NULL };
	char a[80], b[80], c[80], path[160];
	struct http_resp resp;
	json_t *node, *list;
	int status;

	sbxd_start_checked(&sbxd, args, NULL);
	node = sbx_node(&sbxd);
	cr_assert_eq(json_integer_value(json_object_get(node, "max_sandboxes")),
		     2, "node max_sandboxes does not show --max-sandboxes 2");
	json_decref(node);

	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, a, sizeof(a)), 201);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, b, sizeof(b)), 201);
	status = post_json("/v1/sandboxes", CREATE_BODY, &resp);
	sbx_assert_error(&resp, 429, NULL, "third create at --max-sandboxes 2");
	http_resp_free(&resp);
	list = list_sandboxes();
	cr_assert_eq(json_array_size(list), 2, "a 429 create left a sandbox");
	json_decref(list);

	/* Deleting one frees capacity again. */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", a);
	status = http_request(&sbxd, "DELETE", path, NULL, &resp);
	cr_assert_eq(status, 200, "DELETE: %d %s", status, resp.body);
	http_resp_free(&resp);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, c, sizeof(c)), 201,
		     "create after DELETE at capacity");
}

Test(api, max_sandboxes_counts_starting, .timeout = 60)
{
	static const char *const args[] = { "--max-sandboxes", "1", NULL };
	static const char body[] = "{\"boot_delay_ms\":1500}";
	struct http_async first, second;
	struct http_resp r1, r2;
	int s1, s2;

	sbxd_start_checked(&sbxd, args, NULL);
	cr_assert_eq(http_request_start(&first, &sbxd, "POST", "/v1/sandboxes",
					body), 0);
	/* Wait until the first start is admitted, then race the second. */
	cr_assert_eq(sbx_wait_inflight(&sbxd, 1, 5000), 0,
		     "inflight_starts never reached 1 during a slow start");
	cr_assert_eq(http_request_start(&second, &sbxd, "POST",
					"/v1/sandboxes", body), 0);
	s1 = http_request_join(&first, &r1);
	s2 = http_request_join(&second, &r2);
	cr_assert_eq(s1, 201, "first create: %d %s", s1, r1.body);
	cr_assert(s2 > 0, "second create: no response: %s", strerror(-s2));
	sbx_assert_error(&r2, 429, NULL,
			 "create while one start is in flight at max 1");
	http_resp_free(&r1);
	http_resp_free(&r2);
}

/* Elapsed ms until the server closes c, or -1 when it stays open. */
static int64_t wait_close_ms(struct http_conn *c, int64_t since, int bound)
{
	if (http_wait_closed(c, bound) != 1)
		return -1;
	return harness_now_ms() - since;
}

Test(api, stalled_request_closed, .timeout = 60)
{
	static const char *const args[] = { "--request-timeout", "1s", NULL };
	static const char half_head[] = "GET /v1/node HTTP/1.1\r\nHost: sb";
	static const char half_body[] =
		"POST /v1/sandboxes HTTP/1.1\r\nHost: sbxd\r\n"
		"Content-Length: 100\r\n\r\n{\"vcpus\"";
	struct http_conn stalled_head, stalled_body;
	struct http_resp resp;
	int64_t t0, head_ms, body_ms;
	json_t *list;
	int status;

	sbxd_start_checked(&sbxd, args, NULL);
	t0 = harness_now_ms();
	cr_assert_eq(http_connect(&sbxd, &stalled_head), 0);
	cr_assert_eq(http_connect(&sbxd, &stalled_body), 0);
	cr_assert_eq(http_send_raw(&stalled_head, half_head,
				   strlen(half_head)), 0);
	cr_assert_eq(http_send_raw(&stalled_body, half_body,
				   strlen(half_body)), 0);

	/* Another client is served while the two stall. */
	status = http_request(&sbxd, "GET", "/v1/node", NULL, &resp);
	cr_assert_eq(status, 200, "GET /v1/node while two requests stall: %d",
		     status);
	http_resp_free(&resp);

	head_ms = wait_close_ms(&stalled_head, t0, 10000);
	body_ms = wait_close_ms(&stalled_body, t0, 10000);
	cr_assert(head_ms >= 0,
		  "request stalled in its headers still open 10 s after a "
		  "--request-timeout of 1s");
	cr_assert(body_ms >= 0,
		  "request stalled in its body still open 10 s after a "
		  "--request-timeout of 1s");
	/* The server may not cut a request before its timeout. */
	cr_assert_geq(head_ms, 900, "stalled headers closed after %lld ms",
		      (long long)head_ms);
	cr_assert_geq(body_ms, 900, "stalled body closed after %lld ms",
		      (long long)body_ms);
	http_close(&stalled_head);
	http_close(&stalled_body);

	list = list_sandboxes();
	cr_assert_eq(json_array_size(list), 0,
		     "a cut create request started a sandbox");
	json_decref(list);
}

Test(api, keep_alive_reuses_conn, .timeout = 60)
{
	struct http_resp resp;
	struct http_conn c;
	char path[160];
	int fd, status;
	json_t *id;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	fd = c.fd;

	status = http_conn_request(&c, "GET", "/v1/node", NULL, &resp);
	cr_assert_eq(status, 200, "first request: %d", status);
	cr_assert(resp.keep_alive, "first response closes the connection "
		  "(Connection: %s)", resp.connection);
	http_resp_free(&resp);

	status = http_conn_request(&c, "GET", "/healthz", NULL, &resp);
	cr_assert_eq(status, 200, "second request on the same connection: %d",
		     status);
	http_resp_free(&resp);

	status = http_conn_request(&c, "POST", "/v1/sandboxes", CREATE_BODY,
				   &resp);
	cr_assert_eq(status, 201, "create on a kept-alive connection: %d",
		     status);
	id = json_object_get(resp.json, "id");
	cr_assert(json_is_string(id));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", json_string_value(id));
	http_resp_free(&resp);

	status = http_conn_request(&c, "DELETE", path, NULL, &resp);
	cr_assert_eq(status, 200, "DELETE on a kept-alive connection: %d",
		     status);
	http_resp_free(&resp);
	cr_assert_eq(c.fd, fd);
	http_close(&c);
}

Test(api, pipelined_requests, .timeout = 60)
{
	static const char two[] = "GET /v1/node HTTP/1.1\r\nHost: sbxd\r\n\r\n"
				  "GET /healthz HTTP/1.1\r\nHost: sbxd\r\n\r\n";
	struct http_resp resp;
	struct http_conn c;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	cr_assert_eq(http_send_raw(&c, two, strlen(two)), 0);
	cr_assert_eq(http_read_response(&c, &resp), 200,
		     "first pipelined response: %d", resp.status);
	cr_assert(json_is_string(json_object_get(resp.json, "state")),
		  "first response is not the /v1/node response: %s", resp.body);
	http_resp_free(&resp);
	cr_assert_eq(http_read_response(&c, &resp), 200,
		     "second pipelined response: %d", resp.status);
	http_resp_free(&resp);
	http_close(&c);
}

Test(api, connection_close_honored, .timeout = 60)
{
	static const char req[] = "GET /v1/node HTTP/1.1\r\nHost: sbxd\r\n"
				  "Connection: close\r\n\r\n";
	struct http_resp resp;
	struct http_conn c;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	cr_assert_eq(http_send_raw(&c, req, strlen(req)), 0);
	cr_assert_eq(http_read_response(&c, &resp), 200);
	cr_assert(!resp.keep_alive,
		  "response to Connection: close keeps the connection");
	http_resp_free(&resp);
	cr_assert_eq(http_wait_closed(&c, 5000), 1,
		     "server left the connection open after Connection: close");
	http_close(&c);
}

Test(api, socket_mode_0600, .timeout = 30)
{
	struct stat st;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(stat(sbxd.sock_path, &st), 0, "stat %s: %s",
		     sbxd.sock_path, strerror(errno));
	cr_assert(S_ISSOCK(st.st_mode), "%s is not a socket", sbxd.sock_path);
	cr_assert_eq(st.st_mode & 07777, 0600, "socket mode is %04o",
		     st.st_mode & 07777);
}

Test(api, node_and_healthz, .timeout = 60)
{
	static const char *const counters[] = {
		"inflight_starts", "live", "sandboxes", "admitted", "rejected",
		"started", "failed", "max_sandboxes", "pid",
	};
	struct http_resp resp;
	json_t *node, *draining_for;
	const char *gate;
	char id[80];
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	node = sbx_node(&sbxd);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		cr_assert(json_is_integer(json_object_get(node, counters[i])),
			  "/v1/node: %s is not an integer", counters[i]);
	cr_assert_str_eq(json_str(node, "state"), "serving");
	cr_assert_eq(json_integer_value(json_object_get(node, "pid")),
		     sbxd.pid);
	cr_assert_eq(json_integer_value(json_object_get(node, "live")), 0);
	/* No drain yet, which null and 0 both mean. */
	draining_for = json_object_get(node, "draining_for_ms");
	cr_assert(json_is_null(draining_for) ||
			  (json_is_integer(draining_for) &&
			   json_integer_value(draining_for) == 0),
		  "draining_for_ms is neither null nor 0 while serving");
	gate = json_str(node, "gate");
	cr_assert(strcmp(gate, "bpf") == 0 || strcmp(gate, "memfd") == 0,
		  "/v1/node gate is \"%s\", expected bpf or memfd", gate);
	cr_assert(json_is_string(json_object_get(node, "version")));
	json_decref(node);

	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);
	node = sbx_node(&sbxd);
	cr_assert_eq(json_integer_value(json_object_get(node, "live")), 1);
	cr_assert_eq(json_integer_value(json_object_get(node, "sandboxes")), 1);
	cr_assert_eq(json_integer_value(json_object_get(node, "admitted")), 1);
	cr_assert_eq(json_integer_value(json_object_get(node, "started")), 1);
	cr_assert_eq(json_integer_value(json_object_get(node,
							"inflight_starts")), 0);
	json_decref(node);

	status = http_request(&sbxd, "GET", "/healthz", NULL, &resp);
	cr_assert_eq(status, 200, "/healthz while serving: %d", status);
	http_resp_free(&resp);
}

static json_t *wait_exited(const char *id)
{
	int ret = sbx_wait_sandbox_state(&sbxd, id, "exited", 10000);

	cr_assert_eq(ret, 0, "sandbox %s not exited 10 s after its guest "
		     "ended", id);
	return sbx_get(&sbxd, id);
}

Test(api, guest_crash_reported, .timeout = 60)
{
	json_t *sb, *exit_info, *node;
	json_int_t pid, code;
	char id[80];

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);
	sb = sbx_get(&sbxd, id);
	pid = json_integer_value(json_object_get(sb, "pid"));
	json_decref(sb);

	/* Whatever exec returns, the sandbox must end as exited. */
	sbx_exec(&sbxd, id, "crash", NULL, &code);
	sb = wait_exited(id);
	exit_info = json_object_get(sb, "exit");
	cr_assert(json_is_object(exit_info), "crashed sandbox has no exit "
		  "object");
	cr_assert(json_is_string(json_object_get(exit_info, "reason")) &&
			  json_string_length(json_object_get(exit_info,
							     "reason")) > 0,
		  "exit.reason is not a non-empty string");
	cr_assert(json_is_integer(json_object_get(exit_info, "rip")),
		  "exit.rip is not an integer");
	cr_assert(json_is_integer(json_object_get(exit_info, "exit_code")),
		  "exit.exit_code is not an integer");
	cr_assert(json_is_string(json_object_get(exit_info, "message")),
		  "exit.message is not a string");
	cr_assert_str_neq(json_str(exit_info, "reason"), "stopped");
	json_decref(sb);
	cr_assert(!pid_alive(pid), "VMM %lld of a crashed guest still runs",
		  (long long)pid);

	node = sbx_node(&sbxd);
	cr_assert_eq(json_integer_value(json_object_get(node, "live")), 0);
	json_decref(node);
}

Test(api, guest_exit_code_reported, .timeout = 60)
{
	json_t *sb, *exit_info;
	json_int_t code;
	char id[80];

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);
	sbx_exec(&sbxd, id, "exit 7", NULL, &code);
	sb = wait_exited(id);
	exit_info = json_object_get(sb, "exit");
	cr_assert(json_is_object(exit_info));
	cr_assert_eq(json_integer_value(json_object_get(exit_info,
							"exit_code")), 7,
		     "guest exit code not reported");
	json_decref(sb);
}

/* Poll the list until a sandbox shows state `want`; copy its id. */
static int wait_listed_state(const char *want, char *id, size_t len,
			     int timeout_ms)
{
	int64_t end = harness_now_ms() + timeout_ms;
	json_t *list, *item;
	size_t i;

	for (;;) {
		list = list_sandboxes();
		json_array_foreach(list, i, item) {
			if (strcmp(json_str(item, "state"), want) != 0)
				continue;
			snprintf(id, len, "%s", json_str(item, "id"));
			json_decref(list);
			return 0;
		}
		json_decref(list);
		if (harness_now_ms() >= end)
			return -ETIMEDOUT;
		harness_sleep_ms(10);
	}
}

Test(api, starting_sandbox_listed, .timeout = 60)
{
	struct http_async slow;
	struct http_resp resp;
	char id[80], path[160];
	int status;
	json_t *sb;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(http_request_start(&slow, &sbxd, "POST", "/v1/sandboxes",
					"{\"boot_delay_ms\":1500}"), 0);
	cr_assert_eq(wait_listed_state("starting", id, sizeof(id), 5000), 0,
		     "a slow start never showed up as starting in the list");
	sb = sbx_get(&sbxd, id);
	cr_assert_str_eq(json_str(sb, "state"), "starting");
	json_decref(sb);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	status = http_request(&sbxd, "POST", path, "{\"command\":\"echo hi\"}",
			      &resp);
	sbx_assert_error(&resp, 409, NULL, "exec on a starting sandbox");
	http_resp_free(&resp);

	status = http_request_join(&slow, &resp);
	cr_assert_eq(status, 201, "slow create: %d %s", status,
		     status > 0 ? resp.body : strerror(-status));
	cr_assert_str_eq(json_str(resp.json, "id"), id);
	cr_assert_str_eq(json_str(resp.json, "state"), "running");
	http_resp_free(&resp);
}

Test(api, delete_while_starting, .timeout = 60)
{
	struct http_async slow;
	struct http_resp resp;
	char id[80], path[160], desc[256];
	json_t *node;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(http_request_start(&slow, &sbxd, "POST", "/v1/sandboxes",
					"{\"boot_delay_ms\":3000}"), 0);
	cr_assert_eq(wait_listed_state("starting", id, sizeof(id), 5000), 0,
		     "a slow start never showed up as starting in the list");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	status = http_request(&sbxd, "DELETE", path, NULL, &resp);
	cr_assert_eq(status, 200, "DELETE of a starting sandbox: %d %s", status,
		     status > 0 ? resp.body : strerror(-status));
	http_resp_free(&resp);

	/* The blocked create must get a response, and not a 201. */
	status = http_request_join(&slow, &resp);
	cr_assert(status > 0, "create of a deleted sandbox: no response: %s",
		  strerror(-status));
	cr_assert_neq(status, 201, "create of a sandbox deleted while "
		      "starting returned 201: %s", resp.body);
	http_resp_free(&resp);

	node = sbx_node(&sbxd);
	cr_assert_eq(json_integer_value(json_object_get(node,
							"inflight_starts")), 0);
	cr_assert_eq(json_integer_value(json_object_get(node, "live")), 0);
	json_decref(node);
	cr_assert_eq(sbxd_count_vmms(&sbxd, desc, sizeof(desc)), 0,
		     "VMM left after DELETE of a starting sandbox: %s", desc);
}

Test(api, stop_stubborn_kills, .timeout = 60)
{
	struct http_resp resp;
	char id[80], path[160];
	json_int_t pid;
	json_t *sb;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, "{\"ignore_stop\":true}", id,
				sizeof(id)), 201);
	sb = sbx_get(&sbxd, id);
	pid = json_integer_value(json_object_get(sb, "pid"));
	json_decref(sb);

	/* The guest ignores the request, so the grace ends in SIGKILL. */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", id);
	status = post_json(path, "{\"grace_ms\":500}", &resp);
	cr_assert_eq(status, 200, "stop of a stubborn guest: %d %s", status,
		     resp.body);
	cr_assert_str_eq(json_str(resp.json, "state"), "exited");
	cr_assert(json_is_object(json_object_get(resp.json, "exit")),
		  "killed sandbox has no exit object: %s", resp.body);
	http_resp_free(&resp);
	cr_assert(!pid_alive(pid), "VMM %lld still runs after the stop "
		  "response", (long long)pid);
}

Test(api, stop_cuts_sleep_short, .timeout = 60)
{
	struct http_async exec_req;
	struct http_resp resp;
	char id[80], path[160];
	const char *output;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);

	/* A long sleep is running when the stop request arrives. */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	cr_assert_eq(http_request_start(&exec_req, &sbxd, "POST", path,
					"{\"command\":\"sleep 30000\"}"), 0);
	harness_sleep_ms(300);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/stop", id);
	status = post_json(path, "{\"grace_ms\":10000}", &resp);
	cr_assert_eq(status, 200, "stop during sleep: %d %s", status,
		     resp.body);
	http_resp_free(&resp);

	/* The cut-short sleep must not report success. */
	status = http_request_join(&exec_req, &resp);
	cr_assert_eq(status, 200, "exec of the sleep: %d %s", status,
		     resp.body);
	cr_assert_eq(json_integer_value(json_object_get(resp.json,
							 "exit_code")), 130,
		     "interrupted sleep: %s", resp.body);
	output = json_str(resp.json, "output");
	cr_assert(strstr(output, "interrupted") != NULL,
		  "interrupted sleep output: %s", resp.body);
	http_resp_free(&resp);
}

Test(api, vmm_in_own_process_group, .timeout = 60)
{
	char id[80];
	json_int_t pid;
	json_t *sb;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);
	sb = sbx_get(&sbxd, id);
	pid = json_integer_value(json_object_get(sb, "pid"));
	json_decref(sb);

	/* Ctrl-C in sbxd's terminal signals its process group: the VMMs
	 * must not be in it, or the signal stops every guest at once. */
	cr_assert_gt(pid, 0);
	cr_assert_neq(getpgid((pid_t)pid), getpgid(sbxd.pid),
		      "VMM %lld shares sbxd's process group", (long long)pid);
	cr_assert_eq(getpgid((pid_t)pid), (pid_t)pid,
		     "VMM %lld does not lead its own process group",
		     (long long)pid);
}

Test(api, procfs_guest_rejected, .timeout = 30)
{
	struct http_resp resp;
	const char *message;
	int status;

	/* procfs files look regular, but reading one such as /proc/kmsg can
	 * block sbxd's only thread, so sbxd must not open them at all. */
	sbxd_start_checked(&sbxd, NULL, NULL);
	status = post_json("/v1/sandboxes", "{\"guest\":\"/proc/version\"}",
			   &resp);
	sbx_assert_error(&resp, 400, "guest", "procfs guest");
	message = json_string_value(json_object_get(
		json_object_get(resp.json, "error"), "message"));
	cr_assert(message && strstr(message, "pseudo file system"),
		  "procfs guest was read instead of rejected: %d %s", status,
		  resp.body);
	http_resp_free(&resp);
}

/* Send GET /v1/sandboxes over c with an optional Authorization value. */
static int tcp_list(struct http_conn *c, const char *authorization,
		    struct http_resp *resp)
{
	char request[512];
	int len;

	len = snprintf(request, sizeof(request),
		       "GET /v1/sandboxes HTTP/1.1\r\nHost: sbxd\r\n"
		       "%s%s%s\r\n",
		       authorization ? "Authorization: " : "",
		       authorization ? authorization : "",
		       authorization ? "\r\n" : "");
	cr_assert_eq(http_send_raw(c, request, (size_t)len), 0);
	return http_read_response(c, resp);
}

Test(api, tcp_token_required, .timeout = 60)
{
	static const char token[] = "itest-token-0123456789abcdef";
	const char *args[] = { "--listen", NULL, "--token-file", NULL, NULL };
	char listen[64], token_path[PATH_MAX];
	struct http_conn conn;
	struct http_resp resp;
	int port, fd;

	port = harness_free_port();
	cr_assert_gt(port, 0);
	snprintf(listen, sizeof(listen), "tcp:127.0.0.1:%d", port);
	snprintf(token_path, sizeof(token_path), "/tmp/sbxd-itest-token-%d",
		 getpid());
	fd = open(token_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "open %s: %s", token_path, strerror(errno));
	cr_assert_eq(write(fd, token, sizeof(token) - 1),
		     (ssize_t)sizeof(token) - 1);
	close(fd);
	args[1] = listen;
	args[3] = token_path;
	sbxd_start_checked(&sbxd, args, NULL);
	unlink(token_path);

	/* Without a token, and with a wrong one: 401, nothing served. */
	cr_assert_eq(http_connect_tcp(&sbxd, port, &conn), 0);
	cr_assert_eq(tcp_list(&conn, NULL, &resp), 401);
	sbx_assert_error(&resp, 401, NULL, "no token");
	http_resp_free(&resp);
	cr_assert_eq(tcp_list(&conn, "Bearer itest-token-wrong-000000", &resp),
		     401);
	http_resp_free(&resp);
	cr_assert_eq(tcp_list(&conn, "Basic aXRlc3Q6dG9rZW4=", &resp), 401);
	http_resp_free(&resp);

	/* The right token is served, and the unix socket needs none. */
	cr_assert_eq(tcp_list(&conn, "Bearer itest-token-0123456789abcdef",
			      &resp), 200);
	cr_assert(json_is_array(json_object_get(resp.json, "sandboxes")));
	http_resp_free(&resp);
	http_close(&conn);
	cr_assert_eq(http_request(&sbxd, "GET", "/v1/sandboxes", NULL, &resp),
		     200);
	http_resp_free(&resp);
}

Test(api, token_file_readable_exits_2, .timeout = 30)
{
	const char *args[] = { "--token-file", NULL, NULL };
	char token_path[PATH_MAX];
	int fd;

	harness_require_bins();
	snprintf(token_path, sizeof(token_path), "/tmp/sbxd-itest-token-%d",
		 getpid());
	fd = open(token_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fchmod(fd, 0644), 0);
	cr_assert_eq(write(fd, "itest-token-0123456789abcdef\n", 29), 29);
	close(fd);
	args[1] = token_path;
	cr_assert_eq(sbxd_spawn(&sbxd, NULL, args, NULL), 0);
	sbxd_assert_exit(&sbxd, 10000, 2);
	unlink(token_path);
	cr_assert(sbxd_log_contains(&sbxd, "chmod 600"),
		  "the error does not say how to fix the token file mode");
}

#define EXEC_THREADS 4

struct exec_job {
	pthread_t thread;
	const char *id;
	int index;
	int status;
	char output[64];
};

static void *exec_job_main(void *arg)
{
	struct exec_job *job = arg;
	char path[160], body[128];
	struct http_resp resp;
	json_t *out;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", job->id);
	for (int round = 0; round < 5; round++) {
		snprintf(body, sizeof(body),
			 "{\"command\":\"echo job%d round%d\"}", job->index,
			 round);
		job->status = http_request(&sbxd, "POST", path, body, &resp);
		out = json_object_get(resp.json, "output");
		snprintf(job->output, sizeof(job->output), "%s",
			 json_is_string(out) ? json_string_value(out) : "");
		http_resp_free(&resp);
		if (job->status != 200)
			break;
		snprintf(body, sizeof(body), "job%d round%d", job->index,
			 round);
		if (strcmp(job->output, body) != 0)
			break;
	}
	return NULL;
}

Test(api, concurrent_exec_matched, .timeout = 60)
{
	struct exec_job jobs[EXEC_THREADS];
	char id[80], want[64];

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);
	for (int i = 0; i < EXEC_THREADS; i++) {
		jobs[i] = (struct exec_job){ .id = id, .index = i };
		cr_assert_eq(pthread_create(&jobs[i].thread, NULL,
					    exec_job_main, &jobs[i]), 0);
	}
	for (int i = 0; i < EXEC_THREADS; i++)
		pthread_join(jobs[i].thread, NULL);
	/* Each response must carry its own request's output. */
	for (int i = 0; i < EXEC_THREADS; i++) {
		cr_assert_eq(jobs[i].status, 200, "job %d: exec returned %d",
			     i, jobs[i].status);
		snprintf(want, sizeof(want), "job%d round4", i);
		cr_assert_str_eq(jobs[i].output, want,
				 "job %d got another request's output", i);
	}
}

Test(api, client_gone_midstart, .timeout = 60)
{
	static const char req[] =
		"POST /v1/sandboxes HTTP/1.1\r\nHost: sbxd\r\n"
		"Content-Length: 22\r\n\r\n{\"boot_delay_ms\":1000}";
	struct http_conn c;
	json_t *node, *list, *item;
	size_t i;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	cr_assert_eq(http_send_raw(&c, req, strlen(req)), 0);
	cr_assert_eq(sbx_wait_inflight(&sbxd, 1, 5000), 0,
		     "the start was never admitted");
	http_close(&c);

	/* sbxd keeps serving and the start settles one way or the other. */
	cr_assert_eq(sbx_wait_inflight(&sbxd, 0, 10000), 0,
		     "inflight_starts stuck after the client went away");
	list = list_sandboxes();
	json_array_foreach(list, i, item)
		cr_assert(strcmp(json_str(item, "state"), "starting") != 0,
			  "sandbox %s stuck in starting", json_str(item, "id"));
	node = sbx_node(&sbxd);
	cr_assert_eq((size_t)json_integer_value(json_object_get(node, "live")),
		     json_array_size(list),
		     "live count does not match the list after the client "
		     "went away");
	json_decref(node);
	json_decref(list);
	cr_assert(sbxd_running(&sbxd));
}

Test(api, many_sandboxes, .timeout = 90)
{
	char ids[16][80], path[160];
	struct http_resp resp;
	json_t *list;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, ids[i],
					sizeof(ids[i])), 201, "create %d", i);
	list = list_sandboxes();
	cr_assert_eq(json_array_size(list), 16);
	for (int i = 0; i < 16; i++)
		cr_assert(list_find(list, ids[i]), "%s not listed", ids[i]);
	json_decref(list);
	for (int i = 0; i < 16; i++) {
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(ids[i], ids[j], "duplicate id %s",
					  ids[i]);
		cr_assert_lt(snprintf(path, sizeof(path), "/v1/sandboxes/%s",
				      ids[i]), (int)sizeof(path));
		status = http_request(&sbxd, "DELETE", path, NULL, &resp);
		cr_assert_eq(status, 200, "DELETE %s: %d", ids[i], status);
		http_resp_free(&resp);
	}
	list = list_sandboxes();
	cr_assert_eq(json_array_size(list), 0);
	json_decref(list);
	cr_assert_eq(sbxd_count_vmms(&sbxd, NULL, 0), 0);
}

Test(api, tcp_listen_serves, .timeout = 60)
{
	char listen[64], port_text[16];
	const char *args[] = { "--listen", listen, NULL };
	struct http_resp resp;
	struct http_conn c;
	int port, status;

	port = harness_free_port();
	cr_assert_gt(port, 0, "no free loopback port: %s", strerror(-port));
	snprintf(listen, sizeof(listen), "tcp:127.0.0.1:%d", port);
	snprintf(port_text, sizeof(port_text), "%d", port);
	sbxd_start_checked(&sbxd, args, NULL);

	cr_assert_eq(http_connect_tcp(&sbxd, port, &c), 0,
		     "sbxd --listen %s does not accept TCP", listen);
	status = http_conn_request(&c, "GET", "/v1/node", NULL, &resp);
	cr_assert_eq(status, 200, "GET /v1/node over TCP: %d", status);
	http_resp_free(&resp);
	http_close(&c);
	/* The unix socket keeps serving too (sbxd_start waited on it). */
	status = http_request(&sbxd, "GET", "/healthz", NULL, &resp);
	cr_assert_eq(status, 200, "GET /healthz over unix: %d", status);
	http_resp_free(&resp);
	cr_assert(sbxd_log_contains(&sbxd, port_text),
		  "the log does not name the TCP port %d", port);
}

Test(api, idle_conn_closed, .timeout = 30)
{
	static const char *const args[] = { "--idle-timeout", "1s", NULL };
	struct http_resp resp;
	struct http_conn idle, used;
	int status;

	sbxd_start_checked(&sbxd, args, NULL);
	cr_assert_eq(http_connect(&sbxd, &idle), 0);
	cr_assert_eq(http_connect(&sbxd, &used), 0);
	status = http_conn_request(&used, "GET", "/healthz", NULL, &resp);
	cr_assert_eq(status, 200);
	http_resp_free(&resp);

	/* Idle clients must not hold connection slots forever. */
	cr_assert_eq(http_wait_closed(&idle, 10000), 1,
		     "a connection that never sent a byte is still open 10 s "
		     "after --idle-timeout 1s");
	cr_assert_eq(http_wait_closed(&used, 10000), 1,
		     "an idle kept-alive connection is still open 10 s after "
		     "--idle-timeout 1s");
	http_close(&idle);
	http_close(&used);
}

Test(api, exec_output_escapes, .timeout = 60)
{
	static const char *const texts[] = {
		"a\"b\\c",
		"caf\xc3\xa9 \xe4\xb8\xad",
		"tab\there",
		"line\nnext",
		"ctl\x01\x1f",
	};
	char id[80], command[128], *out = NULL;
	json_int_t code;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		snprintf(command, sizeof(command), "echo %s", texts[i]);
		cr_assert_eq(sbx_exec(&sbxd, id, command, &out, &code), 200,
			     "exec %zu", i);
		cr_assert_str_eq(out ? out : "(null)", texts[i],
				 "echo did not return its text %zu unchanged",
				 i);
		free(out);
	}
}

Test(api, chunked_create_accepted, .timeout = 60)
{
	static const char req[] =
		"POST /v1/sandboxes HTTP/1.1\r\nHost: sbxd\r\n"
		"Transfer-Encoding: chunked\r\n\r\n"
		"9\r\n{\"vcpus\":\r\n2\r\n1}\r\n0\r\n\r\n";
	struct http_resp resp;
	struct http_conn c;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	cr_assert_eq(http_send_raw(&c, req, strlen(req)), 0);
	/* HTTP/1.1 servers must take chunked bodies (RFC 9112, 7.1). */
	status = http_read_response(&c, &resp);
	cr_assert_eq(status, 201, "chunked create: expected 201, got %d: %s",
		     status, status > 0 ? resp.body : strerror(-status));
	http_resp_free(&resp);
	http_close(&c);
}

Test(api, create_without_length_411, .timeout = 60)
{
	static const char req[] = "POST /v1/sandboxes HTTP/1.1\r\n"
				  "Host: sbxd\r\n\r\n";
	struct http_resp resp;
	struct http_conn c;
	json_t *list;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	cr_assert_eq(http_send_raw(&c, req, strlen(req)), 0);
	cr_assert(http_read_response(&c, &resp) > 0);
	sbx_assert_error(&resp, 411, NULL, "create without Content-Length");
	http_resp_free(&resp);
	http_close(&c);
	list = list_sandboxes();
	cr_assert_eq(json_array_size(list), 0);
	json_decref(list);
}

Test(api, max_requests_closes, .timeout = 60)
{
	static const char *const args[] = { "--max-requests", "2", NULL };
	struct http_resp resp;
	struct http_conn c;

	sbxd_start_checked(&sbxd, args, NULL);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	cr_assert_eq(http_conn_request(&c, "GET", "/healthz", NULL, &resp), 200);
	cr_assert(resp.keep_alive, "first of 2 responses closes");
	http_resp_free(&resp);
	cr_assert_eq(http_conn_request(&c, "GET", "/healthz", NULL, &resp), 200);
	cr_assert(!resp.keep_alive,
		  "the last response under --max-requests 2 keeps the "
		  "connection (Connection: %s)", resp.connection);
	http_resp_free(&resp);
	cr_assert_eq(http_wait_closed(&c, 5000), 1,
		     "connection open after its last allowed request");
	http_close(&c);
}

Test(api, max_connections_enforced, .timeout = 60)
{
	static const char *const args[] = { "--max-connections", "2", NULL };
	struct http_conn held[2], extra;
	struct http_resp resp;
	int status;

	sbxd_start_checked(&sbxd, args, NULL);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(http_connect(&sbxd, &held[i]), 0);
		cr_assert_eq(http_conn_request(&held[i], "GET", "/healthz",
					       NULL, &resp), 200);
		http_resp_free(&resp);
	}
	cr_assert_eq(http_connect(&sbxd, &extra), 0);
	status = http_conn_request(&extra, "GET", "/healthz", NULL, &resp);
	cr_assert_lt(status, 0, "a third connection under --max-connections "
		     "2 was served: %d", status);
	http_close(&extra);

	/* A freed slot serves again. */
	http_close(&held[0]);
	for (int64_t end = harness_now_ms() + 5000;;) {
		status = http_request(&sbxd, "GET", "/healthz", NULL, &resp);
		http_resp_free(&resp);
		if (status == 200 || harness_now_ms() >= end)
			break;
		harness_sleep_ms(20);
	}
	cr_assert_eq(status, 200, "no connection served after one of two was "
		     "closed");
	http_close(&held[1]);
}

/* sbxd keeps at most 256 ended sandboxes listed and drops the oldest. */
Test(api, ended_sandboxes_capped, .timeout = 120)
{
	enum { ENDED = 260, KEPT = 256 };
	static char ids[ENDED][80];
	char path[160], dir[PATH_MAX + 96], running[80];
	struct http_resp resp;
	struct http_conn c;
	json_t *list, *id;
	int status;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, running, sizeof(running)),
		     201);
	cr_assert_eq(http_connect(&sbxd, &c), 0);
	for (int i = 0; i < ENDED; i++) {
		status = http_conn_request(&c, "POST", "/v1/sandboxes",
					   CREATE_BODY, &resp);
		cr_assert_eq(status, 201, "create %d: %d", i, status);
		id = json_object_get(resp.json, "id");
		snprintf(ids[i], sizeof(ids[i]), "%s", json_string_value(id));
		http_resp_free(&resp);
		cr_assert_lt(snprintf(path, sizeof(path),
				      "/v1/sandboxes/%s/stop", ids[i]),
			     (int)sizeof(path));
		status = http_conn_request(&c, "POST", path, "{}", &resp);
		cr_assert_eq(status, 200, "stop %d: %d", i, status);
		http_resp_free(&resp);
	}
	http_close(&c);

	list = list_sandboxes();
	cr_assert_eq(json_array_size(list), KEPT + 1,
		     "expected %d ended plus 1 running listed, got %zu", KEPT,
		     json_array_size(list));
	cr_assert(list_find(list, running), "the running sandbox was dropped");
	for (int i = 0; i < ENDED; i++) {
		bool dropped = i < ENDED - KEPT;

		cr_assert_eq(list_find(list, ids[i]) == NULL, dropped,
			     "ended sandbox %d of %d: expected %s", i, ENDED,
			     dropped ? "dropped" : "listed");
		cr_assert_lt(snprintf(dir, sizeof(dir), "%s/sandboxes/%s",
				      sbxd.state_dir, ids[i]),
			     (int)sizeof(dir));
		cr_assert_eq(harness_path_exists(dir), !dropped,
			     "ended sandbox %d: directory %s", i,
			     dropped ? "left behind" : "missing");
	}
	json_decref(list);
}

Test(api, vmm_killed_reported, .timeout = 60)
{
	json_t *sb, *exit_info, *node;
	json_int_t pid;
	char id[80], *out = NULL;
	json_int_t code;

	sbxd_start_checked(&sbxd, NULL, NULL);
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);
	sb = sbx_get(&sbxd, id);
	pid = json_integer_value(json_object_get(sb, "pid"));
	json_decref(sb);

	/* A real fault: the VMM dies without sending its exit report. */
	cr_assert_eq(kill((pid_t)pid, SIGKILL), 0, "kill VMM %lld: %s",
		     (long long)pid, strerror(errno));
	sb = wait_exited(id);
	exit_info = json_object_get(sb, "exit");
	cr_assert(json_is_object(exit_info), "killed VMM left no exit object");
	cr_assert_str_eq(json_str(exit_info, "reason"), "vmm_exited");
	cr_assert_eq(json_integer_value(json_object_get(exit_info,
							"exit_code")), -1);
	json_decref(sb);

	node = sbx_node(&sbxd);
	cr_assert_eq(json_integer_value(json_object_get(node, "live")), 0);
	json_decref(node);
	/* sbxd itself goes on serving new sandboxes. */
	cr_assert_eq(sbx_create(&sbxd, CREATE_BODY, id, sizeof(id)), 201);
	cr_assert_eq(sbx_exec(&sbxd, id, "echo ok", &out, &code), 200);
	cr_assert_str_eq(out ? out : "(null)", "ok");
	free(out);
}
