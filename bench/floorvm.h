/* SPDX-License-Identifier: MIT */
/*
 * Minimal setup that runs a CPL3 guest to its first port exit. It opens
 * /dev/kvm, creates a VM, maps RAM, writes page tables, a GDT and two
 * instructions, creates one vCPU and runs it once. It shares no code with
 * src/vmm, so the floors do not depend on what they bound.
 */
#ifndef SBX_BENCH_FLOORVM_H
#define SBX_BENCH_FLOORVM_H

#include <stddef.h>
#include <stdint.h>

struct floorvm {
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	void *mem;
	size_t mem_size;
	void *run;
	size_t run_size;
};

/*
 * Create a VM with @mem_size bytes of anonymous RAM and run it until the
 * guest's `out` to SBX_HC_PORT exits. On error *@step names the failed
 * step; nothing is left open. Returns 0 or -errno (-EPROTO when the vCPU
 * stops for another reason).
 */
int floorvm_start(struct floorvm *vm, size_t mem_size, const char **step);

/* Close every file and mapping of @vm. */
void floorvm_close(struct floorvm *vm);

#endif
