// SPDX-License-Identifier: MIT
/*
 * Pause, resume, snapshot, restore and checkpoint through a real sbxd
 * with real VMs, the checkpoint drain policy with --restore-drained, and
 * a checkpoint racing SIGTERM. Guest state is checked with sbx-agent's
 * counter command, which increments a counter kept in guest memory.
 */
#define _GNU_SOURCE
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

#include <dirent.h>

#include <criterion/criterion.h>

#include "harness.h"

/* Bounds that only keep a broken build from hanging; not targets. */
#define EXIT_BOUND_MS 20000
#define VMM_BOUND_MS 5000
#define RESTORES 20
#define RACE_ROUNDS 50

/* The sbxd that the helpers talk to; tests with a restart switch it. */
static struct sbxd_proc first;
static struct sbxd_proc second;
static struct sbxd_proc *cur = &first;

TestSuite(snapshot, .init = harness_init, .fini = harness_fini,
	  .timeout = 120);

static const char *json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static json_int_t json_int(json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

static void start(const char *const args[])
{
	harness_require_kvm();
	harness_require_bins();
	cur = &first;
	sbxd_start_checked(cur, args, NULL);
}

/* Start a second sbxd on the state dir of the first, which has exited. */
static void restart(const char *const args[])
{
	char *tail;

	if (sbxd_start_shared(&second, &first, args, NULL)) {
		tail = sbxd_log_tail(&second, 2048);
		cr_assert_fail("the restarted sbxd did not serve; log:\n%s",
			 tail ? tail : "");
	}
	cur = &second;
}

/* Wait up to 2 s for text in the log of p. */
static bool log_shows(struct sbxd_proc *p, const char *text)
{
	int64_t deadline = harness_now_ms() + 2000;

	while (!sbxd_log_contains(p, text)) {
		if (harness_now_ms() >= deadline)
			return false;
		harness_sleep_ms(10);
	}
	return true;
}

static void create_ok(const char *body, char *id, size_t len)
{
	int status = sbx_create(cur, body, id, len);

	cr_assert_eq(status, 201, "create %s: expected 201, got %d", body,
		     status);
}

/* POST /v1/sandboxes/ID/ACTION with body; returns the status. */
static int post(const char *id, const char *action, const char *body,
		struct http_resp *resp)
{
	char path[256];
	int status;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/%s", id, action);
	status = http_request(cur, "POST", path, body, resp);
	cr_assert(status > 0, "POST %s: no response: %s", path,
		  strerror(-status));
	return status;
}

static void post_ok(const char *id, const char *action, const char *body)
{
	struct http_resp resp;
	int status = post(id, action, body, &resp);

	cr_assert_eq(status, 200, "POST %s of %s: expected 200, got %d: %s",
		     action, id, status, resp.body);
	http_resp_free(&resp);
}

/* Run counter and return the value it printed. */
static long counter(const char *id)
{
	json_int_t code = -1;
	char *out = NULL;
	long value;
	int status;

	status = sbx_exec(cur, id, "counter", &out, &code);
	cr_assert_eq(status, 200, "counter in %s: status %d", id, status);
	cr_assert_eq(code, 0, "counter in %s: exit code %lld", id,
		     (long long)code);
	cr_assert_not_null(out, "counter in %s: no output", id);
	value = strtol(out, NULL, 10);
	free(out);
	return value;
}

static json_int_t sandbox_pid(const char *id)
{
	json_t *sb = sbx_get(cur, id);
	json_int_t pid = json_int(sb, "pid");

	json_decref(sb);
	return pid;
}

static void assert_state(const char *id, const char *want)
{
	json_t *sb = sbx_get(cur, id);

	cr_assert_str_eq(json_str(sb, "state"), want, "sandbox %s is %s, "
			 "expected %s", id, json_str(sb, "state"), want);
	json_decref(sb);
}

static void assert_no_vmm(struct sbxd_proc *p, const char *when)
{
	char desc[512];
	int count = sbxd_wait_no_vmms(p, VMM_BOUND_MS, desc, sizeof(desc));

	cr_assert_eq(count, 0, "%s: %d VMM process(es) still running: %s",
		     when, count, desc);
}

/* utime + stime of a process in clock ticks, from /proc/PID/stat. */
static unsigned long long cpu_ticks(pid_t pid)
{
	unsigned long long utime = 0, stime = 0;
	char path[64], text[1024];
	char *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
	cr_assert_not_null(fgets(text, sizeof(text), f), "read %s", path);
	fclose(f);
	/* Fields after the command name, which may hold spaces. */
	p = strrchr(text, ')');
	cr_assert_not_null(p, "malformed %s", path);
	cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
			    "%*u %llu %llu", &utime, &stime), 2,
		     "malformed %s", path);
	return utime + stime;
}

