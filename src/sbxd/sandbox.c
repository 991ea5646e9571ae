// SPDX-License-Identifier: MIT
/* The sandbox table, the lifecycle state machine and VMM control messages. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbxd/api.h"
#include "sbxd/drained.h"
#include "sbxd/log.h"
#include "sbxd/probes.h"
#include "sbxd/sandbox.h"
#include "sbxd/sbxd.h"
#include "sbxd/snapctl.h"
#include "sbxd/spawn.h"

/*
 * Lifecycle table: the next state for each event. A stop is not allowed
 * while starting (DELETE kills a starting sandbox instead). READY after a
 * kill leaves the sandbox stopping: its start is counted as failed. READY
 * while checkpointing comes from the new VMM. PAUSED and RESUMED after a
 * stop or kill leave the sandbox stopping.
 */
#define INVALID SANDBOX_STATE_INVALID
static const int transitions[SANDBOX_STATE_COUNT][SANDBOX_EVENT_COUNT] = {
	[SANDBOX_STARTING] = {
		[SANDBOX_EV_READY] = SANDBOX_RUNNING,
		[SANDBOX_EV_STOP] = INVALID,
		[SANDBOX_EV_KILL] = SANDBOX_STOPPING,
		[SANDBOX_EV_REAPED] = SANDBOX_EXITED,
		[SANDBOX_EV_PAUSED] = INVALID,
		[SANDBOX_EV_RESUMED] = INVALID,
		[SANDBOX_EV_CHECKPOINT] = INVALID,
	},
	[SANDBOX_RUNNING] = {
		[SANDBOX_EV_READY] = INVALID,
		[SANDBOX_EV_STOP] = SANDBOX_STOPPING,
		[SANDBOX_EV_KILL] = SANDBOX_STOPPING,
		[SANDBOX_EV_REAPED] = SANDBOX_EXITED,
		[SANDBOX_EV_PAUSED] = SANDBOX_PAUSED,
		[SANDBOX_EV_RESUMED] = SANDBOX_RUNNING,
		[SANDBOX_EV_CHECKPOINT] = SANDBOX_CHECKPOINTING,
	},
	[SANDBOX_PAUSED] = {
		[SANDBOX_EV_READY] = INVALID,
		[SANDBOX_EV_STOP] = SANDBOX_STOPPING,
		[SANDBOX_EV_KILL] = SANDBOX_STOPPING,
		[SANDBOX_EV_REAPED] = SANDBOX_EXITED,
		[SANDBOX_EV_PAUSED] = SANDBOX_PAUSED,
		[SANDBOX_EV_RESUMED] = SANDBOX_RUNNING,
		[SANDBOX_EV_CHECKPOINT] = SANDBOX_CHECKPOINTING,
	},
	[SANDBOX_CHECKPOINTING] = {
		[SANDBOX_EV_READY] = SANDBOX_RUNNING,
		[SANDBOX_EV_STOP] = SANDBOX_STOPPING,
		[SANDBOX_EV_KILL] = SANDBOX_STOPPING,
		[SANDBOX_EV_REAPED] = SANDBOX_EXITED,
		[SANDBOX_EV_PAUSED] = SANDBOX_PAUSED,
		[SANDBOX_EV_RESUMED] = SANDBOX_CHECKPOINTING,
		[SANDBOX_EV_CHECKPOINT] = INVALID,
	},
	[SANDBOX_STOPPING] = {
		[SANDBOX_EV_READY] = SANDBOX_STOPPING,
		[SANDBOX_EV_STOP] = SANDBOX_STOPPING,
		[SANDBOX_EV_KILL] = SANDBOX_STOPPING,
		[SANDBOX_EV_REAPED] = SANDBOX_EXITED,
		[SANDBOX_EV_PAUSED] = SANDBOX_STOPPING,
		[SANDBOX_EV_RESUMED] = SANDBOX_STOPPING,
		[SANDBOX_EV_CHECKPOINT] = INVALID,
	},
	[SANDBOX_EXITED] = {
		[SANDBOX_EV_READY] = INVALID,
		[SANDBOX_EV_STOP] = INVALID,
		[SANDBOX_EV_KILL] = INVALID,
		[SANDBOX_EV_REAPED] = INVALID,
		[SANDBOX_EV_PAUSED] = INVALID,
		[SANDBOX_EV_RESUMED] = INVALID,
		[SANDBOX_EV_CHECKPOINT] = INVALID,
	},
};
#undef INVALID

int sandbox_next_state(enum sandbox_state state, enum sandbox_event event)
{
	if ((unsigned int)state >= SANDBOX_STATE_COUNT ||
	    (unsigned int)event >= SANDBOX_EVENT_COUNT)
		return SANDBOX_STATE_INVALID;
	return transitions[state][event];
}

const char *sandbox_state_name(enum sandbox_state state)
{
	switch (state) {
	case SANDBOX_STARTING: return "starting";
	case SANDBOX_RUNNING: return "running";
	case SANDBOX_PAUSED: return "paused";
	case SANDBOX_CHECKPOINTING: return "checkpointing";
	case SANDBOX_STOPPING: return "stopping";
	case SANDBOX_EXITED: return "exited";
	default: return "unknown";
	}
}

/* Names of enum sbx_exit_reason, plus two that sbxd itself reports. */
#define EXIT_REASON_KILLED 100		/* SIGKILL, no report from the VMM */
#define EXIT_REASON_VMM_EXITED 101	/* VMM ended without a report */

