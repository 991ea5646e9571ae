/* SPDX-License-Identifier: MIT */
/* Read-only access to sbxd's pinned BPF drain-state map. */
#ifndef SBXCTL_DRAINMAP_H
#define SBXCTL_DRAINMAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sbxd/drain_state.h"

/* Mount point of the bpffs where sbxd pins. sbxd has no flag to change it. */
#define DRAINMAP_BPFFS "/sys/fs/bpf"
/* Maximum length of an instance name that sbxd accepts for --instance. */
#define DRAINMAP_INSTANCE_MAX 63
#define DRAINMAP_QUOTE(x) #x
#define DRAINMAP_TEXT(x) DRAINMAP_QUOTE(x)
/* The rule of drainmap_instance_valid() in words, for error messages. */
#define DRAINMAP_INSTANCE_RULE                                             \
	"1 to " DRAINMAP_TEXT(DRAINMAP_INSTANCE_MAX) " characters from "  \
	"A-Z a-z 0-9 _ . -, other than . and .."
#define DRAINMAP_PATH_MAX 256

struct drainmap {
	int fd;				/* map fd, -1 when closed */
	char path[DRAINMAP_PATH_MAX];	/* the pin that was opened */
	dev_t pin_dev;			/* identity of the pin at open time, */
	ino_t pin_ino;			/* to notice a replaced pin */
};

/*
 * Check an instance name by sbxd's rule: 1 to DRAINMAP_INSTANCE_MAX
 * characters from [A-Za-z0-9_.-], and neither "." nor "..".
 */
bool drainmap_instance_valid(const char *instance);

/*
 * Write BPFFS/sbxd/INSTANCE/drain_state into @path. Returns 0, or
 * -ENAMETOOLONG when it does not fit @len.
 */
int drainmap_pin_path(const char *bpffs, const char *instance, char *path,
		      size_t len);

/*
 * Open the map pinned at @path read-only and check that it has the shape
 * of struct sbxd_drain_state. Returns 0, or a negative errno with one line
 * in @reason that names the path and the error: -ENOENT when nothing is
 * pinned there, -EACCES or -EPERM without the privilege to open it, and
 * -EPROTO when the pin is not sbxd's drain-state map.
 */
int drainmap_open(struct drainmap *map, const char *path, char *reason,
		  size_t reason_len);

/* Copy the current state. Works after the pin is gone. Returns 0 or -errno. */
int drainmap_read(const struct drainmap *map, struct sbxd_drain_state *out);

enum drainmap_pin {
	DRAINMAP_PIN_PRESENT,	/* the pin still names the opened map */
	DRAINMAP_PIN_REMOVED,
	DRAINMAP_PIN_REPLACED,	/* the path now names another pin */
};

/* Check what the pin path names now. Returns 0, or -errno from stat. */
int drainmap_check_pin(const struct drainmap *map, enum drainmap_pin *pin);

/* Close the map fd. Safe on a closed map. */
void drainmap_close(struct drainmap *map);

/* Name of a draining value, such as "draining", or "unknown". */
const char *drainmap_state_name(uint32_t draining);

/*
 * Build the JSON object that GET /v1/node would send for the fields that
 * the map holds: state, inflight_starts, live, admitted, rejected, started,
 * failed and draining_for_ms (null while serving). @now_ns is the current
 * CLOCK_MONOTONIC time, the clock of drain_started_ns. Returns NULL when
 * out of memory.
 */
json_t *drainmap_to_json(const struct sbxd_drain_state *state,
			 uint64_t now_ns);

#endif
