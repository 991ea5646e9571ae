// SPDX-License-Identifier: MIT
/*
 * sbxctl text output: tables, detail views, node status and error
 * messages, checked against exact expected text.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/format.h"

/* 2026-01-02T03:04:05Z in ms since the epoch. */
#define T0_MS 1767323045000LL

struct capture {
	FILE *out;
	char *text;
	size_t len;
};

static void capture_open(struct capture *c)
{
	c->text = NULL;
	c->len = 0;
	c->out = open_memstream(&c->text, &c->len);
	cr_assert_not_null(c->out, "open_memstream failed");
}

/* Close the stream and return its text; the capture owns it. */
static const char *capture_close(struct capture *c)
{
	fclose(c->out);
	return c->text;
}

static json_t *parse(const char *text)
{
	json_error_t error;
	json_t *root = json_loads(text, 0, &error);

	cr_assert_not_null(root, "bad test JSON: %s", error.text);
	return root;
}

Test(format, age)
{
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
		{ -5000, "0s" },	{ 0, "0s" },
		{ 59999, "59s" },	{ 60000, "1m0s" },
		{ 192000, "3m12s" },	{ 3600000, "1h0m" },
		{ 18120000, "5h2m" },	{ 86400000, "1d0h" },
		{ 370800000, "4d7h" },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fmt_age(buf, sizeof(buf), cases[i].ms);
		cr_assert_str_eq(buf, cases[i].text, "age of %lld ms",
				 (long long)cases[i].ms);
	}
}

Test(format, parse_time_forms)
{
	static const char *const same[] = {
		"\"2026-01-02T03:04:05Z\"",
		"\"2026-01-02T04:04:05+01:00\"",
		"\"2026-01-01T22:04:05-05:00\"",
		"1767323045",
		"1767323045000",
	};
	int64_t ms;

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		json_t *value = json_loads(same[i], JSON_DECODE_ANY, NULL);

		cr_assert_eq(fmt_parse_time(value, &ms), 0, "%s", same[i]);
		cr_assert_eq(ms, T0_MS, "%s gave %lld", same[i],
			     (long long)ms);
		json_decref(value);
	}
}

Test(format, parse_time_fraction_and_errors)
{
	static const char *const bad[] = {
		"\"2026-01-02\"", "\"2026-13-02T03:04:05Z\"",
		"\"2026-01-02T03:04:05\"", "\"2026-01-02T03:04:05.Z\"",
		"\"2026-01-02T03:04:05Zjunk\"", "null", "-1",
	};
	json_t *value = json_string("2026-01-02T03:04:05.25Z");
	int64_t ms;

	cr_assert_eq(fmt_parse_time(value, &ms), 0);
	cr_assert_eq(ms, T0_MS + 250);
	json_decref(value);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		value = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		cr_assert_eq(fmt_parse_time(value, &ms), -EINVAL,
			     "accepted %s", bad[i]);
		json_decref(value);
	}
}

Test(format, sandbox_table)
{
	json_t *list = parse(
		"[{\"id\":\"sb-1\",\"state\":\"running\",\"pid\":4242,"
		"\"memory_mib\":16,\"ready_ms\":3,"
		"\"created_at\":\"2026-01-02T03:04:05Z\"},"
		"{\"id\":\"sb-long-name\",\"state\":\"starting\",\"pid\":null,"
		"\"memory_mib\":256,\"ready_ms\":null,"
		"\"created_at\":\"2026-01-02T03:03:00Z\"}]");
	struct capture c;

	capture_open(&c);
	cr_assert_eq(fmt_sandbox_table(c.out, list, T0_MS + 42000), 0);
	cr_assert_str_eq(capture_close(&c),
			 "ID            STATE     PID   MEM     READY_MS  AGE\n"
			 "sb-1          running   4242  16MiB   3         42s\n"
			 "sb-long-name  starting  -     256MiB  -         1m47s\n");
	free(c.text);
	json_decref(list);
}

Test(format, empty_table_has_header)
{
	json_t *list = json_array();
	struct capture c;

	capture_open(&c);
	cr_assert_eq(fmt_sandbox_table(c.out, list, T0_MS), 0);
	cr_assert_str_eq(capture_close(&c),
			 "ID  STATE  PID  MEM  READY_MS  AGE\n");
	free(c.text);
	json_decref(list);
}

Test(format, sandbox_detail)
{
	json_t *sb = parse(
		"{\"id\":\"sb-1\",\"state\":\"exited\",\"pid\":null,"
		"\"created_at\":\"2026-01-02T03:04:05Z\",\"ready_ms\":1.25,"
		"\"metadata\":{\"team\":\"red\",\"n\":2},"
		"\"exit\":{\"reason\":\"crash\",\"exit_code\":-1,"
		"\"rip\":2101264,\"message\":\"triple fault\"}}");
	struct capture c;

	capture_open(&c);
	fmt_sandbox_detail(c.out, sb, T0_MS + 3600000);
	cr_assert_str_eq(capture_close(&c),
			 "id:         sb-1\n"
			 "state:      exited\n"
			 "pid:        -\n"
			 "created_at: 2026-01-02T03:04:05Z (1h0m ago)\n"
			 "ready_ms:   1.2\n"
			 "metadata:   team=red, n=2\n"
			 "exit:       crash, exit code -1, rip 0x201010: "
			 "triple fault\n");
	free(c.text);
	json_decref(sb);
}

