// SPDX-License-Identifier: MIT
/* Routes of the sbxd HTTP API and the JSON of their bodies. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "sbx/guest.h"
#include "sbxd/api.h"
#include "sbxd/drained.h"
#include "sbxd/guest.h"
#include "sbxd/log.h"
#include "sbxd/metrics.h"
#include "sbxd/probes.h"
#include "sbxd/sbxd.h"
#include "sbxd/snapctl.h"

#define EXEC_COMMAND_MAX (SBX_MSG_PAYLOAD_MAX - 1)
#define EXEC_TIMEOUT_MAX_MS (24ull * 3600 * 1000)
#define STOP_GRACE_MAX_MS (3600ull * 1000)
#define RETRY_AFTER "Retry-After: 5\r\n"

/* Length of the valid UTF-8 sequence at p, or 0 if it is invalid. */
static size_t utf8_sequence(const unsigned char *p, size_t left)
{
	size_t need;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		need = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		need = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		need = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (left < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* Reject overlong forms, surrogates and values past U+10FFFF. */
	if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) ||
	    (need == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

json_t *api_json_bytes(const char *data, size_t len)
{
	static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
	const unsigned char *p = (const unsigned char *)data;
	struct buf clean = { 0 };
	json_t *value;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_sequence(p + i, len - i);

		if (n == 0) {
			if (buf_append(&clean, replacement, 3))
				goto err_nomem;
			i++;
			continue;
		}
		if (buf_append(&clean, p + i, n))
			goto err_nomem;
		i += n;
	}
	value = json_stringn(clean.data ? clean.data : "", clean.len);
	buf_free(&clean);
	return value;

err_nomem:
	buf_free(&clean);
	return NULL;
}

void api_json(struct sbxd *d, struct conn *c, int status, json_t *value)
{
	static const char oom[] = "{\"error\":{\"code\":\"internal\","
				  "\"message\":\"out of memory\"}}";
	size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(10);
	char *text = value ? json_dumps(value, flags) : NULL;

	json_decref(value);
	if (!text) {
		log_err("failed to encode a %d response: out of memory",
			status);
		conn_respond(d, c, 500, NULL, oom, sizeof(oom) - 1, NULL);
		return;
	}
	conn_respond(d, c, status, NULL, text, strlen(text), NULL);
	free(text);
}

static void respond_error(struct sbxd *d, struct conn *c, int status,
			  const char *code, const char *extra,
			  const char *message)
{
	json_t *body = json_pack("{s:{s:s, s:o}}", "error", "code", code,
				 "message",
				 api_json_bytes(message, strlen(message)));
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (!text) {
		api_json(d, c, 500, NULL);
		return;
	}
	conn_respond(d, c, status, NULL, text, strlen(text), extra);
	free(text);
}

void api_error(struct sbxd *d, struct conn *c, int status, const char *code,
	       const char *extra_headers, const char *fmt, ...)
{
	char message[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	respond_error(d, c, status, code, extra_headers, message);
}

static json_t *parse_object(const char *body, size_t len, char *err,
			    size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	if (len == 0)
		return json_object();
	/* JSON_DECODE_ANY, so that "null" gets the message below too. */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &jerr);
	if (!root) {
		enum json_error_code code = json_error_code(&jerr);

		/* jansson's own message names its JSON_ALLOW_NUL flag. */
		if (code == json_error_null_character ||
		    code == json_error_null_byte_in_key)
			snprintf(err, errlen, "invalid JSON at line %d column "
				 "%d: strings must not contain NUL (\\u0000)",
				 jerr.line, jerr.column);
		else
			snprintf(err, errlen, "invalid JSON at line %d column "
				 "%d: %s", jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "request body must be a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

static const char *json_type_name(const json_t *value)
{
	switch (json_typeof(value)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

static int get_uint(const char *key, const json_t *value, uint64_t min,
		    uint64_t max, uint64_t *out, char *err, size_t errlen)
{
	json_int_t n;

	if (!json_is_integer(value)) {
		snprintf(err, errlen, "%s must be an integer, got %s", key,
			 json_type_name(value));
		return -EINVAL;
	}
	n = json_integer_value(value);
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max) {
		snprintf(err, errlen, "%s must be from %llu to %llu, got %lld",
			 key, (unsigned long long)min,
			 (unsigned long long)max, (long long)n);
		return -EINVAL;
	}
	*out = (uint64_t)n;
	return 0;
}

static int get_string(const char *key, const json_t *value, size_t max,
		      const char **out, char *err, size_t errlen)
{
	size_t len;

	if (!json_is_string(value)) {
		snprintf(err, errlen, "%s must be a string, got %s", key,
			 json_type_name(value));
		return -EINVAL;
	}
	len = json_string_length(value);
	if (len > max) {
		snprintf(err, errlen, "%s is %zu bytes, at most %zu are "
			 "allowed", key, len, max);
		return -EINVAL;
	}
	if (strlen(json_string_value(value)) != len) {
		snprintf(err, errlen, "%s must not contain NUL characters",
			 key);
		return -EINVAL;
	}
	*out = json_string_value(value);
	return 0;
}

static bool is_pseudo_fs(const char *path)
{
	struct statfs fs;

	if (statfs(path, &fs) < 0)
		return true;
	switch ((unsigned long)fs.f_type) {
	case PROC_SUPER_MAGIC:
	case SYSFS_MAGIC:
	case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC:
	case CGROUP_SUPER_MAGIC:
	case CGROUP2_SUPER_MAGIC:
	case BPF_FS_MAGIC:
		return true;
	}
	return false;
}

static int check_guest(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (path[0] != '/') {
		snprintf(err, errlen, "guest must be an absolute path, got "
			 "\"%.256s\"", path);
		return -EINVAL;
	}
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "guest %.256s is not usable: %s", path,
			 strerror(errno));
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "guest %.256s is not a regular file",
			 path);
		return -EINVAL;
	}
	/* Files on procfs, sysfs and similar claim to be regular but can
	 * block sbxd's only thread or consume kernel state when read. */
	if (is_pseudo_fs(path)) {
		snprintf(err, errlen, "guest %.256s is on a kernel pseudo file "
			 "system; pass an ELF file on a disk", path);
		return -EINVAL;
	}
	return 0;
}

static int check_metadata(const json_t *value, char *err, size_t errlen)
{
	const char *key;
	json_t *item;
	size_t total = 0;

	if (!json_is_object(value)) {
		snprintf(err, errlen, "metadata must be an object of strings, "
			 "got %s", json_type_name(value));
		return -EINVAL;
	}
	json_object_foreach((json_t *)value, key, item) {
		if (!json_is_string(item)) {
			snprintf(err, errlen, "metadata.%.64s must be a "
				 "string, got %s", key, json_type_name(item));
			return -EINVAL;
		}
		total += strlen(key) + json_string_length(item);
	}
	if (total > SANDBOX_METADATA_MAX) {
		snprintf(err, errlen, "metadata keys and values total %zu "
			 "bytes, at most %d are allowed", total,
			 SANDBOX_METADATA_MAX);
		return -EINVAL;
	}
	return 0;
}

/* Append key to the comma-separated list of unknown fields. */
static void note_unknown(char *list, size_t len, const char *key)
{
	size_t used = strlen(list);

	snprintf(list + used, len - used, "%s%.64s", used ? ", " : "", key);
}

static int report_unknown(const char *list, char *err, size_t errlen)
{
	if (!list[0])
		return 0;
	snprintf(err, errlen, "unknown field%s: %s",
		 strchr(list, ',') ? "s" : "", list);
	return -EINVAL;
}

static int decode_create_field(const char *key, json_t *value,
			       struct sandbox_params *p, char *err,
			       size_t errlen)
{
	const char *text;
	uint64_t n;

	if (strcmp(key, "vcpus") == 0) {
		if (!json_is_integer(value)) {
			snprintf(err, errlen, "vcpus must be an integer, got "
				 "%s", json_type_name(value));
			return -EINVAL;
		}
		if (json_integer_value(value) != 1) {
			snprintf(err, errlen, "vcpus must be 1: only one vCPU "
				 "per sandbox is supported, got %lld",
				 (long long)json_integer_value(value));
			return -EINVAL;
		}
		p->vcpus = 1;
	} else if (strcmp(key, "memory_mib") == 0) {
		if (get_uint(key, value, 4, 4096, &n, err, errlen))
			return -EINVAL;
		p->memory_mib = (unsigned int)n;
	} else if (strcmp(key, "guest") == 0) {
		if (json_is_null(value))
			return 0;
		if (get_string(key, value, PATH_MAX - 1, &text, err, errlen) ||
		    check_guest(text, err, errlen))
			return -EINVAL;
		strcpy(p->guest, text);
	} else if (strcmp(key, "args") == 0) {
		if (get_string(key, value, SANDBOX_ARGS_MAX, &text, err,
			       errlen))
			return -EINVAL;
		strcpy(p->args, text);
	} else if (strcmp(key, "boot_delay_ms") == 0) {
		if (get_uint(key, value, 0, 600000, &n, err, errlen))
			return -EINVAL;
		p->boot_delay_ms = (unsigned int)n;
	} else if (strcmp(key, "ignore_stop") == 0) {
		if (!json_is_boolean(value)) {
			snprintf(err, errlen, "ignore_stop must be a boolean, "
				 "got %s", json_type_name(value));
			return -EINVAL;
		}
		p->ignore_stop = json_is_true(value);
	} else if (strcmp(key, "metadata") == 0) {
		if (check_metadata(value, err, errlen))
			return -EINVAL;
		json_decref(p->metadata);
		p->metadata = json_incref(value);
	} else if (strcmp(key, "snapshot") == 0) {
		if (get_string(key, value, PATH_MAX - 1, &text, err, errlen))
			return -EINVAL;
		if (text[0] != '/') {
			snprintf(err, errlen, "snapshot must be an absolute "
				 "path, got \"%.256s\"", text);
			return -EINVAL;
		}
		strcpy(p->snapshot, text);
	} else {
		return -ENOENT;
	}
	return 0;
}

/*
 * A snapshot file sets the guest, its memory, arguments and options, so a
 * restore takes none of those fields. Returns 0 or -EINVAL naming one.
 */
static int check_restore_fields(json_t *root, char *err, size_t errlen)
{
	static const char *const set_by_file[] = {
		"vcpus", "memory_mib", "guest", "args", "boot_delay_ms",
		"ignore_stop",
	};

	for (size_t i = 0; i < sizeof(set_by_file) / sizeof(*set_by_file);
	     i++) {
		if (!json_object_get(root, set_by_file[i]))
			continue;
		snprintf(err, errlen, "%s cannot be combined with snapshot: "
			 "the snapshot file sets it; send only snapshot and "
			 "metadata", set_by_file[i]);
		return -EINVAL;
	}
	return 0;
}

/*
 * A guest whose segments and stack do not fit memory_mib would fail later
 * in sbx-vmm with a 500, so report it here as an invalid request.
 */
static int check_memory_fits(const struct sandbox_params *p, char *err,
			     size_t errlen)
{
	struct guest_layout layout;

	/* sbx-vmm reports an unreadable or malformed ELF itself. */
	if (guest_read_layout(p->guest, &layout))
		return 0;
	if (p->memory_mib >= layout.min_memory_mib)
		return 0;
	snprintf(err, errlen, "memory_mib %u is too small for guest %.256s: "
		 "its segments end at 0x%llx and the %u KiB stack is at the "
		 "top of guest RAM, so it needs at least %u MiB; raise "
		 "memory_mib to %u or more", p->memory_mib, p->guest,
		 (unsigned long long)layout.load_end, SBX_STACK_SIZE / 1024,
		 layout.min_memory_mib, layout.min_memory_mib);
	return -EINVAL;
}

int api_decode_create(const char *body, size_t len, const char *default_guest,
		      struct sandbox_params *params, char *err, size_t errlen)
{
	char unknown[512] = "";
	const char *key;
	json_t *value;
	json_t *root;
	int ret;

	memset(params, 0, sizeof(*params));
	params->vcpus = 1;
	params->memory_mib = 16;
	snprintf(params->guest, sizeof(params->guest), "%s", default_guest);

	root = parse_object(body, len, err, errlen);
	if (!root)
		return -EINVAL;
	json_object_foreach(root, key, value) {
		ret = decode_create_field(key, value, params, err, errlen);
		if (ret == -ENOENT)
			note_unknown(unknown, sizeof(unknown), key);
		else if (ret)
			goto err_free;
	}
	ret = report_unknown(unknown, err, errlen);
	if (ret)
		goto err_free;
	if (params->snapshot[0]) {
		ret = check_restore_fields(root, err, errlen);
		if (ret)
			goto err_free;
		/* Unknown until the file's header is read. */
		params->guest[0] = '\0';
		params->memory_mib = 0;
		/* A stored file may have rotted: check its RAM too. */
		params->verify_ram = true;
	} else {
		ret = check_memory_fits(params, err, errlen);
		if (ret)
			goto err_free;
	}
	if (!params->metadata)
		params->metadata = json_object();
	json_decref(root);
	return 0;

err_free:
	sandbox_params_free(params);
	json_decref(root);
	return -EINVAL;
}

int api_decode_exec(const char *body, size_t len, struct exec_params *params,
		    char *err, size_t errlen)
{
	char unknown[512] = "";
	const char *command = NULL;
	const char *key;
	json_t *value;
	json_t *root;

	memset(params, 0, sizeof(*params));
	root = parse_object(body, len, err, errlen);
	if (!root)
		return -EINVAL;
	json_object_foreach(root, key, value) {
		if (strcmp(key, "command") == 0) {
			if (get_string(key, value, EXEC_COMMAND_MAX, &command,
				       err, errlen))
				goto err_free;
		} else if (strcmp(key, "timeout_ms") == 0) {
			if (get_uint(key, value, 0, EXEC_TIMEOUT_MAX_MS,
				     &params->timeout_ms, err, errlen))
				goto err_free;
		} else {
			note_unknown(unknown, sizeof(unknown), key);
		}
	}
	if (report_unknown(unknown, err, errlen))
		goto err_free;
	/* Guests read the command word from the first byte. */
	while (command && (*command == ' ' || *command == '\t'))
		command++;
	if (!command || !command[0]) {
		snprintf(err, errlen, "command is missing or empty; send "
			 "{\"command\":\"echo hi\"}");
		goto err_free;
	}
	params->command = strdup(command);
	json_decref(root);
	if (!params->command) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;

err_free:
	json_decref(root);
	return -EINVAL;
}

int api_decode_grace(const char *body, size_t len, uint64_t default_ms,
		     uint64_t *grace_ms, char *err, size_t errlen)
{
	char unknown[512] = "";
	const char *key;
	json_t *value;
	json_t *root;

	*grace_ms = default_ms;
	root = parse_object(body, len, err, errlen);
	if (!root)
		return -EINVAL;
	json_object_foreach(root, key, value) {
		if (strcmp(key, "grace_ms") == 0) {
			if (get_uint(key, value, 0, STOP_GRACE_MAX_MS,
				     grace_ms, err, errlen))
				goto err_free;
		} else {
			note_unknown(unknown, sizeof(unknown), key);
		}
	}
	if (report_unknown(unknown, err, errlen))
		goto err_free;
	json_decref(root);
	return 0;

err_free:
	json_decref(root);
	return -EINVAL;
}

int api_decode_snapshot(const char *body, size_t len,
			struct snapshot_params *params, char *err,
			size_t errlen)
{
	char unknown[512] = "";
	const char *path;
	const char *key;
	json_t *value;
	json_t *root;

	memset(params, 0, sizeof(*params));
	root = parse_object(body, len, err, errlen);
	if (!root)
		return -EINVAL;
	json_object_foreach(root, key, value) {
		if (strcmp(key, "path") == 0) {
			if (json_is_null(value))
				continue;
			if (get_string(key, value, PATH_MAX - 1, &path, err,
				       errlen))
				goto err_free;
			if (path[0] != '/') {
				snprintf(err, errlen, "path must be an "
					 "absolute path, got \"%.256s\"",
					 path);
				goto err_free;
			}
			strcpy(params->path, path);
		} else if (strcmp(key, "overwrite") == 0) {
			if (!json_is_boolean(value)) {
				snprintf(err, errlen, "overwrite must be a "
					 "boolean, got %s",
					 json_type_name(value));
				goto err_free;
			}
			params->overwrite = json_is_true(value);
		} else {
			note_unknown(unknown, sizeof(unknown), key);
		}
	}
	if (report_unknown(unknown, err, errlen))
		goto err_free;
	json_decref(root);
	return 0;

err_free:
	json_decref(root);
	return -EINVAL;
}

int api_decode_empty(const char *body, size_t len, char *err, size_t errlen)
{
	char unknown[512] = "";
	const char *key;
	json_t *value;
	json_t *root;

	root = parse_object(body, len, err, errlen);
	if (!root)
		return -EINVAL;
	json_object_foreach(root, key, value)
		note_unknown(unknown, sizeof(unknown), key);
	json_decref(root);
	return report_unknown(unknown, err, errlen);
}

static void handle_health(struct sbxd *d, struct conn *c)
{
	bool serving = d->drain.state == SBXD_SERVING;

	api_json(d, c, serving ? 200 : 503,
		 json_pack("{s:s}", "status",
			   drain_state_name(d->drain.state)));
}

static void handle_metrics(struct sbxd *d, struct conn *c)
{
	struct buf text = { 0 };

	if (metrics_format(d, &text)) {
		buf_free(&text);
		api_error(d, c, 500, "internal", NULL, "out of memory");
		return;
	}
	conn_respond(d, c, 200, "text/plain; version=0.0.4", text.data,
		     text.len, NULL);
	buf_free(&text);
}

static void handle_node(struct sbxd *d, struct conn *c)
{
	struct sbxd_drain_state st;
	json_t *draining_for = json_null();
	json_t *live_vms = json_null();
	int count;

	gate_read(&d->gate, &st);
	if (d->drain.started_ns)
		draining_for = json_integer(
			(json_int_t)((loop_now_ns() - d->drain.started_ns) /
				     1000000ull));
	/* live_vms is null on the memfd gate, which cannot count VMs. */
	count = metrics_count_live_vms(d);
	if (count >= 0)
		live_vms = json_integer(count);
	api_json(d, c, 200,
		 json_pack("{s:s, s:i, s:i, s:o, s:i, s:I, s:I, s:I, s:I, s:o, "
			   "s:s, s:i, s:i, s:s}",
			   "state", drain_state_name(d->drain.state),
			   "inflight_starts", (json_int_t)st.inflight_starts,
			   "live", (json_int_t)st.live,
			   "live_vms", live_vms,
			   "sandboxes", (json_int_t)d->sandboxes.total,
			   "admitted", (json_int_t)st.admitted,
			   "rejected", (json_int_t)st.rejected,
			   "started", (json_int_t)st.started,
			   "failed", (json_int_t)st.failed,
			   "draining_for_ms", draining_for,
			   "gate", gate_backend_name(d->gate.backend),
			   "max_sandboxes", (json_int_t)d->cfg.max_sandboxes,
			   "pid", (json_int_t)getpid(),
			   "version", SBXD_VERSION));
}

static void handle_force_stop(struct sbxd *d, struct conn *c,
			      struct http_request *req)
{
	char err[512];
	int ret;

	if (api_decode_empty(req->body.data, req->body.len, err,
			     sizeof(err))) {
		api_error(d, c, 400, "invalid", NULL, "%s", err);
		return;
	}

	/*
	 * Take the targets before the forced phase starts, because that
	 * phase stops them too and this call would then report them as
	 * stopped by someone else.
	 */
	ret = sandbox_force_stop_all(d, c);
	if (ret)
		api_error(d, c, 500, "internal", NULL,
			  "failed to start the force-stop: %s", strerror(-ret));
	if (d->drain.state != SBXD_SERVING)
		drain_force(d, "force-stop request");
}

static void handle_restore_drained(struct sbxd *d, struct conn *c,
				   struct http_request *req)
{
	char err[512];

	if (api_decode_empty(req->body.data, req->body.len, err,
			     sizeof(err))) {
		api_error(d, c, 400, "invalid", NULL, "%s", err);
		return;
	}
	drained_restore(d, c);
}

static void handle_list(struct sbxd *d, struct conn *c)
{
	json_t *list = json_array();
	struct sandbox *sb;

	TAILQ_FOREACH(sb, &d->sandboxes.list, link)
		json_array_append_new(list, sandbox_to_json(sb));
	api_json(d, c, 200, json_pack("{s:o}", "sandboxes", list));
}

static bool require_length(struct sbxd *d, struct conn *c,
			   const struct http_request *req)
{
	if (req->has_length)
		return true;
	api_error(d, c, 411, "length_required", NULL,
		  "this request needs a JSON body with a Content-Length "
		  "header");
	return false;
}

/*
 * Check a restore's file before admission: missing files, directories
 * and other non-files get 400 here, the rest is for sbx-vmm to judge. The
 * header's RAM size, if it reads as one, is the sandbox's memory_mib.
 */
static int check_snapshot_file(struct sandbox_params *p, char *err,
			       size_t errlen)
{
	unsigned char header[48];
	uint64_t mem_size;
	struct stat st;
	int fd;

	if (stat(p->snapshot, &st) < 0) {
		snprintf(err, errlen, "snapshot %.256s cannot be used: %s",
			 p->snapshot, strerror(errno));
		return -EINVAL;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "snapshot %.256s is a directory, not a "
			 "snapshot file", p->snapshot);
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "snapshot %.256s is not a regular file",
			 p->snapshot);
		return -EINVAL;
	}
	/* Layout: docs/snapshot-format.md; mem_size is at offset 40. */
	fd = open(p->snapshot, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	if (pread(fd, header, sizeof(header), 0) == (ssize_t)sizeof(header) &&
	    memcmp(header, "SBX-SNAP", 8) == 0) {
		memcpy(&mem_size, header + 40, sizeof(mem_size));
		if (mem_size % (1u << 20) == 0 && mem_size <= (4096ull << 20))
			p->memory_mib = (unsigned int)(mem_size >> 20);
	}
	close(fd);
	return 0;
}

static void handle_create(struct sbxd *d, struct conn *c,
			  struct http_request *req)
{
	struct sandbox_params params;
	unsigned int used;
	char err[512];
	int ret;

	if (!require_length(d, c, req))
		return;
	if (api_decode_create(req->body.data, req->body.len, d->cfg.guest,
			      &params, err, sizeof(err))) {
		api_error(d, c, 400, "invalid", NULL, "%s", err);
		return;
	}

	if (params.snapshot[0] &&
	    check_snapshot_file(&params, err, sizeof(err))) {
		api_error(d, c, 400, "invalid", NULL, "%s", err);
		goto err_params;
	}

	used = d->sandboxes.live + d->sandboxes.starting;
	if (d->drain.state == SBXD_SERVING && used >= d->cfg.max_sandboxes) {
		api_error(d, c, 429, "at_capacity", NULL,
			  "at capacity: %u %s live or starting, the maximum "
			  "set by --max-sandboxes; stop or delete one first",
			  used, used == 1 ? "sandbox is" : "sandboxes are");
		goto err_params;
	}
	ret = gate_enter(&d->gate);
	if (ret == -EAGAIN) {
		PROBE_START_REJECT();
		api_error(d, c, 503, "draining", RETRY_AFTER,
			  "sbxd is draining and admits no new sandboxes");
		goto err_params;
	}
	if (ret) {
		log_err("failed to enter the gate: %s", strerror(-ret));
		api_error(d, c, 500, "internal", NULL,
			  "failed to enter the admission gate: %s",
			  strerror(-ret));
		goto err_params;
	}
	PROBE_START_ADMIT();
	ret = sandbox_create(d, &params, c, err, sizeof(err));
	if (ret) {
		log_err("failed to create a sandbox: %s", err);
		api_error(d, c, 500, "internal", NULL, "%s", err);
		goto err_params;
	}
	return;

err_params:
	sandbox_params_free(&params);
}

static void handle_exec(struct sbxd *d, struct conn *c, struct sandbox *sb,
			struct http_request *req)
{
	struct exec_params params;
	char err[512];
	int ret;

	if (!require_length(d, c, req))
		return;
	if (api_decode_exec(req->body.data, req->body.len, &params, err,
			    sizeof(err))) {
		api_error(d, c, 400, "invalid", NULL, "%s", err);
		return;
	}
	if (sb->state == SANDBOX_PAUSED || sb->op.kind == SANDBOX_OP_PAUSE ||
	    (sb->state == SANDBOX_CHECKPOINTING && sb->op.was_paused)) {
		api_error(d, c, 409, "paused", NULL,
			  "sandbox %s is paused; resume it first (POST "
			  "/v1/sandboxes/%s/resume)", sb->id, sb->id);
		goto out;
	}
	if (sb->state != SANDBOX_RUNNING &&
	    sb->state != SANDBOX_CHECKPOINTING) {
		api_error(d, c, 409, "wrong_state", NULL,
			  "sandbox %s is %s; exec needs a running sandbox",
			  sb->id, sandbox_state_name(sb->state));
		goto out;
	}
	ret = sandbox_exec(d, sb, params.command, params.timeout_ms, c);
	if (ret)
		api_error(d, c, 500, "internal", NULL,
			  "failed to send the command to sandbox %s: %s",
			  sb->id, strerror(-ret));
out:
	free(params.command);
}

static void handle_stop(struct sbxd *d, struct conn *c, struct sandbox *sb,
			struct http_request *req)
{
	uint64_t grace_ms;
	char err[512];
	int ret;

	if (api_decode_grace(req->body.data, req->body.len,
			     d->cfg.stop_grace_ms, &grace_ms, err,
			     sizeof(err))) {
		api_error(d, c, 400, "invalid", NULL, "%s", err);
		return;
	}
	if (sb->state == SANDBOX_STARTING || sb->state == SANDBOX_EXITED) {
		if (sb->state == SANDBOX_STARTING)
			api_error(d, c, 409, "wrong_state", NULL,
				  "sandbox %s is starting; stop needs a "
				  "running sandbox. To end a starting one, "
				  "kill it: sbxctl kill %s (DELETE "
				  "/v1/sandboxes/%s)", sb->id, sb->id, sb->id);
		else
			api_error(d, c, 409, "wrong_state", NULL,
				  "sandbox %s is %s; stop needs a running "
				  "sandbox", sb->id,
				  sandbox_state_name(sb->state));
		return;
	}
	ret = sandbox_stop(d, sb, grace_ms, c);
	if (ret)
		api_error(d, c, 500, "internal", NULL,
			  "failed to stop sandbox %s: %s", sb->id,
			  strerror(-ret));
}

static void handle_delete(struct sbxd *d, struct conn *c, struct sandbox *sb)
{
	int ret = sandbox_delete(d, sb, c);

	if (ret)
		api_error(d, c, 500, "internal", NULL,
			  "failed to delete sandbox %s: %s", sb->id,
			  strerror(-ret));
}

static void handle_snapshot(struct sbxd *d, struct conn *c,
			    struct sandbox *sb, struct http_request *req)
{
	struct snapshot_params params;
	char err[512];

	if (api_decode_snapshot(req->body.data, req->body.len, &params, err,
				sizeof(err))) {
		api_error(d, c, 400, "invalid", NULL, "%s", err);
		return;
	}
	snapctl_snapshot(d, c, sb, &params);
}

/* pause, resume and checkpoint take an empty body or {}. */
static void handle_control(struct sbxd *d, struct conn *c,
			   struct sandbox *sb, struct http_request *req,
			   const char *action)
{
	char err[512];

	if (api_decode_empty(req->body.data, req->body.len, err,
			     sizeof(err))) {
		api_error(d, c, 400, "invalid", NULL, "%s", err);
		return;
	}
	/* Resume and checkpoint would let work in while the node drains. */
	if (strcmp(action, "pause") != 0 && d->drain.state != SBXD_SERVING) {
		api_error(d, c, 503, "draining", RETRY_AFTER,
			  "sbxd is draining and admits no %s", action);
		return;
	}
	if (strcmp(action, "pause") == 0)
		snapctl_pause(d, c, sb);
	else if (strcmp(action, "resume") == 0)
		snapctl_resume(d, c, sb);
	else
		snapctl_checkpoint(d, c, sb);
}

static bool method_is(struct sbxd *d, struct conn *c,
		      const struct http_request *req, const char *allow)
{
	const char *name = http_method_str(req->method);
	char header[64];
	size_t len = strlen(name);
	const char *p = allow;

	/* allow is like "GET, POST". */
	while ((p = strstr(p, name))) {
		if ((p == allow || p[-1] == ' ') &&
		    (p[len] == '\0' || p[len] == ','))
			return true;
		p += len;
	}
	snprintf(header, sizeof(header), "Allow: %s\r\n", allow);
	api_error(d, c, 405, "method_not_allowed", header,
		  "method %s is not allowed here; allowed: %s", name, allow);
	return false;
}

static void route_sandbox(struct sbxd *d, struct conn *c,
			  struct http_request *req, const char *rest)
{
	static const char *const actions[] = {
		"exec", "stop", "pause", "resume", "snapshot", "checkpoint",
	};
	char id[SANDBOX_ID_LEN + 2];
	const char *slash = strchr(rest, '/');
	const char *action = slash ? slash + 1 : NULL;
	size_t id_len = slash ? (size_t)(slash - rest) : strlen(rest);
	struct sandbox *sb;
	bool known = false;

	if (action) {
		for (size_t i = 0; i < sizeof(actions) / sizeof(*actions); i++)
			known |= strcmp(action, actions[i]) == 0;
		if (!known) {
			api_error(d, c, 404, "not_found", NULL,
				  "no route for %.200s", req->url.data);
			return;
		}
		if (!method_is(d, c, req, "POST"))
			return;
	} else if (!method_is(d, c, req, "GET, DELETE")) {
		return;
	}

	sb = NULL;
	if (id_len > 0 && id_len <= SANDBOX_ID_LEN) {
		memcpy(id, rest, id_len);
		id[id_len] = '\0';
		sb = sandbox_find(d, id);
	}
	if (!sb) {
		api_error(d, c, 404, "not_found", NULL,
			  "sandbox %.*s not found", (int)(id_len > 64 ? 64 :
							 id_len), rest);
		return;
	}

	if (!action && req->method == HTTP_GET)
		api_json(d, c, 200, sandbox_to_json(sb));
	else if (!action)
		handle_delete(d, c, sb);
	else if (strcmp(action, "exec") == 0)
		handle_exec(d, c, sb, req);
	else if (strcmp(action, "stop") == 0)
		handle_stop(d, c, sb, req);
	else if (strcmp(action, "snapshot") == 0)
		handle_snapshot(d, c, sb, req);
	else
		handle_control(d, c, sb, req, action);
}

void api_handle(struct sbxd *d, struct conn *c, struct http_request *req)
{
	char path[1024];
	size_t len = strcspn(req->url.data ? req->url.data : "", "?#");

	if (len >= sizeof(path)) {
		api_error(d, c, 404, "not_found", NULL, "path too long");
		return;
	}
	memcpy(path, req->url.data, len);
	path[len] = '\0';
	log_debug("request %s %s", http_method_str(req->method), path);

	if (strcmp(path, "/healthz") == 0) {
		if (method_is(d, c, req, "GET"))
			handle_health(d, c);
	} else if (strcmp(path, "/metrics") == 0) {
		if (method_is(d, c, req, "GET"))
			handle_metrics(d, c);
	} else if (strcmp(path, "/v1/node") == 0) {
		if (method_is(d, c, req, "GET"))
			handle_node(d, c);
	} else if (strcmp(path, "/v1/node/force-stop") == 0) {
		if (method_is(d, c, req, "POST"))
			handle_force_stop(d, c, req);
	} else if (strcmp(path, "/v1/node/restore-drained") == 0) {
		if (method_is(d, c, req, "POST"))
			handle_restore_drained(d, c, req);
	} else if (strcmp(path, "/v1/sandboxes") == 0) {
		if (!method_is(d, c, req, "GET, POST"))
			return;
		if (req->method == HTTP_GET)
			handle_list(d, c);
		else
			handle_create(d, c, req);
	} else if (strncmp(path, "/v1/sandboxes/", 14) == 0 && path[14]) {
		route_sandbox(d, c, req, path + 14);
	} else {
		api_error(d, c, 404, "not_found", NULL, "no route for %.200s",
			  path);
	}
}
