// SPDX-License-Identifier: MIT
/*
 * floor-kvm: time the least work of one VM in one process: KVM_CREATE_VM,
 * map RAM, run a CPL3 guest to its first port exit, close everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "floorvm.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: floor-kvm [--count N] [--warmup N] [--memory-mib N]\n"
		"Time N cycles of open /dev/kvm, KVM_CREATE_VM, map RAM, run a CPL3\n"
		"guest to its first port exit and close, and print JSON with the\n"
		"samples in microseconds.\n"
		"  --count N       timed cycles, default 1000\n"
		"  --warmup N      untimed cycles first, default 20\n"
		"  --memory-mib N  guest RAM, default 16\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "memory-mib", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct bench_samples samples = { 0 };
	unsigned long count = 1000, warmup = 20, mib = 16;
	json_t *root;
	int opt, ret = 0;

	bench_prog = "floor-kvm";
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'n':
			count = bench_parse_ulong("--count", optarg, 1, 1000000);
			break;
		case 'w':
			warmup = bench_parse_ulong("--warmup", optarg, 0, 1000000);
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

	for (unsigned long i = 0; i < warmup + count; i++) {
		uint64_t t0 = bench_now_ns();
		struct floorvm vm;
		const char *step;

		ret = floorvm_start(&vm, mib << 20, &step);
		if (ret) {
			bench_err("cycle %lu failed to %s: %s\n", i, step,
				  ret == -EPROTO ? "the vCPU stopped before the port exit" :
						   strerror(-ret));
			goto err_samples;
		}
		floorvm_close(&vm);
		if (i >= warmup &&
		    bench_samples_add(&samples,
				      (double)(bench_now_ns() - t0) / NS_PER_US)) {
			ret = -ENOMEM;
			goto err_samples;
		}
	}

	root = json_pack("{s:s, s:i, s:o}", "floor", "kvm", "memory_mib",
			 (int)mib, "samples_us", bench_samples_json(&samples));
	ret = bench_json_print(root);
err_samples:
	bench_samples_free(&samples);
	return ret ? 1 : 0;
}
