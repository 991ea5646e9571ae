// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the JSON body decoders of sbxd's API: the input is
 * a request body, given to the create, exec and stop decoders of api.c.
 * Each accepted body must yield values inside the documented limits, and
 * each rejected one a message that the API can send. The input also goes
 * through api_json_bytes(), which turns guest output and error messages
 * into JSON strings, and is checked against jansson's own UTF-8 test.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <string.h>

#include "fuzz_util.h"
#include "sbx/guest.h"
#include "sbxd/api.h"
#include "sbxd/guest.h"
#include "sbxd/vmm_proto.h"

/* The limits api.c documents and enforces. */
#define CREATE_MEMORY_MIN_MIB 4
#define CREATE_MEMORY_MAX_MIB 4096
#define CREATE_BOOT_DELAY_MAX_MS 600000
#define EXEC_TIMEOUT_MAX_MS (24ull * 3600 * 1000)
#define STOP_GRACE_MAX_MS (3600ull * 1000)
#define DEFAULT_GRACE_MS 10000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_util_init();
	return 0;
}

/* A rejected body leaves a message that the API can put into JSON. */
static void check_rejection(const char *decoder, int ret, const char *err,
			    size_t errlen)
{
	json_t *message;
	char *text;

	FUZZ_CHECK(ret == -EINVAL || ret == -ENOMEM,
		   "%s returned %d, not -EINVAL or -ENOMEM", decoder, ret);
	FUZZ_CHECK(memchr(err, '\0', errlen), "%s left err unterminated",
		   decoder);
	FUZZ_CHECK(err[0] != '\0', "%s rejected a body with no message",
		   decoder);
	message = api_json_bytes(err, strlen(err));
	FUZZ_CHECK(message, "%s message cannot become JSON", decoder);
	text = json_dumps(message, JSON_ENCODE_ANY);
	FUZZ_CHECK(text, "%s message cannot be encoded: %s", decoder, err);
	free(text);
	json_decref(message);
}

static void check_create(const struct sandbox_params *p)
{
	struct guest_layout layout;

	FUZZ_CHECK(p->vcpus == 1, "vcpus %u", p->vcpus);
	FUZZ_CHECK(p->memory_mib >= CREATE_MEMORY_MIN_MIB &&
			   p->memory_mib <= CREATE_MEMORY_MAX_MIB,
		   "memory_mib %u", p->memory_mib);
	FUZZ_CHECK(memchr(p->guest, '\0', sizeof(p->guest)),
		   "guest path unterminated");
	FUZZ_CHECK(p->guest[0] == '/', "guest path %.64s is relative",
		   p->guest);
	FUZZ_CHECK(memchr(p->args, '\0', sizeof(p->args)),
		   "args unterminated");
	FUZZ_CHECK(p->boot_delay_ms <= CREATE_BOOT_DELAY_MAX_MS,
		   "boot_delay_ms %u", p->boot_delay_ms);
	FUZZ_CHECK(json_is_object(p->metadata), "metadata is not an object");
	/* A guest that sbxd can size must fit the RAM it accepted. */
	if (guest_read_layout(p->guest, &layout) == 0)
		FUZZ_CHECK(p->memory_mib >= layout.min_memory_mib,
			   "memory_mib %u accepted for %s, which needs %u",
			   p->memory_mib, p->guest, layout.min_memory_mib);
}

static void fuzz_create(const char *body, size_t len)
{
	struct sandbox_params params;
	char err[512];
	int ret;

	memset(err, 'x', sizeof(err));
	ret = api_decode_create(body, len, SBX_FUZZ_GUEST, &params, err,
				sizeof(err));
	if (ret) {
		check_rejection("api_decode_create", ret, err, sizeof(err));
		return;
	}
	check_create(&params);
	sandbox_params_free(&params);
}

static void fuzz_exec(const char *body, size_t len)
{
	struct exec_params params;
	char err[512];
	size_t command_len;
	int ret;

	memset(err, 'x', sizeof(err));
	ret = api_decode_exec(body, len, &params, err, sizeof(err));
	if (ret) {
		check_rejection("api_decode_exec", ret, err, sizeof(err));
		return;
	}
	FUZZ_CHECK(params.command, "accepted exec without a command");
	command_len = strlen(params.command);
	/* The command and its NUL must fit one control message. */
	FUZZ_CHECK(command_len > 0 && command_len < SBX_MSG_PAYLOAD_MAX,
		   "command of %zu bytes", command_len);
	FUZZ_CHECK(params.timeout_ms <= EXEC_TIMEOUT_MAX_MS,
		   "timeout_ms %llu", (unsigned long long)params.timeout_ms);
	free(params.command);
}

static void fuzz_grace(const char *body, size_t len)
{
	uint64_t grace_ms = 0;
	char err[512];
	int ret;

	memset(err, 'x', sizeof(err));
	ret = api_decode_grace(body, len, DEFAULT_GRACE_MS, &grace_ms, err,
			       sizeof(err));
	if (ret) {
		check_rejection("api_decode_grace", ret, err, sizeof(err));
		return;
	}
	FUZZ_CHECK(grace_ms <= STOP_GRACE_MAX_MS, "grace_ms %llu",
		   (unsigned long long)grace_ms);
	if (len == 0)
		FUZZ_CHECK(grace_ms == DEFAULT_GRACE_MS,
			   "empty body gave grace_ms %llu",
			   (unsigned long long)grace_ms);
}

/*
 * api_json_bytes() must keep valid UTF-8 as it is, replace only what is
 * invalid, and always give a string that jansson encodes and decodes.
 */
static void fuzz_json_bytes(const char *data, size_t len)
{
	json_t *clean = api_json_bytes(data, len);
	json_t *strict = json_stringn(data, len);
	json_t *back;
	char *text;

	FUZZ_CHECK(clean, "api_json_bytes failed on %zu bytes", len);
	if (strict) {
		FUZZ_CHECK(json_string_length(clean) == len &&
				   memcmp(json_string_value(clean), data,
					  len) == 0,
			   "valid UTF-8 was changed");
		json_decref(strict);
	} else {
		FUZZ_CHECK(json_string_length(clean) != len ||
				   memcmp(json_string_value(clean), data,
					  len) != 0,
			   "invalid UTF-8 was kept as it is");
	}
	text = json_dumps(clean, JSON_ENCODE_ANY);
	FUZZ_CHECK(text, "api_json_bytes gave a string jansson cannot encode");
	back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	FUZZ_CHECK(back && json_equal(back, clean),
		   "the encoded string does not decode to itself");
	json_decref(back);
	free(text);
	json_decref(clean);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;

	fuzz_create(body, size);
	fuzz_exec(body, size);
	fuzz_grace(body, size);
	fuzz_json_bytes(body, size);
	return 0;
}
