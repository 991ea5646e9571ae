/* SPDX-License-Identifier: MIT */
/* Admission gate front end: picks the backend and forwards each call to it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sbxd/gate.h"
#include "sbxd/gate_ops.h"

#define INSTANCE_NAME_MAX 64

const char *gate_backend_name(enum gate_backend backend)
{
	switch (backend) {
	case GATE_BACKEND_AUTO:
		return "auto";
	case GATE_BACKEND_BPF:
		return "bpf";
	case GATE_BACKEND_MEMFD:
		return "memfd";
	}
	return "unknown";
}

/* The instance names a directory under bpffs, so it must be one path part. */
static int check_instance(const char *instance)
{
	size_t len = strlen(instance);

	if (len == 0 || len > INSTANCE_NAME_MAX)
		return -EINVAL;
	if (!strcmp(instance, ".") || !strcmp(instance, ".."))
		return -EINVAL;
	if (strspn(instance, "abcdefghijklmnopqrstuvwxyz"
			     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != len)
		return -EINVAL;
	return 0;
}

static int open_backend(struct gate *gate, const struct gate_ops *ops,
			enum gate_backend backend,
			const struct gate_config *config, char *reason,
			size_t reason_len)
{
	int ret;

	ret = ops->open(gate, config, reason, reason_len);
	if (ret < 0)
		return ret;
	gate->ops = ops;
	gate->backend = backend;
	return 0;
}

int gate_open(struct gate *gate, const struct gate_config *config)
{
	struct gate_config cfg = *config;
	char reason[192] = "";
	int ret;

	memset(gate, 0, sizeof(*gate));
	if (!cfg.instance)
		cfg.instance = "default";
	if (!cfg.bpffs)
		cfg.bpffs = "/sys/fs/bpf";
	if (check_instance(cfg.instance) < 0) {
		snprintf(gate->fallback_reason, sizeof(gate->fallback_reason),
			 "invalid instance name \"%.64s\": use 1 to %d of "
			 "[A-Za-z0-9_.-]", cfg.instance, INSTANCE_NAME_MAX);
		return -EINVAL;
	}

	switch (cfg.backend) {
	case GATE_BACKEND_MEMFD:
		return open_backend(gate, &gate_memfd_ops, GATE_BACKEND_MEMFD,
				    &cfg, reason, sizeof(reason));
	case GATE_BACKEND_BPF:
		ret = open_backend(gate, &gate_bpf_ops, GATE_BACKEND_BPF, &cfg,
				   reason, sizeof(reason));
		if (ret < 0)
			snprintf(gate->fallback_reason,
				 sizeof(gate->fallback_reason),
				 "BPF unavailable: %s", reason);
		return ret;
	case GATE_BACKEND_AUTO:
		ret = open_backend(gate, &gate_bpf_ops, GATE_BACKEND_BPF, &cfg,
				   reason, sizeof(reason));
		if (!ret)
			return 0;
		/* Another live sbxd owns the instance: falling back would hide
		 * it from operators who read the pins, so fail instead. */
		if (ret == -EBUSY) {
			snprintf(gate->fallback_reason,
				 sizeof(gate->fallback_reason), "%s", reason);
			return ret;
		}
		snprintf(gate->fallback_reason, sizeof(gate->fallback_reason),
			 "BPF unavailable: %s; using the memfd gate", reason);
		return open_backend(gate, &gate_memfd_ops, GATE_BACKEND_MEMFD,
				    &cfg, reason, sizeof(reason));
	}
	return -EINVAL;
}

int gate_close(struct gate *gate)
{
	int ret;

	if (!gate->ops)
		return 0;
	ret = gate->ops->close(gate);
	gate->ops = NULL;
	gate->state = NULL;
	gate->priv = NULL;
	return ret;
}

int gate_enter(struct gate *gate)
{
	if (!gate->ops)
		return -EBADF;
	return gate->ops->enter(gate);
}

int gate_exit(struct gate *gate, bool ok)
{
	if (!gate->ops)
		return -EBADF;
	return gate->ops->exit(gate, ok);
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* now_ns 0 means "now": drain_started_ns must not stay 0 once draining. */
int gate_drain(struct gate *gate, enum sbxd_node_state state, uint64_t now_ns)
{
	if (!gate->ops)
		return -EBADF;
	if (state < SBXD_DRAINING || state > SBXD_CLOSING)
		return -EINVAL;
	if (!now_ns)
		now_ns = monotonic_ns();
	return gate->ops->drain(gate, state, now_ns);
}

int gate_set_live(struct gate *gate, uint32_t live)
{
	if (!gate->ops)
		return -EBADF;
	return gate->ops->set_live(gate, live);
}

int gate_reset(struct gate *gate)
{
	if (!gate->ops)
		return -EBADF;
	return gate->ops->reset(gate);
}

/*
 * The admission word is read in one atomic load so that draining and
 * inflight_starts always come from the same moment. The counters after it
 * are separate loads and may be a few updates apart.
 */
void gate_read(const struct gate *gate, struct sbxd_drain_state *out)
{
	const volatile struct sbxd_drain_state *st = gate->state;
	union gate_word word;

	memset(out, 0, sizeof(*out));
	if (!st)
		return;
	word.raw = __atomic_load_n((const volatile gate_word_t *)st,
				   __ATOMIC_ACQUIRE);
	out->draining = word.draining;
	out->inflight_starts = word.inflight_starts;
	out->live = __atomic_load_n(&st->live, __ATOMIC_RELAXED);
	out->admitted = __atomic_load_n(&st->admitted, __ATOMIC_RELAXED);
	out->rejected = __atomic_load_n(&st->rejected, __ATOMIC_RELAXED);
	out->started = __atomic_load_n(&st->started, __ATOMIC_RELAXED);
	out->failed = __atomic_load_n(&st->failed, __ATOMIC_RELAXED);
	out->drain_started_ns = __atomic_load_n(&st->drain_started_ns,
						__ATOMIC_RELAXED);
}

int gate_track_vmm(struct gate *gate, pid_t pid)
{
	if (!gate->ops)
		return -EBADF;
	if (pid <= 0)
		return -EINVAL;
	return gate->ops->track_vmm(gate, pid);
}

int gate_untrack_vmm(struct gate *gate, pid_t pid)
{
	if (!gate->ops)
		return -EBADF;
	if (pid <= 0)
		return -EINVAL;
	return gate->ops->untrack_vmm(gate, pid);
}

int gate_count_live_vms(struct gate *gate)
{
	if (!gate->ops)
		return -EBADF;
	return gate->ops->count_live_vms(gate);
}
