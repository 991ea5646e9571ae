// SPDX-License-Identifier: MIT
/* Pause, resume, snapshot and checkpoint of a sandbox's VMM. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sbxd/api.h"
#include "sbxd/drained.h"
#include "sbxd/log.h"
#include "sbxd/probes.h"
#include "sbxd/sbxd.h"
#include "sbxd/snapctl.h"

#define RETRY_AFTER "Retry-After: 5\r\n"

static const char *op_name(enum sandbox_op_kind kind)
{
	switch (kind) {
	case SANDBOX_OP_PAUSE: return "pause";
	case SANDBOX_OP_RESUME: return "resume";
	case SANDBOX_OP_SNAPSHOT: return "snapshot";
	case SANDBOX_OP_CHECKPOINT: return "checkpoint";
	case SANDBOX_OP_NONE: break;
	}
	return "operation";
}

static double ms_since(uint64_t start_ns)
{
	return (double)(loop_now_ns() - start_ns) / 1e6;
}

/* Respond 409 "busy" and return true when sb runs another operation. */
static bool reject_busy(struct sbxd *d, struct conn *c, struct sandbox *sb,
			const char *action)
{
	if (sb->op.kind == SANDBOX_OP_NONE)
		return false;
	api_error(d, c, 409, "busy", NULL,
		  "sandbox %s is busy with a %s; retry the %s once it ended",
		  sb->id, op_name(sb->op.kind), action);
	return true;
}

/* Record why the operation failed, for its response and the log. */
__attribute__((format(printf, 4, 5)))
static void op_fail(struct sandbox_op *op, int status, int error,
		    const char *fmt, ...)
{
	va_list ap;

	if (op->error)
		return; /* the first failure is the one to report */
	op->status = status;
	op->error = error ? error : -EIO;
	va_start(ap, fmt);
	vsnprintf(op->message, sizeof(op->message), fmt, ap);
	va_end(ap);
}

static const char *status_code(int status)
{
	switch (status) {
	case 400: return "invalid";
	case 409: return "exited";
	default: return "snapshot_failed";
	}
}

/* Take the finished operation out of sb, so that the next may start. */
static struct sandbox_op op_take(struct sandbox *sb)
{
	struct sandbox_op op = sb->op;

	memset(&sb->op, 0, sizeof(sb->op));
	return op;
}

void snapctl_pause(struct sbxd *d, struct conn *c, struct sandbox *sb)
{
	uint64_t seq;
	int ret;

	if (sb->state == SANDBOX_PAUSED && sb->op.kind == SANDBOX_OP_NONE) {
		api_json(d, c, 200, sandbox_to_json(sb));
		return;
	}
	if (sb->state != SANDBOX_RUNNING && sb->state != SANDBOX_PAUSED) {
		api_error(d, c, 409, "wrong_state", NULL,
			  "sandbox %s is %s; pause needs a running sandbox",
			  sb->id, sandbox_state_name(sb->state));
		return;
	}
	if (reject_busy(d, c, sb, "pause"))
		return;
	seq = ++sb->next_seq;
	ret = sandbox_send_msg(sb, SBX_MSG_PAUSE, seq, 0, NULL, 0);
	if (ret) {
		api_error(d, c, 500, "internal", NULL,
			  "failed to send PAUSE to sandbox %s: %s", sb->id,
			  strerror(-ret));
		return;
	}
	sb->op = (struct sandbox_op){
		.kind = SANDBOX_OP_PAUSE,
		.conn = c,
		.seq = seq,
		.started_ns = loop_now_ns(),
	};
}

