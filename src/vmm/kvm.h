/* SPDX-License-Identifier: MIT */
/*
 * One KVM VM with one vCPU and RAM at GPA 0, backed by a memfd or, for a
 * restored VM, by a private mapping of the snapshot file.
 */
#ifndef SBX_VMM_KVM_H
#define SBX_VMM_KVM_H

#include <linux/kvm.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	/*
	 * The file behind guest RAM: a memfd mapped MAP_SHARED from offset
	 * 0, or for a restored VM the snapshot file mapped MAP_PRIVATE from
	 * mem_offset, so that guest writes stay in this process.
	 */
	int mem_fd;
	bool mem_private;
	uint64_t mem_offset;
	uint8_t *mem;	  /* guest RAM */
	uint64_t mem_size;
	struct kvm_run *run;
	size_t run_size;
};

/*
 * Open /dev/kvm, create the VM, its RAM and one vCPU. Returns 0 or a
 * negative errno; `step` names the failed step for the caller's message.
 */
int vm_create(struct vm *vm, uint64_t mem_size, const char **step);

/*
 * Like vm_create(), but guest RAM is a MAP_PRIVATE mapping of `mem_size`
 * bytes of `fd` at `offset` (page aligned): VMs restored from one file
 * share its page-cache pages until the guest writes to them. The VM keeps
 * a duplicate of `fd`, so the caller may close its own.
 */
int vm_create_from_file(struct vm *vm, int fd, uint64_t offset,
			uint64_t mem_size, const char **step);

/*
 * Write the GDT and page tables into RAM and load the 64-bit entry state:
 * CPL3 (CPL0 with `cpl0`), RIP `entry`, RDI `boot_info`, RSP just below
 * the top of RAM. Returns 0 or a negative errno, with `step` set as for
 * vm_create().
 */
int vm_setup_cpu(struct vm *vm, uint64_t entry, uint64_t boot_info,
		 bool cpl0, const char **step);

/* Use `during_run` as the signal mask inside KVM_RUN. Returns 0 or -errno. */
int vm_set_signal_mask(struct vm *vm, const sigset_t *during_run);

/*
 * Finish the port I/O of the last KVM_EXIT_IO without running guest code
 * (KVM_RUN with immediate_exit set), so that the registers read next are
 * consistent. KVM only completes an exit inside the next KVM_RUN. Returns
 * 0 or a negative errno.
 */
int vm_complete_io(struct vm *vm);

#define VM_MSR_MAX 16

/*
 * Architectural state of the vCPU, as stored in a snapshot file. Every
 * member has a fixed size and the layout has no padding, so the struct is
 * the on-disk record. Changing it needs a new snapshot format version.
 */
struct vm_cpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	uint32_t msr_count;	/* valid entries in msrs[] */
	uint32_t reserved;	/* zero */
	struct kvm_msr_entry msrs[VM_MSR_MAX];
	uint32_t xsave[1024];	/* the region of struct kvm_xsave */
};

/*
 * Read (vm_get_cpu_state) or load (vm_set_cpu_state) the vCPU state.
 * Returns 0 or a negative errno, with `step` naming the failed step.
 */
int vm_get_cpu_state(struct vm *vm, struct vm_cpu_state *state,
		     const char **step);
int vm_set_cpu_state(struct vm *vm, const struct vm_cpu_state *state,
		     const char **step);

/* Guest RIP now, or 0 when KVM_GET_REGS fails. */
uint64_t vm_rip(struct vm *vm);

void vm_destroy(struct vm *vm);

#endif
