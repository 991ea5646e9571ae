/* SPDX-License-Identifier: MIT */
/* memfd gate backend: the admission algorithm in userspace over shared memory. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sbxd/gate.h"
#include "sbxd/gate_ops.h"

/*
 * The mapping is MAP_SHARED, so a process forked after gate_open shares the
 * state with its parent. Every update is an atomic read-modify-write.
 */
static struct sbxd_drain_state *memfd_state(struct gate *gate)
{
	return gate->priv;
}

static int memfd_open(struct gate *gate, const struct gate_config *config,
		      char *reason, size_t reason_len)
{
	size_t len = (size_t)sysconf(_SC_PAGESIZE);
	void *map;
	int fd, ret;

	fd = memfd_create("sbxd-drain-state", MFD_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(reason, reason_len, "failed to create the memfd: %s",
			 strerror(-ret));
		return ret;
	}
	if (ftruncate(fd, (off_t)len) < 0) {
		ret = -errno;
		snprintf(reason, reason_len, "failed to size the memfd to %zu bytes: %s",
			 len, strerror(-ret));
		goto err_close_fd;
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		ret = -errno;
		snprintf(reason, reason_len, "failed to map the memfd: %s",
			 strerror(-ret));
		goto err_close_fd;
	}

	/* The mapping keeps the memory alive; the fd is no longer needed. */
	close(fd);
	gate->priv = map;
	gate->state = map;
	return 0;

err_close_fd:
	close(fd);
	return ret;
}

static int memfd_close(struct gate *gate)
{
	if (munmap(gate->priv, (size_t)sysconf(_SC_PAGESIZE)) < 0)
		return -errno;
	return 0;
}

static int memfd_enter(struct gate *gate)
{
	struct sbxd_drain_state *st = memfd_state(gate);
	gate_word_t *wordp = (gate_word_t *)st;
	union gate_word old, new;

	old.raw = __atomic_load_n(wordp, __ATOMIC_ACQUIRE);
	do {
		if (old.draining != SBXD_SERVING) {
			__atomic_fetch_add(&st->rejected, 1, __ATOMIC_RELAXED);
			return -EAGAIN;
		}
		new = old;
		new.inflight_starts++;
	} while (!__atomic_compare_exchange_n(wordp, &old.raw, new.raw, false,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
	__atomic_fetch_add(&st->admitted, 1, __ATOMIC_RELAXED);
	return 0;
}

static int memfd_exit(struct gate *gate, bool ok)
{
	struct sbxd_drain_state *st = memfd_state(gate);
	gate_word_t *wordp = (gate_word_t *)st;
	union gate_word old, new;

	old.raw = __atomic_load_n(wordp, __ATOMIC_ACQUIRE);
	do {
		/* An exit without its enter would hide a real start. */
		if (old.inflight_starts <= 0)
			return -EINVAL;
		new = old;
		new.inflight_starts--;
	} while (!__atomic_compare_exchange_n(wordp, &old.raw, new.raw, false,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
	__atomic_fetch_add(ok ? &st->started : &st->failed, 1,
			   __ATOMIC_RELAXED);
	return 0;
}

static int memfd_drain(struct gate *gate, uint32_t state, uint64_t now_ns)
{
	struct sbxd_drain_state *st = memfd_state(gate);
	gate_word_t *wordp = (gate_word_t *)st;
	union gate_word old, new;
	__u64 unset = 0;

	old.raw = __atomic_load_n(wordp, __ATOMIC_ACQUIRE);
	do {
		/* The state only moves forward: serving, draining, forcing, closing. */
		if (old.draining >= state)
			break;
		new = old;
		new.draining = state;
	} while (!__atomic_compare_exchange_n(wordp, &old.raw, new.raw, false,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
	__atomic_compare_exchange_n(&st->drain_started_ns, &unset, now_ns,
				    false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	return 0;
}

static int memfd_set_live(struct gate *gate, uint32_t live)
{
	__atomic_store_n(&memfd_state(gate)->live, live, __ATOMIC_RELEASE);
	return 0;
}

static int memfd_reset(struct gate *gate)
{
	struct sbxd_drain_state *st = memfd_state(gate);

	__atomic_store_n((gate_word_t *)st, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&st->live, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st->admitted, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st->rejected, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st->started, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st->failed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st->drain_started_ns, 0, __ATOMIC_RELAXED);
	return 0;
}

/* Live VMs are counted by the BPF iterator only. */
static int memfd_track_vmm(struct gate *gate, pid_t pid)
{
	return -EOPNOTSUPP;
}

static int memfd_count_live_vms(struct gate *gate)
{
	return -EOPNOTSUPP;
}

const struct gate_ops gate_memfd_ops = {
	.open = memfd_open,
	.close = memfd_close,
	.enter = memfd_enter,
	.exit = memfd_exit,
	.drain = memfd_drain,
	.set_live = memfd_set_live,
	.reset = memfd_reset,
	.track_vmm = memfd_track_vmm,
	.untrack_vmm = memfd_track_vmm,
	.count_live_vms = memfd_count_live_vms,
};
