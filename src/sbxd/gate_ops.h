/* SPDX-License-Identifier: MIT */
/* Backend interface behind gate.h, shared by gate.c and each backend. */
#ifndef SBXD_GATE_OPS_H
#define SBXD_GATE_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sbxd/gate.h"
#include "sbxd/gate_bpf.h"

/*
 * The admission word (union gate_word) read and swapped as one u64 in
 * place. may_alias lets the code view the first two fields of struct
 * sbxd_drain_state through this type without breaking strict aliasing.
 */
typedef __u64 __attribute__((may_alias)) gate_word_t;

_Static_assert(sizeof(union gate_word) == 8, "admission word is 8 bytes");
_Static_assert(offsetof(struct sbxd_drain_state, draining) == 0,
	       "draining opens the admission word");
_Static_assert(offsetof(struct sbxd_drain_state, inflight_starts) == 4,
	       "inflight_starts closes the admission word");

struct gate_ops {
	/*
	 * Fill gate->state and gate->priv. On failure, write the reason as
	 * one line into `reason` (a buffer of `reason_len` bytes).
	 */
	int (*open)(struct gate *gate, const struct gate_config *config,
		    char *reason, size_t reason_len);
	int (*close)(struct gate *gate);
	int (*enter)(struct gate *gate);
	int (*exit)(struct gate *gate, bool ok);
	int (*drain)(struct gate *gate, uint32_t state, uint64_t now_ns);
	int (*set_live)(struct gate *gate, uint32_t live);
	/* Zero every counter and reopen admission; for tests only. */
	int (*reset)(struct gate *gate);
	int (*track_vmm)(struct gate *gate, pid_t pid);
	int (*untrack_vmm)(struct gate *gate, pid_t pid);
	int (*count_live_vms)(struct gate *gate);
};

extern const struct gate_ops gate_memfd_ops;
extern const struct gate_ops gate_bpf_ops;

/*
 * Zero the state of an open gate and reopen admission. Tests use it to run
 * many drains on one gate. Never call it while starts are in flight.
 */
int gate_reset(struct gate *gate);

#endif
