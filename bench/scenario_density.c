// SPDX-License-Identifier: MIT
/*
 * Density: create idle sandboxes until the count or the memory reserve is
 * reached, then measure host memory per sandbox, VMM PSS and what each
 * sandbox costs sbxd in memory and file descriptors.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "scenarios.h"

/* Sandboxes created between two MemAvailable checks. */
#define CHECK_EVERY 50

struct held {
	char id[72];
	pid_t pid;
};

static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *entry;
	int count = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((entry = readdir(dir)))
		if (entry->d_name[0] != '.')
			count++;
	closedir(dir);
	return count;
}

static int node_pid(struct client *c, pid_t *pid)
{
	json_int_t value = 0;
	json_t *root;
	int ret;

	ret = client_request(c, "GET", "/v1/node", NULL);
	if (ret)
		return ret;
	root = c->status == 200 ? json_loads(c->body, 0, NULL) : NULL;
	ret = root && !json_unpack(root, "{s:I}", "pid", &value) ? 0 : -EPROTO;
	json_decref(root);
	*pid = (pid_t)value;
	return ret;
}

/* Would CHECK_EVERY more sandboxes take MemAvailable below the reserve? */
static bool reserve_reached(const struct bench_opts *opts, uint64_t before,
			    unsigned long held)
{
	uint64_t avail, per_kib = 1024;

	if (bench_meminfo_kib("MemAvailable", &avail))
		return true;
	if (held && before > avail && (before - avail) / held > per_kib)
		per_kib = (before - avail) / held;
	/* Twice the cost seen so far, as margin for other users' noise. */
	return avail < opts->reserve_mib * 1024 + 2 * CHECK_EVERY * per_kib;
}

static json_t *measure(struct held *sandboxes, unsigned long held,
		       uint64_t avail_before, pid_t sbxd, uint64_t sbxd_rss0,
		       int sbxd_fds0)
{
	uint64_t avail_after = 0, pss_sum = 0, rss_sum = 0, sbxd_pss, sbxd_rss;
	unsigned long measured = 0;
	int sbxd_fds;

	sleep(1); /* let per-CPU page counters settle into MemAvailable */
	bench_meminfo_kib("MemAvailable", &avail_after);
	for (unsigned long i = 0; i < held; i++) {
		uint64_t pss, rss;

		if (!bench_smaps_rollup_kib(sandboxes[i].pid, &pss, &rss)) {
			pss_sum += pss;
			rss_sum += rss;
			measured++;
		}
	}
	sbxd_fds = count_fds(sbxd);
	if (bench_smaps_rollup_kib(sbxd, &sbxd_pss, &sbxd_rss))
		sbxd_rss = sbxd_rss0;

	return json_pack(
		"{s:f, s:f, s:I, s:f, s:f, s:f, s:f}",
		"mem_available_drop_mib",
		((double)avail_before - (double)avail_after) / 1024,
		"host_kib_per_sandbox",
		held ? ((double)avail_before - (double)avail_after) / held : 0,
		"vmm_measured", (json_int_t)measured,
		"vmm_pss_kib_mean", measured ? (double)pss_sum / measured : 0,
		"vmm_rss_kib_mean", measured ? (double)rss_sum / measured : 0,
		"sbxd_rss_kib_per_sandbox",
		held ? ((double)sbxd_rss - (double)sbxd_rss0) / held : 0,
		"sbxd_fds_per_sandbox",
		held ? (double)(sbxd_fds - sbxd_fds0) / held : 0);
}

int scenario_density(const struct bench_opts *opts)
{
	char stopped_by[400] = "count reached";
	uint64_t avail_before, sbxd_pss0, sbxd_rss0, t0, create_ns, delete_ns;
	struct held *sandboxes;
	unsigned long held = 0;
	struct client c;
	json_t *memory, *root;
	pid_t sbxd;
	int sbxd_fds0;
	int ret;

	sandboxes = calloc(opts->count, sizeof(*sandboxes));
	if (!sandboxes)
		return -ENOMEM;
	client_init(&c, &opts->addr);
	ret = node_pid(&c, &sbxd);
	if (ret) {
		bench_err("GET /v1/node failed or lacked a pid\n");
		goto out;
	}
	sbxd_fds0 = count_fds(sbxd);
	if (bench_meminfo_kib("MemAvailable", &avail_before) ||
	    bench_smaps_rollup_kib(sbxd, &sbxd_pss0, &sbxd_rss0) ||
	    sbxd_fds0 < 0) {
		bench_err("failed to read MemAvailable, or sbxd pid %d's smaps_rollup or fds\n",
			  (int)sbxd);
		ret = -EIO;
		goto out;
	}

	t0 = bench_now_ns();
	for (held = 0; held < opts->count; held++) {
		struct held *s = &sandboxes[held];

		if (held % CHECK_EVERY == 0 &&
		    reserve_reached(opts, avail_before, held)) {
			snprintf(stopped_by, sizeof(stopped_by),
				 "MemAvailable reserve of %lu MiB",
				 opts->reserve_mib);
			break;
		}
		ret = sandbox_create(&c, opts->memory_mib, false, s->id,
				     sizeof(s->id), &s->pid);
		if (ret) {
			snprintf(stopped_by, sizeof(stopped_by),
				 "create %lu failed: HTTP %d %.300s", held + 1,
				 c.status, c.body ? c.body : strerror(-ret));
			ret = 0;
			break;
		}
	}
	create_ns = bench_now_ns() - t0;
	memory = measure(sandboxes, held, avail_before, sbxd, sbxd_rss0,
			 sbxd_fds0);

	t0 = bench_now_ns();
	for (unsigned long i = 0; i < held; i++) {
		int err = sandbox_delete(&c, sandboxes[i].id);

		if (err && !ret)
			ret = err;
	}
	delete_ns = bench_now_ns() - t0;

	root = json_pack("{s:s, s:I, s:I, s:s, s:f, s:f, s:o}", "scenario",
			 "density", "requested", (json_int_t)opts->count,
			 "held", (json_int_t)held, "stopped_by", stopped_by,
			 "create_s", (double)create_ns / NS_PER_SEC,
			 "delete_s", (double)delete_ns / NS_PER_SEC, "memory",
			 memory);
	if (!ret)
		ret = bench_json_print(root);
	else
		json_decref(root);
out:
	if (ret)
		bench_err("density scenario failed: %s\n", strerror(-ret));
	client_close(&c);
	free(sandboxes);
	return ret;
}
