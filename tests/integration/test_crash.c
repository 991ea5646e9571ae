// SPDX-License-Identifier: MIT
/*
 * Crash tests: SIGKILL sbxd mid-start, mid-drain and mid-snapshot, 20
 * times each. After every kill, no VMM may survive, and no snapshot may
 * sit under its final name unless it restores. The next sbxd on the same
 * state dir must report the unclean shutdown, clear the leftovers
 * (sandbox dirs, BPF pins) and serve. The sbxds form a chain: the one started to
 * check a crash is the victim of the next iteration. The last one must
 * drain cleanly and exit 0.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "harness.h"
#include "sbxd/drain_state.h"

#define ITERATIONS 20
/* Bounds on waits that end within milliseconds when all is well. */
#define KILL_BOUND_MS 5000
#define VMM_BOUND_MS 5000
#define STATE_BOUND_MS 5000
#define EXIT_BOUND_MS 20000
#define RESTORE_BOUND_MS 30000
/* How long a snapshot may take before the test kills sbxd anyway. */
#define SNAPSHOT_BOUND_MS 10000

#define SMALL_BODY "{\"memory_mib\":8}"
/* The guest waits a minute before READY, so the start is in flight. */
#define SLOW_BODY "{\"memory_mib\":8,\"boot_delay_ms\":60000}"
/*
 * Written guest memory gives the snapshot data to write: with 8 MiB, each
 * of the 20 kills found the file still being written on this host.
 */
#define SNAP_MEMORY_BODY "{\"memory_mib\":16}"
#define SNAP_TOUCH "touch 8"

struct crash_run {
	struct sbxd_proc *victim;	/* the running sbxd */
	struct sbxd_proc *spare;	/* unused struct for the successor */
	bool bpf;
	char live_id[80];		/* sandbox of the victim, "" if none */
	char victim_ids[8][80];		/* the victim's sandboxes at the kill */
	size_t n_victim_ids;
	bool snapshots;			/* the mid-snapshot case runs */
	int mid_write_kills;		/* kills that found a partial file */
	int cut_writes;			/* kills that left a partial file */
	int restored;			/* snapshot files checked by restore */
};

/* The first sbxd owns the state dir, so it is cleaned up last. */
static struct sbxd_proc owner, successors[2];

TestSuite(crash, .init = harness_init, .fini = harness_fini);

static const char *const *sbxd_args(void)
{
	static const char *const plain[] = { "--stop-grace", "100ms", NULL };
	static const char *const bpf[] = { "--stop-grace", "100ms", "--gate",
					   "bpf", NULL };

	/* Where the BPF gate can load, demand it, so a broken one fails. */
	if (geteuid() == 0 && access("/sys/fs/bpf", W_OK) == 0)
		return bpf;
	return plain;
}

static bool node_uses_bpf(struct sbxd_proc *p)
{
	json_t *node = sbx_node(p);
	json_t *gate = json_object_get(node, "gate");
	bool bpf = json_is_string(gate) &&
		   strcmp(json_string_value(gate), "bpf") == 0;

	json_decref(node);
	return bpf;
}

static void fail_with_log(struct sbxd_proc *p, const char *message)
{
	char *tail = sbxd_log_tail(p, 3000);

	cr_assert_fail("%s; sbxd log:\n%s", message, tail ? tail : "");
}

static void create_live(struct crash_run *run, const char *body)
{
	int status = sbx_create(run->victim, body, run->live_id,
				sizeof(run->live_id));

	if (status != 201)
		fail_with_log(run->victim, "create did not answer 201");
}

static void crash_start(struct crash_run *run)
{
	memset(run, 0, sizeof(*run));
	sbxd_start_checked(&owner, sbxd_args(), NULL);
	run->victim = &owner;
	run->spare = &successors[0];
	run->bpf = node_uses_bpf(&owner);
}

/* Record the victim's sandboxes (and so their VMM pids) before a kill. */
static void record_victim_ids(struct crash_run *run)
{
	struct http_resp resp;
	json_t *list, *item;
	size_t i;
	int status;

	run->n_victim_ids = 0;
	status = http_request(run->victim, "GET", "/v1/sandboxes", NULL,
			      &resp);
	cr_assert_eq(status, 200, "GET /v1/sandboxes: %d", status);
	list = json_object_get(resp.json, "sandboxes");
	json_array_foreach(list, i, item) {
		json_t *id = json_object_get(item, "id");

		if (!json_is_string(id) ||
		    run->n_victim_ids >= sizeof(run->victim_ids) /
						 sizeof(run->victim_ids[0]))
			continue;
		snprintf(run->victim_ids[run->n_victim_ids++],
			 sizeof(run->victim_ids[0]), "%s",
			 json_string_value(id));
	}
	http_resp_free(&resp);
}

