// SPDX-License-Identifier: MIT
/* Human-readable rendering of sbxd's JSON responses. */
#include "format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CELL_MAX 128

static void newline_indent(FILE *out, int depth)
{
	fputc('\n', out);
	for (int i = 0; i < depth; i++)
		fputs("  ", out);
}

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Copy the string literal at @p, escapes included; return what follows. */
static const char *copy_string(FILE *out, const char *p)
{
	const char *start = p++;

	while (*p && *p != '"')
		p += p[0] == '\\' && p[1] ? 2 : 1;
	if (*p)
		p++;
	fwrite(start, 1, (size_t)(p - start), out);
	return p;
}

/*
 * Re-indent valid JSON text token by token, so numbers and strings keep the
 * server's spelling. A parse and dump would not: jansson 2.14 prints the
 * real 3.355131 as 3.3551310000000001.
 */
static void reindent(FILE *out, const char *p)
{
	int depth = 0;

	for (p = skip_space(p); *p; p = skip_space(p)) {
		switch (*p) {
		case '"':
			p = copy_string(out, p);
			continue;
		case '{':
		case '[':
			fputc(*p, out);
			p = skip_space(p + 1);
			if (*p == '}' || *p == ']') {
				fputc(*p++, out);
				continue;
			}
			newline_indent(out, ++depth);
			continue;
		case '}':
		case ']':
			newline_indent(out, --depth);
			fputc(*p++, out);
			continue;
		case ',':
			fputc(',', out);
			newline_indent(out, depth);
			p++;
			continue;
		case ':':
			fputs(": ", out);
			p++;
			continue;
		default:
			fputc(*p++, out);
			continue;
		}
	}
	fputc('\n', out);
}

void fmt_pretty_json(FILE *out, const char *body)
{
	json_t *root;

	root = json_loads(body ? body : "", JSON_DECODE_ANY, NULL);
	if (!root) {
		if (body && *body)
			fprintf(out, "%s%s", body,
				body[strlen(body) - 1] == '\n' ? "" : "\n");
		return;
	}
	json_decref(root);
	reindent(out, body);
}

void fmt_age(char *buf, size_t len, int64_t ms)
{
	int64_t s = ms / 1000;

	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, len, "%" PRId64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRId64 "m%" PRId64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRId64 "h%" PRId64 "m", s / 3600,
			 s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRId64 "d%" PRId64 "h", s / 86400,
			 s % 86400 / 3600);
}

/* Parse the fraction and zone after "YYYY-MM-DDTHH:MM:SS". */
static int parse_zone(const char *p, int64_t *frac_ms, int64_t *offset_s)
{
	int64_t scale = 100;
	int hours, minutes, used;

	*frac_ms = 0;
	*offset_s = 0;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			*frac_ms += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return 0;
	if ((*p != '+' && *p != '-') ||
	    sscanf(p + 1, "%2d:%2d%n", &hours, &minutes, &used) != 2 ||
	    p[1 + used] != '\0' || hours > 23 || minutes > 59)
		return -EINVAL;
	*offset_s = (int64_t)hours * 3600 + minutes * 60;
	if (*p == '-')
		*offset_s = -*offset_s;
	return 0;
}

static int parse_rfc3339(const char *text, int64_t *ms)
{
	struct tm tm = { 0 };
	int64_t frac_ms, offset_s;
	char sep;
	int used = 0;
	time_t seconds;

	if (sscanf(text, "%4d-%2d-%2d%c%2d:%2d:%2d%n", &tm.tm_year,
		   &tm.tm_mon, &tm.tm_mday, &sep, &tm.tm_hour, &tm.tm_min,
		   &tm.tm_sec, &used) != 7 || used != 19)
		return -EINVAL;
	if (sep != 'T' && sep != 't' && sep != ' ')
		return -EINVAL;
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -EINVAL;
	if (parse_zone(text + used, &frac_ms, &offset_s))
		return -EINVAL;

	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	seconds = timegm(&tm);
	*ms = ((int64_t)seconds - offset_s) * 1000 + frac_ms;
	return 0;
}

int fmt_parse_time(json_t *value, int64_t *ms)
{
	double number;

	if (json_is_string(value))
		return parse_rfc3339(json_string_value(value), ms);
	if (!json_is_number(value))
		return -EINVAL;
	number = json_number_value(value);
	if (number < 0)
		return -EINVAL;
	*ms = number > 1e11 ? (int64_t)number : (int64_t)(number * 1000);
	return 0;
}

