/* SPDX-License-Identifier: MIT */
/*
 * Types shared by bpf/drain.bpf.c and the BPF gate backend in userspace:
 * the argument block of the syscall programs and the admission word.
 */
#ifndef SBXD_GATE_BPF_H
#define SBXD_GATE_BPF_H

#ifndef __BPF__
#include <linux/types.h>
#endif

/* Bound on compare-and-swap retries inside one program run. */
#define GATE_BPF_CAS_TRIES 4096
/* Size of the vmm_pids hash map: maximum VMM processes one gate tracks. */
#define GATE_BPF_VMM_PIDS_MAX 32768

/*
 * Context passed with bpf_prog_test_run_opts. Each program reads only the
 * fields it needs; the result comes back as the program's return value.
 */
struct gate_bpf_args {
	__u64 now_ns;	/* gate_drain: CLOCK_MONOTONIC time of the drain */
	__u32 state;	/* gate_drain: target enum sbxd_node_state */
	__u32 live;	/* gate_set_live: live sandboxes */
	__u32 ok;	/* gate_exit: 1 counts as started, 0 as failed */
	__u32 reserved;
};

/* {draining, inflight_starts}: the first 8 bytes of sbxd_drain_state. */
union gate_word {
	__u64 raw;
	struct {
		__u32 draining;
		__s32 inflight_starts;
	};
};

#endif
