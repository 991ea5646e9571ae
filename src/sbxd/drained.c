// SPDX-License-Identifier: MIT
/* The checkpoint drain policy, STATE_DIR/drained.json and its restore. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sbxd/api.h"
#include "sbxd/drained.h"
#include "sbxd/log.h"
#include "sbxd/probes.h"
#include "sbxd/sbxd.h"
#include "sbxd/snapctl.h"

#define RETRY_AFTER "Retry-After: 5\r\n"

void drained_init(struct sbxd *d)
{
	memset(&d->drained, 0, sizeof(d->drained));
}

static void batch_free(struct drained_batch *batch)
{
	if (!batch)
		return;
	json_decref(batch->keep);
	json_decref(batch->restored);
	json_decref(batch->failed);
	json_decref(batch->remove);
	free(batch);
}

void drained_free(struct sbxd *d)
{
	json_decref(d->drained.entries);
	d->drained.entries = NULL;
	batch_free(d->drained.batch);
	d->drained.batch = NULL;
}

static const char *plural(unsigned int n)
{
	return n == 1 ? "sandbox" : "sandboxes";
}

static int state_path(struct sbxd *d, const char *name, char *out,
		      size_t len)
{
	if ((size_t)snprintf(out, len, "%s/%s", d->cfg.state_dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* The "sandboxes" array of drained.json, or NULL when absent or broken. */
static json_t *read_entries(const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	json_t *list;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s is unreadable or not JSON: %s", path,
			 jerr.text);
		return NULL;
	}
	list = json_object_get(root, "sandboxes");
	if (!json_is_array(list)) {
		snprintf(err, errlen, "%s has no \"sandboxes\" array", path);
		json_decref(root);
		return NULL;
	}
	json_incref(list);
	json_decref(root);
	return list;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * Replace drained.json with entries, atomically: a temporary file,
 * fsync, rename, fsync of the state dir. NOTE: these are blocking calls
 * on the loop, made once per drain or restore.
 */
static int write_list(struct sbxd *d, json_t *entries)
{
	char path[PATH_MAX];
	char tmp[PATH_MAX + 8];
	char stamp[80];
	struct timespec now;
	json_t *root;
	int fd;
	int ret;

	ret = state_path(d, DRAINED_FILE, path, sizeof(path));
	if (ret)
		return ret;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	clock_gettime(CLOCK_REALTIME, &now);
	sandbox_format_time(&now, stamp, sizeof(stamp));
	root = json_pack("{s:i, s:s, s:O}", "version", DRAINED_VERSION,
			 "written_at", stamp, "sandboxes", entries);
	if (!root)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0) {
		ret = -errno;
		goto err_root;
	}
	if (json_dumpfd(root, fd, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ||
	    write(fd, "\n", 1) != 1) {
		ret = errno ? -errno : -EIO;
		goto err_file;
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		goto err_file;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		ret = -errno;
		unlink(tmp);
		goto err_root;
	}
	json_decref(root);
	return fsync_dir(d->cfg.state_dir);

err_file:
	close(fd);
	unlink(tmp);
err_root:
	json_decref(root);
	return ret;
}

/* Write this drain's entries after those an earlier drain left. */
static void write_saved(struct sbxd *d)
{
	struct drained_state *st = &d->drained;
	char path[PATH_MAX];
	char err[PATH_MAX + 128];
	json_t *all;
	size_t i;
	json_t *entry;
	int ret;

	st->written = true;
	if (!st->entries || json_array_size(st->entries) == 0)
		return;
	if (state_path(d, DRAINED_FILE, path, sizeof(path)))
		return;
	all = access(path, F_OK) == 0 ? read_entries(path, err, sizeof(err)) :
					NULL;
	if (!all && access(path, F_OK) == 0)
		log_err("drain: %s; replacing it with this drain's list", err);
	if (!all)
		all = json_array();
	json_array_foreach(st->entries, i, entry)
		json_array_append(all, entry);
	ret = all ? write_list(d, all) : -ENOMEM;
	json_decref(all);
	if (ret) {
		st->write_failed = true;
		log_err("drain: failed to write %s: %s; the %u saved %s in "
			"%s/%s/ are not listed", path, strerror(-ret),
			st->saved, plural(st->saved), d->cfg.state_dir,
			DRAINED_DIR);
		return;
	}
	log_info("drain: listed %u saved %s in %s", st->saved,
		 plural(st->saved), path);
}

