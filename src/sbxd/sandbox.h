/* SPDX-License-Identifier: MIT */
/*
 * The sandbox table and each sandbox's lifecycle: spawn, ready, exec,
 * stop, kill, reap, remove. A sandbox stays listed as "exited" after its
 * VMM is reaped, until it is deleted or pushed out by newer ended ones.
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

enum sandbox_state {
	SANDBOX_STARTING = 0,	/* VMM spawned, guest not ready yet */
	SANDBOX_RUNNING,	/* guest ready */
	SANDBOX_STOPPING,	/* stop or kill requested, VMM not reaped */
	SANDBOX_EXITED,		/* VMM reaped */
	SANDBOX_STATE_COUNT,
};

enum sandbox_event {
	SANDBOX_EV_READY = 0,	/* VMM sent SBX_MSG_READY */
	SANDBOX_EV_STOP,	/* graceful stop requested */
	SANDBOX_EV_KILL,	/* SIGKILL requested */
	SANDBOX_EV_REAPED,	/* VMM process reaped */
	SANDBOX_EVENT_COUNT,
};

#define SANDBOX_STATE_INVALID (-1)

/* Options of a create request, validated by the API. */
struct sandbox_params {
	unsigned int vcpus;
	unsigned int memory_mib;
	char guest[PATH_MAX];
	char args[SANDBOX_ARGS_MAX + 1];
	unsigned int boot_delay_ms;
	bool ignore_stop;
	json_t *metadata;	/* object of strings, owned */
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
	struct timer timer;	/* timeout_ms; unarmed when 0 */
};

struct sandbox {
	TAILQ_ENTRY(sandbox) link;
	char id[SANDBOX_ID_LEN + 1];
	enum sandbox_state state;
	struct sandbox_params params;

	pid_t pid;
	int pidfd;
	int ctl_fd;
	struct loop_req child_req;
	struct loop_req ctl_req;

	bool ready;
	bool reaped;
	bool stop_sent;		/* SBX_MSG_STOP sent */
	bool kill_sent;		/* SIGKILL sent */
	bool force_stopping;	/* part of a force-stop */
	bool removed;		/* out of the table; freed when idle */
	bool have_exit_info;
	struct sbx_exit_info exit_info;
	int wait_code;		/* siginfo si_code of the reap */
	int wait_status;	/* siginfo si_status of the reap */

	struct timespec created_at;	/* CLOCK_REALTIME */
	uint64_t start_ns;		/* CLOCK_MONOTONIC at admission */
	double ready_ms;
	char dir[PATH_MAX];		/* STATE_DIR/sandboxes/ID */

	struct conn *create_conn;	/* waiting for READY */
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
 * conn with 201 once the guest is ready, or 500 if it fails first. The caller
 * has passed the gate. Returns 0 or a negative errno with msg filled; the
 * gate is exited on failure.
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
/* Remove every sandbox directory under STATE_DIR/sandboxes. */
int sandbox_remove_leftovers(const char *state_dir);

json_t *sandbox_to_json(const struct sandbox *sb);

void sandbox_on_child(struct sbxd *d, struct loop_req *req, int res);
void sandbox_on_control(struct sbxd *d, struct loop_req *req, int res);

#endif