const char *sandbox_exit_reason_name(uint32_t reason)
{
	switch (reason) {
	case SBX_EXIT_GUEST: return "guest_exit";
	case SBX_EXIT_STOPPED: return "stopped";
	case SBX_EXIT_TRIPLE_FAULT: return "triple_fault";
	case SBX_EXIT_EMULATION: return "emulation_error";
	case SBX_EXIT_HLT: return "hlt";
	case SBX_EXIT_BAD_PORT: return "bad_port";
	case SBX_EXIT_BAD_HYPERCALL: return "bad_hypercall";
	case SBX_EXIT_BAD_ACCESS: return "bad_access";
	case SBX_EXIT_VMM_ERROR: return "vmm_error";
	case EXIT_REASON_KILLED: return "killed";
	case EXIT_REASON_VMM_EXITED: return "vmm_exited";
	default: return "unknown";
	}
}

void sandbox_table_init(struct sandbox_table *table)
{
	memset(table, 0, sizeof(*table));
	TAILQ_INIT(&table->list);
	TAILQ_INIT(&table->force_ops);
}

struct sandbox *sandbox_find(struct sbxd *d, const char *id)
{
	struct sandbox *sb;

	TAILQ_FOREACH(sb, &d->sandboxes.list, link) {
		if (strcmp(sb->id, id) == 0)
			return sb;
	}
	return NULL;
}

void sandbox_params_free(struct sandbox_params *params)
{
	if (params->metadata)
		json_decref(params->metadata);
	params->metadata = NULL;
}

static void publish_live(struct sbxd *d)
{
	int ret = gate_set_live(&d->gate, d->sandboxes.live);

	if (ret)
		log_err("failed to publish live=%u to the gate: %s",
			d->sandboxes.live, strerror(-ret));
}

static void gate_exit_logged(struct sbxd *d, const char *id, bool ok)
{
	int ret = gate_exit(&d->gate, ok);

	if (ret)
		sb_err(id, "failed to end the start in the gate: %s",
		       strerror(-ret));
}

