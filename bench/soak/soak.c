// SPDX-License-Identifier: MIT
/*
 * sbx-soak: runs create/exec/delete cycles against a running sbxd and
 * checks that its descriptors, memory, VMs, BPF pins and state dir
 * entries return to where they were.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "soak_counts.h"
#include "soak_http.h"

#define REQUEST_TIMEOUT_MS 60000
#define SETTLE_POLL_MS 50
/* Errors printed in full; later ones are only counted. */
#define ERRORS_PRINTED 20

struct soak_opts {
	const char *state_dir;
	const char *sock_path;
	const char *instance;
	unsigned long cycles;
	unsigned long concurrency;
	unsigned long memory_mib;
	unsigned long rss_slack_mib;
	unsigned long settle_ms;
	unsigned long progress_every;
};

struct soak_run {
	const struct soak_opts *opts;
	const struct soak_target *target;
	char *create_body;
	uint64_t start_ns;
	uint64_t end_ns;		/* when the last worker finished */
	atomic_ulong next_cycle;	/* next cycle number to hand out */
	atomic_ulong done;		/* cycles finished, failed ones too */
	atomic_ulong errors;
	pthread_mutex_t print_lock;	/* keeps output lines whole */
};

struct soak_worker {
	struct soak_run *run;
	struct soak_conn conn;
	pthread_t thread;
};

static volatile sig_atomic_t interrupted;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned long ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void on_interrupt(int sig)
{
	interrupted = 1;
}

static void usage(FILE *out)
{
	fputs("usage: sbx-soak [FLAGS]\n"
	      "\n"
	      "Runs create, exec and delete cycles against a running sbxd\n"
	      "and checks that its open fds, RSS, child processes, live VMs,\n"
	      "BPF pins and state dir entries return to their values from\n"
	      "before the run. The last output line is\n"
	      "\"sbx-soak result: key=value ...\".\n"
	      "\n"
	      "  --state-dir DIR     sbxd's state dir; default /run/sbxd as\n"
	      "                      root, else $XDG_RUNTIME_DIR/sbxd\n"
	      "  --socket PATH       API socket; default STATE_DIR/sbxd.sock\n"
	      "  --instance NAME     sbxd's --instance, which names the BPF\n"
	      "                      pin dir; default \"default\"\n"
	      "  --cycles N          create/exec/delete cycles; default 10000\n"
	      "  --concurrency C     cycles in flight at once, 1 to 256;\n"
	      "                      default 8\n"
	      "  --memory-mib N      memory_mib of each sandbox; default 16\n"
	      "  --rss-slack-mib N   allowed growth of sbxd's VmRSS, in MiB;\n"
	      "                      default 4\n"
	      "  --settle-ms N       time to wait after the last cycle for\n"
	      "                      the counts to return, in ms; default\n"
	      "                      5000\n"
	      "  --progress-every N  print progress every N cycles; default\n"
	      "                      1000\n"
	      "  --help              print this help and exit\n"
	      "\n"
	      "Exit status: 0 no errors and every count back; 1 an error or\n"
	      "a count that did not return; 2 bad flags or no sbxd to test.\n",
	      out);
}

static int parse_ulong(const char *flag, const char *text, unsigned long min,
		       unsigned long max, unsigned long *out)
{
	unsigned long value;
	char *end;

	errno = 0;
	value = strtoul(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || value < min ||
	    value > max) {
		fprintf(stderr, "sbx-soak: invalid %s \"%s\": expected a "
			"whole number from %lu to %lu\n", flag, text, min, max);
		return -EINVAL;
	}
	*out = value;
	return 0;
}