/* Write a scalar as table text: "-" for null or missing. */
static void scalar_text(char *buf, size_t len, json_t *value)
{
	switch (json_typeof(value)) {
	case JSON_STRING:
		snprintf(buf, len, "%s", json_string_value(value));
		break;
	case JSON_INTEGER:
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(value));
		break;
	case JSON_REAL:
		snprintf(buf, len, "%.1f", json_real_value(value));
		break;
	case JSON_TRUE:
		snprintf(buf, len, "true");
		break;
	case JSON_FALSE:
		snprintf(buf, len, "false");
		break;
	default:
		snprintf(buf, len, "-");
		break;
	}
}

static void field_text(char *buf, size_t len, json_t *obj, const char *key)
{
	json_t *value = json_object_get(obj, key);

	if (value)
		scalar_text(buf, len, value);
	else
		snprintf(buf, len, "-");
}

static void age_text(char *buf, size_t len, json_t *sandbox, int64_t now_ms)
{
	int64_t created_ms;

	if (fmt_parse_time(json_object_get(sandbox, "created_at"),
			   &created_ms))
		snprintf(buf, len, "-");
	else
		fmt_age(buf, len, now_ms - created_ms);
}

enum { COL_ID, COL_STATE, COL_PID, COL_MEM, COL_READY, COL_AGE, COLS };

static const char *const column_names[COLS] = {
	"ID", "STATE", "PID", "MEM", "READY_MS", "AGE",
};

static void sandbox_row(char row[COLS][CELL_MAX], json_t *sandbox,
			int64_t now_ms)
{
	json_t *mem = json_object_get(sandbox, "memory_mib");

	field_text(row[COL_ID], CELL_MAX, sandbox, "id");
	field_text(row[COL_STATE], CELL_MAX, sandbox, "state");
	field_text(row[COL_PID], CELL_MAX, sandbox, "pid");
	if (json_is_integer(mem))
		snprintf(row[COL_MEM], CELL_MAX, "%" JSON_INTEGER_FORMAT "MiB",
			 json_integer_value(mem));
	else
		snprintf(row[COL_MEM], CELL_MAX, "-");
	field_text(row[COL_READY], CELL_MAX, sandbox, "ready_ms");
	age_text(row[COL_AGE], CELL_MAX, sandbox, now_ms);
}

static void print_row(FILE *out, char row[COLS][CELL_MAX],
		      const int width[COLS])
{
	for (int c = 0; c < COLS; c++) {
		if (c == COLS - 1)
			fprintf(out, "%s\n", row[c]);
		else
			fprintf(out, "%-*s  ", width[c], row[c]);
	}
}

int fmt_sandbox_table(FILE *out, json_t *sandboxes, int64_t now_ms)
{
	size_t count = json_array_size(sandboxes);
	char (*rows)[COLS][CELL_MAX];
	char header[COLS][CELL_MAX];
	int width[COLS];
	size_t i;

	for (int c = 0; c < COLS; c++) {
		snprintf(header[c], CELL_MAX, "%s", column_names[c]);
		width[c] = (int)strlen(column_names[c]);
	}
	rows = calloc(count ? count : 1, sizeof(*rows));
	if (!rows)
		return -ENOMEM;
	for (i = 0; i < count; i++) {
		sandbox_row(rows[i], json_array_get(sandboxes, i), now_ms);
		for (int c = 0; c < COLS; c++) {
			int len = (int)strlen(rows[i][c]);

			if (len > width[c])
				width[c] = len;
		}
	}

	print_row(out, header, width);
	for (i = 0; i < count; i++)
		print_row(out, rows[i], width);
	free(rows);
	return 0;
}

/* Print "reason, exit code N, rip 0xX: message" for an exit object. */
static void print_exit(FILE *out, json_t *exit_info)
{
	json_t *reason = json_object_get(exit_info, "reason");
	json_t *code = json_object_get(exit_info, "exit_code");
	json_t *rip = json_object_get(exit_info, "rip");
	json_t *message = json_object_get(exit_info, "message");
	char text[CELL_MAX];

	scalar_text(text, sizeof(text), reason ? reason : json_null());
	fputs(text, out);
	if (json_is_integer(code))
		fprintf(out, ", exit code %" JSON_INTEGER_FORMAT,
			json_integer_value(code));
	if (json_is_integer(rip))
		fprintf(out, ", rip 0x%llx",
			(unsigned long long)json_integer_value(rip));
	else if (json_is_string(rip))
		fprintf(out, ", rip %s", json_string_value(rip));
	if (json_is_string(message) && *json_string_value(message))
		fprintf(out, ": %s", json_string_value(message));
}

