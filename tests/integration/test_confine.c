/* SPDX-License-Identifier: MIT */
/*
 * Confinement under a real sbxd: the VMMs it starts are confined, and
 * hostile sandboxes beside normal ones neither slow the normal ones'
 * execs past a bound nor grow sbxd's memory past one. The hostile guests
 * flood hypercalls, write a gigabyte of output or spin without
 * hypercalls. A VMM taken over by its guest is played by sbx-hostile-vmm,
 * which sends garbage on the control channel. Needs /dev/kvm; the user
 * and namespace checks need root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

#define NORMAL_BODY "{\"memory_mib\":16}"
#define NORMAL_COUNT 2
#define EXEC_RUNS 200

/*
 * Bounds for the normal sandboxes while hostile ones run. An exec takes
 * about 1 ms on an idle 2-core machine; the hostile VMMs keep both cores
 * busy, so the bounds are generous. They catch a starved sbxd, not a slow
 * scheduler.
 */
#define EXEC_P50_MAX_MS 50.0
#define EXEC_MAX_MS 2000.0
#define SBXD_RSS_GROWTH_MAX_KIB (32 * 1024)

/* Output that the gigabyte guest may leave: the VMM's 1 MiB console cap,
 * its note about the cap and a few log lines. */
#define CONSOLE_MAX_BYTES ((1 << 20) + 64 * 1024)

static struct sbxd_proc sbxd;

TestSuite(confine, .init = harness_init, .fini = harness_fini,
	  .timeout = 300);

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void start_sbxd(const char *const extra_args[])
{
	harness_require_kvm();
	harness_require_bins();
	sbxd_start_checked(&sbxd, extra_args, NULL);
}

static void create(const char *body, char *id, size_t len)
{
	int status = sbx_create(&sbxd, body, id, len);

	cr_assert_eq(status, 201, "create %s: status %d", body, status);
}

/* Create a sandbox of the misbehaving test guest in `mode`. */
static void create_test_guest(const char *mode, char *id, size_t len)
{
	char body[PATH_MAX + 128];

	snprintf(body, sizeof(body),
		 "{\"memory_mib\":16,\"guest\":\"%s\",\"args\":\"%s\"}",
		 SBX_TEST_GUEST, mode);
	create(body, id, len);
}

static pid_t vmm_pid(const char *id)
{
	json_t *sb = sbx_get(&sbxd, id);
	json_t *pid = json_object_get(sb, "pid");
	pid_t value;

	cr_assert(json_is_integer(pid), "sandbox %s has no pid", id);
	value = (pid_t)json_integer_value(pid);
	json_decref(sb);
	return value;
}

static const char *state_of(const char *id, char *out, size_t len)
{
	json_t *sb = sbx_get(&sbxd, id);
	json_t *state = json_object_get(sb, "state");

	snprintf(out, len, "%s", json_is_string(state) ?
		 json_string_value(state) : "(none)");
	json_decref(sb);
	return out;
}

/* The value of `key` in /proc/PID/status, copied to `out`. */
static void status_field(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], line[512];
	size_t key_len = strlen(key);
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		const char *value = line + key_len + 1;

		if (strncmp(line, key, key_len) || line[key_len] != ':')
			continue;
		value += strspn(value, " \t");
		snprintf(out, len, "%s", value);
		out[strcspn(out, "\n")] = '\0';
		found = true;
		break;
	}
	fclose(f);
	cr_assert(found, "%s has no %s line", path, key);
}

static void expect_field(pid_t pid, const char *key, const char *want)
{
	char value[256];

	status_field(pid, key, value, sizeof(value));
	cr_assert_str_eq(value, want, "/proc/%d/status %s: '%s', expected "
			 "'%s'", (int)pid, key, value, want);
}

static long rss_kib(pid_t pid)
{
	char value[64];

	status_field(pid, "VmRSS", value, sizeof(value));
	return strtol(value, NULL, 10);
}

/* True when /proc/PID/ns/NAME is the same namespace as the test's. */
static bool same_namespace(pid_t pid, const char *name)
{
	char path[64], mine[128], theirs[128];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/ns/%s", name);
	n = readlink(path, mine, sizeof(mine) - 1);
	cr_assert_gt(n, 0, "readlink %s: %s", path, strerror(errno));
	mine[n] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, name);
	n = readlink(path, theirs, sizeof(theirs) - 1);
	cr_assert_gt(n, 0, "readlink %s: %s", path, strerror(errno));
	theirs[n] = '\0';
	return strcmp(mine, theirs) == 0;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * Run EXEC_RUNS execs spread over the normal sandboxes and check their
 * latency against the bounds. `load` names the load for messages.
 */