Test(snapshot, checkpoint_keeps_counter)
{
	char id[64];
	json_t *before, *after;

	start(NULL);
	create_ok("{\"metadata\":{\"owner\":\"ci\"}}", id, sizeof(id));
	for (long i = 1; i <= 3; i++)
		cr_assert_eq(counter(id), i);
	before = sbx_get(cur, id);
	post_ok(id, "checkpoint", NULL);
	after = sbx_get(cur, id);

	cr_assert_eq(counter(id), 4, "the counter did not survive the "
		     "checkpoint");
	cr_assert_str_eq(json_str(after, "id"), id);
	cr_assert_str_eq(json_str(after, "state"), "running");
	cr_assert_str_eq(json_str(json_object_get(after, "metadata"),
				  "owner"), "ci", "metadata changed");
	cr_assert_str_eq(json_str(after, "created_at"),
			 json_str(before, "created_at"));
	cr_assert_neq(json_int(after, "pid"), json_int(before, "pid"),
		      "the checkpoint kept pid %lld",
		      (long long)json_int(before, "pid"));
	cr_assert_eq(json_int(after, "checkpoints"), 1);
	cr_assert(kill((pid_t)json_int(before, "pid"), 0) < 0 &&
		  errno == ESRCH, "the old VMM pid %lld still exists",
		  (long long)json_int(before, "pid"));
	json_decref(before);
	json_decref(after);
}

Test(snapshot, checkpoint_keeps_exec_in_flight)
{
	struct http_async sleeper, cp;
	struct http_resp resp;
	char id[64], path[128];
	int ret;

	start(NULL);
	create_ok("{}", id, sizeof(id));
	cr_assert_eq(counter(id), 1);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	cr_assert_eq(http_request_start(&sleeper, cur, "POST", path,
					"{\"command\":\"sleep 400\"}"), 0);
	harness_sleep_ms(100);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/checkpoint", id);
	cr_assert_eq(http_request_start(&cp, cur, "POST", path, NULL), 0);

	/* Sent during or after the checkpoint: either way it runs once. */
	harness_sleep_ms(1);
	cr_assert_eq(counter(id), 2);

	ret = http_request_join(&cp, &resp);
	cr_assert_eq(ret, 200, "checkpoint: %d %s", ret, resp.body);
	http_resp_free(&resp);
	ret = http_request_join(&sleeper, &resp);
	cr_assert_eq(ret, 200, "the exec in flight across the checkpoint got "
		     "%d: %s", ret, resp.body);
	cr_assert_eq(json_int(resp.json, "exit_code"), 0, "%s", resp.body);
	http_resp_free(&resp);
	cr_assert_eq(counter(id), 3);
}

Test(snapshot, pause_blocks_exec)
{
	struct http_resp resp;
	char id[64];

	start(NULL);
	create_ok("{}", id, sizeof(id));
	cr_assert_eq(counter(id), 1);
	post_ok(id, "pause", NULL);
	assert_state(id, "paused");
	post_ok(id, "pause", "{}"); /* a second pause changes nothing */

	post(id, "exec", "{\"command\":\"counter\"}", &resp);
	sbx_assert_error(&resp, 409, "paused", "exec while paused");
	cr_assert_str_eq(json_str(json_object_get(resp.json, "error"),
				  "code"), "paused");
	http_resp_free(&resp);

	post(id, "pause", "{\"x\":1}", &resp);
	sbx_assert_error(&resp, 400, "x", "pause with an unknown field");
	http_resp_free(&resp);

	post_ok(id, "resume", NULL);
	assert_state(id, "running");
	cr_assert_eq(counter(id), 2);
}

