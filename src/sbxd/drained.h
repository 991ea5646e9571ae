/* SPDX-License-Identifier: MIT */
/*
 * The checkpoint drain policy and its way back: saving every live sandbox
 * to STATE_DIR/drained/ID.snap, listing them in STATE_DIR/drained.json,
 * and restoring that list under the same ids after a restart.
 */
#ifndef SBXD_DRAINED_H
#define SBXD_DRAINED_H

#include <jansson.h>
#include <stdbool.h>

struct sbxd;
struct conn;
struct sandbox;

#define DRAINED_FILE "drained.json"
#define DRAINED_DIR "drained"
#define DRAINED_VERSION 1

/* A restore of drained.json in progress. */
struct drained_batch {
	struct conn *conn;	/* POST /v1/node/restore-drained, or NULL */
	json_t *keep;		/* entries that failed: they stay listed */
	json_t *restored;	/* ids of the sandboxes now running */
	json_t *failed;		/* [{"id","error"}] */
	json_t *remove;		/* snapshot files of the restored ones */
	unsigned int remaining;	/* restores not yet ready or failed */
};

struct drained_state {
	json_t *entries;	/* saved by this drain, not yet written */
	bool written;		/* drained.json was written */
	bool write_failed;
	unsigned int saved;
	unsigned int unsaved;	/* live sandboxes the drain did not save */
	struct drained_batch *batch;
};

void drained_init(struct sbxd *d);
void drained_free(struct sbxd *d);

/*
 * One pass of the checkpoint policy, while draining with no start in
 * flight: start saving each live sandbox that is not busy and not yet
 * saved, and write drained.json once none is left. Cheap to repeat.
 */
void drained_save_pass(struct sbxd *d);
/*
 * At the end of the drain: write what was saved if that did not happen
 * yet, and count the live sandboxes that the forced phase stopped
 * unsaved.
 */
void drained_finish(struct sbxd *d);
/*
 * The drain's snapshot of sb ended: saved at path when error is NULL,
 * else not saved for the reason in error.
 */
void drained_on_saved(struct sbxd *d, struct sandbox *sb, const char *path,
		      const char *error);

/*
 * Restore every sandbox that STATE_DIR/drained.json lists, under its old
 * id. With conn, respond there once all are ready or failed; without,
 * only log. Returns 0 or a negative errno (responded and logged).
 */
int drained_restore(struct sbxd *d, struct conn *conn);
/* A sandbox of the restore batch became ready (ok) or failed. */
void drained_batch_done(struct sbxd *d, struct sandbox *sb, bool ok,
			const char *error);
/* Log a hint when drained.json waits to be restored. */
void drained_log_pending(struct sbxd *d);

#endif