void snapctl_resume(struct sbxd *d, struct conn *c, struct sandbox *sb)
{
	uint64_t seq;
	int ret;

	if (sb->state == SANDBOX_RUNNING && sb->op.kind == SANDBOX_OP_NONE) {
		api_json(d, c, 200, sandbox_to_json(sb));
		return;
	}
	if (sb->state != SANDBOX_PAUSED && sb->state != SANDBOX_RUNNING) {
		api_error(d, c, 409, "wrong_state", NULL,
			  "sandbox %s is %s; resume needs a paused sandbox",
			  sb->id, sandbox_state_name(sb->state));
		return;
	}
	if (reject_busy(d, c, sb, "resume"))
		return;
	seq = ++sb->next_seq;
	ret = sandbox_send_msg(sb, SBX_MSG_RESUME, seq, 0, NULL, 0);
	if (ret) {
		api_error(d, c, 500, "internal", NULL,
			  "failed to send RESUME to sandbox %s: %s", sb->id,
			  strerror(-ret));
		return;
	}
	sb->op = (struct sandbox_op){
		.kind = SANDBOX_OP_RESUME,
		.conn = c,
		.seq = seq,
		.started_ns = loop_now_ns(),
	};
}

/* Respond to a finished pause or resume with the sandbox. */
static void finish_pause_resume(struct sbxd *d, struct sandbox *sb,
				enum sandbox_event event)
{
	struct sandbox_op op = op_take(sb);
	int next = sandbox_next_state(sb->state, event);

	if (next != SANDBOX_STATE_INVALID)
		sb->state = next;
	sb_info(sb->id, "%s ms=%.3f", event == SANDBOX_EV_PAUSED ?
		"paused" : "resumed", ms_since(op.started_ns));
	api_json(d, op.conn, 200, sandbox_to_json(sb));
}

/* Join a directory and a file name into out. */
static int join_path(char *out, size_t len, const char *dir,
		     const char *name)
{
	if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Directory part of path, into out. */
static void dir_of(const char *path, char *out, size_t len)
{
	char copy[PATH_MAX];

	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(out, len, "%s", dirname(copy));
}

/*
 * Check the target of an API snapshot before any work: an absolute path
 * in an existing directory on the state dir's file system, and no file
 * there unless overwrite. Responds and returns false when it is unusable.
 */
static bool check_target(struct sbxd *d, struct conn *c, struct sandbox *sb,
			 const char *path, bool overwrite)
{
	char dir[PATH_MAX];
	struct stat dst;
	struct stat sst;
	struct stat st;

	if (path[0] != '/' || path[strlen(path) - 1] == '/') {
		api_error(d, c, 400, "invalid", NULL, "path must be an "
			  "absolute file path, got \"%.256s\"", path);
		return false;
	}
	dir_of(path, dir, sizeof(dir));
	if (stat(dir, &dst) < 0 || !S_ISDIR(dst.st_mode)) {
		api_error(d, c, 400, "invalid", NULL, "path %.256s: directory "
			  "%.256s %s; create it first", path, dir,
			  errno == ENOENT ? "does not exist" :
			  "is not a usable directory");
		return false;
	}
	if (lstat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			api_error(d, c, 400, "invalid", NULL, "path %.256s is "
				  "a directory; name a file in it", path);
			return false;
		}
		if (!overwrite) {
			api_error(d, c, 409, "exists", NULL, "path %.256s "
				  "exists; pass \"overwrite\":true to replace "
				  "it", path);
			return false;
		}
		if (!S_ISREG(st.st_mode)) {
			api_error(d, c, 400, "invalid", NULL, "path %.256s is "
				  "not a regular file; it cannot be replaced",
				  path);
			return false;
		}
	}
	/*
	 * The VMM writes into the sandbox's snapshot dir and sbxd moves the
	 * file with rename(2), which cannot cross file systems.
	 * TODO: copy the file in a helper process instead, so that any
	 * directory works; until then such a path gets 400.
	 */
	if (stat(sb->snapdir, &sst) == 0 && sst.st_dev != dst.st_dev) {
		api_error(d, c, 400, "invalid", NULL, "path %.256s is on "
			  "another file system than the state directory %.256s;"
			  " choose a path on the same file system",
			  path, d->cfg.state_dir);
		return false;
	}
	return true;
}

/* Send SNAPSHOT of op->vmm_path to sb's VMM under a new seq. */
static int send_snapshot(struct sandbox *sb, struct sandbox_op *op)
{
	op->seq = ++sb->next_seq;
	return sandbox_send_msg(sb, SBX_MSG_SNAPSHOT, op->seq, 0,
				op->vmm_path, strlen(op->vmm_path) + 1);
}

