/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * Drain state of one sbxd instance: syscall programs that admit, finish
 * and reject starts with one compare-and-swap on the admission word, and a
 * task_file iterator that lists the KVM VMs held by this instance's VMMs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "sbxd/drain_state.h"
#include "sbxd/gate_bpf.h"

/* vmlinux.h has no errno values; these match asm-generic/errno-base.h. */
#define ENOENT 2
#define EAGAIN 11
#define EBUSY 16
#define EINVAL 22

/*
 * KVM_CREATE_VM makes an anonymous-inode file whose dentry is named
 * "kvm-vm"; /proc/PID/fd shows it as "anon_inode:kvm-vm".
 */
#define KVM_VM_NAME "kvm-vm"

/* bpf_seq_printf is a GPL-only helper, so the license must be compatible. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sbxd_drain_state);
} drain_state SEC(".maps");

/* Thread group ids of this instance's VMM processes; the value is unused. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GATE_BPF_VMM_PIDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u8);
} vmm_pids SEC(".maps");

static struct sbxd_drain_state *state_lookup(void)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&drain_state, &key);
}

static __u64 word_load(struct sbxd_drain_state *st)
{
	return *(volatile __u64 *)st;
}

SEC("syscall")
int gate_enter(struct gate_bpf_args *args)
{
	struct sbxd_drain_state *st = state_lookup();
	union gate_word old, new;
	__u64 seen;
	int i;

	if (!st)
		return -ENOENT;
	old.raw = word_load(st);
	for (i = 0; i < GATE_BPF_CAS_TRIES; i++) {
		if (old.draining != SBXD_SERVING) {
			__sync_fetch_and_add(&st->rejected, 1);
			return -EAGAIN;
		}
		new = old;
		new.inflight_starts++;
		seen = __sync_val_compare_and_swap((__u64 *)st, old.raw,
						   new.raw);
		if (seen == old.raw) {
			__sync_fetch_and_add(&st->admitted, 1);
			return 0;
		}
		old.raw = seen;
	}
	return -EBUSY;
}

SEC("syscall")
int gate_exit(struct gate_bpf_args *args)
{
	struct sbxd_drain_state *st = state_lookup();
	union gate_word old, new;
	__u64 seen;
	int i;

	if (!st)
		return -ENOENT;
	old.raw = word_load(st);
	for (i = 0; i < GATE_BPF_CAS_TRIES; i++) {
		/* An exit without its enter would hide a real start. */
		if (old.inflight_starts <= 0)
			return -EINVAL;
		new = old;
		new.inflight_starts--;
		seen = __sync_val_compare_and_swap((__u64 *)st, old.raw,
						   new.raw);
		if (seen == old.raw) {
			if (args->ok)
				__sync_fetch_and_add(&st->started, 1);
			else
				__sync_fetch_and_add(&st->failed, 1);
			return 0;
		}
		old.raw = seen;
	}
	return -EBUSY;
}

SEC("syscall")
int gate_drain(struct gate_bpf_args *args)
{
	struct sbxd_drain_state *st = state_lookup();
	union gate_word old, new;
	__u64 seen;
	int i;

	if (!st)
		return -ENOENT;
	if (args->state < SBXD_DRAINING || args->state > SBXD_CLOSING)
		return -EINVAL;
	old.raw = word_load(st);
	for (i = 0; i < GATE_BPF_CAS_TRIES; i++) {
		/* The state only moves forward: serving, draining, forcing, closing. */
		if (old.draining >= args->state)
			break;
		new = old;
		new.draining = args->state;
		seen = __sync_val_compare_and_swap((__u64 *)st, old.raw,
						   new.raw);
		if (seen == old.raw)
			break;
		old.raw = seen;
	}
	if (i == GATE_BPF_CAS_TRIES)
		return -EBUSY;
	__sync_val_compare_and_swap(&st->drain_started_ns, 0, args->now_ns);
	return 0;
}

SEC("syscall")
int gate_set_live(struct gate_bpf_args *args)
{
	struct sbxd_drain_state *st = state_lookup();

	if (!st)
		return -ENOENT;
	__sync_lock_test_and_set(&st->live, args->live);
	return 0;
}

/* Whether the dentry name is exactly "kvm-vm", as KVM_CREATE_VM names it. */
static bool is_kvm_vm(struct file *file)
{
	const char want[] = KVM_VM_NAME;
	char name[sizeof(want) + 1] = {};
	const unsigned char *dname;
	int i;

	/* The iterator's file pointer is trusted, so plain loads walk it. */
	dname = file->f_path.dentry->d_name.name;
	if (bpf_probe_read_kernel_str(name, sizeof(name), dname) !=
	    sizeof(want))
		return false;
	for (i = 0; i < sizeof(want); i++)
		if (name[i] != want[i])
			return false;
	return true;
}

SEC("iter/task_file")
int live_vms(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	__u32 tgid;

	if (!task || !file)
		return 0;
	tgid = task->tgid;
	if (!bpf_map_lookup_elem(&vmm_pids, &tgid))
		return 0;
	if (!is_kvm_vm(file))
		return 0;
	BPF_SEQ_PRINTF(seq, "%u %u\n", tgid, ctx->fd);
	return 0;
}
