// SPDX-License-Identifier: MIT
/* sbx-bench: load generator for sbxd's API; one scenario per run. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "scenarios.h"

struct scenario {
	const char *name;
	int (*run)(const struct bench_opts *opts);
	bool needs_addr;
	bool needs_command;
	const char *help;
};

static const struct scenario scenarios[] = {
	{ "start", scenario_start, true, false,
	  "sequential creates, each timed to its 201 and then deleted" },
	{ "exec", scenario_exec, true, false,
	  "`exec echo hi` round trips on one warm sandbox" },
	{ "rate", scenario_rate, true, false,
	  "--clients connections loop create+delete for --seconds" },
	{ "density", scenario_density, true, false,
	  "create idle sandboxes up to --count or the memory reserve" },
	{ "restore", scenario_restore, true, false,
	  "restore from one snapshot, alternating with cold creates" },
	{ "drain", scenario_drain, true, true,
	  "start sbxd (the command), create --count, SIGTERM, end them one by one" },
	{ "force", scenario_drain, true, true,
	  "start sbxd (the command), create --count ignore_stop sandboxes, SIGTERM" },
	{ "run", scenario_run, false, true,
	  "run the command --count times: wall time and max RSS" },
};

#define SCENARIO_COUNT (sizeof(scenarios) / sizeof(scenarios[0]))

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sbx-bench SCENARIO [FLAGS] [-- COMMAND...]\n"
		"Load sbxd's API or time a program, and print one JSON object.\n\n"
		"Scenarios:\n");
	for (size_t i = 0; i < SCENARIO_COUNT; i++)
		fprintf(out, "  %-8s %s\n", scenarios[i].name, scenarios[i].help);
	fprintf(out,
		"\nFlags:\n"
		"  --addr ADDR          sbxd API: unix:PATH or tcp:127.0.0.1:PORT\n"
		"  --count N            samples, sandboxes or runs (default 200)\n"
		"  --warmup N           untimed iterations first (default 5)\n"
		"  --clients N          rate: concurrent connections (default 8)\n"
		"  --seconds N          rate: duration in seconds (default 30)\n"
		"  --memory-mib N       guest RAM per sandbox (default 16)\n"
		"  --reserve-mib N      density: stop before MemAvailable drops\n"
		"                       below N MiB (default 2048)\n"
		"  --interval-ms N      drain: time between two sandbox ends (default 20)\n"
		"  --idle-ms N          drain: wait after SIGTERM before the first end\n"
		"                       (default 1000)\n"
		"  --instance NAME      drain, force: sbxd's --instance, to read its\n"
		"                       BPF map (default \"default\")\n"
		"  --log PATH           drain, force: file for sbxd's stderr\n"
		"                       (default /dev/null)\n"
		"  --expect-status N    run: the command's exit status (default 0)\n");
}

static const struct scenario *find_scenario(const char *name)
{
	for (size_t i = 0; i < SCENARIO_COUNT; i++)
		if (strcmp(scenarios[i].name, name) == 0)
			return &scenarios[i];
	return NULL;
}

static int parse_flags(int argc, char **argv, struct bench_opts *opts)
{
	static const struct option options[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "count", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "clients", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "memory-mib", required_argument, NULL, 'm' },
		{ "reserve-mib", required_argument, NULL, 'r' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "idle-ms", required_argument, NULL, 'I' },
		{ "instance", required_argument, NULL, 'N' },
		{ "log", required_argument, NULL, 'l' },
		{ "expect-status", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'a':
			if (client_addr_parse(optarg, &opts->addr))
				return 2;
			opts->have_addr = true;
			break;
		case 'n':
			opts->count = bench_parse_ulong("--count", optarg, 1,
							100000);
			break;
		case 'w':
			opts->warmup = bench_parse_ulong("--warmup", optarg, 0,
							 100000);
			break;
		case 'c':
			opts->clients = bench_parse_ulong("--clients", optarg,
							  1, 1024);
			break;
		case 's':
			opts->seconds = bench_parse_ulong("--seconds", optarg,
							  1, 3600);
			break;
		case 'm':
			opts->memory_mib = bench_parse_ulong("--memory-mib",
							     optarg, 4, 4096);
			break;
		case 'r':
			opts->reserve_mib = bench_parse_ulong(
				"--reserve-mib", optarg, 0, 1ul << 30);
			break;
		case 'i':
			opts->interval_ms = bench_parse_ulong(
				"--interval-ms", optarg, 0, 60000);
			break;
		case 'I':
			opts->idle_ms = bench_parse_ulong("--idle-ms", optarg,
							  0, 600000);
			break;
		case 'N':
			opts->instance = optarg;
			break;
		case 'l':
			opts->log_path = optarg;
			break;
		case 'e':
			opts->expect_status = bench_parse_ulong(
				"--expect-status", optarg, 0, 255);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		opts->command = argv + optind;
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_opts opts = {
		.count = 200,
		.warmup = 5,
		.clients = 8,
		.seconds = 30,
		.memory_mib = 16,
		.reserve_mib = 2048,
		.interval_ms = 20,
		.idle_ms = 1000,
		.instance = "default",
		.log_path = "/dev/null",
	};
	const struct scenario *scenario;
	int ret;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	scenario = find_scenario(argv[1]);
	if (!scenario) {
		bench_err("unknown scenario '%s'; see sbx-bench --help\n",
			  argv[1]);
		return 2;
	}
	ret = parse_flags(argc - 1, argv + 1, &opts);
	if (ret)
		return ret;
	if (scenario->needs_addr && !opts.have_addr) {
		bench_err("%s needs --addr unix:PATH or tcp:127.0.0.1:PORT\n",
			  scenario->name);
		return 2;
	}
	if (scenario->needs_command && !opts.command) {
		bench_err("%s needs a command after --\n", scenario->name);
		return 2;
	}
	if (!scenario->needs_command && opts.command) {
		bench_err("%s takes no command, got '%s'\n", scenario->name,
			  opts.command[0]);
		return 2;
	}
	opts.ignore_stop = strcmp(scenario->name, "force") == 0;
	return scenario->run(&opts) ? 1 : 0;
}