Test(snapshot, paused_vmm_uses_no_cpu)
{
	unsigned long long t0, t1, t2;
	struct http_async spin;
	struct http_resp resp;
	char id[64], path[128];
	pid_t pid;
	int ret;

	start(NULL);
	create_ok("{}", id, sizeof(id));
	pid = (pid_t)sandbox_pid(id);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	cr_assert_eq(http_request_start(&spin, cur, "POST", path,
					"{\"command\":\"spin 1500\"}"), 0);
	harness_sleep_ms(300);
	t0 = cpu_ticks(pid);
	cr_assert_gt(t0, 0, "the spinning guest used no CPU before the pause");

	post_ok(id, "pause", NULL);
	t1 = cpu_ticks(pid);
	harness_sleep_ms(600);
	t2 = cpu_ticks(pid);
	fprintf(stderr, "paused_vmm_uses_no_cpu: %llu ticks while spinning "
		"300 ms, %llu ticks while paused 600 ms\n", t0, t2 - t1);
	/* One tick of slack for accounting that lags the pause. */
	cr_assert_leq(t2 - t1, 1, "a paused VMM used %llu clock ticks in "
		      "600 ms", t2 - t1);

	post_ok(id, "resume", NULL);
	ret = http_request_join(&spin, &resp);
	cr_assert_eq(ret, 200, "the spin across the pause got %d: %s", ret,
		     resp.body);
	http_resp_free(&resp);
	cr_assert_gt(cpu_ticks(pid), t2, "no CPU used after the resume");
}

Test(snapshot, checkpoint_of_paused_stays_paused)
{
	char id[64];

	start(NULL);
	create_ok("{}", id, sizeof(id));
	cr_assert_eq(counter(id), 1);
	post_ok(id, "pause", NULL);
	post_ok(id, "checkpoint", NULL);
	assert_state(id, "paused");
	post_ok(id, "resume", NULL);
	cr_assert_eq(counter(id), 2);
}

Test(snapshot, snapshot_target_rules)
{
	struct http_resp resp;
	char id[64], body[PATH_MAX + 128], file[PATH_MAX + 64];
	json_t *sb;

	start(NULL);
	create_ok("{}", id, sizeof(id));
	snprintf(file, sizeof(file), "%s/a.snap", cur->dir);

	post(id, "snapshot", "{\"path\":\"rel.snap\"}", &resp);
	sbx_assert_error(&resp, 400, "absolute", "relative path");
	http_resp_free(&resp);
	snprintf(body, sizeof(body), "{\"path\":\"%s/no/such/a.snap\"}",
		 cur->dir);
	post(id, "snapshot", body, &resp);
	sbx_assert_error(&resp, 400, "does not exist", "missing directory");
	http_resp_free(&resp);
	snprintf(body, sizeof(body), "{\"path\":\"%s\"}", cur->dir);
	post(id, "snapshot", body, &resp);
	sbx_assert_error(&resp, 400, NULL, "a directory as path");
	http_resp_free(&resp);

	snprintf(body, sizeof(body), "{\"path\":\"%s\"}", file);
	cr_assert_eq(post(id, "snapshot", body, &resp), 200, "%s", resp.body);
	cr_assert_str_eq(json_str(resp.json, "path"), file);
	cr_assert_gt(json_int(resp.json, "bytes"), 16 << 20,
		     "a 16 MiB guest saved in %lld bytes",
		     (long long)json_int(resp.json, "bytes"));
	cr_assert(json_is_number(json_object_get(resp.json, "ms")));
	http_resp_free(&resp);
	cr_assert(harness_path_exists(file));
	/* The snapshot resumed the sandbox, which was running. */
	assert_state(id, "running");

	post(id, "snapshot", body, &resp);
	sbx_assert_error(&resp, 409, "overwrite", "existing file");
	http_resp_free(&resp);
	snprintf(body, sizeof(body), "{\"path\":\"%s\",\"overwrite\":true}",
		 file);
	cr_assert_eq(post(id, "snapshot", body, &resp), 200, "%s", resp.body);
	http_resp_free(&resp);

	/* A paused sandbox stays paused. */
	post_ok(id, "pause", NULL);
	cr_assert_eq(post(id, "snapshot", body, &resp), 200, "%s", resp.body);
	http_resp_free(&resp);
	sb = sbx_get(cur, id);
	cr_assert_str_eq(json_str(sb, "state"), "paused");
	json_decref(sb);
}