static void check_exec_latency(char ids[][64], int count, const char *load)
{
	double ms[EXEC_RUNS], start;
	json_int_t code;
	char *out;

	for (int i = 0; i < EXEC_RUNS; i++) {
		const char *id = ids[i % count];

		start = now_ms();
		cr_assert_eq(sbx_exec(&sbxd, id, "echo hi", &out, &code), 200,
			     "exec in %s beside %s failed", id, load);
		ms[i] = now_ms() - start;
		cr_assert_str_eq(out, "hi", "exec output in %s", id);
		free(out);
	}
	qsort(ms, EXEC_RUNS, sizeof(ms[0]), compare_doubles);
	fprintf(stderr, "exec beside %s: p50 %.2f ms, p90 %.2f ms, max %.2f "
		"ms over %d runs\n", load, ms[EXEC_RUNS / 2],
		ms[EXEC_RUNS * 9 / 10], ms[EXEC_RUNS - 1], EXEC_RUNS);
	cr_assert_lt(ms[EXEC_RUNS / 2], EXEC_P50_MAX_MS,
		     "exec p50 %.2f ms beside %s, bound %.0f ms",
		     ms[EXEC_RUNS / 2], load, EXEC_P50_MAX_MS);
	cr_assert_lt(ms[EXEC_RUNS - 1], EXEC_MAX_MS,
		     "slowest exec %.2f ms beside %s, bound %.0f ms",
		     ms[EXEC_RUNS - 1], load, EXEC_MAX_MS);
}

static void check_rss_growth(long before_kib, const char *load)
{
	long after_kib = rss_kib(sbxd.pid);

	fprintf(stderr, "sbxd RSS beside %s: %ld KiB before, %ld KiB after\n",
		load, before_kib, after_kib);
	cr_assert_lt(after_kib - before_kib, SBXD_RSS_GROWTH_MAX_KIB,
		     "sbxd RSS grew from %ld to %ld KiB beside %s, bound +%d "
		     "KiB", before_kib, after_kib, load,
		     SBXD_RSS_GROWTH_MAX_KIB);
}

static void create_normal(char ids[][64])
{
	for (int i = 0; i < NORMAL_COUNT; i++)
		create(NORMAL_BODY, ids[i], 64);
}

/* User plus system CPU time of `pid`, in clock ticks. */
static unsigned long long cpu_ticks(pid_t pid)
{
	unsigned long long utime = 0, stime = 0;
	char path[64], buf[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_not_null(fgets(buf, sizeof(buf), f), "read %s", path);
	fclose(f);
	/* utime and stime are fields 14 and 15, counted from the state
	 * field (3) after the ")" that ends the command name. */
	p = strrchr(buf, ')');
	cr_assert_not_null(p, "%s: no command name", path);
	cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
			    "%*u %llu %llu", &utime, &stime), 2,
		     "cannot parse %s", path);
	return utime + stime;
}

/*
 * Wait until `pid` used no CPU for 500 ms, up to `timeout_ms`. Returns
 * the time waited in ms, or -1 on timeout.
 */
static double wait_idle(pid_t pid, int timeout_ms)
{
	double start = now_ms();
	unsigned long long last = cpu_ticks(pid), ticks;

	while (now_ms() - start < timeout_ms) {
		harness_sleep_ms(500);
		ticks = cpu_ticks(pid);
		if (ticks == last)
			return now_ms() - start;
		last = ticks;
	}
	return -1;
}

Test(confine, vmms_are_confined)
{
	static const char zero[] = "0000000000000000";
	char id[64], value[128];
	json_int_t code;
	struct passwd *pw;
	char *out;
	pid_t pid;

	start_sbxd(NULL);
	create(NORMAL_BODY, id, sizeof(id));
	pid = vmm_pid(id);
	expect_field(pid, "Seccomp", "2");
	expect_field(pid, "NoNewPrivs", "1");
	expect_field(pid, "CapEff", zero);
	expect_field(pid, "CapPrm", zero);
	if (geteuid() == 0) {
		pw = getpwnam("sbx-vmm");
		cr_assert_not_null(pw, "user sbx-vmm is missing; "
				   "scripts/install-deps.sh creates it");
		status_field(pid, "Uid", value, sizeof(value));
		cr_assert_eq(strtoul(value, NULL, 10), pw->pw_uid,
			     "VMM Uid '%s', expected %u", value, pw->pw_uid);
		expect_field(pid, "CapBnd", zero);
		cr_assert_not(same_namespace(pid, "mnt"), "shared mount ns");
		cr_assert_not(same_namespace(pid, "net"), "shared network ns");
		cr_assert_not(same_namespace(pid, "ipc"), "shared IPC ns");
	}
	cr_assert_eq(sbx_exec(&sbxd, id, "echo confined", &out, &code), 200);
	cr_assert_str_eq(out, "confined");
	free(out);
}

