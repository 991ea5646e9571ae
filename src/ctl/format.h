/* SPDX-License-Identifier: MIT */
/* Human-readable rendering of sbxd's JSON responses. */
#ifndef SBXCTL_FORMAT_H
#define SBXCTL_FORMAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Print @body indented by two spaces per level, keeping the server's key
 * order. A body that is not JSON is printed as it is.
 */
void fmt_pretty_json(FILE *out, const char *body);

/*
 * Print the table ID STATE PID MEM READY_MS AGE for an array of sandbox
 * objects; @now_ms (ms since the epoch) dates the AGE column. Returns 0
 * or -ENOMEM.
 */
int fmt_sandbox_table(FILE *out, json_t *sandboxes, int64_t now_ms);

/* Print every field of one sandbox as aligned "name: value" lines. */
void fmt_sandbox_detail(FILE *out, json_t *sandbox, int64_t now_ms);

/*
 * Print one line such as "sb-1: running, pid 42" or "sb-1: exited
 * (stopped, exit code 0)".
 */
void fmt_sandbox_summary(FILE *out, json_t *sandbox);

/* Print every field of GET /v1/node as aligned "name: value" lines. */
void fmt_node(FILE *out, json_t *node);

/*
 * Write the one-line node status that "node --watch" redraws: the state
 * and the counters, then the time draining when draining_for_ms is set.
 */
void fmt_node_line(char *buf, size_t len, json_t *node);

/* Write the line of fmt_node_line() without the time draining. */
void fmt_node_status(char *buf, size_t len, json_t *node);

/* Print the result of POST /v1/node/force-stop. */
void fmt_force_stop(FILE *out, json_t *result);

/* Print "saved ID to PATH (N bytes, M ms)" for a snapshot's result. */
void fmt_snapshot(FILE *out, const char *id, json_t *result);

/* Print the restored IDs and the failures of restore-drained. */
void fmt_restore_drained(FILE *out, json_t *result);

/*
 * Write the message for a failed request: the server's error message when
 * the body is sbxd's error JSON, else the status and the start of the body.
 */
void fmt_error(char *buf, size_t len, int status, const char *body,
	       long retry_after);

/* Write an age such as "42s", "3m12s", "5h2m" or "4d7h". */
void fmt_age(char *buf, size_t len, int64_t ms);

/*
 * Read a timestamp: an RFC 3339 string, or a number of seconds (or of ms
 * when above 1e11) since the epoch. Returns 0, or -EINVAL.
 */
int fmt_parse_time(json_t *value, int64_t *ms);

#endif
