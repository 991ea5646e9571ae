/* SPDX-License-Identifier: MIT */
/*
 * The sandbox table and each sandbox's lifecycle: spawn, ready, exec,
 * pause, resume, snapshot, checkpoint, stop, kill, reap, remove. A
 * sandbox stays listed as "exited" after its VMM is reaped, until it is
 * deleted or pushed out by newer ended ones.
 */
#ifndef SBXD_SANDBOX_H
#define SBXD_SANDBOX_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <time.h>

#include "sbxd/loop.h"
#include "sbxd/vmm_proto.h"

#define SANDBOX_ID_LEN 12	/* lowercase hex characters */
#define SANDBOX_ENDED_MAX 256	/* ended sandboxes kept for listing */
#define SANDBOX_ARGS_MAX 1023
#define SANDBOX_METADATA_MAX 4096

struct sbxd;
struct conn;
struct drained_batch;

enum sandbox_state {
	SANDBOX_STARTING = 0,	/* VMM spawned, guest not ready yet */
	SANDBOX_RUNNING,	/* guest ready */
	SANDBOX_PAUSED,		/* vCPU stopped by PAUSE until RESUME */
	SANDBOX_CHECKPOINTING,	/* moving into a new VMM */
	SANDBOX_STOPPING,	/* stop or kill requested, VMM not reaped */
	SANDBOX_EXITED,		/* VMM reaped */
	SANDBOX_STATE_COUNT,
};

enum sandbox_event {
	SANDBOX_EV_READY = 0,	/* VMM sent SBX_MSG_READY */
	SANDBOX_EV_STOP,	/* graceful stop requested */
	SANDBOX_EV_KILL,	/* SIGKILL requested */
	SANDBOX_EV_REAPED,	/* VMM process reaped */
	SANDBOX_EV_PAUSED,	/* VMM sent SBX_MSG_PAUSED for a PAUSE */
	SANDBOX_EV_RESUMED,	/* VMM sent SBX_MSG_RESUMED */
	SANDBOX_EV_CHECKPOINT,	/* checkpoint requested */
	SANDBOX_EVENT_COUNT,
};

#define SANDBOX_STATE_INVALID (-1)

/* Options of a create request, validated by the API. */
struct sandbox_params {
	unsigned int vcpus;
	unsigned int memory_mib;
	char guest[PATH_MAX];	/* "" for a restore that does not know it */
	char args[SANDBOX_ARGS_MAX + 1];
	unsigned int boot_delay_ms;
	bool ignore_stop;
	json_t *metadata;	/* object of strings, owned */

	/* Restores only: the snapshot file to continue, else "". */
	char snapshot[PATH_MAX];
	bool verify_ram;	/* pass --verify-ram: the file was stored */
	char id[SANDBOX_ID_LEN + 1];	/* "" for a new random id */
	struct timespec created_at;	/* zero for now */
	struct drained_batch *batch;	/* restore-drained run, or NULL */
};

/* A connection waiting for a sandbox event. */
struct sandbox_waiter {
	TAILQ_ENTRY(sandbox_waiter) link;
	struct conn *conn;
	bool remove;		/* DELETE: remove the sandbox once reaped */
};

struct exec_op {
	TAILQ_ENTRY(exec_op) link;
	struct sandbox *sb;
	struct conn *conn;
	uint64_t seq;
	uint64_t started_ns;
	uint64_t timeout_ms;
	bool sent;		/* false: held until a checkpoint ends */
	char *command;		/* held commands only, malloc'd */
	struct timer timer;	/* timeout_ms; unarmed when 0 */
};

enum sandbox_op_kind {
	SANDBOX_OP_NONE = 0,
	SANDBOX_OP_PAUSE,
	SANDBOX_OP_RESUME,
	SANDBOX_OP_SNAPSHOT,	/* for the API, or for a checkpoint drain */
	SANDBOX_OP_CHECKPOINT,
};

enum checkpoint_phase {
	CHECKPOINT_SAVE = 0,	/* SNAPSHOT sent to the old VMM */
	CHECKPOINT_SWITCH,	/* old VMM killed, waiting for its reap */
	CHECKPOINT_RESTORE,	/* new VMM spawned, waiting for READY */
};

