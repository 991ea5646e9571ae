// SPDX-License-Identifier: MIT
/*
 * floor-exec: time fork + execve + waitpid of a static program that exits
 * at once, the floor of starting any VMM process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: floor-exec [--count N] [--warmup N] PROGRAM\n"
		"Time N runs of fork + execve(PROGRAM) + waitpid and print JSON\n"
		"with the samples in microseconds. PROGRAM must exit 0.\n"
		"  --count N   timed runs, default 1000\n"
		"  --warmup N  untimed runs first, default 20\n");
}

static int spawn_once(const char *path, double *us)
{
	char *argv[] = { (char *)path, NULL };
	uint64_t t0 = bench_now_ns();
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execv(path, argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	*us = (double)(bench_now_ns() - t0) / NS_PER_US;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -ECHILD;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct bench_samples samples = { 0 };
	unsigned long count = 1000, warmup = 20;
	const char *path;
	json_t *root;
	int opt, ret;

	bench_prog = "floor-exec";
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'n':
			count = bench_parse_ulong("--count", optarg, 1, 1000000);
			break;
		case 'w':
			warmup = bench_parse_ulong("--warmup", optarg, 0, 1000000);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	path = argv[optind];

	for (unsigned long i = 0; i < warmup + count; i++) {
		double us = 0;

		ret = spawn_once(path, &us);
		if (ret) {
			bench_err("run %lu of %s failed: %s\n", i, path,
				  ret == -ECHILD ? "it did not exit 0" :
						   strerror(-ret));
			goto err_samples;
		}
		if (i >= warmup && bench_samples_add(&samples, us)) {
			ret = -ENOMEM;
			goto err_samples;
		}
	}

	root = json_pack("{s:s, s:s, s:o}", "floor", "exec", "program", path,
			 "samples_us", bench_samples_json(&samples));
	ret = bench_json_print(root);
err_samples:
	bench_samples_free(&samples);
	return ret ? 1 : 0;
}