static json_t *make_entry(struct sandbox *sb, const char *path)
{
	char created[80];
	json_t *metadata;

	sandbox_format_time(&sb->created_at, created, sizeof(created));
	metadata = sb->params.metadata ? json_copy(sb->params.metadata) :
					 json_object();
	return json_pack("{s:s, s:o, s:o, s:i, s:o, s:o, s:s}",
			 "id", sb->id,
			 "snapshot", api_json_bytes(path, strlen(path)),
			 "metadata", metadata,
			 "memory_mib", (json_int_t)sb->params.memory_mib,
			 "guest", sb->params.guest[0] ?
				  api_json_bytes(sb->params.guest,
						 strlen(sb->params.guest)) :
				  json_null(),
			 "args", api_json_bytes(sb->params.args,
						strlen(sb->params.args)),
			 "created_at", created);
}

void drained_on_saved(struct sbxd *d, struct sandbox *sb, const char *path,
		      const char *error)
{
	struct drained_state *st = &d->drained;
	json_t *entry;

	sb->drain_done = true;
	if (!error) {
		entry = make_entry(sb, path);
		if (!st->entries)
			st->entries = json_array();
		if (entry && st->entries &&
		    json_array_append_new(st->entries, entry) == 0) {
			st->saved++;
			/* Saved and paused, so the guest cannot notice. */
			sandbox_kill(d, sb, "saved by the checkpoint drain");
			return;
		}
		json_decref(entry);
		error = "out of memory listing it";
	}
	st->unsaved++;
	log_err("drain: failed to save sandbox %s: %s; stopping it instead",
		sb->id, error);
	if (!sb->reaped && sandbox_next_state(sb->state, SANDBOX_EV_STOP) !=
			   SANDBOX_STATE_INVALID)
		sandbox_stop(d, sb, d->cfg.stop_grace_ms, NULL);
}

void drained_save_pass(struct sbxd *d)
{
	struct drained_state *st = &d->drained;
	char dir[PATH_MAX];
	char path[PATH_MAX];
	unsigned int pending = 0;
	struct sandbox *sb;
	int ret;

	if (st->written)
		return;
	if (state_path(d, DRAINED_DIR, dir, sizeof(dir)) == 0 &&
	    mkdir(dir, 0700) < 0 && errno != EEXIST)
		log_err("drain: failed to create %s: %s", dir,
			strerror(errno));
	TAILQ_FOREACH(sb, &d->sandboxes.list, link) {
		/* A stopping sandbox was asked to end: let it. */
		if (!sb->ready || sb->reaped || sb->drain_done ||
		    sb->state == SANDBOX_STOPPING)
			continue;
		pending++;
		if (sb->op.kind != SANDBOX_OP_NONE)
			continue; /* saved once its operation ended */
		if ((size_t)snprintf(path, sizeof(path), "%s/%s.snap", dir,
				     sb->id) >= sizeof(path)) {
			drained_on_saved(d, sb, NULL, "the snapshot path is "
					 "too long");
			continue;
		}
		ret = snapctl_drain_save(d, sb, path);
		if (ret) {
			char error[128];

			snprintf(error, sizeof(error), "failed to send "
				 "SNAPSHOT: %s", strerror(-ret));
			drained_on_saved(d, sb, NULL, error);
		}
	}
	if (pending == 0)
		write_saved(d);
}

void drained_finish(struct sbxd *d)
{
	struct drained_state *st = &d->drained;
	struct sandbox *sb;

	if (d->cfg.drain_policy != DRAIN_POLICY_CHECKPOINT)
		return;
	TAILQ_FOREACH(sb, &d->sandboxes.list, link) {
		if (sb->ready && !sb->drain_done && sb->force_stopping) {
			sb->drain_done = true;
			st->unsaved++;
			log_err("drain: sandbox %s was stopped by the forced "
				"phase before it was saved", sb->id);
		}
	}
	if (!st->written)
		write_saved(d);
}

/* "2026-12-04T15:52:01.093Z" back to a timespec; zero when malformed. */
static struct timespec parse_time(const char *text)
{
	struct timespec ts = { 0 };
	struct tm tm = { 0 };
	int ms = 0;

	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year,
		   &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
		   &tm.tm_sec, &ms) != 7)
		return ts;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	ts.tv_sec = timegm(&tm);
	ts.tv_nsec = (long)ms * 1000000L;
	return ts;
}

static bool valid_id(const char *id)
{
	size_t len = strlen(id);

	if (len != SANDBOX_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)id[i]) ||
		    isupper((unsigned char)id[i]))
			return false;
	}
	return true;
}