/*
 * Move the file the VMM wrote to its final name. The VMM user owns the
 * snapshot dir and could leave a symlink there, so the moved entry must
 * be a regular file. The rename itself never follows a link.
 */
static int move_file(struct sandbox_op *op, const char *from, const char *to,
		     bool overwrite)
{
	char dir[PATH_MAX];
	struct stat st;
	int fd;

	if (renameat2(AT_FDCWD, from, AT_FDCWD, to,
		      overwrite ? 0 : RENAME_NOREPLACE) < 0) {
		int ret = -errno;
		int status = 500;

		if (ret == -EEXIST)
			status = 409;
		else if (ret == -EXDEV)
			status = 400;
		op_fail(op, status, ret, "failed to move the snapshot from %s "
			"to %s: %s", from, to, strerror(-ret));
		unlink(from);
		return ret;
	}
	if (lstat(to, &st) < 0 || !S_ISREG(st.st_mode)) {
		op_fail(op, 500, -EINVAL, "the VMM left %s that is not a "
			"regular file; it was removed", from);
		unlink(to);
		return -EINVAL;
	}
	op->bytes = (uint64_t)st.st_size;
	/* Out of the VMM user's hands from here on. */
	if (st.st_uid != geteuid() && lchown(to, geteuid(), getegid()) < 0)
		log_warn("failed to make %s owned by sbxd's user: %s", to,
			 strerror(errno));
	/*
	 * The VMM synced the file and its own directory; make the new name
	 * durable too. NOTE: this fsync blocks the loop, for about as long
	 * as one journal commit.
	 */
	dir_of(to, dir, sizeof(dir));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

void snapctl_snapshot(struct sbxd *d, struct conn *c, struct sandbox *sb,
		      const struct snapshot_params *params)
{
	struct sandbox_op op = {
		.kind = SANDBOX_OP_SNAPSHOT,
		.conn = c,
		.started_ns = loop_now_ns(),
		.was_paused = sb->state == SANDBOX_PAUSED,
		.overwrite = params->overwrite,
	};
	int ret;

	if (sb->state != SANDBOX_RUNNING && sb->state != SANDBOX_PAUSED) {
		api_error(d, c, 409, "wrong_state", NULL,
			  "sandbox %s is %s; snapshot needs a running or "
			  "paused sandbox", sb->id,
			  sandbox_state_name(sb->state));
		return;
	}
	if (reject_busy(d, c, sb, "snapshot"))
		return;
	if (params->path[0]) {
		snprintf(op.path, sizeof(op.path), "%s", params->path);
	} else {
		/* The default file is replaced by the next default one. */
		op.overwrite = true;
		if (join_path(op.path, sizeof(op.path), sb->dir,
			      SNAPCTL_DEFAULT_NAME)) {
			api_error(d, c, 500, "internal", NULL,
				  "sandbox directory path too long");
			return;
		}
	}
	if (!check_target(d, c, sb, op.path, op.overwrite))
		return;
	if (join_path(op.vmm_path, sizeof(op.vmm_path), sb->snapdir,
		      SNAPCTL_DEFAULT_NAME)) {
		api_error(d, c, 500, "internal", NULL,
			  "sandbox directory path too long");
		return;
	}
	ret = send_snapshot(sb, &op);
	if (ret) {
		api_error(d, c, 500, "internal", NULL,
			  "failed to send SNAPSHOT to sandbox %s: %s", sb->id,
			  strerror(-ret));
		return;
	}
	sb->op = op;
	sb_info(sb->id, "snapshot started path=%s", op.path);
}

int snapctl_drain_save(struct sbxd *d, struct sandbox *sb, const char *path)
{
	struct sandbox_op op = {
		.kind = SANDBOX_OP_SNAPSHOT,
		.started_ns = loop_now_ns(),
		.was_paused = sb->state == SANDBOX_PAUSED,
		.overwrite = true,
		.for_drain = true,
	};
	int ret;

	if (sb->op.kind != SANDBOX_OP_NONE)
		return -EBUSY;
	snprintf(op.path, sizeof(op.path), "%s", path);
	ret = join_path(op.vmm_path, sizeof(op.vmm_path), sb->snapdir,
			"drain.snap");
	if (ret)
		return ret;
	ret = send_snapshot(sb, &op);
	if (ret)
		return ret;
	sb->op = op;
	sb_info(sb->id, "drain: saving to %s", path);
	return 0;
}

static void checkpoint_maybe_done(struct sbxd *d, struct sandbox *sb);

/* Respond to an API snapshot, or pass the drain's result on. */
static void finish_snapshot(struct sbxd *d, struct sandbox *sb)
{
	struct sandbox_op op = op_take(sb);

	if (op.error)
		d->metrics.snapshots_failed++;
	else
		d->metrics.snapshots_ok++;
	PROBE_SNAPSHOT_DONE(sb->id, op.error);
	if (op.error)
		sb_warn(sb->id, "snapshot failed: %s", op.message);
	else
		sb_info(sb->id, "snapshot saved path=%s bytes=%llu ms=%.3f",
			op.path, (unsigned long long)op.bytes, op.save_ms);
	if (op.for_drain) {
		drained_on_saved(d, sb, op.path, op.error ? op.message : NULL);
		return;
	}
	if (op.error) {
		api_error(d, op.conn, op.status, op.status == 409 &&
			  op.error == -EEXIST ? "exists" :
			  status_code(op.status), NULL, "%s", op.message);
		return;
	}
	api_json(d, op.conn, 200,
		 json_pack("{s:o, s:I, s:f}", "path",
			   api_json_bytes(op.path, strlen(op.path)),
			   "bytes", (json_int_t)op.bytes, "ms", op.save_ms));
}

/*
 * Resume a VMM that the SNAPSHOT paused, unless it was paused before.
 * Returns true when a RESUMED is now awaited.
 */
static bool resume_after_save(struct sandbox *sb)
{
	int ret;

	if (sb->op.was_paused || sb->reaped)
		return false;
	sb->op.seq = ++sb->next_seq;
	ret = sandbox_send_msg(sb, SBX_MSG_RESUME, sb->op.seq, 0, NULL, 0);
	if (ret) {
		/* The VMM stays paused, and the state shows it. */
		sb_err(sb->id, "failed to resume after the snapshot: %s; the "
		       "sandbox stays paused", strerror(-ret));
		if (sb->state == SANDBOX_RUNNING ||
		    sb->state == SANDBOX_CHECKPOINTING)
			sb->state = SANDBOX_PAUSED;
		return false;
	}
	sb->op.resuming = true;
	return true;
}

/* A checkpoint that could not save: the old VMM goes on. */
static void finish_checkpoint_failure(struct sbxd *d, struct sandbox *sb)
{
	struct sandbox_op op = op_take(sb);

	if (sb->state == SANDBOX_CHECKPOINTING)
		sb->state = op.was_paused ? SANDBOX_PAUSED : SANDBOX_RUNNING;
	d->metrics.checkpoints_failed++;
	PROBE_CHECKPOINT_DONE(sb->id, op.error);
	gate_exit(&d->gate, false);
	sb_warn(sb->id, "checkpoint failed, the sandbox goes on in pid %d: "
		"%s", (int)sb->pid, op.message);
	sandbox_send_held_execs(d, sb);
	if (op.stop_deferred && !sb->kill_sent) {
		sandbox_send_msg(sb, SBX_MSG_STOP, 0, 0, NULL, 0);
		if (op.was_paused)
			sandbox_send_msg(sb, SBX_MSG_RESUME, 0, 0, NULL, 0);
	}
	api_error(d, op.conn, op.status, op.status == 409 ? "exited" :
		  "checkpoint_failed", NULL, "%s", op.message);
	drain_check(d);
}

/* SNAPSHOT_DONE of a checkpoint: kill the old VMM, or give up. */
static void checkpoint_saved(struct sbxd *d, struct sandbox *sb)
{
	struct sandbox_op *op = &sb->op;

	if (op->error) {
		if (!resume_after_save(sb))
			finish_checkpoint_failure(d, sb);
		return;
	}
	/*
	 * The old VMM is paused, so its guest cannot notice the kill, and a
	 * killed VMM sends no EXITED. The new one starts once the old one is
	 * reaped, so the two never run at once.
	 */
	op->phase = CHECKPOINT_SWITCH;
	op->old_pid = sb->pid;
	/* A DELETE or an expired grace killed it already: no new VMM. */
	op->abort = sb->kill_sent;
	if (pidfd_send_signal(sb->pidfd, SIGKILL, NULL, 0) < 0 &&
	    errno != ESRCH)
		sb_err(sb->id, "failed to kill the old VMM pid %d for the "
		       "checkpoint: %s; waiting for it to exit",
		       (int)sb->pid, strerror(errno));
}

static void on_snapshot_done(struct sbxd *d, struct sandbox *sb,
			     const struct sbx_msg *msg, const char *text)
{
	struct sandbox_op *op = &sb->op;
	int error = (int)msg->arg;

	op->done = true;
	op->save_ms = ms_since(op->started_ns);
	if (error < 0) {
		int status = 500;

		if (error == -ESRCH)
			status = 409;
		else if (error == -EINVAL || error == -ENAMETOOLONG)
			status = 400;

		op_fail(op, status, error, "%s", text[0] ? text :
			"sbx-vmm failed to save the snapshot");
	} else if (op->kind == SANDBOX_OP_SNAPSHOT) {
		move_file(op, op->vmm_path, op->path, op->overwrite);
	}
	if (op->kind == SANDBOX_OP_CHECKPOINT) {
		checkpoint_saved(d, sb);
		return;
	}
	if (op->for_drain) {
		/*
		 * The drain does not resume: the VM stays paused, so that a
		 * stop after a failed save also resumes it.
		 */
		int next = sandbox_next_state(sb->state, SANDBOX_EV_PAUSED);

		if (next != SANDBOX_STATE_INVALID)
			sb->state = next;
		finish_snapshot(d, sb);
		return;
	}
	if (!resume_after_save(sb))
		finish_snapshot(d, sb);
}

void snapctl_on_msg(struct sbxd *d, struct sandbox *sb,
		    const struct sbx_msg *msg, const char *payload)
{
	struct sandbox_op *op = &sb->op;
	char text[512];
	size_t len = msg->len < sizeof(text) ? msg->len : sizeof(text) - 1;

	/* The payload is NUL-terminated text, but do not rely on it. */
	memcpy(text, payload, len);
	text[len] = '\0';

	switch (msg->type) {
	case SBX_MSG_PAUSED:
		if (op->kind == SANDBOX_OP_PAUSE && msg->seq == op->seq) {
			finish_pause_resume(d, sb, SANDBOX_EV_PAUSED);
		} else if (op->kind == SANDBOX_OP_CHECKPOINT &&
			   op->phase == CHECKPOINT_RESTORE &&
			   msg->seq == op->repause_seq) {
			op->repause_done = true;
			checkpoint_maybe_done(d, sb);
		}
		/* A SNAPSHOT's own PAUSED needs no action. */
		return;
	case SBX_MSG_RESUMED:
		if (op->kind == SANDBOX_OP_RESUME && msg->seq == op->seq)
			finish_pause_resume(d, sb, SANDBOX_EV_RESUMED);
		else if (op->resuming && msg->seq == op->seq &&
			 op->kind == SANDBOX_OP_SNAPSHOT)
			finish_snapshot(d, sb);
		else if (op->resuming && msg->seq == op->seq &&
			 op->kind == SANDBOX_OP_CHECKPOINT)
			finish_checkpoint_failure(d, sb);
		return;
	case SBX_MSG_SNAPSHOT_DONE:
		if ((op->kind != SANDBOX_OP_SNAPSHOT &&
		     op->kind != SANDBOX_OP_CHECKPOINT) ||
		    msg->seq != op->seq || op->done) {
			sb_warn(sb->id, "dropped a SNAPSHOT_DONE for seq=%llu "
				"that no snapshot waits for",
				(unsigned long long)msg->seq);
			return;
		}
		on_snapshot_done(d, sb, msg, text);
		return;
	default:
		return;
	}
}

void snapctl_checkpoint(struct sbxd *d, struct conn *c, struct sandbox *sb)
{
	struct sandbox_op op = {
		.kind = SANDBOX_OP_CHECKPOINT,
		.conn = c,
		.started_ns = loop_now_ns(),
		.was_paused = sb->state == SANDBOX_PAUSED,
		.overwrite = true,
		.phase = CHECKPOINT_SAVE,
	};
	int ret;

	if (sb->state != SANDBOX_RUNNING && sb->state != SANDBOX_PAUSED) {
		api_error(d, c, 409, "wrong_state", NULL,
			  "sandbox %s is %s; checkpoint needs a running or "
			  "paused sandbox", sb->id,
			  sandbox_state_name(sb->state));
		return;
	}
	if (reject_busy(d, c, sb, "checkpoint"))
		return;
	if (join_path(op.vmm_path, sizeof(op.vmm_path), sb->snapdir,
		      SNAPCTL_CHECKPOINT_NAME) ||
	    join_path(op.path, sizeof(op.path), sb->dir,
		      SNAPCTL_CHECKPOINT_NAME)) {
		api_error(d, c, 500, "internal", NULL,
			  "sandbox directory path too long");
		return;
	}
	/*
	 * A checkpoint ends with a start of a new VMM, so it is admitted
	 * like one: the drain waits for an admitted checkpoint to finish,
	 * and rejects new ones.
	 */
	ret = gate_enter(&d->gate);
	if (ret == -EAGAIN) {
		api_error(d, c, 503, "draining", RETRY_AFTER,
			  "sbxd is draining and admits no checkpoint");
		return;
	}
	if (ret) {
		api_error(d, c, 500, "internal", NULL,
			  "failed to enter the admission gate: %s",
			  strerror(-ret));
		return;
	}
	ret = send_snapshot(sb, &op);
	if (ret) {
		gate_exit(&d->gate, false);
		api_error(d, c, 500, "internal", NULL,
			  "failed to send SNAPSHOT to sandbox %s: %s", sb->id,
			  strerror(-ret));
		return;
	}
	sb->op = op;
	sb->state = sandbox_next_state(sb->state, SANDBOX_EV_CHECKPOINT);
	sb_info(sb->id, "checkpoint started pid=%d", (int)sb->pid);
}

/* End the sandbox when its checkpoint cannot start the new VMM. */
static void end_in_switch(struct sbxd *d, struct sandbox *sb,
			  const char *message)
{
	op_fail(&sb->op, 500, -EIO, "%s", message);
	memset(&sb->exit_info, 0, sizeof(sb->exit_info));
	sb->exit_info.reason = SBX_EXIT_VMM_ERROR;
	sb->exit_info.exit_code = -1;
	snprintf(sb->exit_info.message, sizeof(sb->exit_info.message), "%s",
		 message);
	sb->have_exit_info = true;
	sandbox_reaped(d, sb);
}

void snapctl_switch(struct sbxd *d, struct sandbox *sb)
{
	struct sandbox_op *op = &sb->op;
	char msg[512];
	int ret;

	if (op->kind != SANDBOX_OP_CHECKPOINT ||
	    op->phase != CHECKPOINT_SWITCH || !op->old_reaped ||
	    sb->child_req.pending || sb->ctl_req.pending)
		return;
	if (op->abort) {
		/* Killed meanwhile: end it as the old VMM's SIGKILL. */
		sandbox_reaped(d, sb);
		return;
	}
	if (move_file(op, op->vmm_path, op->path, true)) {
		end_in_switch(d, sb, op->message);
		return;
	}
	op->phase = CHECKPOINT_RESTORE;
	ret = sandbox_spawn(d, sb, op->path, false, msg, sizeof(msg));
	if (ret) {
		char message[600];

		snprintf(message, sizeof(message), "failed to start the VMM "
			 "that restores the checkpoint: %s", msg);
		op->phase = CHECKPOINT_SWITCH;
		end_in_switch(d, sb, message);
		return;
	}
	sb_info(sb->id, "checkpoint restoring pid=%d old_pid=%d bytes=%llu "
		"save_ms=%.3f", (int)sb->pid, (int)op->old_pid,
		(unsigned long long)op->bytes, op->save_ms);
	if (!op->was_paused)
		return;
	/* The restored VM runs; pause it before it gets far. */
	op->repause_seq = ++sb->next_seq;
	ret = sandbox_send_msg(sb, SBX_MSG_PAUSE, op->repause_seq, 0, NULL, 0);
	if (ret) {
		sb_err(sb->id, "failed to pause the restored VMM: %s; the "
		       "sandbox runs", strerror(-ret));
		op->was_paused = false;
	}
}

/*
 * Respond to the checkpoint once the new VMM is ready and, for a sandbox
 * that was paused, paused again.
 */
static void checkpoint_maybe_done(struct sbxd *d, struct sandbox *sb)
{
	struct sandbox_op *op = &sb->op;
	struct sandbox_op done;
	double ms;

	if (!op->new_ready || (op->was_paused && !op->repause_done))
		return;
	done = op_take(sb);
	if (sb->state == SANDBOX_CHECKPOINTING)
		sb->state = done.was_paused ? SANDBOX_PAUSED : SANDBOX_RUNNING;
	sb->checkpoints++;
	d->metrics.checkpoints_ok++;
	PROBE_CHECKPOINT_DONE(sb->id, 0);
	gate_exit(&d->gate, true);
	ms = ms_since(done.started_ns);
	sb_info(sb->id, "checkpoint done pid=%d ms=%.3f save_ms=%.3f",
		(int)sb->pid, ms, done.save_ms);
	sandbox_send_held_execs(d, sb);
	if (done.stop_deferred) {
		sandbox_send_msg(sb, SBX_MSG_STOP, 0, 0, NULL, 0);
		if (done.was_paused)
			sandbox_send_msg(sb, SBX_MSG_RESUME, 0, 0, NULL, 0);
	}
	api_json(d, done.conn, 200, sandbox_to_json(sb));
	drain_check(d);
}

void snapctl_on_ready(struct sbxd *d, struct sandbox *sb)
{
	sb->op.new_ready = true;
	checkpoint_maybe_done(d, sb);
}

void snapctl_on_exit(struct sbxd *d, struct sandbox *sb)
{
	struct sandbox_op op = op_take(sb);
	const char *why = sb->exit_info.message;

	switch (op.kind) {
	case SANDBOX_OP_NONE:
		return;
	case SANDBOX_OP_CHECKPOINT:
		d->metrics.checkpoints_failed++;
		PROBE_CHECKPOINT_DONE(sb->id, -ESRCH);
		gate_exit(&d->gate, false);
		if (op.error)
			api_error(d, op.conn, op.status, "checkpoint_failed",
				  NULL, "%s", op.message);
		else if (op.phase == CHECKPOINT_RESTORE && !sb->kill_sent)
			api_error(d, op.conn, 500, "checkpoint_failed", NULL,
				  "the VMM that restores sandbox %s ended "
				  "before it was ready: %s", sb->id, why);
		else
			api_error(d, op.conn, 409, "exited", NULL,
				  "sandbox %s ended during the checkpoint: %s",
				  sb->id, why);
		return;
	case SANDBOX_OP_SNAPSHOT:
		if (op.done && !op.error) {
			/* The file was saved before the VMM ended. */
			sb->op = op;
			sb->op.resuming = false;
			finish_snapshot(d, sb);
			return;
		}
		op_fail(&op, 409, -ESRCH, "sandbox %s ended during the "
			"snapshot: %s", sb->id, why);
		sb->op = op;
		finish_snapshot(d, sb);
		return;
	case SANDBOX_OP_PAUSE:
	case SANDBOX_OP_RESUME:
		api_error(d, op.conn, 409, "exited", NULL,
			  "sandbox %s ended during the %s: %s", sb->id,
			  op_name(op.kind), why);
		return;
	}
}
