/* SPDX-License-Identifier: MIT */
/*
 * Pause, resume, snapshot and checkpoint of one sandbox: the API
 * requests, the VMM's replies, and a checkpoint's move into a new VMM.
 * Each request responds on its connection, now or once the VMM replied.
 */
#ifndef SBXD_SNAPCTL_H
#define SBXD_SNAPCTL_H

#include <limits.h>
#include <stdbool.h>

#include "sbxd/sandbox.h"
#include "sbxd/vmm_proto.h"

struct sbxd;
struct conn;

/* Body of POST /v1/sandboxes/ID/snapshot, decoded by the API. */
struct snapshot_params {
	char path[PATH_MAX];	/* absolute, or "" for the default */
	bool overwrite;		/* replace an existing file */
};

/* Name of the default snapshot file, in the sandbox's directory. */
#define SNAPCTL_DEFAULT_NAME "snapshot.snap"
/* Name of a checkpoint's file, in the sandbox's directory. */
#define SNAPCTL_CHECKPOINT_NAME "checkpoint.snap"

void snapctl_pause(struct sbxd *d, struct conn *c, struct sandbox *sb);
void snapctl_resume(struct sbxd *d, struct conn *c, struct sandbox *sb);
void snapctl_snapshot(struct sbxd *d, struct conn *c, struct sandbox *sb,
		      const struct snapshot_params *params);
void snapctl_checkpoint(struct sbxd *d, struct conn *c, struct sandbox *sb);

/*
 * Save sb to path for the checkpoint drain policy, without resuming it
 * afterwards; drained_on_saved() gets the result. Returns 0, or a
 * negative errno when nothing was started.
 */
int snapctl_drain_save(struct sbxd *d, struct sandbox *sb, const char *path);

/* PAUSED, RESUMED or SNAPSHOT_DONE from sb's VMM. */
void snapctl_on_msg(struct sbxd *d, struct sandbox *sb,
		    const struct sbx_msg *msg, const char *payload);
/* READY from the new VMM of a checkpoint. */
void snapctl_on_ready(struct sbxd *d, struct sandbox *sb);
/*
 * Start the new VMM of a checkpoint once the old one is reaped and its
 * control socket is no longer polled; call after either event.
 */
void snapctl_switch(struct sbxd *d, struct sandbox *sb);
/* Send the response of the operation in progress when sb's VMM ended. */
void snapctl_on_exit(struct sbxd *d, struct sandbox *sb);

#endif