Test(confine, vmm_in_own_pid_namespace)
{
	char id[64];
	pid_t pid;

	harness_require_root("a PID namespace needs root");
	start_sbxd(NULL);
	create(NORMAL_BODY, id, sizeof(id));
	pid = vmm_pid(id);
	/* The VMM cannot create its own PID namespace: sbxd passes
	 * CLONE_NEWPID to clone3, as root and when it has a pidfd of
	 * itself, which every kernel since Linux 5.3 gives it. */
	cr_assert_not(same_namespace(pid, "pid"), "sbx-vmm %d shares the "
		      "test's PID namespace: sbxd started it without "
		      "CLONE_NEWPID", (int)pid);
}

Test(confine, hostile_guests_beside_normal)
{
	static const char *const modes[] = {
		"ready-then-hypercall-flood",
		"ready-then-write-gigabyte",
		"ready-then-spin",
	};
	char normal[NORMAL_COUNT][64], hostile[3][64], path[PATH_MAX + 128];
	char state[32];
	struct stat st;
	long rss_before;
	double waited;

	start_sbxd(NULL);
	create_normal(normal);
	rss_before = rss_kib(sbxd.pid);
	for (int i = 0; i < 3; i++)
		create_test_guest(modes[i], hostile[i], sizeof(hostile[i]));

	check_exec_latency(normal, NORMAL_COUNT, "hostile guests");
	check_rss_growth(rss_before, "hostile guests");

	/* The gigabyte guest sleeps once it has written all of it. */
	waited = wait_idle(vmm_pid(hostile[1]), 120000);
	cr_assert_geq(waited, 0, "the gigabyte guest still writes after "
		      "120 s");
	fprintf(stderr, "gigabyte guest idle %.0f ms after the exec checks\n",
		waited);

	/* Every hostile guest still runs: none broke its VMM's limits. */
	for (int i = 0; i < 3; i++)
		cr_assert_str_eq(state_of(hostile[i], state, sizeof(state)),
				 "running", "%s sandbox %s", modes[i],
				 hostile[i]);
	snprintf(path, sizeof(path), "%s/sandboxes/%s/console.log",
		 sbxd.state_dir, hostile[1]);
	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	fprintf(stderr, "console of the gigabyte guest: %lld bytes\n",
		(long long)st.st_size);
	cr_assert_leq(st.st_size, CONSOLE_MAX_BYTES,
		      "%s has %lld bytes, bound %d", path,
		      (long long)st.st_size, CONSOLE_MAX_BYTES);
}

/* Wait until `path` contains `text`, up to `timeout_ms`. */
static bool wait_file_contains(const char *path, const char *text,
			       int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	char buf[4096];

	while (now_ms() < deadline) {
		FILE *f = fopen(path, "re");
		size_t n = 0;

		if (f) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
		}
		buf[n] = '\0';
		if (strstr(buf, text))
			return true;
		harness_sleep_ms(50);
	}
	return false;
}

Test(confine, hostile_vmm_beside_normal)
{
	const char *args[] = { "--vmm", SBX_HOSTILE_VMM, NULL };
	char normal[NORMAL_COUNT][64], hostile[64], path[PATH_MAX + 128];
	struct stat before, after;
	long rss_before;
	json_t *node;

	start_sbxd(args);
	create_normal(normal);
	rss_before = rss_kib(sbxd.pid);
	cr_assert_eq(stat(sbxd.log_path, &before), 0, "%s: %s",
		     sbxd.log_path, strerror(errno));

	create("{\"memory_mib\":16,\"args\":\"hostile-control\"}", hostile,
	       sizeof(hostile));
	check_exec_latency(normal, NORMAL_COUNT, "a hostile VMM");

	snprintf(path, sizeof(path), "%s/sandboxes/%s/console.log",
		 sbxd.state_dir, hostile);
	cr_assert(wait_file_contains(path, "sent 10000 packets", 120000),
		  "sbx-hostile-vmm did not finish its packets within 120 s; "
		  "see %s", path);
	check_exec_latency(normal, NORMAL_COUNT, "a hostile VMM, after");
	check_rss_growth(rss_before, "a hostile VMM");

	node = sbx_node(&sbxd);
	cr_assert_not_null(node, "GET /v1/node failed after the flood");
	json_decref(node);
	cr_assert_eq(stat(sbxd.log_path, &after), 0);
	/* NOTE: sbxd logs one line per bad message, without a rate limit.
	 * The test only reports the growth. */
	fprintf(stderr, "sbxd log grew by %lld bytes for 10000 bad control "
		"messages\n", (long long)(after.st_size - before.st_size));
}
