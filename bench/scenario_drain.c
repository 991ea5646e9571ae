// SPDX-License-Identifier: MIT
/*
 * Drain and force: start a private sbxd, fill it with sandboxes and send
 * SIGTERM. The scenario records the node state over time from the pinned
 * BPF map (or GET /v1/node where BPF is not in use), the exit time of
 * each VMM and of sbxd from pidfds, and sbxd's CPU time meanwhile.
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "scenarios.h"
#include "sbxd/drain_state.h"

/* A timeline sample is kept when a value changes, or after this long. */
#define SAMPLE_KEEP_NS (20 * NS_PER_MS)
#define SAMPLE_MAP_PERIOD_NS (1 * NS_PER_MS)
#define SAMPLE_HTTP_PERIOD_NS (10 * NS_PER_MS)

struct node_sample {
	uint64_t t_ns;
	uint32_t state;
	int32_t inflight;
	uint32_t live;
};

struct vmm {
	char id[72];
	pid_t pid;
	int pidfd;
	uint64_t exit_ns;	/* 0 until its pidfd reports the exit */
};

struct drain_run {
	const struct bench_opts *opts;
	pid_t sbxd;
	int sbxd_pidfd;
	uint64_t sbxd_exit_ns;
	struct vmm *vmms;
	unsigned long created;

	const struct sbxd_drain_state *map;	/* read-only mmap, or NULL */
	int map_fd;
	size_t map_len;
	struct client node_client;		/* GET /v1/node without BPF */

	struct node_sample *samples;
	size_t sample_count;
	size_t sample_cap;
	volatile bool stop;
};