static int parse_opts(int argc, char **argv, struct soak_opts *o)
{
	enum { OPT_STATE_DIR = 256, OPT_SOCKET, OPT_INSTANCE, OPT_CYCLES,
	       OPT_CONCURRENCY, OPT_MEMORY, OPT_RSS, OPT_SETTLE,
	       OPT_PROGRESS, OPT_HELP };
	static const struct option longopts[] = {
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "instance", required_argument, NULL, OPT_INSTANCE },
		{ "cycles", required_argument, NULL, OPT_CYCLES },
		{ "concurrency", required_argument, NULL, OPT_CONCURRENCY },
		{ "memory-mib", required_argument, NULL, OPT_MEMORY },
		{ "rss-slack-mib", required_argument, NULL, OPT_RSS },
		{ "settle-ms", required_argument, NULL, OPT_SETTLE },
		{ "progress-every", required_argument, NULL, OPT_PROGRESS },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	int opt, ret = 0;

	while (!ret && (opt = getopt_long(argc, argv, "", longopts, NULL)) !=
			       -1) {
		switch (opt) {
		case OPT_STATE_DIR:
			o->state_dir = optarg;
			break;
		case OPT_SOCKET:
			o->sock_path = optarg;
			break;
		case OPT_INSTANCE:
			o->instance = optarg;
			break;
		case OPT_CYCLES:
			ret = parse_ulong("--cycles", optarg, 1, ULONG_MAX / 2,
					  &o->cycles);
			break;
		case OPT_CONCURRENCY:
			ret = parse_ulong("--concurrency", optarg, 1, 256,
					  &o->concurrency);
			break;
		case OPT_MEMORY:
			ret = parse_ulong("--memory-mib", optarg, 4, 4096,
					  &o->memory_mib);
			break;
		case OPT_RSS:
			ret = parse_ulong("--rss-slack-mib", optarg, 0, 65536,
					  &o->rss_slack_mib);
			break;
		case OPT_SETTLE:
			ret = parse_ulong("--settle-ms", optarg, 0, 3600000,
					  &o->settle_ms);
			break;
		case OPT_PROGRESS:
			ret = parse_ulong("--progress-every", optarg, 1,
					  ULONG_MAX, &o->progress_every);
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (!ret && optind < argc) {
		fprintf(stderr, "sbx-soak: unexpected argument \"%s\"; see "
			"--help\n", argv[optind]);
		ret = -EINVAL;
	}
	return ret;
}

/* The state dir that sbxd picks by default, for the same user. */
static int default_state_dir(char *out, size_t len)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		runtime = "/run";
	if (!runtime || !runtime[0]) {
		fprintf(stderr, "sbx-soak: XDG_RUNTIME_DIR is not set; pass "
			"--state-dir\n");
		return -EINVAL;
	}
	if (snprintf(out, len, "%s/sbxd", runtime) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* Print one failed request of cycle @n and count it. */
static void report_error(struct soak_run *run, unsigned long n,
			 const char *method, const char *path, int ret,
			 const struct soak_resp *resp, const char *why)
{
	unsigned long count = atomic_fetch_add(&run->errors, 1) + 1;

	if (count > ERRORS_PRINTED)
		return;
	pthread_mutex_lock(&run->print_lock);
	if (ret)
		printf("sbx-soak: cycle %lu: %s %s failed: %s\n", n, method,
		       path, strerror(-ret));
	else
		printf("sbx-soak: cycle %lu: %s %s returned %d%s%s: %s\n", n,
		       method, path, resp->status, why ? ", " : "",
		       why ? why : "", resp->body);
	if (count == ERRORS_PRINTED)
		printf("sbx-soak: %d errors printed; later ones are only "
		       "counted\n", ERRORS_PRINTED);
	fflush(stdout);
	pthread_mutex_unlock(&run->print_lock);
}

/* Copy the string @key of @obj to @out; false when absent or too long. */
static bool json_copy_str(json_t *obj, const char *key, char *out,
			  size_t len)
{
	json_t *value = json_object_get(obj, key);

	if (!json_is_string(value) || json_string_length(value) >= len)
		return false;
	snprintf(out, len, "%s", json_string_value(value));
	return true;
}

/*
 * POST the create body. Returns true on 201, false after reporting the
 * error. Stores the sandbox id in @id whenever a sandbox exists to be
 * deleted: on 201, and on a failed start, whose sandbox stays listed as
 * exited. @id is "" otherwise.
 */
static bool cycle_create(struct soak_worker *w, unsigned long n, char *id,
			 size_t id_len)
{
	const char *path = "/v1/sandboxes";
	struct soak_resp resp;
	bool created = false;
	json_t *body;
	int ret;

	id[0] = '\0';
	ret = soak_request(&w->conn, "POST", path, w->run->create_body,
			   &resp);
	if (ret) {
		report_error(w->run, n, "POST", path, ret, &resp, NULL);
		goto free_resp;
	}
	body = json_loads(resp.body, 0, NULL);
	if (resp.status == 201) {
		created = json_copy_str(body, "id", id, id_len);
		if (!created)
			report_error(w->run, n, "POST", path, 0, &resp,
				     "expected a string \"id\"");
	} else {
		json_copy_str(json_object_get(body, "error"), "id", id,
			      id_len);
		report_error(w->run, n, "POST", path, 0, &resp, NULL);
	}
	json_decref(body);
free_resp:
	soak_resp_free(&resp);
	return created;
}

/* Exec "echo soak-N" and check that the output is "soak-N", exit code 0. */
static void cycle_exec(struct soak_worker *w, unsigned long n, const char *id)
{
	char path[128], want[64], why[128], *req;
	struct soak_resp resp;
	json_t *body, *output, *code;
	int ret;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	snprintf(want, sizeof(want), "soak-%lu", n);
	body = json_pack("{s:s+, s:i}", "command", "echo ", want,
			 "timeout_ms", REQUEST_TIMEOUT_MS / 2);
	req = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!req) {
		report_error(w->run, n, "POST", path, -ENOMEM, NULL, NULL);
		return;
	}
	ret = soak_request(&w->conn, "POST", path, req, &resp);
	free(req);
	if (ret || resp.status != 200) {
		report_error(w->run, n, "POST", path, ret, &resp, NULL);
		goto free_resp;
	}
	body = json_loads(resp.body, 0, NULL);
	output = json_object_get(body, "output");
	code = json_object_get(body, "exit_code");
	if (!json_is_string(output) ||
	    strcmp(json_string_value(output), want) != 0 ||
	    !json_is_integer(code) || json_integer_value(code) != 0) {
		snprintf(why, sizeof(why), "expected output \"%s\" and "
			 "exit_code 0", want);
		report_error(w->run, n, "POST", path, 0, &resp, why);
	}
	json_decref(body);
free_resp:
	soak_resp_free(&resp);
}

static void cycle_delete(struct soak_worker *w, unsigned long n,
			 const char *id)
{
	struct soak_resp resp;
	char path[128];
	int ret;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	ret = soak_request(&w->conn, "DELETE", path, NULL, &resp);
	if (ret || resp.status != 200)
		report_error(w->run, n, "DELETE", path, ret, &resp, NULL);
	soak_resp_free(&resp);
}

static void progress_print(struct soak_run *run, unsigned long done)
{
	double secs = (double)(now_ns() - run->start_ns) / 1e9;

	pthread_mutex_lock(&run->print_lock);
	printf("sbx-soak: %lu/%lu cycles, %.1f cycles/s, %lu errors\n", done,
	       run->opts->cycles, secs > 0 ? (double)done / secs : 0.0,
	       atomic_load(&run->errors));
	fflush(stdout);
	pthread_mutex_unlock(&run->print_lock);
}

static void *worker_main(void *arg)
{
	struct soak_worker *w = arg;
	struct soak_run *run = w->run;
	unsigned long n, done;
	char id[80];

	while (!interrupted) {
		n = atomic_fetch_add(&run->next_cycle, 1);
		if (n >= run->opts->cycles)
			break;
		if (cycle_create(w, n, id, sizeof(id)))
			cycle_exec(w, n, id);
		/* Delete after a failed exec or start too, to leave nothing. */
		if (id[0])
			cycle_delete(w, n, id);
		done = atomic_fetch_add(&run->done, 1) + 1;
		if (done % run->opts->progress_every == 0)
			progress_print(run, done);
	}
	soak_conn_finish(&w->conn);
	return NULL;
}

/* Run the cycles on opts->concurrency threads; returns 0 or -errno. */
static int run_cycles(struct soak_run *run)
{
	unsigned long i, started = 0;
	struct soak_worker *workers;
	int ret = 0;

	workers = calloc(run->opts->concurrency, sizeof(*workers));
	if (!workers)
		return -ENOMEM;
	run->start_ns = now_ns();
	for (i = 0; i < run->opts->concurrency; i++) {
		workers[i].run = run;
		soak_conn_init(&workers[i].conn, run->target->sock_path,
			       REQUEST_TIMEOUT_MS);
		ret = -pthread_create(&workers[i].thread, NULL, worker_main,
				      &workers[i]);
		if (ret) {
			fprintf(stderr, "sbx-soak: failed to start worker "
				"thread %lu: %s; stopping\n", i,
				strerror(-ret));
			interrupted = 1;
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);
	run->end_ns = now_ns();
	free(workers);
	return ret;
}

static void counts_print(const char *label, const struct soak_counts *c)
{
	printf("sbx-soak: %s: fds=%ld rss_kib=%ld children=%ld live_vms=%ld "
	       "sandboxes=%ld pins=%ld entries=%ld\n", label, c->fds,
	       c->rss_kib, c->children, c->live_vms, c->sandboxes, c->pins,
	       c->entries);
}

/* Names of the counts that differ, comma-separated, or "" when none. */
static void counts_diff(const struct soak_counts *before,
			const struct soak_counts *after, long rss_slack_kib,
			char *out, size_t len)
{
	const struct {
		const char *name;
		long before, after;
	} exact[] = {
		{ "fds", before->fds, after->fds },
		{ "children", before->children, after->children },
		{ "live_vms", before->live_vms, after->live_vms },
		{ "sandboxes", before->sandboxes, after->sandboxes },
		{ "pins", before->pins, after->pins },
		{ "entries", before->entries, after->entries },
	};
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		if (exact[i].before == exact[i].after)
			continue;
		used += (size_t)snprintf(out + used, len - used, "%s%s",
					 used ? "," : "", exact[i].name);
		if (used >= len)
			return;
	}
	if (after->rss_kib - before->rss_kib > rss_slack_kib)
		snprintf(out + used, len - used, "%srss_kib", used ? "," : "");
}

/*
 * Read the counts until they match @before or settle_ms pass, so that
 * cleanup that sbxd finishes after its last response is not taken for a
 * leak. Leaves the last reading in @after and the mismatches in @diff.
 */
static int counts_settle(const struct soak_run *run,
			 const struct soak_counts *before,
			 struct soak_counts *after, char *diff, size_t len)
{
	uint64_t deadline = now_ns() + run->opts->settle_ms * 1000000u;
	long slack = (long)run->opts->rss_slack_mib * 1024;
	int ret;

	for (;;) {
		ret = counts_read(run->target, after, REQUEST_TIMEOUT_MS);
		if (ret)
			return ret;
		counts_diff(before, after, slack, diff, len);
		if (!diff[0] || now_ns() >= deadline)
			return 0;
		sleep_ms(SETTLE_POLL_MS);
	}
}

static void mismatch_print(const char *name, long before, long after,
			   const char *rule)
{
	printf("sbx-soak: %s: %ld before, %ld after (%+ld); expected %s\n",
	       name, before, after, after - before, rule);
}

static void mismatches_print(const struct soak_counts *b,
			     const struct soak_counts *a, long slack_kib)
{
	char rule[64];

	if (b->fds != a->fds)
		mismatch_print("fds", b->fds, a->fds, "equal");
	if (b->children != a->children)
		mismatch_print("children", b->children, a->children, "equal");
	if (b->live_vms != a->live_vms)
		mismatch_print("live_vms", b->live_vms, a->live_vms, "equal");
	if (b->sandboxes != a->sandboxes)
		mismatch_print("sandboxes", b->sandboxes, a->sandboxes,
			       "equal");
	if (b->pins != a->pins)
		mismatch_print("pins", b->pins, a->pins, "equal");
	if (b->entries != a->entries)
		mismatch_print("entries", b->entries, a->entries, "equal");
	snprintf(rule, sizeof(rule), "at most %+ld", slack_kib);
	if (a->rss_kib - b->rss_kib > slack_kib)
		mismatch_print("rss_kib", b->rss_kib, a->rss_kib, rule);
}

static void result_print(const struct soak_run *run, bool ok,
			 const struct soak_counts *b,
			 const struct soak_counts *a, const char *diff)
{
	double secs = (double)(run->end_ns - run->start_ns) / 1e9;
	unsigned long done = atomic_load(&run->done);

	printf("sbx-soak result: ok=%d cycles=%lu errors=%lu seconds=%.3f "
	       "cycles_per_s=%.1f fds_before=%ld fds_after=%ld "
	       "rss_kib_before=%ld rss_kib_after=%ld rss_slack_kib=%ld "
	       "children_before=%ld children_after=%ld "
	       "live_vms_before=%ld live_vms_after=%ld "
	       "sandboxes_before=%ld sandboxes_after=%ld "
	       "pins_before=%ld pins_after=%ld "
	       "entries_before=%ld entries_after=%ld mismatch=%s "
	       "interrupted=%d\n",
	       ok, done, atomic_load(&run->errors), secs,
	       secs > 0 ? (double)done / secs : 0.0, b->fds, a->fds,
	       b->rss_kib, a->rss_kib, (long)run->opts->rss_slack_mib * 1024,
	       b->children, a->children, b->live_vms, a->live_vms,
	       b->sandboxes, a->sandboxes, b->pins, a->pins, b->entries,
	       a->entries, diff[0] ? diff : "none", interrupted ? 1 : 0);
	fflush(stdout);
}

static char *create_body_new(unsigned long memory_mib)
{
	json_t *body = json_pack("{s:i, s:{s:s}}", "memory_mib",
				 (json_int_t)memory_mib, "metadata", "owner",
				 "sbx-soak");
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	return text;
}

/* Measure, run the cycles, measure again; returns the exit status. */
static int soak_main(const struct soak_opts *opts,
		     const struct soak_target *target)
{
	struct soak_run run = { .opts = opts, .target = target };
	struct soak_counts before, after;
	char diff[128];
	bool ok;
	int ret;

	run.create_body = create_body_new(opts->memory_mib);
	if (!run.create_body) {
		fprintf(stderr, "sbx-soak: failed to format the create body: "
			"out of memory\n");
		return 2;
	}
	pthread_mutex_init(&run.print_lock, NULL);
	ret = counts_read(target, &before, REQUEST_TIMEOUT_MS);
	if (ret) {
		free(run.create_body);
		return 2;
	}
	counts_print("before", &before);
	fflush(stdout);

	ret = run_cycles(&run);
	printf("sbx-soak: %lu cycles in %.1f s, %lu errors%s; waiting up to "
	       "%lu ms for the counts to return\n", atomic_load(&run.done),
	       (double)(run.end_ns - run.start_ns) / 1e9,
	       atomic_load(&run.errors), interrupted ? " (interrupted)" : "",
	       opts->settle_ms);
	fflush(stdout);
	if (ret)
		goto free_body;
	ret = counts_settle(&run, &before, &after, diff, sizeof(diff));
	if (ret)
		goto free_body;
	counts_print("after", &after);
	mismatches_print(&before, &after, (long)opts->rss_slack_mib * 1024);
	ok = !diff[0] && atomic_load(&run.errors) == 0 && !interrupted;
	result_print(&run, ok, &before, &after, diff);
	free(run.create_body);
	return ok ? 0 : 1;

free_body:
	free(run.create_body);
	return 1;
}

int main(int argc, char **argv)
{
	struct soak_opts opts = {
		.instance = "default",
		.cycles = 10000,
		.concurrency = 8,
		.memory_mib = 16,
		.rss_slack_mib = 4,
		.settle_ms = 5000,
		.progress_every = 1000,
	};
	struct sigaction sa = { .sa_handler = on_interrupt };
	char state_dir[PATH_MAX], sock_path[PATH_MAX + 16];
	struct soak_target target;

	if (parse_opts(argc, argv, &opts))
		return 2;
	if (!opts.state_dir) {
		if (default_state_dir(state_dir, sizeof(state_dir)))
			return 2;
		opts.state_dir = state_dir;
	}
	if (!opts.sock_path) {
		snprintf(sock_path, sizeof(sock_path), "%s/sbxd.sock",
			 opts.state_dir);
		opts.sock_path = sock_path;
	}
	if (counts_target_open(&target, opts.state_dir, opts.sock_path,
			       opts.instance, REQUEST_TIMEOUT_MS))
		return 2;
	printf("sbx-soak: sbxd pid %d, socket %s, %s gate, %lu cycles at "
	       "concurrency %lu\n", (int)target.pid, target.sock_path,
	       target.bpf_gate ? "BPF" : "memfd", opts.cycles,
	       opts.concurrency);

	/* SIGINT and SIGTERM stop new cycles; the counts are still checked. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return soak_main(&opts, &target);
}
