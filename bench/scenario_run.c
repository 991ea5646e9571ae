// SPDX-License-Identifier: MIT
/*
 * Run a whole program N times and record its wall time and max RSS
 * (getrusage of the child through wait4): the peer comparison of sbx-vmm
 * with QEMU.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "scenarios.h"

static int run_once(char **command, double *wall_us, long *maxrss_kib,
		    int *status)
{
	struct rusage ru;
	uint64_t t0;
	pid_t pid;

	t0 = bench_now_ns();
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null_fd = open("/dev/null", O_RDWR);

		if (null_fd >= 0) {
			dup2(null_fd, STDIN_FILENO);
			dup2(null_fd, STDOUT_FILENO);
			dup2(null_fd, STDERR_FILENO);
		}
		execvp(command[0], command);
		_exit(127);
	}
	if (wait4(pid, status, 0, &ru) < 0)
		return -errno;
	*wall_us = (double)(bench_now_ns() - t0) / NS_PER_US;
	*maxrss_kib = ru.ru_maxrss;
	return 0;
}

int scenario_run(const struct bench_opts *opts)
{
	struct bench_samples wall = { 0 }, rss = { 0 };
	json_t *argv_json, *root;
	int ret = 0;

	for (unsigned long i = 0; i < opts->warmup + opts->count; i++) {
		double us = 0;
		long kib = 0;
		int status = 0;

		ret = run_once(opts->command, &us, &kib, &status);
		if (ret) {
			bench_err("failed to run %s: %s\n", opts->command[0],
				  strerror(-ret));
			goto out;
		}
		if (!WIFEXITED(status) ||
		    (unsigned long)WEXITSTATUS(status) != opts->expect_status) {
			bench_err("run %lu of %s ended with status 0x%x, "
				  "expected exit %lu; run it by hand to see "
				  "its output\n",
				  i, opts->command[0], status,
				  opts->expect_status);
			ret = -EPROTO;
			goto out;
		}
		if (i < opts->warmup)
			continue;
		if (bench_samples_add(&wall, us) ||
		    bench_samples_add(&rss, (double)kib)) {
			ret = -ENOMEM;
			goto out;
		}
	}

	argv_json = json_array();
	for (char **arg = opts->command; *arg; arg++)
		json_array_append_new(argv_json, json_string(*arg));
	root = json_pack("{s:s, s:o, s:o, s:o}", "scenario", "run", "command",
			 argv_json, "wall_samples_us", bench_samples_json(&wall),
			 "maxrss_samples_kib", bench_samples_json(&rss));
	ret = bench_json_print(root);
out:
	bench_samples_free(&wall);
	bench_samples_free(&rss);
	return ret;
}
