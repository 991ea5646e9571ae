// SPDX-License-Identifier: MIT
/*
 * Unit tests of the API's body decoders: create, exec and stop bodies,
 * their defaults, limits and error messages, and UTF-8 cleaning of output.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/api.h"
#include "sbxd/guest.h"

#define GUEST SBX_SOURCE_DIR "/CMakeLists.txt" /* any regular file */

static int create(const char *body, struct sandbox_params *p, char *err)
{
	return api_decode_create(body, strlen(body), "/default/guest", p, err,
				 512);
}

Test(api_decode, create_defaults)
{
	struct sandbox_params p;
	char err[512];

	cr_assert_eq(create("", &p, err), 0, "empty body: %s", err);
	cr_assert_eq(p.vcpus, 1);
	cr_assert_eq(p.memory_mib, 16);
	cr_assert_str_eq(p.guest, "/default/guest");
	cr_assert_str_eq(p.args, "");
	cr_assert_eq(p.boot_delay_ms, 0);
	cr_assert_not(p.ignore_stop);
	cr_assert(json_is_object(p.metadata));
	cr_assert_eq(json_object_size(p.metadata), 0);
	sandbox_params_free(&p);
}

Test(api_decode, create_all_fields)
{
	struct sandbox_params p;
	char err[512];
	const char *body = "{\"vcpus\":1,\"memory_mib\":4096,\"guest\":\"" GUEST
			   "\",\"args\":\"a b\",\"boot_delay_ms\":600000,"
			   "\"ignore_stop\":true,\"metadata\":{\"k\":\"v\"}}";

	cr_assert_eq(create(body, &p, err), 0, "%s", err);
	cr_assert_eq(p.memory_mib, 4096);
	cr_assert_str_eq(p.guest, GUEST);
	cr_assert_str_eq(p.args, "a b");
	cr_assert_eq(p.boot_delay_ms, 600000);
	cr_assert(p.ignore_stop);
	cr_assert_str_eq(json_string_value(json_object_get(p.metadata, "k")),
			 "v");
	sandbox_params_free(&p);
}

Test(api_decode, create_null_guest_is_default)
{
	struct sandbox_params p;
	char err[512];

	cr_assert_eq(create("{\"guest\":null}", &p, err), 0, "%s", err);
	cr_assert_str_eq(p.guest, "/default/guest");
	sandbox_params_free(&p);
}