static int make_id(struct sbxd *d, char *id)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bytes[SANDBOX_ID_LEN / 2];

	do {
		if (getrandom(bytes, sizeof(bytes), 0) != sizeof(bytes))
			return -errno;
		for (size_t i = 0; i < sizeof(bytes); i++) {
			id[2 * i] = hex[bytes[i] >> 4];
			id[2 * i + 1] = hex[bytes[i] & 15];
		}
		id[SANDBOX_ID_LEN] = '\0';
	} while (sandbox_find(d, id));
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type,
			struct FTW *ftw)
{
	if (ftw->level == 0)
		return 0;
	if (remove(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Remove everything below dir, and dir itself unless keep_root. */
static int remove_tree(const char *dir, bool keep_root)
{
	int ret = nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);

	if (ret < 0 && errno == ENOENT)
		return 0;
	if (ret)
		return ret < 0 ? -errno : ret;
	if (!keep_root && rmdir(dir) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int sandbox_remove_leftovers(const char *state_dir)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/sandboxes", state_dir) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	return remove_tree(path, true);
}

static void arm_poll(struct sbxd *d, int fd, struct loop_req *req)
{
	struct io_uring_sqe *sqe = loop_sqe(&d->loop);

	io_uring_prep_poll_add(sqe, fd, POLLIN);
	loop_set_req(sqe, req);
}

static void sandbox_free(struct sandbox *sb)
{
	sandbox_params_free(&sb->params);
	free(sb);
}

static void sandbox_maybe_free(struct sandbox *sb)
{
	if (sb->removed && !sb->child_req.pending && !sb->ctl_req.pending)
		sandbox_free(sb);
}

static void sandbox_remove(struct sbxd *d, struct sandbox *sb)
{
	int ret;

	if (!sb->reaped || sb->removed) {
		log_err("BUG: sandbox %s in state %s cannot be removed before "
			"its VMM is reaped", sb->id,
			sandbox_state_name(sb->state));
		return;
	}
	TAILQ_REMOVE(&d->sandboxes.list, sb, link);
	d->sandboxes.total--;
	d->sandboxes.ended--;
	sb->removed = true;
	ret = remove_tree(sb->dir, false);
	if (ret)
		sb_warn(sb->id, "failed to remove %s: %s", sb->dir,
			strerror(-ret));
	sb_info(sb->id, "removed");
	sandbox_maybe_free(sb);
}

int sandbox_spawn(struct sbxd *d, struct sandbox *sb, const char *restore,
		  bool verify_ram, char *msg, size_t msglen)
{
	struct spawn_request request;
	struct spawn_result result;
	char console[PATH_MAX];
	int ret;

	if ((size_t)snprintf(console, sizeof(console), "%s/console.log",
			     sb->dir) >= sizeof(console)) {
		snprintf(msg, msglen, "sandbox directory path too long");
		return -ENAMETOOLONG;
	}
	request = (struct spawn_request){
		.vmm = d->cfg.vmm,
		.guest = sb->params.guest,
		.id = sb->id,
		.args = sb->params.args,
		.memory_mib = sb->params.memory_mib,
		.boot_delay_ms = sb->params.boot_delay_ms,
		.ignore_stop = sb->params.ignore_stop,
		.console_path = console,
		.restore = restore,
		.verify_ram = verify_ram,
		.snapshot_dir = sb->snapdir,
		.parent_pidfd = d->self_pidfd,
	};
	ret = spawn_vmm(&request, &result);
	if (ret) {
		snprintf(msg, msglen, "failed to spawn %s: %s", d->cfg.vmm,
			 strerror(-ret));
		return ret;
	}
	sb->pid = result.pid;
	sb->pidfd = result.pidfd;
	sb->ctl_fd = result.ctl_fd;
	sb->vmm_counted = true;
	d->sandboxes.unreaped++;
	arm_poll(d, sb->pidfd, &sb->child_req);
	arm_poll(d, sb->ctl_fd, &sb->ctl_req);
	ret = gate_track_vmm(&d->gate, sb->pid);
	metrics_live_vms_changed(d);
	if (ret && ret != -EOPNOTSUPP)
		sb_warn(sb->id, "failed to register pid %d for the live VM "
			"count: %s", (int)sb->pid, strerror(-ret));
	return 0;
}

/* Create STATE_DIR/sandboxes/ID and the VMM's snapshot directory in it. */
static int make_dirs(struct sbxd *d, struct sandbox *sb, char *msg,
		     size_t msglen)
{
	if ((size_t)snprintf(sb->dir, sizeof(sb->dir), "%s/sandboxes/%s",
			     d->cfg.state_dir, sb->id) >= sizeof(sb->dir) ||
	    (size_t)snprintf(sb->snapdir, sizeof(sb->snapdir), "%s/snapshots",
			     sb->dir) >= sizeof(sb->snapdir)) {
		snprintf(msg, msglen, "sandbox directory path too long");
		return -ENAMETOOLONG;
	}
	if (mkdir(sb->dir, 0700) < 0) {
		int ret = -errno;

		snprintf(msg, msglen, "failed to create %s: %s", sb->dir,
			 strerror(-ret));
		return ret;
	}
	/*
	 * A confined VMM runs as an unprivileged user that cannot search
	 * sbxd's state dir, so it writes snapshots only into this directory,
	 * which it opens at start and owns from then on. console.log stays
	 * outside it, out of the VMM user's reach.
	 */
	if (mkdir(sb->snapdir, 0700) < 0) {
		int ret = -errno;

		snprintf(msg, msglen, "failed to create %s: %s", sb->snapdir,
			 strerror(-ret));
		remove_tree(sb->dir, false);
		return ret;
	}
	return 0;
}

int sandbox_create(struct sbxd *d, struct sandbox_params *params,
		   struct conn *conn, char *msg, size_t msglen)
{
	struct sandbox *sb;
	int ret;

	sb = calloc(1, sizeof(*sb));
	if (!sb) {
		ret = -ENOMEM;
		snprintf(msg, msglen, "out of memory");
		goto err_gate;
	}
	sb->params = *params;
	params->metadata = NULL;
	TAILQ_INIT(&sb->waiters);
	TAILQ_INIT(&sb->execs);
	sb->pidfd = -1;
	sb->ctl_fd = -1;
	sb->child_req.op = LOOP_OP_CHILD;
	sb->ctl_req.op = LOOP_OP_CONTROL;
	sb->start_ns = loop_now_ns();
	sb->created_at = params->created_at;
	if (!sb->created_at.tv_sec)
		clock_gettime(CLOCK_REALTIME, &sb->created_at);

	if (params->id[0]) {
		if (sandbox_find(d, params->id)) {
			ret = -EEXIST;
			snprintf(msg, msglen, "sandbox %s already exists",
				 params->id);
			goto err_free;
		}
		memcpy(sb->id, params->id, sizeof(sb->id));
	} else {
		ret = make_id(d, sb->id);
		if (ret) {
			snprintf(msg, msglen, "failed to generate an id: %s",
				 strerror(-ret));
			goto err_free;
		}
	}
	ret = make_dirs(d, sb, msg, msglen);
	if (ret)
		goto err_free;
	ret = sandbox_spawn(d, sb, params->snapshot[0] ? params->snapshot :
			    NULL, params->verify_ram, msg, msglen);
	if (ret)
		goto err_dir;
	sb->state = SANDBOX_STARTING;
	sb->create_conn = conn;

	TAILQ_INSERT_TAIL(&d->sandboxes.list, sb, link);
	d->sandboxes.total++;
	d->sandboxes.starting++;
	if (params->snapshot[0])
		sb_info(sb->id, "restoring pid=%d snapshot=%s", (int)sb->pid,
			params->snapshot);
	else
		sb_info(sb->id, "starting pid=%d memory_mib=%u guest=%s",
			(int)sb->pid, sb->params.memory_mib,
			sb->params.guest);
	return 0;

err_dir:
	remove_tree(sb->dir, false);
err_free:
	sandbox_free(sb);
err_gate:
	gate_exit_logged(d, NULL, false);
	PROBE_START_FAIL("");
	return ret;
}

int sandbox_send_msg(struct sandbox *sb, uint32_t type, uint64_t seq,
		     int64_t arg, const char *payload, size_t len)
{
	struct sbx_msg header = {
		.type = type,
		.len = (uint32_t)len,
		.seq = seq,
		.arg = arg,
	};
	struct iovec iov[2] = {
		{ .iov_base = &header, .iov_len = sizeof(header) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (sb->ctl_fd < 0)
		return -EPIPE;
	if (len > SBX_MSG_PAYLOAD_MAX)
		return -EMSGSIZE;
	/*
	 * NOTE: a full socket buffer fails the send with -EAGAIN, and the
	 * request gets 500, because nothing queues it for later. An API
	 * request sends one or two messages (a stop of a paused sandbox
	 * sends STOP and RESUME), and the execs held during a checkpoint go
	 * out together, so this needs a VMM that stopped reading its
	 * control socket or thousands of held execs.
	 */
	if (sendmsg(sb->ctl_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

static void force_target_failed(struct sbxd *d, struct sandbox *sb,
				const char *error);

int sandbox_kill(struct sbxd *d, struct sandbox *sb, const char *reason)
{
	int next = sandbox_next_state(sb->state, SANDBOX_EV_KILL);

	if (next == SANDBOX_STATE_INVALID || sb->kill_sent)
		return 0;
	/*
	 * Between the checkpoint's SIGKILL of the old VMM and the start of
	 * the new one, there is no VMM to signal: not starting the new one
	 * ends the sandbox.
	 */
	if (sb->op.kind == SANDBOX_OP_CHECKPOINT &&
	    sb->op.phase == CHECKPOINT_SWITCH) {
		sb->op.abort = true;
		sb->kill_sent = true;
		sb->state = next;
		sb_info(sb->id, "killed during the checkpoint switch; the new "
			"VMM will not start reason=\"%s\"", reason);
		return 0;
	}
	if (pidfd_send_signal(sb->pidfd, SIGKILL, NULL, 0) < 0 &&
	    errno != ESRCH) {
		int ret = -errno;
		char error[160];

		snprintf(error, sizeof(error), "failed to send SIGKILL to "
			 "pid %d: %s", (int)sb->pid, strerror(-ret));
		sb_err(sb->id, "%s", error);
		force_target_failed(d, sb, error);
		return ret;
	}
	sb->kill_sent = true;
	sb->state = next;
	sb_info(sb->id, "killed pid=%d reason=\"%s\"", (int)sb->pid, reason);
	return 0;
}

static void grace_expired(struct sbxd *d, struct timer *timer)
{
	struct sandbox *sb = container_of(timer, struct sandbox, grace_timer);

	sb_warn(sb->id, "stop grace expired; sending SIGKILL");
	sandbox_kill(d, sb, "stop grace expired");
}

int sandbox_stop(struct sbxd *d, struct sandbox *sb, uint64_t grace_ms,
		 struct conn *conn)
{
	int next = sandbox_next_state(sb->state, SANDBOX_EV_STOP);
	uint64_t deadline = loop_now_ns() + grace_ms * 1000000ull;
	bool was_paused;
	int ret;

	if (next == SANDBOX_STATE_INVALID)
		return -EINVAL;
	if (conn) {
		struct sandbox_waiter *w = calloc(1, sizeof(*w));

		if (!w)
			return -ENOMEM;
		w->conn = conn;
		TAILQ_INSERT_TAIL(&sb->waiters, w, link);
	}
	was_paused = sb->state == SANDBOX_PAUSED;
	sb->state = next;

	if (!sb->stop_sent && sb->op.kind == SANDBOX_OP_CHECKPOINT) {
		/* The old VMM is saved or gone: the new one gets the stop. */
		sb->op.stop_deferred = true;
		sb->stop_sent = true;
		sb_info(sb->id, "stop requested during a checkpoint; sent once "
			"the new VMM is ready grace_ms=%llu",
			(unsigned long long)grace_ms);
	} else if (!sb->stop_sent) {
		ret = sandbox_send_msg(sb, SBX_MSG_STOP, 0, 0, NULL, 0);
		if (ret)
			sb_warn(sb->id, "failed to send the stop request: %s; "
				"SIGKILL follows after the grace",
				strerror(-ret));
		sb->stop_sent = true;
		sb_info(sb->id, "stop requested grace_ms=%llu",
			(unsigned long long)grace_ms);
		/*
		 * A paused guest cannot act on the stop, so let it run: the
		 * VMM gives it the STOP first. Its RESUMED reply matches no
		 * request and is dropped.
		 */
		if (was_paused && !ret) {
			ret = sandbox_send_msg(sb, SBX_MSG_RESUME, 0, 0, NULL,
					       0);
			if (ret)
				sb_warn(sb->id, "failed to resume the paused "
					"guest for its stop: %s; SIGKILL "
					"follows after the grace",
					strerror(-ret));
		}
	}
	if (sb->kill_sent)
		return 0;
	if (grace_ms == 0) {
		sandbox_kill(d, sb, "stop with zero grace");
		return 0;
	}
	if (!sb->grace_timer.armed || deadline < sb->grace_timer.deadline_ns)
		loop_timer_arm(&d->loop, &sb->grace_timer, grace_ms,
			       grace_expired);
	return 0;
}

int sandbox_delete(struct sbxd *d, struct sandbox *sb, struct conn *conn)
{
	struct sandbox_waiter *w;

	if (sb->reaped) {
		api_json(d, conn, 200, sandbox_to_json(sb));
		sandbox_remove(d, sb);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->conn = conn;
	w->remove = true;
	TAILQ_INSERT_TAIL(&sb->waiters, w, link);
	sb->deleted = true;
	sandbox_kill(d, sb, "delete requested");
	return 0;
}

static void exec_finish(struct sbxd *d, struct exec_op *op)
{
	loop_timer_cancel(&d->loop, &op->timer);
	TAILQ_REMOVE(&op->sb->execs, op, link);
	free(op->command);
	free(op);
}

static void exec_timed_out(struct sbxd *d, struct timer *timer)
{
	struct exec_op *op = container_of(timer, struct exec_op, timer);
	uint64_t ms = (loop_now_ns() - op->started_ns) / 1000000ull;

	sb_warn(op->sb->id, "exec timed out ms=%llu seq=%llu",
		(unsigned long long)ms, (unsigned long long)op->seq);
	api_error(d, op->conn, 504, "timeout", NULL,
		  "command did not finish within %llu ms; its late result "
		  "will be discarded", (unsigned long long)ms);
	exec_finish(d, op);
}

static int exec_send(struct sandbox *sb, struct exec_op *op,
		     const char *command)
{
	int ret = sandbox_send_msg(sb, SBX_MSG_EXEC, op->seq,
				   (int64_t)op->timeout_ms, command,
				   strlen(command));

	if (!ret)
		op->sent = true;
	return ret;
}

int sandbox_exec(struct sbxd *d, struct sandbox *sb, const char *command,
		 uint64_t timeout_ms, struct conn *conn)
{
	struct exec_op *op;
	int ret;

	if (sb->state != SANDBOX_RUNNING &&
	    sb->state != SANDBOX_CHECKPOINTING)
		return -EINVAL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->sb = sb;
	op->conn = conn;
	op->seq = ++sb->next_seq;
	op->started_ns = loop_now_ns();
	op->timeout_ms = timeout_ms;
	if (sb->op.kind == SANDBOX_OP_CHECKPOINT) {
		/*
		 * A command sent to the old VMM after its SNAPSHOT would be
		 * lost with it, so hold it for the new VMM.
		 */
		op->command = strdup(command);
		ret = op->command ? 0 : -ENOMEM;
	} else {
		ret = exec_send(sb, op, command);
	}
	if (ret) {
		free(op);
		return ret;
	}
	TAILQ_INSERT_TAIL(&sb->execs, op, link);
	if (timeout_ms)
		loop_timer_arm(&d->loop, &op->timer, timeout_ms,
			       exec_timed_out);
	return 0;
}

void sandbox_send_held_execs(struct sbxd *d, struct sandbox *sb)
{
	struct exec_op *op;
	struct exec_op *next;

	TAILQ_FOREACH_SAFE(op, &sb->execs, link, next) {
		int ret;

		if (op->sent)
			continue;
		ret = exec_send(sb, op, op->command);
		if (ret) {
			api_error(d, op->conn, 500, "internal", NULL,
				  "failed to send the command to sandbox %s "
				  "after its checkpoint: %s", sb->id,
				  strerror(-ret));
			exec_finish(d, op);
			continue;
		}
		free(op->command);
		op->command = NULL;
	}
}

static void on_exec_result(struct sbxd *d, struct sandbox *sb,
			   const struct sbx_msg *msg, const char *payload)
{
	struct exec_op *op;
	json_t *body;
	double ms;

	TAILQ_FOREACH(op, &sb->execs, link) {
		if (op->seq == msg->seq)
			break;
	}
	if (!op) {
		sb_debug(sb->id, "late exec result discarded seq=%llu",
			 (unsigned long long)msg->seq);
		return;
	}
	ms = (double)(loop_now_ns() - op->started_ns) / 1e6;
	sb_info(sb->id, "exec ms=%.3f exit_code=%d", ms, (int32_t)msg->arg);
	body = json_pack("{s:o, s:i}", "output",
			 api_json_bytes(payload, msg->len), "exit_code",
			 (json_int_t)(int32_t)msg->arg);
	api_json(d, op->conn, 200, body);
	exec_finish(d, op);
}

static void on_ready(struct sbxd *d, struct sandbox *sb)
{
	int next = sandbox_next_state(sb->state, SANDBOX_EV_READY);

	if (sb->op.kind == SANDBOX_OP_CHECKPOINT &&
	    sb->op.phase == CHECKPOINT_RESTORE) {
		snapctl_on_ready(d, sb);
		return;
	}
	if (next == SANDBOX_STATE_INVALID || sb->state != SANDBOX_STARTING) {
		sb_debug(sb->id, "READY in state %s ignored",
			 sandbox_state_name(sb->state));
		return;
	}
	sb->state = next;
	sb->ready = true;
	sb->ready_ms = (double)(loop_now_ns() - sb->start_ns) / 1e6;
	metrics_observe_start(&d->metrics, sb->ready_ms / 1e3);
	if (sb->params.snapshot[0])
		d->metrics.restores_ok++;
	d->sandboxes.starting--;
	d->sandboxes.live++;
	gate_exit_logged(d, sb->id, true);
	publish_live(d);
	PROBE_START_READY(sb->id);
	sb_info(sb->id, "%s ready_ms=%.3f pid=%d",
		sb->params.snapshot[0] ? "restored" : "created", sb->ready_ms,
		(int)sb->pid);
	if (sb->create_conn) {
		api_json(d, sb->create_conn, 201, sandbox_to_json(sb));
		sb->create_conn = NULL;
	}
	if (sb->params.batch)
		drained_batch_done(d, sb, true, NULL);
	drain_check(d);
}

/* Log one line from the VMM, with control characters as '?'. */
static void log_vmm_line(struct sandbox *sb, const char *text, size_t len)
{
	char line[1024];

	if (len >= sizeof(line))
		len = sizeof(line) - 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		line[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	while (len > 0 && line[len - 1] == '?' && text[len - 1] == '\n')
		len--;
	line[len] = '\0';
	sb_info(sb->id, "vmm: %s", line);
}

static void handle_msg(struct sbxd *d, struct sandbox *sb, const char *data,
		       size_t len)
{
	const struct sbx_msg *msg = (const struct sbx_msg *)data;
	const char *payload = data + sizeof(*msg);

	if (len < sizeof(*msg) || msg->len != len - sizeof(*msg)) {
		sb_warn(sb->id, "dropped a malformed control message of %zu "
			"bytes", len);
		return;
	}
	switch (msg->type) {
	case SBX_MSG_READY:
		metrics_live_vms_changed(d);
		on_ready(d, sb);
		break;
	case SBX_MSG_EXEC_RESULT:
		on_exec_result(d, sb, msg, payload);
		break;
	case SBX_MSG_EXITED:
		if (msg->len != sizeof(sb->exit_info)) {
			sb_warn(sb->id, "dropped an EXITED message of %u "
				"bytes, expected %zu", msg->len,
				sizeof(sb->exit_info));
			break;
		}
		memcpy(&sb->exit_info, payload, sizeof(sb->exit_info));
		sb->exit_info.message[sizeof(sb->exit_info.message) - 1] = '\0';
		sb->have_exit_info = true;
		break;
	case SBX_MSG_LOG:
		log_vmm_line(sb, payload, msg->len);
		break;
	case SBX_MSG_PAUSED:
	case SBX_MSG_RESUMED:
	case SBX_MSG_SNAPSHOT_DONE:
		snapctl_on_msg(d, sb, msg, payload);
		break;
	default:
		sb_warn(sb->id, "dropped a control message of unknown type %u",
			msg->type);
		break;
	}
}

/* Read every queued control message. Returns false once the VMM closed. */
static bool read_control(struct sbxd *d, struct sandbox *sb)
{
	static char data[SBX_MSG_MAX] __attribute__((aligned(8)));

	while (sb->ctl_fd >= 0) {
		ssize_t n = recv(sb->ctl_fd, data, sizeof(data), MSG_DONTWAIT);

		if (n > 0) {
			handle_msg(d, sb, data, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		if (n < 0)
			sb_warn(sb->id, "failed to read the control socket: %s",
				strerror(errno));
		return false;
	}
	return false;
}

void sandbox_on_control(struct sbxd *d, struct loop_req *req, int res)
{
	struct sandbox *sb = container_of(req, struct sandbox, ctl_req);

	if (!sb->removed && sb->op.kind == SANDBOX_OP_CHECKPOINT &&
	    sb->op.phase == CHECKPOINT_SWITCH) {
		/* The old VMM's socket: read what it left, then switch. */
		if (sb->ctl_fd >= 0 && res != -ECANCELED &&
		    read_control(d, sb)) {
			arm_poll(d, sb->ctl_fd, &sb->ctl_req);
			return;
		}
		snapctl_switch(d, sb);
		return;
	}
	if (sb->removed || sb->ctl_fd < 0 || res == -ECANCELED) {
		sandbox_maybe_free(sb);
		return;
	}
	if (read_control(d, sb))
		arm_poll(d, sb->ctl_fd, &sb->ctl_req);
}

static void fill_missing_exit_info(struct sandbox *sb)
{
	struct sbx_exit_info *info = &sb->exit_info;

	if (sb->have_exit_info)
		return;
	memset(info, 0, sizeof(*info));
	info->exit_code = -1;
	if (sb->wait_code == CLD_KILLED || sb->wait_code == CLD_DUMPED) {
		info->reason = sb->kill_sent && sb->wait_status == SIGKILL ?
			       EXIT_REASON_KILLED : EXIT_REASON_VMM_EXITED;
		snprintf(info->message, sizeof(info->message),
			 "sbx-vmm was killed by signal %d (%s)",
			 sb->wait_status, strsignal(sb->wait_status));
	} else {
		info->reason = EXIT_REASON_VMM_EXITED;
		info->exit_code = sb->wait_status;
		snprintf(info->message, sizeof(info->message),
			 "sbx-vmm exited with status %d without reporting why",
			 sb->wait_status);
	}
}

static void force_ops_notify(struct sbxd *d, struct sandbox *sb, bool ok,
			     const char *error);

/*
 * Send the response to every request waiting for the sandbox to end.
 * Returns true when a DELETE among them removed the sandbox, which may
 * free sb.
 */
static bool answer_waiters(struct sbxd *d, struct sandbox *sb)
{
	struct sandbox_waiter *w;
	bool remove = false;

	while ((w = TAILQ_FIRST(&sb->waiters))) {
		TAILQ_REMOVE(&sb->waiters, w, link);
		api_json(d, w->conn, 200, sandbox_to_json(sb));
		remove |= w->remove;
		free(w);
	}
	if (remove)
		sandbox_remove(d, sb);
	return remove;
}

static json_t *exit_to_json(const struct sandbox *sb)
{
	const char *message = sb->exit_info.message;

	return json_pack("{s:s, s:i, s:I, s:o}",
			 "reason",
			 sandbox_exit_reason_name(sb->exit_info.reason),
			 "exit_code", (json_int_t)sb->exit_info.exit_code,
			 "rip", (json_int_t)sb->exit_info.rip,
			 "message", api_json_bytes(message, strlen(message)));
}

/*
 * Respond to the waiting execs with 409 "exited". The error carries the
 * sandbox's exit object, so that a client can pass on the exit code of a
 * guest that exited by itself.
 */
static void fail_execs(struct sbxd *d, struct sandbox *sb)
{
	struct exec_op *op;
	char message[512];

	while ((op = TAILQ_FIRST(&sb->execs))) {
		json_t *error;

		snprintf(message, sizeof(message), "sandbox %s exited before "
			 "the command finished: %s", sb->id,
			 sb->exit_info.message);
		error = json_pack("{s:s, s:o, s:o}", "code", "exited",
				  "message",
				  api_json_bytes(message, strlen(message)),
				  "exit", exit_to_json(sb));
		api_json(d, op->conn, 409, json_pack("{s:o}", "error", error));
		exec_finish(d, op);
	}
}

/* sbx-vmm exits 2 for a snapshot file that it refuses to restore. */
static bool restore_refused(const struct sandbox *sb)
{
	return sb->params.snapshot[0] && sb->wait_code == CLD_EXITED &&
	       sb->wait_status == SBX_VMM_STATUS_USAGE;
}

static void fail_create(struct sbxd *d, struct sandbox *sb)
{
	char message[PATH_MAX + 1024];
	char console[PATH_MAX + 16];
	json_t *error;

	gate_exit_logged(d, sb->id, false);
	PROBE_START_FAIL(sb->id);
	if (sb->params.snapshot[0])
		d->metrics.restores_failed++;
	/* A refused file leaves nothing behind: the sandbox is not listed. */
	sb->refused = restore_refused(sb) && !sb->deleted;
	if (sb->params.batch)
		drained_batch_done(d, sb, false, sb->exit_info.message);
	if (!sb->create_conn)
		return;
	if (sb->deleted) {
		api_error(d, sb->create_conn, 409, "deleted", NULL,
			  "sandbox %s was deleted while starting", sb->id);
		sb->create_conn = NULL;
		return;
	}
	if (sb->refused) {
		api_error(d, sb->create_conn, 400, "invalid", NULL, "%s",
			  sb->exit_info.message);
		sb->create_conn = NULL;
		return;
	}
	snprintf(console, sizeof(console), "%s/console.log", sb->dir);
	snprintf(message, sizeof(message),
		 "sandbox %s failed to start: %s; see the console log %s",
		 sb->id, sb->exit_info.message, console);
	error = json_pack("{s:s, s:o, s:s, s:o}", "code", "start_failed",
			  "message", api_json_bytes(message, strlen(message)),
			  "id", sb->id,
			  "console_log",
			  api_json_bytes(console, strlen(console)));
	api_json(d, sb->create_conn, 500, json_pack("{s:o}", "error", error));
	sb->create_conn = NULL;
}

/* Drop the oldest ended sandboxes beyond SANDBOX_ENDED_MAX. */
static void trim_ended(struct sbxd *d)
{
	struct sandbox *sb;
	struct sandbox *next;

	TAILQ_FOREACH_SAFE(sb, &d->sandboxes.list, link, next) {
		if (d->sandboxes.ended <= SANDBOX_ENDED_MAX)
			break;
		if (sb->reaped && TAILQ_EMPTY(&sb->waiters))
			sandbox_remove(d, sb);
	}
}

void sandbox_forget_vmm(struct sbxd *d, struct sandbox *sb)
{
	int ret;

	if (!sb->vmm_counted)
		return;
	sb->vmm_counted = false;
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	sb->pidfd = -1;
	if (sb->ctl_req.pending && sb->ctl_fd >= 0) {
		struct io_uring_sqe *sqe = loop_sqe(&d->loop);

		io_uring_prep_cancel(sqe, &sb->ctl_req, 0);
		loop_set_req(sqe, NULL);
	}
	if (sb->ctl_fd >= 0)
		close(sb->ctl_fd);
	sb->ctl_fd = -1;
	d->sandboxes.unreaped--;

	ret = gate_untrack_vmm(&d->gate, sb->pid);
	metrics_live_vms_changed(d);
	if (ret && ret != -EOPNOTSUPP && ret != -ENOENT)
		sb_warn(sb->id, "failed to unregister pid %d from the live VM "
			"count: %s", (int)sb->pid, strerror(-ret));
}

void sandbox_reaped(struct sbxd *d, struct sandbox *sb)
{
	bool was_ready = sb->ready;

	read_control(d, sb); /* the EXITED report comes before the exit */
	sb->state = sandbox_next_state(sb->state, SANDBOX_EV_REAPED);
	sb->reaped = true;
	loop_timer_cancel(&d->loop, &sb->grace_timer);
	sandbox_forget_vmm(d, sb);

	d->sandboxes.ended++;
	if (was_ready)
		d->sandboxes.live--;
	else
		d->sandboxes.starting--;

	fill_missing_exit_info(sb);
	PROBE_SANDBOX_EXIT(sb->id,
			   sandbox_exit_reason_name(sb->exit_info.reason),
			   sb->exit_info.exit_code);
	sb_info(sb->id, "exited reason=%s exit_code=%d rip=0x%llx "
		"message=\"%s\"",
		sandbox_exit_reason_name(sb->exit_info.reason),
		sb->exit_info.exit_code,
		(unsigned long long)sb->exit_info.rip, sb->exit_info.message);

	if (was_ready)
		publish_live(d);
	else
		fail_create(d, sb);
	if (sb->op.kind != SANDBOX_OP_NONE)
		snapctl_on_exit(d, sb);
	fail_execs(d, sb);
	force_ops_notify(d, sb, true, NULL);
	if (!answer_waiters(d, sb) && sb->refused && !sb->removed)
		sandbox_remove(d, sb);
	trim_ended(d);
	drain_check(d);
}

void sandbox_on_child(struct sbxd *d, struct loop_req *req, int res)
{
	struct sandbox *sb = container_of(req, struct sandbox, child_req);
	siginfo_t info;

	if (sb->reaped || sb->pidfd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (waitid((idtype_t)P_PIDFD, (id_t)sb->pidfd, &info,
		   WEXITED | WNOHANG) < 0) {
		sb_err(sb->id, "failed to reap pid %d: %s", (int)sb->pid,
		       strerror(errno));
		return;
	}
	if (info.si_pid == 0) {
		/* Woken before the exit was visible; wait again. */
		arm_poll(d, sb->pidfd, &sb->child_req);
		return;
	}
	sb->wait_code = info.si_code;
	sb->wait_status = info.si_status;
	if (sb->op.kind == SANDBOX_OP_CHECKPOINT &&
	    sb->op.phase == CHECKPOINT_SWITCH) {
		/* The checkpoint killed this VMM; the sandbox lives on. */
		sb->op.old_reaped = true;
		sandbox_forget_vmm(d, sb);
		snapctl_switch(d, sb);
		return;
	}
	sandbox_reaped(d, sb);
}

unsigned int sandbox_kill_all(struct sbxd *d)
{
	struct sandbox *sb;
	unsigned int count = 0;

	TAILQ_FOREACH(sb, &d->sandboxes.list, link) {
		if (sb->reaped)
			continue;
		sb->kill_sent = false; /* signal again, even if sent before */
		if (sandbox_kill(d, sb, "force timeout expired") == 0)
			count++;
	}
	return count;
}

/*
 * Respond with the sandboxes this call stopped, those an earlier
 * force-stop was already stopping, and those not reaped in time.
 */
static void force_op_finish(struct sbxd *d, struct force_op *op)
{
	json_t *stopped = json_array();
	json_t *already = json_array();
	json_t *failed = json_array();
	size_t requested = 0;

	for (size_t i = 0; i < op->count; i++) {
		struct force_target *t = &op->targets[i];

		if (!t->already)
			requested++;
		if (!t->ok)
			json_array_append_new(failed,
					      json_pack("{s:s, s:s}", "id",
							t->id, "error",
							t->error));
		else if (t->already)
			json_array_append_new(already, json_string(t->id));
		else
			json_array_append_new(stopped, json_string(t->id));
	}
	log_info("force-stop finished requested=%zu stopped=%zu "
		 "already_stopping=%zu failed=%zu", requested,
		 json_array_size(stopped), json_array_size(already),
		 json_array_size(failed));
	if (op->conn)
		api_json(d, op->conn, 200,
			 json_pack("{s:I, s:o, s:o, s:o}", "requested",
				   (json_int_t)requested, "stopped", stopped,
				   "already_stopping", already, "failed",
				   failed));
	else {
		json_decref(stopped);
		json_decref(already);
		json_decref(failed);
	}
	loop_timer_cancel(&d->loop, &op->deadline);
	TAILQ_REMOVE(&d->sandboxes.force_ops, op, link);
	free(op);
}

static void force_ops_notify(struct sbxd *d, struct sandbox *sb, bool ok,
			     const char *error)
{
	struct force_op *op;
	struct force_op *next;

	TAILQ_FOREACH_SAFE(op, &d->sandboxes.force_ops, link, next) {
		for (size_t i = 0; i < op->count; i++) {
			struct force_target *t = &op->targets[i];

			if (t->sb != sb || t->done)
				continue;
			t->done = true;
			t->ok = ok;
			t->sb = NULL;
			if (error)
				snprintf(t->error, sizeof(t->error), "%s",
					 error);
			op->remaining--;
		}
		if (op->remaining == 0)
			force_op_finish(d, op);
	}
}

static void force_target_failed(struct sbxd *d, struct sandbox *sb,
				const char *error)
{
	force_ops_notify(d, sb, false, error);
}

static void force_deadline(struct sbxd *d, struct timer *timer)
{
	struct force_op *op = container_of(timer, struct force_op, deadline);

	for (size_t i = 0; i < op->count; i++) {
		struct force_target *t = &op->targets[i];

		if (t->done)
			continue;
		t->done = true;
		t->sb = NULL;
		snprintf(t->error, sizeof(t->error),
			 "not reaped within %llu ms after the stop request",
			 (unsigned long long)(d->cfg.stop_grace_ms +
					      d->cfg.force_timeout_ms));
	}
	force_op_finish(d, op);
}

/* Send a stop to every live sandbox not yet force-stopped. */
static void force_stop_untargeted(struct sbxd *d)
{
	struct sandbox *sb;

	TAILQ_FOREACH(sb, &d->sandboxes.list, link) {
		if (!sb->ready || sb->reaped || sb->force_stopping)
			continue;
		sb->force_stopping = true;
		sandbox_stop(d, sb, d->cfg.stop_grace_ms, NULL);
	}
}

int sandbox_force_stop_all(struct sbxd *d, struct conn *conn)
{
	struct sandbox *sb;
	struct force_op *op;
	size_t count = 0;
	size_t i = 0;

	if (!conn) {
		force_stop_untargeted(d);
		return 0;
	}
	TAILQ_FOREACH(sb, &d->sandboxes.list, link) {
		if (sb->ready && !sb->reaped)
			count++;
	}
	op = calloc(1, sizeof(*op) + count * sizeof(op->targets[0]));
	if (!op)
		return -ENOMEM;
	op->conn = conn;
	op->count = count;
	op->remaining = count;
	TAILQ_INSERT_TAIL(&d->sandboxes.force_ops, op, link);

	/*
	 * Sandboxes already being force-stopped are waited on too, but are
	 * reported apart, so that two calls never both claim one sandbox.
	 */
	TAILQ_FOREACH(sb, &d->sandboxes.list, link) {
		struct force_target *t;

		if (!sb->ready || sb->reaped)
			continue;
		t = &op->targets[i++];
		t->sb = sb;
		t->already = sb->force_stopping;
		memcpy(t->id, sb->id, sizeof(t->id));
	}
	log_info("force-stop live=%zu", count);
	force_stop_untargeted(d);
	if (count == 0) {
		force_op_finish(d, op);
		return 0;
	}
	/* The SIGKILL comes after the grace; the reap should follow soon. */
	loop_timer_arm(&d->loop, &op->deadline,
		       d->cfg.stop_grace_ms + d->cfg.force_timeout_ms,
		       force_deadline);
	return 0;
}

void sandbox_format_time(const struct timespec *ts, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&ts->tv_sec, &tm);
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ts->tv_nsec / 1000000) % 1000);
}

json_t *sandbox_to_json(const struct sandbox *sb)
{
	const char *snapshot = sb->params.snapshot;
	char created[80];
	json_t *exit_json = json_null();
	json_t *metadata;
	json_t *pid;

	sandbox_format_time(&sb->created_at, created, sizeof(created));
	if (sb->reaped)
		exit_json = exit_to_json(sb);
	metadata = sb->params.metadata ? json_copy(sb->params.metadata) :
					 json_object();
	/* A reaped VMM's pid may already belong to another process. */
	pid = sb->reaped ? json_null() : json_integer((json_int_t)sb->pid);
	return json_pack("{s:s, s:s, s:o, s:s, s:o, s:i, s:i, s:o, s:s, s:o, "
			 "s:o, s:s+, s:o, s:i}",
			 "id", sb->id,
			 "state", sandbox_state_name(sb->state),
			 "pid", pid,
			 "created_at", created,
			 "ready_ms", sb->ready ? json_real(sb->ready_ms) :
						 json_null(),
			 "memory_mib", (json_int_t)sb->params.memory_mib,
			 "vcpus", (json_int_t)sb->params.vcpus,
			 "guest", sb->params.guest[0] ?
				  api_json_bytes(sb->params.guest,
						 strlen(sb->params.guest)) :
				  json_null(),
			 "args", sb->params.args,
			 "metadata", metadata,
			 "exit", exit_json,
			 "console_log", sb->dir, "/console.log",
			 "restored_from", snapshot[0] ?
					  api_json_bytes(snapshot,
							 strlen(snapshot)) :
					  json_null(),
			 "checkpoints", (json_int_t)sb->checkpoints);
}
