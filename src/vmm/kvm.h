/* SPDX-License-Identifier: MIT */
/* One KVM VM with one vCPU and memfd-backed RAM at GPA 0. */
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
	int mem_fd;	  /* memfd holding guest RAM, shareable with sbxd */
	uint8_t *mem;	  /* guest RAM, MAP_SHARED from mem_fd */
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
 * Write the GDT and page tables into RAM and load the 64-bit entry state:
 * CPL3 (CPL0 with `cpl0`), RIP `entry`, RDI `boot_info`, RSP just below
 * the top of RAM. Returns 0 or a negative errno, with `step` set as for
 * vm_create().
 */
int vm_setup_cpu(struct vm *vm, uint64_t entry, uint64_t boot_info,
		 bool cpl0, const char **step);

/* Use `during_run` as the signal mask inside KVM_RUN. Returns 0 or -errno. */
int vm_set_signal_mask(struct vm *vm, const sigset_t *during_run);

/* Guest RIP now, or 0 when KVM_GET_REGS fails. */
uint64_t vm_rip(struct vm *vm);

void vm_destroy(struct vm *vm);

#endif
