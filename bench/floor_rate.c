// SPDX-License-Identifier: MIT
/*
 * floor-rate: the rate floor. W workers loop for S seconds, and each loop
 * forks a child that creates a VM, runs it to its first port exit,
 * destroys it and exits. Prints JSON with the total cycles and the rate.
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
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "floorvm.h"

struct worker_result {
	unsigned long cycles;
	unsigned long failures;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: floor-rate [--workers N] [--seconds N] [--memory-mib N]\n"
		"Run N workers that each loop fork + (create VM, run to the first\n"
		"port exit, destroy, exit) + waitpid for the given time, and print\n"
		"JSON with the cycles per second.\n"
		"  --workers N     parallel loops, default the number of online CPUs\n"
		"  --seconds N     duration, default 10\n"
		"  --memory-mib N  guest RAM, default 16\n");
}

static int cycle(size_t mem_size)
{
	struct floorvm vm;
	const char *step;
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (floorvm_start(&vm, mem_size, &step))
			_exit(1);
		floorvm_close(&vm);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPROTO;
}

static void worker(int out_fd, uint64_t deadline, size_t mem_size)
{
	struct worker_result result = { 0 };

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (bench_now_ns() < deadline) {
		int ret = cycle(mem_size);

		if (ret == -EPROTO)
			result.failures++;
		else if (ret)
			break;
		else
			result.cycles++;
	}
	if (write(out_fd, &result, sizeof(result)) != sizeof(result))
		_exit(1);
	_exit(0);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "workers", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, 's' },
		{ "memory-mib", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long workers = (unsigned long)sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long seconds = 10, mib = 16;
	unsigned long cycles = 0, failures = 0;
	struct rusage usage_children;
	uint64_t t0, elapsed;
	int pipefd[2];
	json_t *root;
	int opt;

	bench_prog = "floor-rate";
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'w':
			workers = bench_parse_ulong("--workers", optarg, 1, 256);
			break;
		case 's':
			seconds = bench_parse_ulong("--seconds", optarg, 1, 3600);
			break;
		case 'm':
			mib = bench_parse_ulong("--memory-mib", optarg, 4, 4096);
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
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		bench_err("failed to create a pipe: %s\n", strerror(errno));
		return 1;
	}

	t0 = bench_now_ns();
	for (unsigned long i = 0; i < workers; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			bench_err("failed to fork worker %lu: %s\n", i,
				  strerror(errno));
			return 1; /* started workers get SIGKILL with us */
		}
		if (pid == 0)
			worker(pipefd[1], t0 + seconds * NS_PER_SEC,
			       mib << 20);
	}
	close(pipefd[1]);
	for (unsigned long i = 0; i < workers; i++) {
		struct worker_result result;

		if (read(pipefd[0], &result, sizeof(result)) !=
		    sizeof(result)) {
			bench_err("worker %lu ended without a result\n", i);
			return 1;
		}
		cycles += result.cycles;
		failures += result.failures;
	}
	while (wait(NULL) > 0)
		;
	elapsed = bench_now_ns() - t0;
	close(pipefd[0]);
	getrusage(RUSAGE_CHILDREN, &usage_children);

	root = json_pack(
		"{s:s, s:i, s:i, s:f, s:I, s:I, s:f, s:f}", "floor", "rate",
		"workers", (int)workers, "memory_mib", (int)mib, "seconds",
		(double)elapsed / NS_PER_SEC, "cycles", (json_int_t)cycles,
		"failures", (json_int_t)failures, "rate_per_s",
		(double)cycles * NS_PER_SEC / (double)elapsed, "cpu_s",
		(double)usage_children.ru_utime.tv_sec +
			usage_children.ru_utime.tv_usec / 1e6 +
			usage_children.ru_stime.tv_sec +
			usage_children.ru_stime.tv_usec / 1e6);
	if (failures)
		bench_err("%lu cycles failed: the VM did not reach its port exit\n",
			  failures);
	return bench_json_print(root) || failures ? 1 : 0;
}