Test(format, sandbox_summary)
{
	json_t *running = parse("{\"id\":\"sb-2\",\"state\":\"stopping\","
				"\"exit\":null}");
	json_t *exited = parse("{\"id\":\"sb-3\",\"state\":\"exited\","
			       "\"exit\":{\"reason\":\"stopped\","
			       "\"exit_code\":0,\"message\":\"\"}}");
	struct capture c;

	capture_open(&c);
	fmt_sandbox_summary(c.out, running);
	fmt_sandbox_summary(c.out, exited);
	cr_assert_str_eq(capture_close(&c),
			 "sb-2: stopping\n"
			 "sb-3: exited (stopped, exit code 0)\n");
	free(c.text);
	json_decref(running);
	json_decref(exited);
}

static const char node_json[] =
	"{\"state\":\"draining\",\"inflight_starts\":0,\"live\":1,"
	"\"sandboxes\":3,\"admitted\":3,\"rejected\":1,\"started\":3,"
	"\"failed\":0,\"draining_for_ms\":1500,\"gate\":\"bpf\","
	"\"max_sandboxes\":5000,\"pid\":77,\"version\":\"0.1.0\"}";

Test(format, node_detail)
{
	json_t *node = parse(node_json);
	struct capture c;

	capture_open(&c);
	fmt_node(c.out, node);
	cr_assert_str_eq(capture_close(&c),
			 "state:           draining\n"
			 "inflight_starts: 0\n"
			 "live:            1\n"
			 "sandboxes:       3\n"
			 "admitted:        3\n"
			 "rejected:        1\n"
			 "started:         3\n"
			 "failed:          0\n"
			 "draining_for_ms: 1500\n"
			 "gate:            bpf\n"
			 "max_sandboxes:   5000\n"
			 "pid:             77\n"
			 "version:         0.1.0\n");
	free(c.text);
	json_decref(node);
}

Test(format, node_line)
{
	json_t *node = parse(node_json);
	json_t *serving = parse("{\"state\":\"serving\",\"live\":2,"
				"\"draining_for_ms\":null}");
	char line[256];

	fmt_node_line(line, sizeof(line), node);
	cr_assert_str_eq(line, "draining  live 1  starting 0  admitted 3  "
			       "rejected 1  started 3  failed 0  "
			       "draining for 1.5s");
	fmt_node_line(line, sizeof(line), serving);
	cr_assert_str_eq(line, "serving  live 2");

	fmt_node_line(line, 12, node);
	cr_assert_eq(strlen(line), 11, "line not cut to the buffer");

	/* The status alone leaves out the time, which changes every poll. */
	fmt_node_status(line, sizeof(line), node);
	cr_assert_str_eq(line, "draining  live 1  starting 0  admitted 3  "
			       "rejected 1  started 3  failed 0");
	fmt_node_status(line, sizeof(line), serving);
	cr_assert_str_eq(line, "serving  live 2");
	json_decref(node);
	json_decref(serving);
}

Test(format, force_stop)
{
	json_t *result = parse("{\"requested\":3,\"stopped\":[\"a\",\"b\"],"
			       "\"failed\":[{\"id\":\"c\","
			       "\"error\":\"kill failed\"}]}");
	json_t *none = parse("{\"requested\":0,\"stopped\":[],"
			     "\"failed\":[]}");
	struct capture c;

	capture_open(&c);
	fmt_force_stop(c.out, result);
	fmt_force_stop(c.out, none);
	cr_assert_str_eq(capture_close(&c),
			 "requested: 3\n"
			 "stopped:   a, b\n"
			 "failed:    \n"
			 "  c: kill failed\n"
			 "requested: 0\n"
			 "stopped:   -\n"
			 "failed:    -\n");
	free(c.text);
	json_decref(result);
	json_decref(none);
}

Test(format, error_messages)
{
	char msg[256];

	fmt_error(msg, sizeof(msg), 503,
		  "{\"error\":{\"code\":\"draining\","
		  "\"message\":\"node is draining\"}}", 1);
	cr_assert_str_eq(msg, "node is draining (retry after 1 s)");

	fmt_error(msg, sizeof(msg), 404,
		  "{\"error\":{\"code\":\"not_found\"}}", -1);
	cr_assert_str_eq(msg,
			 "sbxd returned HTTP 404 with error code 'not_found'");

	fmt_error(msg, sizeof(msg), 502, "Bad Gateway\r\nmore", -1);
	cr_assert_str_eq(msg, "sbxd returned HTTP 502: Bad Gateway");

	fmt_error(msg, sizeof(msg), 500, NULL, -1);
	cr_assert_str_eq(msg, "sbxd returned HTTP 500 with an empty body");
}

Test(format, pretty_json)
{
	struct capture c;

	capture_open(&c);
	fmt_pretty_json(c.out, "{\"b\":1,\"a\":[true,null]}");
	fmt_pretty_json(c.out, "not json");
	cr_assert_str_eq(capture_close(&c),
			 "{\n"
			 "  \"b\": 1,\n"
			 "  \"a\": [\n"
			 "    true,\n"
			 "    null\n"
			 "  ]\n"
			 "}\n"
			 "not json\n");
	free(c.text);
}

Test(format, pretty_json_verbatim)
{
	struct capture c;

	/* Numbers keep their digits; strings keep escapes, commas, braces. */
	capture_open(&c);
	fmt_pretty_json(c.out, " {\"r\" : 3.355131, \"s\":\"a,\\\"{[\\u00e9\","
			       "\"e\":{},\"l\":[ ],\"n\":[1.50e+2]}\n");
	cr_assert_str_eq(capture_close(&c),
			 "{\n"
			 "  \"r\": 3.355131,\n"
			 "  \"s\": \"a,\\\"{[\\u00e9\",\n"
			 "  \"e\": {},\n"
			 "  \"l\": [],\n"
			 "  \"n\": [\n"
			 "    1.50e+2\n"
			 "  ]\n"
			 "}\n");
	free(c.text);
}