/* Fill params from one entry of drained.json; 0 or -EINVAL with err. */
static int entry_params(json_t *entry, struct sandbox_params *p, char *err,
			size_t errlen)
{
	const char *id = NULL, *snapshot = NULL, *guest = "", *args = "";
	const char *created = "";
	json_t *metadata = NULL;
	json_int_t memory_mib = 0;
	json_error_t jerr;

	memset(p, 0, sizeof(*p));
	if (json_unpack_ex(entry, &jerr, 0, "{s:s, s:s, s?o, s?I, s?s, s?s, "
			   "s?s}", "id", &id, "snapshot", &snapshot,
			   "metadata", &metadata, "memory_mib", &memory_mib,
			   "guest", &guest, "args", &args, "created_at",
			   &created)) {
		snprintf(err, errlen, "malformed entry: %s", jerr.text);
		return -EINVAL;
	}
	if (!valid_id(id)) {
		snprintf(err, errlen, "invalid id \"%.64s\"", id);
		return -EINVAL;
	}
	if (snapshot[0] != '/' || strlen(snapshot) >= sizeof(p->snapshot) ||
	    strlen(guest) >= sizeof(p->guest) ||
	    strlen(args) >= sizeof(p->args) ||
	    (metadata && !json_is_object(metadata)) || memory_mib < 0 ||
	    memory_mib > 4096) {
		snprintf(err, errlen, "entry %s has an invalid snapshot, "
			 "guest, args, metadata or memory_mib", id);
		return -EINVAL;
	}
	p->vcpus = 1;
	p->memory_mib = (unsigned int)memory_mib;
	strcpy(p->guest, guest);
	strcpy(p->args, args);
	strcpy(p->snapshot, snapshot);
	strcpy(p->id, id);
	/* The file was stored across a restart, so check all of it. */
	p->verify_ram = true;
	p->created_at = parse_time(created);
	p->metadata = metadata ? json_copy(metadata) : json_object();
	return 0;
}

static void batch_fail(struct drained_batch *batch, json_t *entry,
		       const char *id, const char *error)
{
	log_err("restore-drained: sandbox %s not restored: %s", id, error);
	json_array_append(batch->keep, entry);
	json_array_append_new(batch->failed,
			      json_pack("{s:s, s:s}", "id", id, "error",
					error));
}

/* Remove or rewrite drained.json and respond to the request, if any. */
static void batch_finish(struct sbxd *d)
{
	struct drained_batch *batch = d->drained.batch;
	char path[PATH_MAX];
	size_t kept = json_array_size(batch->keep);
	size_t i;
	json_t *file;
	int ret = 0;

	d->drained.batch = NULL;
	if (state_path(d, DRAINED_FILE, path, sizeof(path)) == 0) {
		if (kept)
			ret = write_list(d, batch->keep);
		else if (unlink(path) < 0 && errno != ENOENT)
			ret = -errno;
		if (ret)
			log_err("restore-drained: failed to update %s: %s",
				path, strerror(-ret));
	}
	/* Restored VMMs keep their mapping of a removed file. */
	json_array_foreach(batch->remove, i, file) {
		if (unlink(json_string_value(file)) < 0 && errno != ENOENT)
			log_warn("restore-drained: failed to remove %s: %s",
				 json_string_value(file), strerror(errno));
	}
	if (!kept && state_path(d, DRAINED_DIR, path, sizeof(path)) == 0)
		rmdir(path);
	log_info("restore-drained: restored %zu %s, %zu failed%s",
		 json_array_size(batch->restored),
		 plural((unsigned int)json_array_size(batch->restored)),
		 json_array_size(batch->failed),
		 kept ? "; the failed ones stay in drained.json" : "");
	if (batch->conn)
		api_json(d, batch->conn, 200,
			 json_pack("{s:O, s:O}", "restored", batch->restored,
				   "failed", batch->failed));
	batch_free(batch);
}

void drained_batch_done(struct sbxd *d, struct sandbox *sb, bool ok,
			const char *error)
{
	struct drained_batch *batch = sb->params.batch;
	json_t *entry;

	sb->params.batch = NULL;
	if (!batch || batch != d->drained.batch)
		return;
	if (ok) {
		json_array_append_new(batch->restored, json_string(sb->id));
		json_array_append_new(batch->remove,
				      json_string(sb->params.snapshot));
	} else {
		entry = make_entry(sb, sb->params.snapshot);
		batch_fail(batch, entry, sb->id,
			   error && error[0] ? error : "the restore failed");
		json_decref(entry);
	}
	if (--batch->remaining == 0)
		batch_finish(d);
}