/* Save a sandbox whose counter is at 2 to path. */
static void make_snapshot(const char *path, char *id, size_t len)
{
	char body[PATH_MAX + 128];

	create_ok("{}", id, len);
	cr_assert_eq(counter(id), 1);
	cr_assert_eq(counter(id), 2);
	snprintf(body, sizeof(body), "{\"path\":\"%s\"}", path);
	post_ok(id, "snapshot", body);
}

Test(snapshot, restore_continues_counter)
{
	char src[64], id[64], file[PATH_MAX + 64], body[PATH_MAX + 128];
	json_t *sb, *node;

	start(NULL);
	snprintf(file, sizeof(file), "%s/c.snap", cur->dir);
	make_snapshot(file, src, sizeof(src));

	snprintf(body, sizeof(body), "{\"snapshot\":\"%s\","
		 "\"metadata\":{\"from\":\"file\"}}", file);
	create_ok(body, id, sizeof(id));
	cr_assert_str_neq(id, src, "the restore reused the id %s", src);
	cr_assert_eq(counter(id), 3);
	cr_assert_eq(counter(src), 3, "the source sandbox runs on its own");
	sb = sbx_get(cur, id);
	cr_assert_str_eq(json_str(sb, "restored_from"), file);
	cr_assert_eq(json_int(sb, "memory_mib"), 16);
	cr_assert_str_eq(json_str(json_object_get(sb, "metadata"), "from"),
			 "file");
	json_decref(sb);

	snprintf(body, sizeof(body), "{\"snapshot\":\"%s\","
		 "\"memory_mib\":32}", file);
	cr_assert_eq(sbx_create(cur, body, NULL, 0), 400,
		     "memory_mib with snapshot accepted");
	node = sbx_node(cur);
	cr_assert_eq(json_int(node, "live"), 2);
	json_decref(node);
}