/*
 * The pause, resume, snapshot or checkpoint in progress; a sandbox runs
 * one at a time. Defined here so that sandbox.c and snapctl.c share it.
 */
struct sandbox_op {
	enum sandbox_op_kind kind;
	struct conn *conn;	/* NULL for the drain's own snapshot */
	uint64_t seq;		/* of the PAUSE, RESUME or SNAPSHOT sent */
	uint64_t started_ns;
	bool was_paused;	/* paused before a snapshot or checkpoint */
	bool overwrite;		/* replace an existing file at path */
	bool for_drain;		/* the checkpoint drain policy saves it */
	bool resuming;		/* RESUME sent after the snapshot */
	bool done;		/* SNAPSHOT_DONE arrived */
	int error;		/* 0 or the negative errno of the failure */
	int status;		/* HTTP status of the failure */
	char message[512];	/* the failure, for the response and log */
	uint64_t bytes;		/* size of the saved file */
	double save_ms;		/* SNAPSHOT sent to SNAPSHOT_DONE */

	/* Checkpoint only. */
	enum checkpoint_phase phase;
	bool old_reaped;	/* the old VMM's exit was collected */
	bool old_ctl_closed;	/* its control socket reached end of file */
	bool abort;		/* killed during the switch: do not restore */
	bool stop_deferred;	/* a stop to send to the new VMM */
	bool new_ready;		/* the new VMM sent READY */
	bool repause_done;	/* a paused sandbox is paused again */
	uint64_t repause_seq;
	pid_t old_pid;

	char vmm_path[PATH_MAX];	/* what the VMM writes, in snapdir */
	char path[PATH_MAX];		/* where sbxd moves it */
};

struct sandbox {
	TAILQ_ENTRY(sandbox) link;
	char id[SANDBOX_ID_LEN + 1];
	enum sandbox_state state;
	struct sandbox_params params;

	pid_t pid;
	int pidfd;
	int ctl_fd;
	bool vmm_counted;	/* the VMM counts in sandbox_table.unreaped */
	struct loop_req child_req;
	struct loop_req ctl_req;

	bool ready;
	bool reaped;
	bool stop_sent;		/* SBX_MSG_STOP sent */
	bool kill_sent;		/* SIGKILL sent */
	bool force_stopping;	/* part of a force-stop */
	bool removed;		/* out of the table; freed when idle */
	bool deleted;		/* DELETE asked for it */
	bool refused;		/* a restore whose file sbx-vmm rejected */
	bool drain_done;	/* the checkpoint drain saved it or gave up */
	bool have_exit_info;
	struct sbx_exit_info exit_info;
	int wait_code;		/* siginfo si_code of the reap */
	int wait_status;	/* siginfo si_status of the reap */

	struct timespec created_at;	/* CLOCK_REALTIME */
	uint64_t start_ns;		/* CLOCK_MONOTONIC at admission */
	double ready_ms;
	char dir[PATH_MAX];		/* STATE_DIR/sandboxes/ID */
	/* dir/snapshots: the VMM's --snapshot-dir, owned by the VMM user */
	char snapdir[PATH_MAX];

	struct conn *create_conn;	/* waiting for READY */
	struct sandbox_op op;
	unsigned int checkpoints;	/* completed checkpoints */
	TAILQ_HEAD(, sandbox_waiter) waiters;
	TAILQ_HEAD(, exec_op) execs;
	uint64_t next_seq;
	struct timer grace_timer;	/* SIGKILL after the stop grace */
};

TAILQ_HEAD(sandbox_list, sandbox);

/* A force-stop request: a set of sandboxes to see reaped. */
struct force_target {
	struct sandbox *sb;	/* NULL once reaped or removed */
	char id[SANDBOX_ID_LEN + 1];
	bool already;		/* an earlier force-stop sent its stop */
	bool done;
	bool ok;
	char error[160];
};

struct force_op {
	TAILQ_ENTRY(force_op) link;
	struct conn *conn;	/* NULL for the drain's own force-stop */
	struct timer deadline;
	size_t count;
	size_t remaining;
	struct force_target targets[];
};

TAILQ_HEAD(force_list, force_op);