/* Start one entry's restore; false when it failed at once. */
static bool restore_entry(struct sbxd *d, struct drained_batch *batch,
			  json_t *entry)
{
	const char *id = json_string_value(json_object_get(entry, "id"));
	struct sandbox_params params;
	char err[512];
	int ret;

	if (!id)
		id = "?";
	if (entry_params(entry, &params, err, sizeof(err))) {
		batch_fail(batch, entry, id, err);
		return false;
	}
	if (sandbox_find(d, params.id)) {
		snprintf(err, sizeof(err), "a sandbox with id %s exists",
			 params.id);
		batch_fail(batch, entry, id, err);
		sandbox_params_free(&params);
		return false;
	}
	ret = gate_enter(&d->gate);
	if (ret) {
		snprintf(err, sizeof(err), "the admission gate rejected it: "
			 "%s", ret == -EAGAIN ? "sbxd is draining" :
			 strerror(-ret));
		batch_fail(batch, entry, id, err);
		sandbox_params_free(&params);
		return false;
	}
	PROBE_START_ADMIT();
	params.batch = batch;
	batch->remaining++;
	ret = sandbox_create(d, &params, NULL, err, sizeof(err));
	sandbox_params_free(&params);
	if (ret) {
		batch->remaining--;
		batch_fail(batch, entry, id, err);
		return false;
	}
	return true;
}

static struct drained_batch *batch_new(struct conn *conn)
{
	struct drained_batch *batch = calloc(1, sizeof(*batch));

	if (!batch)
		return NULL;
	batch->conn = conn;
	batch->keep = json_array();
	batch->restored = json_array();
	batch->failed = json_array();
	batch->remove = json_array();
	if (!batch->keep || !batch->restored || !batch->failed ||
	    !batch->remove) {
		batch_free(batch);
		return NULL;
	}
	return batch;
}

int drained_restore(struct sbxd *d, struct conn *conn)
{
	struct drained_batch *batch;
	char path[PATH_MAX];
	char err[PATH_MAX + 128];
	json_t *entries;
	json_t *entry;
	size_t i;

	if (d->drained.batch) {
		if (conn)
			api_error(d, conn, 409, "busy", NULL, "a restore of "
				  "drained.json is already in progress");
		return -EBUSY;
	}
	if (d->drain.state != SBXD_SERVING) {
		if (conn)
			api_error(d, conn, 503, "draining", RETRY_AFTER,
				  "sbxd is draining and restores nothing");
		return -EAGAIN;
	}
	if (state_path(d, DRAINED_FILE, path, sizeof(path)))
		return -ENAMETOOLONG;
	batch = batch_new(conn);
	if (!batch) {
		if (conn)
			api_error(d, conn, 500, "internal", NULL,
				  "out of memory");
		return -ENOMEM;
	}
	d->drained.batch = batch;
	if (access(path, F_OK) < 0) {
		log_info("restore-drained: %s does not exist; nothing to "
			 "restore", path);
		batch_finish(d);
		return 0;
	}
	entries = read_entries(path, err, sizeof(err));
	if (!entries) {
		log_err("restore-drained: %s", err);
		d->drained.batch = NULL;
		batch_free(batch);
		if (conn)
			api_error(d, conn, 500, "internal", NULL, "%s", err);
		return -EINVAL;
	}
	log_info("restore-drained: restoring %zu %s from %s",
		 json_array_size(entries),
		 plural((unsigned int)json_array_size(entries)), path);
	/* Held until the loop ends, so no restore can finish the batch. */
	batch->remaining++;
	json_array_foreach(entries, i, entry)
		restore_entry(d, batch, entry);
	json_decref(entries);
	if (--batch->remaining == 0)
		batch_finish(d);
	return 0;
}

void drained_log_pending(struct sbxd *d)
{
	char path[PATH_MAX];
	char err[PATH_MAX + 128];
	json_t *entries;

	if (state_path(d, DRAINED_FILE, path, sizeof(path)) ||
	    access(path, F_OK) < 0)
		return;
	entries = read_entries(path, err, sizeof(err));
	if (!entries) {
		log_warn("%s", err);
		return;
	}
	log_info("%s lists %zu %s saved by a drain; restore them with "
		 "--restore-drained or POST /v1/node/restore-drained", path,
		 json_array_size(entries),
		 plural((unsigned int)json_array_size(entries)));
	json_decref(entries);
}
