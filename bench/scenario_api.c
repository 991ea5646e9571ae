// SPDX-License-Identifier: MIT
/*
 * Scenarios that load sbxd's API: sequential starts, exec round trips,
 * concurrent create+delete, and the snapshot probe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "scenarios.h"

static void print_failure(const char *what, const struct client *c)
{
	bench_err("%s: HTTP %d: %.300s\n", what, c->status,
		  c->body ? c->body : "");
}

int sandbox_create(struct client *c, unsigned long memory_mib,
		   bool ignore_stop, char *id, size_t id_len, pid_t *pid)
{
	char body[96];
	const char *text = NULL;
	json_int_t vmm_pid = 0;
	json_t *root;
	int ret;

	snprintf(body, sizeof(body), "{\"memory_mib\":%lu,\"ignore_stop\":%s}",
		 memory_mib, ignore_stop ? "true" : "false");
	ret = client_request(c, "POST", "/v1/sandboxes", body);
	if (ret)
		return ret;
	if (c->status != 201) {
		print_failure("create failed", c);
		return -EPROTO;
	}
	root = json_loads(c->body, 0, NULL);
	if (!root || json_unpack(root, "{s:s, s:I}", "id", &text, "pid",
				 &vmm_pid) ||
	    strlen(text) >= id_len) {
		bench_err("create returned an unexpected body: %.300s\n",
			  c->body);
		json_decref(root);
		return -EPROTO;
	}
	strcpy(id, text);
	*pid = (pid_t)vmm_pid;
	json_decref(root);
	return 0;
}

int sandbox_delete(struct client *c, const char *id)
{
	char path[128];
	int ret;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	ret = client_request(c, "DELETE", path, NULL);
	if (ret)
		return ret;
	if (c->status != 200) {
		print_failure("delete failed", c);
		return -EPROTO;
	}
	return 0;
}

static double elapsed_us(uint64_t t0)
{
	return (double)(bench_now_ns() - t0) / NS_PER_US;
}

/* Sequential starts: time from sending the create to reading its 201. */
int scenario_start(const struct bench_opts *opts)
{
	struct bench_samples samples = { 0 };
	struct client c;
	json_t *root;
	int ret = 0;

	client_init(&c, &opts->addr);
	for (unsigned long i = 0; i < opts->warmup + opts->count; i++) {
		char id[72];
		uint64_t t0 = bench_now_ns();
		double us;
		pid_t pid;

		ret = sandbox_create(&c, opts->memory_mib, false, id,
				     sizeof(id), &pid);
		us = elapsed_us(t0);
		if (ret)
			goto out;
		ret = sandbox_delete(&c, id);
		if (ret)
			goto out;
		if (i >= opts->warmup && bench_samples_add(&samples, us)) {
			ret = -ENOMEM;
			goto out;
		}
	}
	root = json_pack("{s:s, s:i, s:o}", "scenario", "start", "memory_mib",
			 (int)opts->memory_mib, "samples_us",
			 bench_samples_json(&samples));
	ret = bench_json_print(root);
out:
	if (ret)
		bench_err("start scenario failed: %s\n", strerror(-ret));
	client_close(&c);
	bench_samples_free(&samples);
	return ret;
}

/* Check that an exec response is {"output":"hi","exit_code":0}. */
static int check_echo(const struct client *c)
{
	const char *output = NULL;
	int code = -1;
	json_t *root;
	int ret = 0;

	if (c->status != 200) {
		print_failure("exec failed", c);
		return -EPROTO;
	}
	root = json_loads(c->body, 0, NULL);
	if (!root ||
	    json_unpack(root, "{s:s, s:i}", "output", &output, "exit_code",
			&code) ||
	    strcmp(output, "hi") != 0 || code != 0) {
		bench_err("exec returned an unexpected body: %.300s\n",
			  c->body);
		ret = -EPROTO;
	}
	json_decref(root);
	return ret;
}