struct sandbox_table {
	struct sandbox_list list;	/* in creation order */
	unsigned int starting;		/* not ready, not reaped */
	unsigned int live;		/* ready, not reaped */
	unsigned int unreaped;		/* VMM processes not reaped */
	unsigned int ended;		/* reaped, still listed */
	unsigned int total;		/* listed */
	struct force_list force_ops;
};

/* Next state for an event, or SANDBOX_STATE_INVALID when not allowed. */
int sandbox_next_state(enum sandbox_state state, enum sandbox_event event);
const char *sandbox_state_name(enum sandbox_state state);
const char *sandbox_exit_reason_name(uint32_t reason);

void sandbox_table_init(struct sandbox_table *table);
struct sandbox *sandbox_find(struct sbxd *d, const char *id);
void sandbox_params_free(struct sandbox_params *params);

/*
 * Spawn a VMM for params (taken over, also on failure) and respond on
 * conn with 201 once the guest is ready, or with an error if it fails
 * first: 500, 409 "deleted" after a DELETE, 400 for a snapshot file that
 * sbx-vmm rejects. conn may be NULL. The caller has passed the gate.
 * Returns 0 or a negative errno with msg filled; the gate is exited on
 * failure.
 */
int sandbox_create(struct sbxd *d, struct sandbox_params *params,
		   struct conn *conn, char *msg, size_t msglen);
/* Send an exec; conn gets 200, 504 on timeout, or 409 if the guest ends. */
int sandbox_exec(struct sbxd *d, struct sandbox *sb, const char *command,
		 uint64_t timeout_ms, struct conn *conn);
/* Graceful stop; conn (may be NULL) gets the final JSON once reaped. */
int sandbox_stop(struct sbxd *d, struct sandbox *sb, uint64_t grace_ms,
		 struct conn *conn);
/* SIGKILL now and remove once reaped; conn gets the final JSON. */
int sandbox_delete(struct sbxd *d, struct sandbox *sb, struct conn *conn);
/*
 * Stop every live sandbox not yet force-stopped. With conn, also wait for
 * every live sandbox, those that an earlier force-stop or the forced drain
 * phase is already stopping included, and respond once all are reaped.
 */
int sandbox_force_stop_all(struct sbxd *d, struct conn *conn);
/* SIGKILL every unreaped VMM at once; returns how many were signalled. */
unsigned int sandbox_kill_all(struct sbxd *d);
/* SIGKILL the sandbox's VMM now; reason goes to the log. */
int sandbox_kill(struct sbxd *d, struct sandbox *sb, const char *reason);
/*
 * Send one control message to the sandbox's VMM without blocking.
 * Returns 0 or a negative errno (-EAGAIN when its socket buffer is full).
 */
int sandbox_send_msg(struct sandbox *sb, uint32_t type, uint64_t seq,
		     int64_t arg, const char *payload, size_t len);
/*
 * Spawn the VMM of sb: boot the guest of sb->params, or restore the file
 * restore when it is not NULL. Watch the VMM's pidfd and control socket
 * and count it as unreaped. Returns 0 or a negative errno with msg
 * filled.
 */
int sandbox_spawn(struct sbxd *d, struct sandbox *sb, const char *restore,
		  bool verify_ram, char *msg, size_t msglen);
/* Send the exec requests held during a checkpoint, in order. */
void sandbox_send_held_execs(struct sbxd *d, struct sandbox *sb);
/*
 * Close the pidfd and control socket of sb's VMM, whose exit sbxd has
 * collected, and stop counting it; idempotent.
 */
void sandbox_forget_vmm(struct sbxd *d, struct sandbox *sb);
/*
 * End sb for good after its VMM exited: state, counters, waiting
 * requests, the operation in progress. sb->wait_code and wait_status
 * must hold how the VMM ended.
 */
void sandbox_reaped(struct sbxd *d, struct sandbox *sb);
/* Remove every sandbox directory under STATE_DIR/sandboxes. */
int sandbox_remove_leftovers(const char *state_dir);

json_t *sandbox_to_json(const struct sandbox *sb);
/* Write ts as RFC 3339 UTC with milliseconds, as in created_at. */
void sandbox_format_time(const struct timespec *ts, char *out, size_t len);

void sandbox_on_child(struct sbxd *d, struct loop_req *req, int res);
void sandbox_on_control(struct sbxd *d, struct loop_req *req, int res);

#endif