static int spawn_sbxd(struct drain_run *run)
{
	const struct bench_opts *opts = run->opts;
	pid_t pid;
	int log_fd;

	log_fd = open(opts->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		      0600);
	if (log_fd < 0) {
		bench_err("failed to open the sbxd log %s: %s\n",
			  opts->log_path, strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		close(log_fd);
		return -errno;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(log_fd, STDOUT_FILENO);
		dup2(log_fd, STDERR_FILENO);
		execvp(opts->command[0], opts->command);
		_exit(127);
	}
	close(log_fd);
	run->sbxd = pid;
	run->sbxd_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (run->sbxd_pidfd < 0)
		return -errno;
	return 0;
}

/* Open the instance's pinned drain_state map read-only, if there is one. */
static void open_map(struct drain_run *run)
{
	char path[256];
	void *map;

	snprintf(path, sizeof(path), "/sys/fs/bpf/sbxd/%s/drain_state",
		 run->opts->instance);
	run->map_fd = bpf_obj_get(path);
	if (run->map_fd < 0)
		return;
	run->map_len = (size_t)sysconf(_SC_PAGESIZE);
	map = mmap(NULL, run->map_len, PROT_READ, MAP_SHARED, run->map_fd, 0);
	if (map == MAP_FAILED) {
		close(run->map_fd);
		run->map_fd = -1;
		return;
	}
	run->map = map;
}

static int read_node_http(struct drain_run *run, struct node_sample *s)
{
	static const char *const names[] = { "serving", "draining", "forcing",
					     "closing" };
	const char *state = "";
	json_t *root;
	int ret;

	ret = client_request(&run->node_client, "GET", "/v1/node", NULL);
	if (ret || run->node_client.status != 200)
		return ret ? ret : -EPROTO;
	root = json_loads(run->node_client.body, 0, NULL);
	if (!root || json_unpack(root, "{s:s, s:i, s:i}", "state", &state,
				 "inflight_starts", &s->inflight, "live",
				 &s->live)) {
		json_decref(root);
		return -EPROTO;
	}
	for (uint32_t i = 0; i < 4; i++)
		if (strcmp(state, names[i]) == 0)
			s->state = i;
	json_decref(root);
	return 0;
}

static int keep_sample(struct drain_run *run, const struct node_sample *s)
{
	const struct node_sample *last =
		run->sample_count ? &run->samples[run->sample_count - 1] : NULL;

	if (last && last->state == s->state && last->inflight == s->inflight &&
	    last->live == s->live && s->t_ns - last->t_ns < SAMPLE_KEEP_NS)
		return 0;
	if (run->sample_count == run->sample_cap) {
		size_t cap = run->sample_cap ? run->sample_cap * 2 : 1024;
		struct node_sample *samples;

		samples = realloc(run->samples, cap * sizeof(*samples));
		if (!samples)
			return -ENOMEM;
		run->samples = samples;
		run->sample_cap = cap;
	}
	run->samples[run->sample_count++] = *s;
	return 0;
}

static void *sample_loop(void *arg)
{
	struct drain_run *run = arg;
	uint64_t period = run->map ? SAMPLE_MAP_PERIOD_NS :
				     SAMPLE_HTTP_PERIOD_NS;
	uint64_t next = bench_now_ns();

	while (!run->stop) {
		struct node_sample s = { .t_ns = bench_now_ns() };

		if (run->map) {
			s.state = __atomic_load_n(&run->map->draining,
						  __ATOMIC_RELAXED);
			s.inflight = __atomic_load_n(&run->map->inflight_starts,
						     __ATOMIC_RELAXED);
			s.live = __atomic_load_n(&run->map->live,
						 __ATOMIC_RELAXED);
		} else if (read_node_http(run, &s)) {
			break; /* sbxd closed its listeners: the drain ended */
		}
		if (keep_sample(run, &s))
			break;
		next += period;
		bench_sleep_until(next);
	}
	return NULL;
}

/* Record when each VMM and sbxd exit, until all have or stop is set. */
static void *watch_exits(void *arg)
{
	struct drain_run *run = arg;
	unsigned long pending = run->created + 1;
	struct epoll_event ev;
	int ep;

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return NULL;
	for (unsigned long i = 0; i <= run->created; i++) {
		int fd = i < run->created ? run->vmms[i].pidfd :
					    run->sbxd_pidfd;

		ev.events = EPOLLIN;
		ev.data.u64 = i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
			pending--;
	}
	while (pending && !run->stop) {
		struct epoll_event events[64];
		int n = epoll_wait(ep, events, 64, 100);
		uint64_t now = bench_now_ns();

		for (int k = 0; k < n; k++) {
			unsigned long i = (unsigned long)events[k].data.u64;
			int fd = i < run->created ? run->vmms[i].pidfd :
						    run->sbxd_pidfd;

			if (i < run->created)
				run->vmms[i].exit_ns = now;
			else
				run->sbxd_exit_ns = now;
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			pending--;
		}
	}
	close(ep);
	return NULL;
}

static int create_all(struct drain_run *run)
{
	struct client c;
	int ret = 0;

	client_init(&c, &run->opts->addr);
	for (; run->created < run->opts->count; run->created++) {
		struct vmm *v = &run->vmms[run->created];

		ret = sandbox_create(&c, run->opts->memory_mib,
				     run->opts->ignore_stop, v->id,
				     sizeof(v->id), &v->pid);
		if (ret)
			break;
		v->pidfd = (int)syscall(SYS_pidfd_open, v->pid, 0);
		if (v->pidfd < 0) {
			ret = -errno;
			bench_err("pidfd_open of VMM pid %d failed: %s\n",
				  (int)v->pid, strerror(errno));
			run->created++;
			break;
		}
	}
	client_close(&c);
	return ret;
}

/* During the drain, make the guests exit one by one with `exit 0`. */
static int end_one_by_one(struct drain_run *run, uint64_t start,
			  json_t *statuses)
{
	static const char body[] = "{\"command\":\"exit 0\"}";
	struct client c;
	int ret = 0;

	client_init(&c, &run->opts->addr);
	for (unsigned long i = 0; i < run->created; i++) {
		char path[128];
		char key[16];
		json_t *count;

		bench_sleep_until(start + i * run->opts->interval_ms * NS_PER_MS);
		snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec",
			 run->vmms[i].id);
		ret = client_request(&c, "POST", path, body);
		if (ret) {
			bench_err("exec exit 0 on %s failed: %s\n",
				  run->vmms[i].id, strerror(-ret));
			break;
		}
		snprintf(key, sizeof(key), "%d", c.status);
		count = json_object_get(statuses, key);
		json_object_set_new(statuses, key,
				    json_integer(count ? json_integer_value(count) + 1 :
							 1));
	}
	client_close(&c);
	return ret;
}