Test(api_decode, create_errors_name_field)
{
	static const struct {
		const char *body;
		const char *field;
	} bad[] = {
		{ "{\"vcpus\":\"1\"}", "vcpus" },
		{ "{\"vcpus\":2}", "vcpus" },
		{ "{\"vcpus\":0}", "vcpus" },
		{ "{\"memory_mib\":3}", "memory_mib" },
		{ "{\"memory_mib\":4097}", "memory_mib" },
		{ "{\"memory_mib\":-16}", "memory_mib" },
		{ "{\"memory_mib\":16.5}", "memory_mib" },
		{ "{\"memory_mib\":\"16\"}", "memory_mib" },
		{ "{\"boot_delay_ms\":600001}", "boot_delay_ms" },
		{ "{\"boot_delay_ms\":-1}", "boot_delay_ms" },
		{ "{\"ignore_stop\":\"yes\"}", "ignore_stop" },
		{ "{\"args\":5}", "args" },
		{ "{\"guest\":7}", "guest" },
		{ "{\"guest\":\"relative/path\"}", "guest" },
		{ "{\"guest\":\"/no/such/guest\"}", "guest" },
		{ "{\"guest\":\"" SBX_SOURCE_DIR "\"}", "guest" },
		{ "{\"metadata\":\"x\"}", "metadata" },
		{ "{\"metadata\":{\"k\":1}}", "metadata.k" },
		{ "{\"bogus\":1}", "bogus" },
		{ "{\"a\":1,\"b\":2}", "a, b" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct sandbox_params p;
		char err[512] = "";

		cr_assert_eq(create(bad[i].body, &p, err), -EINVAL,
			     "%s accepted", bad[i].body);
		cr_assert(strstr(err, bad[i].field),
			  "%s: message does not name %s: %s", bad[i].body,
			  bad[i].field, err);
	}
}

Test(api_decode, create_args_limit)
{
	char body[2048];
	char args[1025];
	struct sandbox_params p;
	char err[512];

	memset(args, 'a', 1023);
	args[1023] = '\0';
	snprintf(body, sizeof(body), "{\"args\":\"%s\"}", args);
	cr_assert_eq(create(body, &p, err), 0, "1023 bytes: %s", err);
	cr_assert_eq(strlen(p.args), 1023);
	sandbox_params_free(&p);

	memset(args, 'a', 1024);
	args[1024] = '\0';
	snprintf(body, sizeof(body), "{\"args\":\"%s\"}", args);
	cr_assert_eq(create(body, &p, err), -EINVAL, "1024 bytes accepted");
	cr_assert(strstr(err, "args"), "message: %s", err);
}

Test(api_decode, create_metadata_limit)
{
	static char body[8192];
	char value[4096];
	struct sandbox_params p;
	char err[512];

	/* Key "k" plus 4095 bytes of value is exactly 4 KiB. */
	memset(value, 'v', 4095);
	value[4095] = '\0';
	snprintf(body, sizeof(body), "{\"metadata\":{\"k\":\"%s\"}}", value);
	cr_assert_eq(create(body, &p, err), 0, "4096 bytes: %s", err);
	sandbox_params_free(&p);

	snprintf(body, sizeof(body), "{\"metadata\":{\"kk\":\"%s\"}}", value);
	cr_assert_eq(create(body, &p, err), -EINVAL, "4097 bytes accepted");
	cr_assert(strstr(err, "metadata"), "message: %s", err);
}

Test(api_decode, malformed_json_has_position)
{
	struct sandbox_params p;
	char err[512];

	cr_assert_eq(create("{\n  \"vcpus\": ,}", &p, err), -EINVAL);
	cr_assert(strstr(err, "line 2"), "message: %s", err);
	cr_assert(strstr(err, "column"), "message: %s", err);
	cr_assert_eq(create("[]", &p, err), -EINVAL);
	cr_assert(strstr(err, "object"), "message: %s", err);
	cr_assert_eq(create("{\"vcpus\":1,\"vcpus\":1}", &p, err), -EINVAL,
		     "duplicate keys accepted");
}

Test(api_decode, exec_body)
{
	struct exec_params e;
	char err[512];
	const char *body = "{\"command\":\"echo hi\",\"timeout_ms\":250}";

	cr_assert_eq(api_decode_exec(body, strlen(body), &e, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(e.command, "echo hi");
	cr_assert_eq(e.timeout_ms, 250);
	free(e.command);
}

Test(api_decode, exec_errors)
{
	static const struct {
		const char *body;
		const char *field;
	} bad[] = {
		{ "{}", "command" },
		{ "{\"command\":\"\"}", "command" },
		{ "{\"command\":5}", "command" },
		{ "{\"command\":\"x\",\"timeout_ms\":\"x\"}", "timeout_ms" },
		{ "{\"command\":\"x\",\"timeout_ms\":-1}", "timeout_ms" },
		{ "{\"command\":\"x\",\"extra\":1}", "extra" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct exec_params e;
		char err[512] = "";

		cr_assert_eq(api_decode_exec(bad[i].body, strlen(bad[i].body),
					     &e, err, sizeof(err)), -EINVAL,
			     "%s accepted", bad[i].body);
		cr_assert(strstr(err, bad[i].field),
			  "%s: message does not name %s: %s", bad[i].body,
			  bad[i].field, err);
	}
}

Test(api_decode, grace_body)
{
	uint64_t grace = 0;
	char err[512];

	cr_assert_eq(api_decode_grace("", 0, 10000, &grace, err, sizeof(err)),
		     0);
	cr_assert_eq(grace, 10000, "empty body takes the default");
	cr_assert_eq(api_decode_grace("{\"grace_ms\":0}", 14, 10000, &grace,
				      err, sizeof(err)), 0);
	cr_assert_eq(grace, 0);
	cr_assert_eq(api_decode_grace("{\"grace_ms\":-1}", 15, 10000, &grace,
				      err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "grace_ms"), "message: %s", err);
	cr_assert_eq(api_decode_grace("{\"grace\":1}", 11, 10000, &grace, err,
				      sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "grace"), "message: %s", err);
}

Test(api_json, bytes_clean_utf8)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
		{ "hi", 2, "hi" },
		{ "caf\xc3\xa9", 5, "caf\xc3\xa9" },
		{ "a\xff" "b", 3, "a\xef\xbf\xbd" "b" },
		{ "\xc3", 1, "\xef\xbf\xbd" },			/* truncated */
		{ "\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd" },	/* overlong */
		{ "\xed\xa0\x80", 3,
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },	/* surrogate */
		{ "\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		json_t *s = api_json_bytes(cases[i].in, cases[i].len);

		cr_assert_not_null(s, "case %zu", i);
		cr_assert_str_eq(json_string_value(s), cases[i].out,
				 "case %zu", i);
		json_decref(s);
	}
}

Test(api_json, bytes_keep_nul)
{
	json_t *s = api_json_bytes("a\0b", 3);

	cr_assert_not_null(s);
	cr_assert_eq(json_string_length(s), 3);
	json_decref(s);
}

Test(api_decode, nul_in_string_message)
{
	static const char *const bodies[] = {
		"{\"args\":\"a\\u0000b\"}",
		"{\"metadata\":{\"k\\u0000\":\"v\"}}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
		struct sandbox_params p;
		char err[512] = "";

		cr_assert_eq(create(bodies[i], &p, err), -EINVAL,
			     "%s accepted", bodies[i]);
		cr_assert(strstr(err, "strings must not contain NUL"),
			  "%s: message does not explain the NUL: %s",
			  bodies[i], err);
		cr_assert_null(strstr(err, "JSON_ALLOW_NUL"),
			       "%s: message names jansson's flag: %s",
			       bodies[i], err);
	}
}

/* The default guest that the build produces, sbx-agent. */
static int create_agent(const char *body, struct sandbox_params *p,
			char *err)
{
	return api_decode_create(body, strlen(body), SBX_BIN_DIR "/sbx-agent",
				 p, err, 512);
}

Test(api_decode, memory_too_small_for_guest)
{
	struct guest_layout layout;
	struct sandbox_params p;
	char body[64], want[64];
	char err[512] = "";
	unsigned int need;

	cr_assert_eq(guest_read_layout(SBX_BIN_DIR "/sbx-agent", &layout), 0,
		     "the build's sbx-agent is missing or not an ELF");
	need = layout.min_memory_mib;

	snprintf(body, sizeof(body), "{\"memory_mib\":%u}", need - 1);
	cr_assert_eq(create_agent(body, &p, err), -EINVAL,
		     "%u MiB accepted for sbx-agent, which needs %u", need - 1,
		     need);
	snprintf(want, sizeof(want), "memory_mib %u", need - 1);
	cr_assert(strstr(err, want), "message lacks \"%s\": %s", want, err);
	cr_assert(strstr(err, "sbx-agent"), "message lacks the guest: %s",
		  err);
	snprintf(want, sizeof(want), "at least %u MiB", need);
	cr_assert(strstr(err, want), "message lacks \"%s\": %s", want, err);

	snprintf(body, sizeof(body), "{\"memory_mib\":%u}", need);
	cr_assert_eq(create_agent(body, &p, err), 0, "%u MiB rejected: %s",
		     need, err);
	sandbox_params_free(&p);
}

Test(api_decode, memory_check_skips_non_elf)
{
	struct sandbox_params p;
	char err[512] = "";

	/* sbx-vmm reports a guest that is not an ELF, not the decoder. */
	cr_assert_eq(create("{\"memory_mib\":4,\"guest\":\"" GUEST "\"}", &p,
			    err), 0, "%s", err);
	sandbox_params_free(&p);
}

Test(api_decode, exec_trims_leading_blanks)
{
	struct exec_params e;
	char err[512];
	const char *body = "{\"command\":\" \\t echo hi\"}";
	const char *blank = "{\"command\":\"   \"}";

	cr_assert_eq(api_decode_exec(body, strlen(body), &e, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(e.command, "echo hi");
	free(e.command);
	cr_assert_eq(api_decode_exec(blank, strlen(blank), &e, err,
				     sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "command"), "message: %s", err);
}

Test(api_decode, non_object_bodies)
{
	static const char *const bodies[] = { "null", "[1,2]", "5", "\"x\"" };

	for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
		char err[512] = "";

		cr_assert_eq(api_decode_empty(bodies[i], strlen(bodies[i]), err,
					      sizeof(err)), -EINVAL,
			     "%s accepted", bodies[i]);
		cr_assert_str_eq(err, "request body must be a JSON object",
				 "%s: %s", bodies[i], err);
	}
}

Test(api_decode, empty_bodies)
{
	char err[512] = "";

	cr_assert_eq(api_decode_empty("", 0, err, sizeof(err)), 0);
	cr_assert_eq(api_decode_empty("{}", 2, err, sizeof(err)), 0);
	cr_assert_eq(api_decode_empty("{\"a\":1,\"b\":2}", 13, err,
				      sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "unknown fields: a, b"), "message: %s", err);
}

Test(api_decode, snapshot_body)
{
	struct snapshot_params sp;
	char err[512];
	const char *full = "{\"path\":\"/tmp/a.snap\",\"overwrite\":true}";

	cr_assert_eq(api_decode_snapshot("", 0, &sp, err, sizeof(err)), 0);
	cr_assert_str_eq(sp.path, "");
	cr_assert_not(sp.overwrite);
	cr_assert_eq(api_decode_snapshot(full, strlen(full), &sp, err,
					 sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(sp.path, "/tmp/a.snap");
	cr_assert(sp.overwrite);
}

Test(api_decode, snapshot_errors)
{
	static const struct {
		const char *body;
		const char *field;
	} bad[] = {
		{ "{\"path\":\"rel.snap\"}", "absolute" },
		{ "{\"path\":5}", "path" },
		{ "{\"overwrite\":\"yes\"}", "overwrite" },
		{ "{\"size\":1}", "size" },
		{ "null", "JSON object" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct snapshot_params sp;
		char err[512] = "";

		cr_assert_eq(api_decode_snapshot(bad[i].body,
						 strlen(bad[i].body), &sp,
						 err, sizeof(err)), -EINVAL,
			     "%s accepted", bad[i].body);
		cr_assert(strstr(err, bad[i].field),
			  "%s: message does not name %s: %s", bad[i].body,
			  bad[i].field, err);
	}
}

Test(api_decode, create_from_snapshot)
{
	struct sandbox_params p;
	char err[512];

	cr_assert_eq(create("{\"snapshot\":\"/s/a.snap\",\"metadata\":"
			    "{\"k\":\"v\"}}", &p, err), 0, "%s", err);
	cr_assert_str_eq(p.snapshot, "/s/a.snap");
	cr_assert_str_eq(p.guest, "", "a restore does not know its guest");
	cr_assert(p.verify_ram, "a stored file is not checked whole");
	sandbox_params_free(&p);
}

Test(api_decode, create_from_snapshot_errors)
{
	static const struct {
		const char *body;
		const char *field;
	} bad[] = {
		{ "{\"snapshot\":\"rel.snap\"}", "absolute" },
		{ "{\"snapshot\":1}", "snapshot" },
		{ "{\"snapshot\":\"/a\",\"memory_mib\":16}", "memory_mib" },
		{ "{\"snapshot\":\"/a\",\"guest\":\"" GUEST "\"}", "guest" },
		{ "{\"snapshot\":\"/a\",\"args\":\"\"}", "args" },
		{ "{\"snapshot\":\"/a\",\"ignore_stop\":true}", "ignore_stop" },
		{ "{\"snapshot\":\"/a\",\"vcpus\":1}", "vcpus" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct sandbox_params p;
		char err[512] = "";

		cr_assert_eq(create(bad[i].body, &p, err), -EINVAL,
			     "%s accepted", bad[i].body);
		cr_assert(strstr(err, bad[i].field),
			  "%s: message does not name %s: %s", bad[i].body,
			  bad[i].field, err);
	}
}
