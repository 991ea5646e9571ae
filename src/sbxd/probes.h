/* SPDX-License-Identifier: MIT */
/*
 * USDT probes of provider "sbxd" for bpftrace and perf, for example
 * `bpftrace -e 'usdt:./sbxd:sbxd:sandbox_exit { printf("%s\n", str(arg0)); }'`.
 * start_ready, start_fail and sandbox_exit take the sandbox id (char *).
 * sandbox_exit adds the exit reason (char *) and the exit code (int).
 * drain_begin and force_begin take the reason (char *).
 * snapshot_done and checkpoint_done take the sandbox id (char *) and 0 or
 * the negative errno of the failure (int).
 */
#ifndef SBXD_PROBES_H
#define SBXD_PROBES_H

#include <sys/sdt.h>

#define PROBE_START_ADMIT() DTRACE_PROBE(sbxd, start_admit)
#define PROBE_START_REJECT() DTRACE_PROBE(sbxd, start_reject)
#define PROBE_START_READY(id) DTRACE_PROBE1(sbxd, start_ready, id)
#define PROBE_START_FAIL(id) DTRACE_PROBE1(sbxd, start_fail, id)
#define PROBE_DRAIN_BEGIN(reason) DTRACE_PROBE1(sbxd, drain_begin, reason)
#define PROBE_FORCE_BEGIN(reason) DTRACE_PROBE1(sbxd, force_begin, reason)
#define PROBE_SANDBOX_EXIT(id, reason, code) \
	DTRACE_PROBE3(sbxd, sandbox_exit, id, reason, code)
#define PROBE_SNAPSHOT_DONE(id, error) \
	DTRACE_PROBE2(sbxd, snapshot_done, id, error)
#define PROBE_CHECKPOINT_DONE(id, error) \
	DTRACE_PROBE2(sbxd, checkpoint_done, id, error)

#endif