/* Round trips of `exec echo hi` on one warm sandbox. */
int scenario_exec(const struct bench_opts *opts)
{
	static const char body[] = "{\"command\":\"echo hi\"}";
	struct bench_samples samples = { 0 };
	char path[128];
	struct client c;
	char id[72];
	json_t *root;
	pid_t pid;
	int ret;

	client_init(&c, &opts->addr);
	ret = sandbox_create(&c, opts->memory_mib, false, id, sizeof(id),
			     &pid);
	if (ret)
		goto out;
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	for (unsigned long i = 0; i < opts->warmup + opts->count; i++) {
		uint64_t t0 = bench_now_ns();
		double us;

		ret = client_request(&c, "POST", path, body);
		us = elapsed_us(t0);
		if (!ret)
			ret = check_echo(&c);
		if (ret)
			goto out_delete;
		if (i >= opts->warmup && bench_samples_add(&samples, us)) {
			ret = -ENOMEM;
			goto out_delete;
		}
	}
	root = json_pack("{s:s, s:s, s:o}", "scenario", "exec", "command",
			 "echo hi", "samples_us", bench_samples_json(&samples));
	ret = bench_json_print(root);
out_delete:
	if (sandbox_delete(&c, id) && !ret)
		ret = -EPROTO;
out:
	if (ret)
		bench_err("exec scenario failed: %s\n", strerror(-ret));
	client_close(&c);
	bench_samples_free(&samples);
	return ret;
}

struct rate_worker {
	pthread_t thread;
	const struct bench_opts *opts;
	uint64_t deadline;
	unsigned long cycles;
	unsigned long at_capacity;	/* creates answered 429 */
	int error;			/* first -errno that stopped it */
	struct bench_samples samples;	/* create+delete cycle, µs */
};

static void *rate_loop(void *arg)
{
	struct rate_worker *w = arg;
	struct client c;

	client_init(&c, &w->opts->addr);
	while (bench_now_ns() < w->deadline) {
		uint64_t t0 = bench_now_ns();
		char id[72];
		pid_t pid;
		int ret;

		ret = sandbox_create(&c, w->opts->memory_mib, false, id,
				     sizeof(id), &pid);
		if (ret == -EPROTO && c.status == 429) {
			w->at_capacity++;
			continue;
		}
		if (!ret)
			ret = sandbox_delete(&c, id);
		if (ret) {
			w->error = ret;
			break;
		}
		w->cycles++;
		if (bench_samples_add(&w->samples, elapsed_us(t0))) {
			w->error = -ENOMEM;
			break;
		}
	}
	client_close(&c);
	return NULL;
}

/* Concurrent clients, each looping create then delete until the deadline. */
int scenario_rate(const struct bench_opts *opts)
{
	struct bench_samples all = { 0 };
	struct rate_worker *workers;
	unsigned long cycles = 0, at_capacity = 0;
	unsigned long started = 0;
	uint64_t t0, elapsed;
	json_t *root;
	int ret = 0;

	workers = calloc(opts->clients, sizeof(*workers));
	if (!workers)
		return -ENOMEM;
	t0 = bench_now_ns();
	for (; started < opts->clients; started++) {
		struct rate_worker *w = &workers[started];

		w->opts = opts;
		w->deadline = t0 + opts->seconds * NS_PER_SEC;
		ret = -pthread_create(&w->thread, NULL, rate_loop, w);
		if (ret) {
			bench_err("failed to start client thread %lu: %s\n",
				  started, strerror(-ret));
			break;
		}
	}
	for (unsigned long i = 0; i < started; i++) {
		struct rate_worker *w = &workers[i];

		pthread_join(w->thread, NULL);
		cycles += w->cycles;
		at_capacity += w->at_capacity;
		if (w->error && !ret) {
			bench_err("client %lu stopped: %s\n", i,
				  strerror(-w->error));
			ret = w->error;
		}
		for (size_t k = 0; k < w->samples.count && !ret; k++)
			if (bench_samples_add(&all, w->samples.values[k]))
				ret = -ENOMEM;
		bench_samples_free(&w->samples);
	}
	elapsed = bench_now_ns() - t0;
	free(workers);
	if (!ret) {
		root = json_pack(
			"{s:s, s:i, s:f, s:I, s:I, s:f, s:o}", "scenario",
			"rate", "clients", (int)opts->clients, "seconds",
			(double)elapsed / NS_PER_SEC, "cycles",
			(json_int_t)cycles, "at_capacity",
			(json_int_t)at_capacity, "rate_per_s",
			(double)cycles * NS_PER_SEC / (double)elapsed,
			"cycle_samples_us", bench_samples_json(&all));
		ret = bench_json_print(root);
	}
	bench_samples_free(&all);
	return ret;
}

