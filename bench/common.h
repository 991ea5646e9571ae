/* SPDX-License-Identifier: MIT */
/* Clock, /proc readers, option parsing and JSON output for the benchmarks. */
#ifndef SBX_BENCH_COMMON_H
#define SBX_BENCH_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NS_PER_US 1000ull
#define NS_PER_MS 1000000ull
#define NS_PER_SEC 1000000000ull

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Sleep until CLOCK_MONOTONIC reaches @deadline_ns. */
void bench_sleep_until(uint64_t deadline_ns);

/* Read one /proc/meminfo field, such as "MemAvailable", in KiB. */
int bench_meminfo_kib(const char *field, uint64_t *kib);

/*
 * Read Pss and Rss of @pid from /proc/PID/smaps_rollup, in KiB.
 * Returns 0, or -errno when the process is gone or the file is unreadable.
 */
int bench_smaps_rollup_kib(pid_t pid, uint64_t *pss, uint64_t *rss);

/*
 * Sum the on-CPU time of every thread of @pid from
 * /proc/PID/task/TID/schedstat, in nanoseconds.
 */
int bench_task_cpu_ns(pid_t pid, uint64_t *cpu_ns);

/* Parse a decimal for @flag in [min, max], or print why and exit 2. */
unsigned long bench_parse_ulong(const char *flag, const char *text,
				unsigned long min, unsigned long max);

/* Print @root as one line of JSON on stdout and release it. */
int bench_json_print(json_t *root);

/* Growable array of samples in microseconds. */
struct bench_samples {
	double *values;
	size_t count;
	size_t cap;
};

int bench_samples_add(struct bench_samples *samples, double value);
void bench_samples_free(struct bench_samples *samples);
json_t *bench_samples_json(const struct bench_samples *samples);

/* Print "PROG: MESSAGE" on stderr; the caller adds no newline. */
void bench_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Name used in messages; set by each program's main(). */
extern const char *bench_prog;

#endif