static bool is_partial_name(const char *name)
{
	return strstr(name, ".tmp.") != NULL;
}

/* Files of sbxd's state dir that are not snapshots. */
static bool is_state_file(const char *name)
{
	return strcmp(name, "console.log") == 0 ||
	       strcmp(name, "sbxd.lock") == 0;
}

/* Call @fn for each regular file under @dir, recursively. */
static void walk_files(const char *dir,
		       void (*fn)(const char *path, const char *name,
				  void *arg),
		       void *arg)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(path))
			continue;
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			walk_files(path, fn, arg);
		else if (S_ISREG(st.st_mode))
			fn(path, de->d_name, arg);
	}
	closedir(d);
}

/* What a walk over the state dir found. */
struct file_census {
	int partial;		/* NAME.tmp.PID files being written */
	int final;		/* snapshots under their final name */
	int console;		/* console.log files */
	char first_partial[PATH_MAX];
};

static void census_add(const char *path, const char *name, void *arg)
{
	struct file_census *c = arg;

	if (is_partial_name(name)) {
		if (!c->partial++)
			snprintf(c->first_partial, sizeof(c->first_partial),
				 "%s", path);
	} else if (strcmp(name, "console.log") == 0) {
		c->console++;
	} else if (!is_state_file(name)) {
		c->final++;
	}
}

/*
 * NOTE: snapshots are looked for anywhere in the state dir, because the
 * snapshot endpoint's file layout is not documented yet.
 */
static void census_take(const char *dir, struct file_census *c)
{
	memset(c, 0, sizeof(*c));
	walk_files(dir, census_add, c);
}

/*
 * Restore @path in a standalone sbx-vmm and run "echo ok". Returns true
 * when it printed the line "ok" and exited 0. @detail gets the exit status
 * and the output for a failure message.
 */