/* Read sbxd's CPU time; after its exit only the zombie leader is left. */
static uint64_t sbxd_cpu_ns(pid_t pid)
{
	uint64_t ns = 0;

	bench_task_cpu_ns(pid, &ns);
	return ns;
}

static int wait_sbxd(struct drain_run *run, int timeout_ms,
		     uint64_t *cpu_ns, int *status)
{
	struct pollfd pfd = { .fd = run->sbxd_pidfd, .events = POLLIN };
	int ret;

	ret = poll(&pfd, 1, timeout_ms);
	if (ret == 0) {
		bench_err("sbxd pid %d did not exit within %d ms; killing it\n",
			  (int)run->sbxd, timeout_ms);
		kill(run->sbxd, SIGKILL);
	}
	/* Still unreaped, so /proc keeps the exited leader's run time. */
	*cpu_ns = sbxd_cpu_ns(run->sbxd);
	if (waitpid(run->sbxd, status, 0) < 0)
		return -errno;
	run->sbxd = 0;
	return ret == 0 ? -ETIMEDOUT : 0;
}

static json_t *timeline_json(const struct drain_run *run, uint64_t t0)
{
	json_t *t = json_array(), *state = json_array(),
	       *inflight = json_array(), *live = json_array(),
	       *exits = json_array();

	for (size_t i = 0; i < run->sample_count; i++) {
		const struct node_sample *s = &run->samples[i];

		json_array_append_new(t, json_real(((double)s->t_ns -
						    (double)t0) / NS_PER_MS));
		json_array_append_new(state, json_integer(s->state));
		json_array_append_new(inflight, json_integer(s->inflight));
		json_array_append_new(live, json_integer(s->live));
	}
	for (unsigned long i = 0; i < run->created; i++)
		if (run->vmms[i].exit_ns)
			json_array_append_new(
				exits,
				json_real(((double)run->vmms[i].exit_ns -
					   (double)t0) / NS_PER_MS));
	return json_pack("{s:o, s:o, s:o, s:o, s:o}", "t_ms", t, "state",
			 state, "inflight", inflight, "live", live,
			 "vmm_exit_ms", exits);
}

static uint64_t last_vmm_exit(const struct drain_run *run,
			      unsigned long *exited)
{
	uint64_t last = 0;

	*exited = 0;
	for (unsigned long i = 0; i < run->created; i++) {
		if (!run->vmms[i].exit_ns)
			continue;
		(*exited)++;
		if (run->vmms[i].exit_ns > last)
			last = run->vmms[i].exit_ns;
	}
	return last;
}

static double ms_between(uint64_t from, uint64_t to)
{
	return ((double)to - (double)from) / NS_PER_MS;
}

static int report(struct drain_run *run, uint64_t t_term, uint64_t cpu0,
		  uint64_t cpu_idle, uint64_t t_idle_end, uint64_t cpu_end,
		  int status, json_t *statuses)
{
	bool force = run->opts->ignore_stop;
	unsigned long exited;
	uint64_t last = last_vmm_exit(run, &exited);
	double wall_ms = ms_between(t_term, run->sbxd_exit_ns);
	double cpu_ms = ((double)cpu_end - (double)cpu0) / NS_PER_MS;
	json_t *root;

	root = json_pack(
		"{s:s, s:I, s:I, s:i, s:s, s:f, s:f, s:f, s:f, s:f, s:o, s:o}",
		"scenario", force ? "force" : "drain", "sandboxes",
		(json_int_t)run->created, "vmms_exited", (json_int_t)exited,
		"sbxd_exit_status",
		WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
		"timeline_source", run->map ? "bpf_map" : "http",
		"sigterm_to_last_vmm_exit_ms", ms_between(t_term, last),
		"sigterm_to_sbxd_exit_ms", wall_ms,
		"last_vmm_exit_to_sbxd_exit_ms",
		ms_between(last, run->sbxd_exit_ns), "sbxd_cpu_ms", cpu_ms,
		"sbxd_cpu_pct_of_wall", wall_ms > 0 ? 100 * cpu_ms / wall_ms : 0,
		"timeline", timeline_json(run, t_term), "exec_statuses",
		statuses);
	if (root && !force && t_idle_end > t_term)
		json_object_set_new(
			root, "idle_wait_cpu_pct",
			json_real(100.0 * ((double)cpu_idle - (double)cpu0) /
				  (double)(t_idle_end - t_term)));
	return bench_json_print(root);
}