/* Copy src to dst; its holes become written zeros. */
static void copy_file(const char *src, const char *dst)
{
	char buf[65536];
	ssize_t n;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(in, 0, "open %s: %s", src, strerror(errno));
	cr_assert_geq(out, 0, "open %s: %s", dst, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

static void patch_file(const char *path, off_t offset, const void *data,
		       size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(pwrite(fd, data, len, offset), (ssize_t)len);
	close(fd);
}

static int count_dir(const char *path)
{
	struct dirent *de;
	int count = 0;
	DIR *d = opendir(path);

	cr_assert_not_null(d, "opendir %s: %s", path, strerror(errno));
	while ((de = readdir(d)))
		count += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return count;
}

Test(snapshot, broken_files_rejected)
{
	static const struct {
		const char *name;
		const char *expect;	/* in the error message */
	} cases[] = {
		{ "corrupt", "checksum mismatch" },
		{ "ram", "RAM checksum mismatch" },
		{ "truncated", "truncated" },
		{ "short", "truncated" },
		{ "foreign", "bad magic" },
		{ "newer", "newer" },
		{ "missing", "No such file" },
		{ "directory", "directory" },
	};
	char good[PATH_MAX + 64], path[PATH_MAX + 64], dirs[PATH_MAX + 64];
	char src[64], body[PATH_MAX + 128];
	const uint32_t version = 2;
	int listed, entries;
	json_t *node;
	struct http_resp resp;

	start(NULL);
	snprintf(good, sizeof(good), "%s/good.snap", cur->dir);
	make_snapshot(good, src, sizeof(src));
	snprintf(dirs, sizeof(dirs), "%s/sandboxes", cur->state_dir);
	entries = count_dir(dirs);
	node = sbx_node(cur);
	listed = (int)json_int(node, "sandboxes");
	json_decref(node);

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const char *name = cases[i].name;

		snprintf(path, sizeof(path), "%s/%s.snap", cur->dir, name);
		if (strcmp(name, "directory") == 0) {
			cr_assert_eq(mkdir(path, 0700), 0);
		} else if (strcmp(name, "missing") != 0) {
			copy_file(good, path);
		}
		if (strcmp(name, "corrupt") == 0)
			patch_file(path, 300, "\xff\xff", 2);
		if (strcmp(name, "ram") == 0)
			patch_file(path, 8192 + (4 << 20) + 100, "\x5a", 1);
		if (strcmp(name, "truncated") == 0)
			cr_assert_eq(truncate(path, 1 << 20), 0);
		if (strcmp(name, "short") == 0)
			cr_assert_eq(truncate(path, 100), 0);
		if (strcmp(name, "foreign") == 0)
			patch_file(path, 0, "NOTASNAP", 8);
		if (strcmp(name, "newer") == 0)
			patch_file(path, 8, &version, sizeof(version));

		snprintf(body, sizeof(body), "{\"snapshot\":\"%s\"}", path);
		cr_assert_gt(http_request(cur, "POST", "/v1/sandboxes", body,
					  &resp), 0);
		cr_assert(resp.status >= 400 && resp.status < 500,
			  "%s file: expected 4xx, got %d: %s", name,
			  resp.status, resp.body);
		sbx_assert_error(&resp, resp.status, cases[i].expect, name);
		http_resp_free(&resp);

		node = sbx_node(cur);
		cr_assert_eq(json_int(node, "sandboxes"), listed,
			     "%s file: a sandbox stayed listed", name);
		cr_assert_eq(json_int(node, "live"), 1, "%s file", name);
		cr_assert_eq(json_int(node, "inflight_starts"), 0, "%s file",
			     name);
		json_decref(node);
		cr_assert_eq(count_dir(dirs), entries, "%s file: a sandbox "
			     "directory was left in %s", name, dirs);
	}
	assert_state(src, "running");
}

/* Sum Rss and Pss (KiB) of the mappings of file in process pid. */
static void mapping_kib(pid_t pid, const char *file, long *rss, long *pss)
{
	char path[64], line[PATH_MAX + 128];
	unsigned long start, end;
	bool in_file = false;
	char perms[8];
	long kib;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);

		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		/* A mapping's first line is "START-END PERMS ... [PATH]". */
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) == 3)
			in_file = len >= strlen(file) &&
				  strcmp(line + len - strlen(file), file) == 0;
		else if (in_file && sscanf(line, "Rss: %ld kB", &kib) == 1)
			*rss += kib;
		else if (in_file && sscanf(line, "Pss: %ld kB", &kib) == 1)
			*pss += kib;
	}
	fclose(f);
}

Test(snapshot, restores_share_pages)
{
	char src[64], ids[RESTORES][64], file[PATH_MAX + 64];
	char body[PATH_MAX + 128];
	long rss = 0, pss = 0;

	start(NULL);
	snprintf(file, sizeof(file), "%s/shared.snap", cur->dir);
	make_snapshot(file, src, sizeof(src));
	snprintf(body, sizeof(body), "{\"snapshot\":\"%s\"}", file);
	for (int i = 0; i < RESTORES; i++) {
		char *out = NULL;
		json_int_t code = -1;

		create_ok(body, ids[i], sizeof(ids[i]));
		cr_assert_eq(sbx_exec(cur, ids[i], "echo shared", &out,
				      &code), 200);
		cr_assert_str_eq(out ? out : "", "shared");
		cr_assert_eq(code, 0);
		free(out);
	}
	for (int i = 0; i < RESTORES; i++)
		mapping_kib((pid_t)sandbox_pid(ids[i]), file, &rss, &pss);
	fprintf(stderr, "restores_share_pages: %d restores of %s, each after "
		"an echo: mappings of the file add up to %ld KiB RSS and "
		"%ld KiB PSS\n", RESTORES, file, rss, pss);
	cr_assert_gt(rss, 0, "no mapping of %s found in the VMMs", file);
	cr_assert_lt(pss * 2, rss, "PSS %ld KiB is not clearly below RSS "
		     "%ld KiB: the restores do not share the file's pages",
		     pss, rss);
}