static bool snapshot_restores(const char *path, char *detail, size_t detail_len)
{
	char bin[PATH_MAX], out[512] = "";
	int64_t deadline = harness_now_ms() + RESTORE_BOUND_MS;
	pid_t parent = getpid(), pid;
	size_t used = 0;
	int fds[2], status = 0;
	ssize_t n;

	snprintf(bin, sizeof(bin), "%s/sbx-vmm", SBX_BIN_DIR);
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
		    getppid() != parent)
			_exit(127);
		if (dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0)
			_exit(127);
		execl(bin, bin, "--restore", path, "--", "echo", "ok",
		      (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	while (used < sizeof(out) - 1 &&
	       (n = read(fds[0], out + used, sizeof(out) - 1 - used)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		used += (size_t)n;
	}
	out[used] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (harness_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		harness_sleep_ms(5);
	}
	snprintf(detail, detail_len, "exit status 0x%x, output \"%s\"", status, out);
	/* stderr shares the pipe, so look for "ok" as a line of its own. */
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	       (strncmp(out, "ok\n", 3) == 0 || strstr(out, "\nok\n"));
}

struct restore_check {
	int checked;
	char failed[PATH_MAX];
	char detail[600];
};

static void check_final_file(const char *path, const char *name, void *arg)
{
	struct restore_check *rc = arg;

	if (is_partial_name(name) || is_state_file(name) || rc->failed[0])
		return;
	rc->checked++;
	if (!snapshot_restores(path, rc->detail, sizeof(rc->detail)))
		snprintf(rc->failed, sizeof(rc->failed), "%s", path);
}

/* Every snapshot under its final name in the state dir must restore. */
static void assert_snapshots_restore(struct crash_run *run,
				     struct sbxd_proc *p, const char *when)
{
	struct restore_check rc = { 0 };

	walk_files(p->state_dir, check_final_file, &rc);
	run->restored += rc.checked;
	cr_assert(!rc.failed[0], "%s: %s is under a final snapshot name but "
		  "does not restore: %s", when, rc.failed, rc.detail);
}

/* Read the drain_state map pinned for the instance. */
static void read_pinned_state(const struct sbxd_proc *p,
			      struct sbxd_drain_state *state)
{
	char path[PATH_MAX];
	__u32 key = 0;
	int fd, ret;

	snprintf(path, sizeof(path), "/sys/fs/bpf/sbxd/%s/drain_state",
		 p->instance);
	fd = bpf_obj_get(path);
	cr_assert_geq(fd, 0, "bpf_obj_get(%s): %s", path, strerror(errno));
	ret = bpf_map_lookup_elem(fd, &key, state);
	close(fd);
	cr_assert_eq(ret, 0, "lookup in %s: %s", path, strerror(errno));
}

/*
 * The pin dir must hold exactly the successor's two pins. A stale
 * drain_state map of the victim would still show its admitted start or
 * its drain.
 */
static void assert_fresh_pins(const struct sbxd_proc *p)
{
	char dir[PATH_MAX];
	struct sbxd_drain_state state;
	struct dirent *de;
	int count = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/fs/bpf/sbxd/%s", p->instance);
	d = opendir(dir);
	cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		count++;
		cr_assert(strcmp(de->d_name, "drain_state") == 0 ||
				  strcmp(de->d_name, "live_vms") == 0,
			  "unexpected pin %s/%s", dir, de->d_name);
	}
	closedir(d);
	cr_assert_eq(count, 2, "%s has %d pins, expected drain_state and "
		     "live_vms", dir, count);

	read_pinned_state(p, &state);
	cr_assert_eq(state.draining, SBXD_SERVING,
		     "pinned drain_state says draining=%u: a stale map",
		     state.draining);
	cr_assert_eq(state.inflight_starts, 0,
		     "pinned drain_state has %d starts in flight: a stale map",
		     state.inflight_starts);
	cr_assert_eq(state.live, 0, "pinned drain_state has %u live: stale",
		     state.live);
	cr_assert_eq(state.admitted, 0,
		     "pinned drain_state admitted %llu starts: a stale map",
		     (unsigned long long)state.admitted);
}

/*
 * No sandbox dir of the victim may survive, unless it keeps a snapshot
 * that the test asked for, and no partial snapshot may survive at all.
 * NOTE: a finished snapshot may be kept or removed by the next sbxd;
 * which one is right is not documented yet, so both pass.
 */
static void assert_no_stale_dirs(struct crash_run *run, struct sbxd_proc *p)
{
	struct file_census census;
	char path[PATH_MAX + 96];

	census_take(p->state_dir, &census);
	cr_assert_eq(census.partial, 0, "a partial snapshot survived the "
		     "restart: %s", census.first_partial);
	if (!run->snapshots)
		cr_assert_eq(census.console, 0, "%d console.log file(s) of "
			     "the killed sbxd survived the restart",
			     census.console);
	for (size_t i = 0; i < run->n_victim_ids; i++) {
		snprintf(path, sizeof(path), "%s/sandboxes/%s", p->state_dir,
			 run->victim_ids[i]);
		if (!harness_path_exists(path))
			continue;
		census_take(path, &census);
		cr_assert(run->snapshots && census.final > 0,
			  "stale sandbox dir %s of the killed sbxd survived "
			  "the restart", path);
	}
}

/*
 * After the victim was sent SIGKILL: check what it left, start the next
 * sbxd on the same state dir, check its recovery, and make it the victim.
 */
static void crash_recover(struct crash_run *run, int iteration)
{
	struct sbxd_proc *next = run->spare, *old = run->victim;
	char desc[512], old_pid[48];
	int count, status, ret;

	ret = sbxd_wait_exit(old, KILL_BOUND_MS, &status);
	cr_assert_eq(ret, 0, "iteration %d: sbxd pid %d still runs after "
		     "SIGKILL", iteration, old->pid);
	count = sbxd_wait_no_vmms(old, VMM_BOUND_MS, desc, sizeof(desc));
	cr_assert_eq(count, 0, "iteration %d: %d VMM(s) outlived the killed "
		     "sbxd by %d ms: %s", iteration, count, VMM_BOUND_MS, desc);
	cr_assert(harness_path_exists(old->lock_path), "iteration %d: no lock "
		  "file after SIGKILL, so the next sbxd cannot know",
		  iteration);
	assert_snapshots_restore(run, old, "after the kill");
	if (run->snapshots) {
		struct file_census census;

		census_take(old->state_dir, &census);
		if (census.partial)
			run->cut_writes++;
	}

	ret = sbxd_start_shared(next, &owner, sbxd_args(), NULL);
	if (ret)
		fail_with_log(next, "the sbxd after the kill did not serve");
	snprintf(old_pid, sizeof(old_pid), "(pid %d)", old->pid);
	cr_assert(sbxd_log_line_contains(next, "unclean shutdown", old_pid),
		  "iteration %d: no \"unclean shutdown\" line naming %s",
		  iteration, old_pid);
	cr_assert(sbxd_log_line_contains(next, "warn", "unclean shutdown"),
		  "iteration %d: the unclean shutdown line is not a warning",
		  iteration);
	assert_no_stale_dirs(run, next);
	assert_snapshots_restore(run, next, "after the restart");
	if (run->bpf)
		assert_fresh_pins(next);

	if (old != &owner)
		sbxd_cleanup(old);
	run->spare = old == &owner ? &successors[1] : old;
	run->victim = next;
	create_live(run, run->snapshots ? SNAP_MEMORY_BODY : SMALL_BODY);
}

/* Stop the last sbxd of the chain cleanly: its state dir must be sound. */
static void crash_finish(struct crash_run *run)
{
	struct http_resp resp;
	char path[128];
	int status;

	if (run->live_id[0]) {
		snprintf(path, sizeof(path), "/v1/sandboxes/%s", run->live_id);
		status = http_request(run->victim, "DELETE", path, NULL, &resp);
		cr_assert_eq(status, 200, "DELETE %s: %d", path, status);
		http_resp_free(&resp);
	}
	cr_assert_eq(sbxd_signal(run->victim, SIGTERM), 0);
	sbxd_assert_exit(run->victim, EXIT_BOUND_MS, 0);
	cr_assert(!harness_path_exists(run->victim->lock_path),
		  "a clean exit after %d crashes left the lock file",
		  ITERATIONS);
}

/* (a) A create waits for a guest that delays READY when sbxd dies. */
Test(crash, kill_mid_start, .timeout = 240)
{
	static struct http_async slow;
	struct crash_run run;
	struct http_resp resp;
	int ret;

	crash_start(&run);
	for (int i = 0; i < ITERATIONS; i++) {
		cr_assert_eq(http_request_start(&slow, run.victim, "POST",
						"/v1/sandboxes", SLOW_BODY),
			     0);
		ret = sbx_wait_inflight(run.victim, 1, STATE_BOUND_MS);
		cr_assert_eq(ret, 0, "iteration %d: the slow create never "
			     "showed as in flight", i);
		record_victim_ids(&run);
		cr_assert_eq(sbxd_signal(run.victim, SIGKILL), 0);
		ret = http_request_join(&slow, &resp);
		cr_assert_lt(ret, 0, "iteration %d: a create in flight got "
			     "%d from a SIGKILLed sbxd: %s", i, ret,
			     resp.body ? resp.body : "");
		http_resp_free(&resp);
		crash_recover(&run, i);
	}
	crash_finish(&run);
}

/* (b) SIGTERM with a live sandbox; SIGKILL while the drain waits for it. */
Test(crash, kill_mid_drain, .timeout = 240)
{
	struct crash_run run;
	int ret;

	crash_start(&run);
	create_live(&run, SMALL_BODY);
	for (int i = 0; i < ITERATIONS; i++) {
		record_victim_ids(&run);
		cr_assert_eq(sbxd_signal(run.victim, SIGTERM), 0);
		ret = sbx_wait_node_state(run.victim, "draining",
					  STATE_BOUND_MS);
		cr_assert_eq(ret, 0, "iteration %d: the node never showed "
			     "draining after SIGTERM", i);
		cr_assert(sbxd_running(run.victim), "iteration %d: sbxd "
			  "exited although a sandbox was live", i);
		cr_assert_eq(sbxd_signal(run.victim, SIGKILL), 0);
		crash_recover(&run, i);
	}
	crash_finish(&run);
}

/*
 * POST /v1/sandboxes/ID/snapshot and return its status, or skip the test
 * when the endpoint is not in this build (404 or 501).
 */
static int snapshot_probe(struct crash_run *run)
{
	struct http_resp resp;
	char path[128];
	int status;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/snapshot",
		 run->live_id);
	status = http_request(run->victim, "POST", path, "{}", &resp);
	cr_assert_gt(status, 0, "POST %s: %s", path, strerror(-status));
	http_resp_free(&resp);
	if (status == 404 || status == 501) {
		/* Criterion's skip exits without the suite's .fini. */
		harness_fini();
		cr_skip_test("skipped: the snapshot endpoint is not in this "
			     "build");
	}
	return status;
}