/* Print any value on one line; objects become "key=value, ...". */
static void print_value(FILE *out, json_t *value)
{
	const char *key;
	json_t *item;
	size_t i, n = 0;
	char *text;

	switch (json_typeof(value)) {
	case JSON_OBJECT:
		json_object_foreach(value, key, item) {
			fprintf(out, "%s%s=", n++ ? ", " : "", key);
			if (json_is_string(item)) {
				fputs(json_string_value(item), out);
			} else {
				text = json_dumps(item, JSON_COMPACT |
							JSON_ENCODE_ANY);
				fputs(text ? text : "?", out);
				free(text);
			}
		}
		if (!n)
			fputs("-", out);
		break;
	case JSON_ARRAY:
		json_array_foreach(value, i, item) {
			if (i)
				fputs(", ", out);
			print_value(out, item);
		}
		if (!json_array_size(value))
			fputs("-", out);
		break;
	case JSON_STRING:
		fputs(json_string_value(value), out);
		break;
	default: {
		char cell[CELL_MAX];

		scalar_text(cell, sizeof(cell), value);
		fputs(cell, out);
		break;
	}
	}
}

static int label_width(json_t *obj)
{
	const char *key;
	json_t *value;
	int width = 0;

	json_object_foreach(obj, key, value) {
		int len = (int)strlen(key);

		if (len > width)
			width = len;
	}
	return width;
}

/* Print "key:" padded so that values start in one column. */
static void print_label(FILE *out, const char *key, int width)
{
	fprintf(out, "%s:%*s ", key, width - (int)strlen(key), "");
}

void fmt_sandbox_detail(FILE *out, json_t *sandbox, int64_t now_ms)
{
	int width = label_width(sandbox);
	const char *key;
	json_t *value;

	json_object_foreach(sandbox, key, value) {
		print_label(out, key, width);
		if (strcmp(key, "exit") == 0 && json_is_object(value)) {
			print_exit(out, value);
		} else if (strcmp(key, "created_at") == 0) {
			char age[CELL_MAX];

			print_value(out, value);
			age_text(age, sizeof(age), sandbox, now_ms);
			if (strcmp(age, "-") != 0)
				fprintf(out, " (%s ago)", age);
		} else {
			print_value(out, value);
		}
		fputc('\n', out);
	}
}

void fmt_sandbox_summary(FILE *out, json_t *sandbox)
{
	json_t *exit_info = json_object_get(sandbox, "exit");
	json_t *pid = json_object_get(sandbox, "pid");
	char id[CELL_MAX], state[CELL_MAX];

	field_text(id, sizeof(id), sandbox, "id");
	field_text(state, sizeof(state), sandbox, "state");
	fprintf(out, "%s: %s", id, state);
	if (json_is_integer(pid))
		fprintf(out, ", pid %" JSON_INTEGER_FORMAT,
			json_integer_value(pid));
	if (json_is_object(exit_info)) {
		fputs(" (", out);
		print_exit(out, exit_info);
		fputc(')', out);
	}
	fputc('\n', out);
}

void fmt_node(FILE *out, json_t *node)
{
	int width = label_width(node);
	const char *key;
	json_t *value;

	json_object_foreach(node, key, value) {
		print_label(out, key, width);
		print_value(out, value);
		fputc('\n', out);
	}
}

/* Append "LABEL VALUE" to @buf when @key is present in @node. */
static void append_field(char *buf, size_t len, json_t *node,
			 const char *key, const char *label)
{
	json_t *value = json_object_get(node, key);
	size_t used = strlen(buf);
	char cell[CELL_MAX];

	if (!value || used + 1 >= len)
		return;
	scalar_text(cell, sizeof(cell), value);
	snprintf(buf + used, len - used, "%s%s %s", used ? "  " : "", label,
		 cell);
}

