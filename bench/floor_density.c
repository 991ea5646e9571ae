// SPDX-License-Identifier: MIT
/*
 * floor-density: the density floor. It forks N children, and each creates
 * a VM, runs it to its first port exit and then holds it idle. The host
 * memory per child comes from the MemAvailable drop and from PSS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "floorvm.h"

/* Children to create between two MemAvailable checks. */
#define CHECK_EVERY 50

static void usage(FILE *out)
{
	fprintf(out,
		"usage: floor-density [--count N] [--memory-mib N] [--reserve-mib N]\n"
		"Fork N children that each hold an idle VM, and print JSON with the\n"
		"host memory per child.\n"
		"  --count N        children, default 1000\n"
		"  --memory-mib N   guest RAM each, default 16\n"
		"  --reserve-mib N  stop early before MemAvailable drops below N MiB,\n"
		"                   default 2048\n");
}

/* Runs in the child: hold one VM until SIGKILL. */
static void hold_vm(int ready_fd, size_t mem_size)
{
	struct floorvm vm;
	const char *step;
	char ok = 1;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (floorvm_start(&vm, mem_size, &step))
		ok = 0;
	if (write(ready_fd, &ok, 1) != 1 || !ok)
		_exit(1);
	close(ready_fd);
	for (;;)
		pause();
}

static void kill_all(pid_t *pids, unsigned long count)
{
	for (unsigned long i = 0; i < count; i++)
		kill(pids[i], SIGKILL);
	for (unsigned long i = 0; i < count; i++)
		waitpid(pids[i], NULL, 0);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "memory-mib", required_argument, NULL, 'm' },
		{ "reserve-mib", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long count = 1000, mib = 16, reserve_mib = 2048;
	uint64_t avail_before, avail_after, avail, pss_sum = 0, rss_sum = 0;
	const char *stopped_by = "count reached";
	unsigned long held = 0;
	uint64_t t0, create_ns;
	int ready[2];
	pid_t *pids;
	json_t *root;
	int opt, ret = 1;

	bench_prog = "floor-density";
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'n':
			count = bench_parse_ulong("--count", optarg, 1, 100000);
			break;
		case 'm':
			mib = bench_parse_ulong("--memory-mib", optarg, 4, 4096);
			break;
		case 'r':
			reserve_mib = bench_parse_ulong("--reserve-mib", optarg,
							0, 1u << 30);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	pids = calloc(count, sizeof(*pids));
	if (!pids || pipe2(ready, O_CLOEXEC) < 0) {
		bench_err("failed to allocate the child table or a pipe\n");
		free(pids);
		return 1;
	}
	if (bench_meminfo_kib("MemAvailable", &avail_before)) {
		bench_err("failed to read MemAvailable from /proc/meminfo\n");
		goto err_pipe;
	}

	t0 = bench_now_ns();
	for (held = 0; held < count; held++) {
		char ok = 0;
		pid_t pid;

		if (held % CHECK_EVERY == 0 &&
		    !bench_meminfo_kib("MemAvailable", &avail) &&
		    avail / 1024 < reserve_mib + CHECK_EVERY * 2) {
			stopped_by = "MemAvailable reserve";
			break;
		}
		pid = fork();
		if (pid < 0) {
			bench_err("fork of child %lu failed: %s\n", held,
				  strerror(errno));
			stopped_by = "fork failed";
			break;
		}
		if (pid == 0)
			hold_vm(ready[1], mib << 20);
		pids[held] = pid;
		if (read(ready[0], &ok, 1) != 1 || !ok) {
			bench_err("child %lu failed to start its VM\n", held);
			stopped_by = "VM start failed";
			held++; /* reap it with the others */
			goto err_children;
		}
	}
	create_ns = bench_now_ns() - t0;

	sleep(1); /* let per-CPU page counters settle into MemAvailable */
	bench_meminfo_kib("MemAvailable", &avail_after);
	for (unsigned long i = 0; i < held; i++) {
		uint64_t pss = 0, rss = 0;

		if (!bench_smaps_rollup_kib(pids[i], &pss, &rss)) {
			pss_sum += pss;
			rss_sum += rss;
		}
	}

	root = json_pack(
		"{s:s, s:I, s:I, s:s, s:f, s:f, s:f, s:f, s:f}", "floor",
		"density", "requested", (json_int_t)count, "held",
		(json_int_t)held, "stopped_by", stopped_by,
		"mem_available_drop_mib",
		((double)avail_before - (double)avail_after) / 1024,
		"host_kib_per_vm",
		held ? ((double)avail_before - (double)avail_after) / held : 0,
		"pss_kib_mean", held ? (double)pss_sum / held : 0,
		"rss_kib_mean", held ? (double)rss_sum / held : 0,
		"create_s", (double)create_ns / NS_PER_SEC);
	ret = bench_json_print(root) ? 1 : 0;
err_children:
	kill_all(pids, held);
err_pipe:
	close(ready[0]);
	close(ready[1]);
	free(pids);
	return ret;
}
