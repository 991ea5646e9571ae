/* SPDX-License-Identifier: MIT */
/* BPF gate backend: a pinned, mmapable array map updated by syscall programs. */
#include <errno.h>
#include <stdio.h>

#include "sbxd/gate.h"
#include "sbxd/gate_ops.h"

/* TODO: the BPF backend is not built yet, so AUTO always uses memfd. */
static int bpf_open(struct gate *gate, const struct gate_config *config,
		    char *why, size_t why_len)
{
	snprintf(why, why_len, "this sbxd was built without the BPF gate");
	return -EOPNOTSUPP;
}

const struct gate_ops gate_bpf_ops = {
	.open = bpf_open,
};