static int exec_touch(struct crash_run *run, json_int_t *code)
{
	return sbx_exec(run->victim, run->live_id, SNAP_TOUCH, NULL, code);
}

/*
 * Write guest memory. An exec in a sandbox that a snapshot left paused
 * gets 409, so resume the sandbox then and try again.
 */
static void touch_memory(struct crash_run *run, int iteration)
{
	struct http_resp resp;
	json_int_t code;
	char path[128];
	int status;

	status = exec_touch(run, &code);
	if (status == 409) {
		snprintf(path, sizeof(path), "/v1/sandboxes/%s/resume",
			 run->live_id);
		status = http_request(run->victim, "POST", path, NULL, &resp);
		cr_assert(status >= 200 && status < 300, "iteration %d: exec "
			  "got 409 and POST %s got %d: %s", iteration, path,
			  status, status > 0 ? resp.body : strerror(-status));
		http_resp_free(&resp);
		status = exec_touch(run, &code);
	}
	cr_assert_eq(status, 200, "iteration %d: exec %s: %d", iteration,
		     SNAP_TOUCH, status);
	cr_assert_eq(code, 0, "iteration %d: %s exited %lld", iteration,
		     SNAP_TOUCH, (long long)code);
}

/*
 * Poll the state dir until a snapshot file shows up, partial or final,
 * beyond the @before_final that were there. Returns true when a partial
 * one was seen.
 */