Test(snapshot, force_stop_while_paused)
{
	struct http_resp resp;
	char id[64];
	json_t *sb;

	start((const char *const[]){ "--stop-grace", "2s", NULL });
	create_ok("{}", id, sizeof(id));
	post_ok(id, "pause", NULL);
	cr_assert_eq(http_request(cur, "POST", "/v1/node/force-stop", NULL,
				  &resp), 200, "%s", resp.body);
	http_resp_free(&resp);
	sb = sbx_get(cur, id);
	cr_assert_str_eq(json_str(sb, "state"), "exited");
	cr_assert_str_eq(json_str(json_object_get(sb, "exit"), "reason"),
			 "stopped", "a paused guest got its stop request");
	json_decref(sb);
	assert_no_vmm(cur, "after the force-stop of a paused sandbox");
}

Test(snapshot, delete_during_checkpoint)
{
	start(NULL);
	for (int i = 0; i < 6; i++) {
		struct http_async cp;
		struct http_resp resp;
		char id[64], path[128];
		int ret;

		create_ok("{}", id, sizeof(id));
		snprintf(path, sizeof(path), "/v1/sandboxes/%s/checkpoint", id);
		cr_assert_eq(http_request_start(&cp, cur, "POST", path,
						NULL), 0);
		harness_sleep_ms(i * 4);
		snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
		ret = http_request(cur, "DELETE", path, NULL, &resp);
		cr_assert_eq(ret, 200, "round %d: DELETE got %d: %s", i, ret,
			     resp.body);
		http_resp_free(&resp);
		ret = http_request_join(&cp, &resp);
		cr_assert(ret == 200 || ret == 409, "round %d: the checkpoint "
			  "got %d: %s", i, ret, resp.body);
		http_resp_free(&resp);
		assert_no_vmm(cur, "after a delete during a checkpoint");
	}
}

Test(snapshot, delete_while_starting)
{
	struct http_async create;
	struct http_resp resp;
	json_t *list;
	char path[128];
	int ret;

	start(NULL);
	cr_assert_eq(http_request_start(&create, cur, "POST",
					"/v1/sandboxes",
					"{\"boot_delay_ms\":5000}"), 0);
	cr_assert_eq(sbx_wait_inflight(cur, 1, 5000), 0);
	cr_assert_eq(http_request(cur, "GET", "/v1/sandboxes", NULL, &resp),
		     200);
	list = json_object_get(resp.json, "sandboxes");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s",
		 json_str(json_array_get(list, 0), "id"));
	http_resp_free(&resp);
	cr_assert_eq(http_request(cur, "DELETE", path, NULL, &resp), 200);
	http_resp_free(&resp);

	ret = http_request_join(&create, &resp);
	sbx_assert_error(&resp, 409, "deleted while starting", "create");
	cr_assert_str_eq(json_str(json_object_get(resp.json, "error"),
				  "code"), "deleted");
	cr_assert_null(json_object_get(json_object_get(resp.json, "error"),
				       "console_log"));
	http_resp_free(&resp);
	(void)ret;
}

Test(snapshot, drain_checkpoint_then_restore)
{
	char id[64], file[PATH_MAX + 64], saved[PATH_MAX + 128];
	json_t *sb;

	start((const char *const[]){ "--drain-policy", "checkpoint", NULL });
	create_ok("{\"metadata\":{\"team\":\"a\"}}", id, sizeof(id));
	for (long i = 1; i <= 3; i++)
		cr_assert_eq(counter(id), i);
	cr_assert_eq(sbxd_signal(cur, SIGTERM), 0);
	sbxd_assert_exit(cur, EXIT_BOUND_MS, 0);
	assert_no_vmm(cur, "after the checkpoint drain");
	cr_assert(sbxd_log_contains(cur, "listed 1 saved sandbox"),
		  "no drained.json line in the log");
	snprintf(file, sizeof(file), "%s/drained.json", cur->state_dir);
	cr_assert(harness_path_exists(file), "no %s after the drain", file);
	snprintf(saved, sizeof(saved), "%s/drained/%s.snap", cur->state_dir,
		 id);
	cr_assert(harness_path_exists(saved));

	restart((const char *const[]){ "--restore-drained", NULL });
	cr_assert_eq(sbx_wait_sandbox_state(cur, id, "running", 5000), 0,
		     "sandbox %s was not restored", id);
	cr_assert_eq(counter(id), 4, "the counter did not survive the "
		     "restart");
	sb = sbx_get(cur, id);
	cr_assert_str_eq(json_str(json_object_get(sb, "metadata"), "team"),
			 "a");
	json_decref(sb);
	cr_assert(!harness_path_exists(file), "%s stayed after every sandbox "
		  "was restored", file);
	cr_assert(!harness_path_exists(saved));
}