static void drain_run_free(struct drain_run *run)
{
	for (unsigned long i = 0; i < run->created; i++)
		if (run->vmms[i].pidfd >= 0)
			close(run->vmms[i].pidfd);
	free(run->vmms);
	free(run->samples);
	if (run->map)
		munmap((void *)run->map, run->map_len);
	if (run->map_fd >= 0)
		close(run->map_fd);
	client_close(&run->node_client);
	if (run->sbxd > 0) {
		kill(run->sbxd, SIGKILL);
		waitpid(run->sbxd, NULL, 0);
	}
	if (run->sbxd_pidfd >= 0)
		close(run->sbxd_pidfd);
}

/*
 * Drain (opts->ignore_stop false): after SIGTERM, wait idle_ms, then end
 * one guest every interval_ms with `exec exit 0`. Force (ignore_stop
 * true): the guests ignore stop requests and the spawned sbxd is expected
 * to force them; nothing is sent after SIGTERM.
 */
int scenario_drain(const struct bench_opts *opts)
{
	struct drain_run run = { .opts = opts, .sbxd_pidfd = -1, .map_fd = -1 };
	uint64_t t_term, cpu0, cpu_idle = 0, t_idle_end = 0, cpu_end = 0;
	pthread_t sampler, watcher;
	json_t *statuses = json_object();
	int timeout_ms, status = 0;
	int ret;

	client_init(&run.node_client, &opts->addr);
	run.vmms = calloc(opts->count, sizeof(*run.vmms));
	if (!run.vmms || !statuses) {
		ret = -ENOMEM;
		goto out;
	}
	ret = spawn_sbxd(&run);
	if (ret)
		goto out;
	ret = client_wait_ready(&opts->addr, 20000);
	if (ret) {
		bench_err("sbxd did not accept on %s within 20 s; see %s\n",
			  opts->addr.text, opts->log_path);
		goto out;
	}
	open_map(&run);
	ret = create_all(&run);
	if (ret)
		goto out;

	run.stop = false;
	if (pthread_create(&watcher, NULL, watch_exits, &run)) {
		ret = -EAGAIN;
		goto out;
	}
	if (pthread_create(&sampler, NULL, sample_loop, &run)) {
		run.stop = true;
		pthread_join(watcher, NULL);
		ret = -EAGAIN;
		goto out;
	}
	usleep(200000); /* a baseline of the serving state for the plot */

	cpu0 = sbxd_cpu_ns(run.sbxd);
	t_term = bench_now_ns();
	kill(run.sbxd, SIGTERM);
	timeout_ms = 60000;
	if (!opts->ignore_stop) {
		bench_sleep_until(t_term + opts->idle_ms * NS_PER_MS);
		cpu_idle = sbxd_cpu_ns(run.sbxd);
		t_idle_end = bench_now_ns();
		ret = end_one_by_one(&run, t_idle_end, statuses);
		timeout_ms += (int)(opts->count * opts->interval_ms);
	}
	if (!ret)
		ret = wait_sbxd(&run, timeout_ms, &cpu_end, &status);
	usleep(20000); /* let the watcher see the last exits */
	run.stop = true;
	pthread_join(sampler, NULL);
	pthread_join(watcher, NULL);
	if (!ret)
		ret = report(&run, t_term, cpu0, cpu_idle, t_idle_end, cpu_end,
			     status, json_incref(statuses));
out:
	if (ret)
		bench_err("%s scenario failed: %s\n",
			  opts->ignore_stop ? "force" : "drain",
			  strerror(-ret));
	json_decref(statuses);
	drain_run_free(&run);
	return ret;
}