static bool wait_snapshot_file(struct crash_run *run, int before_final)
{
	int64_t deadline = harness_now_ms() + SNAPSHOT_BOUND_MS;
	struct file_census census;

	for (;;) {
		census_take(run->victim->state_dir, &census);
		if (census.partial)
			return true;
		if (census.final > before_final ||
		    harness_now_ms() >= deadline)
			return false;
		harness_sleep_ms(1);
	}
}

/* The pid of the VMM of @id, from GET /v1/sandboxes/ID. */
static pid_t sandbox_pid(struct sbxd_proc *p, const char *id)
{
	json_t *sandbox = sbx_get(p, id);
	json_t *pid = json_object_get(sandbox, "pid");
	pid_t result;

	cr_assert(json_is_integer(pid), "sandbox %s has no integer pid", id);
	result = (pid_t)json_integer_value(pid);
	json_decref(sandbox);
	return result;
}

/*
 * (c) SIGKILL while a guest with written memory is being saved. A VMM
 * dies only once the kernel delivers its parent-death signal after sbxd
 * has exited, which can come after the write finished. So every other
 * iteration kills the VMM at the same moment too, as a crash of the
 * whole node would, and cuts the write short.
 */
Test(crash, kill_mid_snapshot, .timeout = 240)
{
	static struct http_async snap;
	struct file_census census;
	struct crash_run run;
	struct http_resp resp;
	char path[128];
	int status, ret;
	pid_t vmm;

	crash_start(&run);
	create_live(&run, SNAP_MEMORY_BODY);
	status = snapshot_probe(&run);
	cr_assert(status >= 200 && status < 300, "the first snapshot "
		  "returned %d", status);
	run.snapshots = true;
	assert_snapshots_restore(&run, run.victim, "after a snapshot");
	cr_assert_gt(run.restored, 0, "a snapshot returned %d but no "
		     "snapshot file is in %s", status, run.victim->state_dir);
	/*
	 * Each iteration saves a sandbox that has no snapshot yet, so a
	 * default file name that must not be overwritten cannot clash.
	 */
	create_live(&run, SNAP_MEMORY_BODY);

	for (int i = 0; i < ITERATIONS; i++) {
		touch_memory(&run, i);
		vmm = sandbox_pid(run.victim, run.live_id);
		census_take(run.victim->state_dir, &census);
		record_victim_ids(&run);
		snprintf(path, sizeof(path), "/v1/sandboxes/%s/snapshot",
			 run.live_id);
		cr_assert_eq(http_request_start(&snap, run.victim, "POST", path,
						"{}"),
			     0);
		if (wait_snapshot_file(&run, census.final))
			run.mid_write_kills++;
		cr_assert_eq(sbxd_signal(run.victim, SIGKILL), 0);
		/*
		 * The VMM is a child of sbxd and then of this subreaper, so
		 * its pid cannot be reused before the harness reaps it.
		 */
		if (i % 2)
			kill(vmm, SIGKILL);
		ret = http_request_join(&snap, &resp);
		cr_assert(ret < 0 || (ret >= 200 && ret < 300),
			  "iteration %d: the snapshot returned %d: %s", i,
			  ret, resp.body ? resp.body : "");
		http_resp_free(&resp);
		crash_recover(&run, i);
	}
	cr_log_info("kill_mid_snapshot: %d of %d kills came while a snapshot "
		    "file was being written, %d cut the write short; %d "
		    "snapshot files restored", run.mid_write_kills,
		    ITERATIONS, run.cut_writes, run.restored);
	crash_finish(&run);
}
