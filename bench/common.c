// SPDX-License-Identifier: MIT
/* Clock, /proc readers, option parsing and JSON output for the benchmarks. */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *bench_prog = "sbx-bench";

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

void bench_sleep_until(uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / NS_PER_SEC),
		.tv_nsec = (long)(deadline_ns % NS_PER_SEC),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

/* Find "FIELD:" at the start of a line in @path and parse its number. */
static int read_field_kib(const char *path, const char *field, uint64_t *kib)
{
	char line[256];
	size_t len = strlen(field);
	FILE *f;
	int ret = -ENOENT;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, len) == 0 && line[len] == ':') {
			*kib = strtoull(line + len + 1, NULL, 10);
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

int bench_meminfo_kib(const char *field, uint64_t *kib)
{
	return read_field_kib("/proc/meminfo", field, kib);
}

int bench_smaps_rollup_kib(pid_t pid, uint64_t *pss, uint64_t *rss)
{
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	ret = read_field_kib(path, "Pss", pss);
	if (ret)
		return ret;
	return read_field_kib(path, "Rss", rss);
}

int bench_task_cpu_ns(pid_t pid, uint64_t *cpu_ns)
{
	char path[96];
	struct dirent *entry;
	uint64_t total = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((entry = readdir(dir))) {
		unsigned long long ns;
		FILE *f;

		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat",
			 (int)pid, entry->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* the thread ended meanwhile */
		if (fscanf(f, "%llu", &ns) == 1)
			total += ns;
		fclose(f);
	}
	closedir(dir);
	*cpu_ns = total;
	return 0;
}

unsigned long bench_parse_ulong(const char *flag, const char *text,
				unsigned long min, unsigned long max)
{
	unsigned long value;
	char *end;

	errno = 0;
	value = strtoul(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || value < min ||
	    value > max) {
		bench_err("invalid %s '%s': expected an integer from %lu to %lu\n",
			  flag, text, min, max);
		exit(2);
	}
	return value;
}

int bench_json_print(json_t *root)
{
	/* Ten significant digits keep 0.1 µs in values up to ~10 minutes. */
	size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(10);
	int ret;

	if (!root)
		return -ENOMEM;
	ret = json_dumpf(root, stdout, flags) ? -EIO : 0;
	json_decref(root);
	if (!ret && (fputc('\n', stdout) == EOF || fflush(stdout)))
		ret = -EIO;
	return ret;
}

int bench_samples_add(struct bench_samples *samples, double value)
{
	if (samples->count == samples->cap) {
		size_t cap = samples->cap ? samples->cap * 2 : 256;
		double *values;

		values = realloc(samples->values, cap * sizeof(*values));
		if (!values)
			return -ENOMEM;
		samples->values = values;
		samples->cap = cap;
	}
	samples->values[samples->count++] = value;
	return 0;
}

void bench_samples_free(struct bench_samples *samples)
{
	free(samples->values);
	*samples = (struct bench_samples){ 0 };
}

json_t *bench_samples_json(const struct bench_samples *samples)
{
	json_t *array = json_array();

	if (!array)
		return NULL;
	for (size_t i = 0; i < samples->count; i++) {
		/* Round to 0.1 µs: finer digits are clock noise. */
		double v = (double)(int64_t)(samples->values[i] * 10 + 0.5) / 10;

		if (json_array_append_new(array, json_real(v))) {
			json_decref(array);
			return NULL;
		}
	}
	return array;
}

void bench_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", bench_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}