/*
 * Check that the last response has status `expected` and copy its string
 * field `key` to out. Returns 0 or -EPROTO after printing the body.
 */
static int response_string(const struct client *c, int expected,
			   const char *what, const char *key, char *out,
			   size_t out_len)
{
	const char *text = NULL;
	json_t *root;

	if (c->status != expected) {
		print_failure(what, c);
		return -EPROTO;
	}
	root = json_loads(c->body, 0, NULL);
	if (!root || json_unpack(root, "{s:s}", key, &text) ||
	    strlen(text) >= out_len) {
		bench_err("%s: unexpected body: %.300s\n", what, c->body);
		json_decref(root);
		return -EPROTO;
	}
	strcpy(out, text);
	json_decref(root);
	return 0;
}

/* Snapshot sandbox id through the API; the file's path goes to path. */
static int sandbox_snapshot(struct client *c, const char *id, char *path,
			    size_t path_len)
{
	char url[128];
	int ret;

	snprintf(url, sizeof(url), "/v1/sandboxes/%s/snapshot", id);
	ret = client_request(c, "POST", url, "{}");
	if (ret)
		return ret;
	return response_string(c, 200, "snapshot failed", "path", path,
			       path_len);
}

/* Restore a new sandbox from path; its id goes to id. */
static int sandbox_restore(struct client *c, const char *path, char *id,
			   size_t id_len)
{
	json_t *body;
	char *encoded;
	int ret;

	body = json_pack("{s:s}", "snapshot", path);
	encoded = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!encoded)
		return -ENOMEM;
	ret = client_request(c, "POST", "/v1/sandboxes", encoded);
	free(encoded);
	if (ret)
		return ret;
	return response_string(c, 201, "restore failed", "id", id, id_len);
}

/*
 * Restore against cold start, through the API: snapshot one warm sandbox,
 * then alternate a cold create and a restore from that file, each timed
 * from the request to its 201 and deleted untimed.
 */
int scenario_restore(const struct bench_opts *opts)
{
	struct bench_samples cold = { 0 }, restored = { 0 };
	char path[4096], source[72], id[72];
	struct client c;
	json_t *root;
	uint64_t t0;
	double us;
	pid_t pid;
	int ret;

	client_init(&c, &opts->addr);
	ret = sandbox_create(&c, opts->memory_mib, false, source,
			     sizeof(source), &pid);
	if (ret)
		goto out;
	ret = sandbox_snapshot(&c, source, path, sizeof(path));
	if (ret)
		goto out_source;

	for (unsigned long i = 0; i < opts->warmup + opts->count; i++) {
		bool timed = i >= opts->warmup;

		t0 = bench_now_ns();
		ret = sandbox_create(&c, opts->memory_mib, false, id,
				     sizeof(id), &pid);
		us = elapsed_us(t0);
		if (!ret)
			ret = sandbox_delete(&c, id);
		if (!ret && timed && bench_samples_add(&cold, us))
			ret = -ENOMEM;
		if (ret)
			goto out_source;

		t0 = bench_now_ns();
		ret = sandbox_restore(&c, path, id, sizeof(id));
		us = elapsed_us(t0);
		if (!ret)
			ret = sandbox_delete(&c, id);
		if (!ret && timed && bench_samples_add(&restored, us))
			ret = -ENOMEM;
		if (ret)
			goto out_source;
	}
	root = json_pack("{s:s, s:b, s:i, s:s, s:i, s:o, s:o}", "scenario",
			 "restore", "available", 1, "snapshot_status", 200,
			 "note", "cold create and restore alternate",
			 "memory_mib", (int)opts->memory_mib, "cold_samples_us",
			 bench_samples_json(&cold), "restore_samples_us",
			 bench_samples_json(&restored));
	ret = bench_json_print(root);

out_source:
	if (sandbox_delete(&c, source) && !ret)
		ret = -EPROTO;
out:
	if (ret)
		bench_err("restore scenario failed: %s\n", strerror(-ret));
	client_close(&c);
	bench_samples_free(&cold);
	bench_samples_free(&restored);
	return ret;
}