Test(snapshot, restore_drained_by_request)
{
	char id[64], out[512], bin[PATH_MAX];
	int fds[2], status, fd;
	ssize_t n;
	pid_t pid;

	start((const char *const[]){ "--drain-policy", "checkpoint", NULL });
	create_ok("{}", id, sizeof(id));
	cr_assert_eq(counter(id), 1);
	cr_assert_eq(sbxd_signal(cur, SIGTERM), 0);
	sbxd_assert_exit(cur, EXIT_BOUND_MS, 0);
	/*
	 * A lock file without a holder looks like an unclean shutdown, whose
	 * cleanup must leave drained/ and drained.json alone.
	 */
	fd = open(cur->lock_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "create %s: %s", cur->lock_path,
		      strerror(errno));
	cr_assert_eq(write(fd, "1\n", 2), 2);
	close(fd);

	restart(NULL);
	cr_assert(sbxd_log_contains(cur, "unclean shutdown"),
		  "the lock file did not look like an unclean shutdown");
	cr_assert(log_shows(cur, "--restore-drained"),
		  "no hint about drained.json in the log");
	/* sbxctl restore-drained sends POST /v1/node/restore-drained. */
	snprintf(bin, sizeof(bin), "%s/sbxctl", SBX_BIN_DIR);
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		execl(bin, bin, "--socket", cur->sock_path, "restore-drained",
		      (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	n = read(fds[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "sbxctl restore-drained exited 0x%x: %s", status, out);
	cr_assert(strstr(out, id), "sbxctl did not name %s: %s", id, out);
	cr_assert_eq(counter(id), 2);
}

/*
 * One round: a checkpoint and SIGTERM at nearly the same moment. delay_us
 * < 0 sends SIGTERM first. Returns the checkpoint's status.
 */
static int race_round(int round, int delay_us)
{
	struct http_async cp;
	struct http_resp resp;
	char id[64], path[128];
	json_int_t old_pid;
	json_t *sb;
	int ret;

	create_ok("{\"memory_mib\":8}", id, sizeof(id));
	cr_assert_eq(counter(id), 1);
	old_pid = sandbox_pid(id);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/checkpoint", id);
	if (delay_us < 0) {
		cr_assert_eq(sbxd_signal(cur, SIGTERM), 0);
		usleep((useconds_t)-delay_us);
	}
	cr_assert_eq(http_request_start(&cp, cur, "POST", path, NULL), 0);
	if (delay_us >= 0) {
		usleep((useconds_t)delay_us);
		cr_assert_eq(sbxd_signal(cur, SIGTERM), 0);
	}
	ret = http_request_join(&cp, &resp);
	cr_assert(ret == 200 || ret == 503, "round %d: the checkpoint got "
		  "%d: %s", round, ret, resp.body);
	if (ret == 503)
		cr_assert_str_eq(json_str(json_object_get(resp.json, "error"),
					  "code"), "draining");
	http_resp_free(&resp);

	/* Never lost while sbxd serves: it runs, and its memory is there. */
	sb = sbx_get(cur, id);
	cr_assert_str_eq(json_str(sb, "state"), "running", "round %d", round);
	if (ret == 200)
		cr_assert_neq(json_int(sb, "pid"), old_pid, "round %d", round);
	else
		cr_assert_eq(json_int(sb, "pid"), old_pid, "round %d", round);
	json_decref(sb);
	cr_assert_eq(counter(id), 2, "round %d: the counter was lost", round);

	/* The drain waits for the sandbox; end it so the drain ends. */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	cr_assert_eq(http_request(cur, "DELETE", path, NULL, &resp), 200);
	http_resp_free(&resp);
	sbxd_assert_exit(cur, EXIT_BOUND_MS, 0);
	assert_no_vmm(cur, "after the race round");
	if (ret == 200)
		cr_assert(sbxd_log_line_contains(cur, "checkpoint done",
						 id), "round %d", round);
	return ret;
}

Test(snapshot, checkpoint_races_sigterm, .timeout = 180)
{
	static struct sbxd_proc procs[RACE_ROUNDS];
	int ok = 0, rejected = 0;

	harness_require_kvm();
	harness_require_bins();
	for (int i = 0; i < RACE_ROUNDS; i++) {
		/* From SIGTERM 2 ms before the request to 8 ms after it. */
		int delay_us = (i % 11) * 1000 - 2000;

		cur = &procs[i];
		sbxd_start_checked(cur, NULL, NULL);
		if (race_round(i, delay_us) == 200)
			ok++;
		else
			rejected++;
		cr_assert_eq(sbxd_cleanup(cur), 0, "round %d left VMMs", i);
	}
	fprintf(stderr, "checkpoint_races_sigterm: %d rounds, %d checkpoints "
		"done before the drain ended, %d rejected with 503\n",
		RACE_ROUNDS, ok, rejected);
}

Test(snapshot, metrics_count_operations)
{
	struct http_resp resp;
	char id[64];

	start(NULL);
	create_ok("{}", id, sizeof(id));
	post_ok(id, "checkpoint", NULL);
	cr_assert_eq(http_request(cur, "GET", "/metrics", NULL, &resp), 200);
	cr_assert(strstr(resp.body, "sbxd_checkpoints_total{result=\"ok\"} 1"),
		  "%s", resp.body);
	cr_assert(strstr(resp.body, "sbxd_restores_total{result=\"ok\"} 0"),
		  "%s", resp.body);
	http_resp_free(&resp);
}

Test(snapshot, drain_policy_kill_skips_waiting)
{
	char id[64];

	start((const char *const[]){ "--drain-policy", "kill",
				     "--stop-grace", "5s", NULL });
	create_ok("{}", id, sizeof(id));
	cr_assert_eq(sbxd_signal(cur, SIGTERM), 0);
	sbxd_assert_exit(cur, EXIT_BOUND_MS, 0);
	cr_assert(sbxd_log_line_contains(cur, "forced phase started",
					 "--drain-policy is kill"),
		  "the kill policy did not start the forced phase");
	cr_assert(sbxd_log_line_contains(cur, id, "reason=stopped"),
		  "sandbox %s did not get its stop request", id);
	assert_no_vmm(cur, "after the kill policy's drain");
}

Test(snapshot, drain_save_failure_exits_1)
{
	char id[64], path[PATH_MAX + 64];
	int fd;

	start((const char *const[]){ "--drain-policy", "checkpoint",
				     "--stop-grace", "5s", NULL });
	create_ok("{}", id, sizeof(id));
	/* A file where drained/ should be makes the move of the file fail. */
	snprintf(path, sizeof(path), "%s/drained", cur->state_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
	close(fd);

	cr_assert_eq(sbxd_signal(cur, SIGTERM), 0);
	sbxd_assert_exit(cur, EXIT_BOUND_MS, 1);
	cr_assert(sbxd_log_line_contains(cur, "failed to save sandbox", id),
		  "no failure line for %s", id);
	cr_assert(sbxd_log_line_contains(cur, id, "reason=stopped"),
		  "the unsaved sandbox %s did not get a stop request", id);
	cr_assert(sbxd_log_contains(cur, "did not save every sandbox"));
	snprintf(path, sizeof(path), "%s/drained.json", cur->state_dir);
	cr_assert(!harness_path_exists(path), "%s lists nothing saved", path);
	assert_no_vmm(cur, "after a failed checkpoint drain");
}