void fmt_node_status(char *buf, size_t len, json_t *node)
{
	json_t *state = json_object_get(node, "state");

	if (!len)
		return;
	snprintf(buf, len, "%s",
		 json_is_string(state) ? json_string_value(state) : "?");
	append_field(buf, len, node, "live", "live");
	append_field(buf, len, node, "inflight_starts", "starting");
	append_field(buf, len, node, "admitted", "admitted");
	append_field(buf, len, node, "rejected", "rejected");
	append_field(buf, len, node, "started", "started");
	append_field(buf, len, node, "failed", "failed");
}

void fmt_node_line(char *buf, size_t len, json_t *node)
{
	json_t *draining = json_object_get(node, "draining_for_ms");
	size_t used;

	if (!len)
		return;
	fmt_node_status(buf, len, node);
	used = strlen(buf);
	if (json_is_number(draining) && used + 1 < len)
		snprintf(buf + used, len - used, "  draining for %.1fs",
			 json_number_value(draining) / 1000.0);
}

void fmt_force_stop(FILE *out, json_t *result)
{
	json_t *stopped = json_object_get(result, "stopped");
	json_t *already = json_object_get(result, "already_stopping");
	json_t *failed = json_object_get(result, "failed");
	char requested[CELL_MAX];
	json_t *item;
	size_t i;

	field_text(requested, sizeof(requested), result, "requested");
	fprintf(out, "requested: %s\nstopped:   ", requested);
	print_value(out, stopped ? stopped : json_null());
	/* sbxd versions before the key existed do not send it. */
	if (already) {
		fprintf(out, "\nalready_stopping: ");
		print_value(out, already);
	}
	fprintf(out, "\nfailed:    %s\n", json_array_size(failed) ? "" : "-");
	json_array_foreach(failed, i, item) {
		char id[CELL_MAX], error[CELL_MAX * 4];

		field_text(id, sizeof(id), item, "id");
		field_text(error, sizeof(error), item, "error");
		fprintf(out, "  %s: %s\n", id, error);
	}
}

void fmt_snapshot(FILE *out, const char *id, json_t *result)
{
	char path[CELL_MAX * 8], bytes[CELL_MAX];
	json_t *ms = json_object_get(result, "ms");

	field_text(path, sizeof(path), result, "path");
	field_text(bytes, sizeof(bytes), result, "bytes");
	fprintf(out, "saved %s to %s (%s bytes", id, path, bytes);
	if (json_is_number(ms))
		fprintf(out, ", %.1f ms", json_number_value(ms));
	fputs(")\n", out);
}

void fmt_restore_drained(FILE *out, json_t *result)
{
	json_t *restored = json_object_get(result, "restored");
	json_t *failed = json_object_get(result, "failed");
	json_t *item;
	size_t i;

	fputs("restored: ", out);
	print_value(out, restored ? restored : json_null());
	fprintf(out, "\nfailed:   %s\n", json_array_size(failed) ? "" : "-");
	json_array_foreach(failed, i, item) {
		char id[CELL_MAX], error[CELL_MAX * 4];

		field_text(id, sizeof(id), item, "id");
		field_text(error, sizeof(error), item, "error");
		fprintf(out, "  %s: %s\n", id, error);
	}
}

void fmt_error(char *buf, size_t len, int status, const char *body,
	       long retry_after)
{
	json_t *root, *message, *code;
	size_t used;

	root = body ? json_loads(body, 0, NULL) : NULL;
	message = json_object_get(json_object_get(root, "error"), "message");
	code = json_object_get(json_object_get(root, "error"), "code");
	if (json_is_string(message) && *json_string_value(message)) {
		snprintf(buf, len, "%s", json_string_value(message));
	} else if (json_is_string(code)) {
		snprintf(buf, len, "sbxd returned HTTP %d with error code '%s'",
			 status, json_string_value(code));
	} else if (body && *body) {
		int line = (int)strcspn(body, "\r\n");

		snprintf(buf, len, "sbxd returned HTTP %d: %.*s", status,
			 line > 200 ? 200 : line, body);
	} else {
		snprintf(buf, len, "sbxd returned HTTP %d with an empty body",
			 status);
	}
	json_decref(root);

	used = strlen(buf);
	if (retry_after >= 0 && used + 1 < len)
		snprintf(buf + used, len - used, " (retry after %ld s)",
			 retry_after);
}
