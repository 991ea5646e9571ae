/* SPDX-License-Identifier: MIT */
/* One KVM VM with one vCPU and RAM at GPA 0, and its vCPU state. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sbx/guest.h"
#include "vmm/kvm.h"

#define PTE_PRESENT (1ull << 0)
#define PTE_WRITE (1ull << 1)
#define PTE_USER (1ull << 2)
#define PTE_HUGE (1ull << 7) /* page directory entry maps a 2 MiB page */

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

#define KERNEL_CODE_SELECTOR 0x08 /* GDT entry 1, RPL 0 */
#define KERNEL_DATA_SELECTOR 0x10 /* GDT entry 2, RPL 0 */

#define PD_COUNT 4 /* page directories at SBX_PD_GPA, one per GiB */
#define GIB (1ull << 30)

/* GDT: null, kernel code (L=1) and data, user code (L=1) and data. */
static const uint64_t gdt[] = {
	0,
	0x00209a0000000000ull,
	0x0000920000000000ull,
	0x0020fa0000000000ull,
	0x0000f20000000000ull,
};

static int set_cpuid(struct vm *vm)
{
	struct kvm_cpuid2 *cpuid;
	int nent = 128, ret;

	for (;;) {
		cpuid = calloc(1, sizeof(*cpuid) +
					  nent * sizeof(cpuid->entries[0]));
		if (!cpuid)
			return -ENOMEM;
		cpuid->nent = nent;
		ret = ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid);
		if (ret == 0)
			break;
		ret = -errno;
		free(cpuid);
		if (ret != -E2BIG || nent >= 4096)
			return ret;
		nent *= 2;
	}
	ret = ioctl(vm->vcpu_fd, KVM_SET_CPUID2, cpuid) ? -errno : 0;
	free(cpuid);
	return ret;
}

/* Back guest RAM with a new memfd (`fd` < 0) or a private file mapping. */
static int map_memory(struct vm *vm, uint64_t mem_size, int fd,
		      uint64_t offset)
{
	struct kvm_userspace_memory_region region = { 0 };
	void *mem;

	if (fd < 0) {
		vm->mem_fd = memfd_create("sbx-guest-ram", MFD_CLOEXEC);
		if (vm->mem_fd < 0)
			return -errno;
		if (ftruncate(vm->mem_fd, (off_t)mem_size))
			return -errno;
		mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			   vm->mem_fd, 0);
	} else {
		vm->mem_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (vm->mem_fd < 0)
			return -errno;
		vm->mem_private = true;
		vm->mem_offset = offset;
		mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			   fd, (off_t)offset);
	}
	if (mem == MAP_FAILED)
		return -errno;
	vm->mem = mem;
	vm->mem_size = mem_size;

	region.slot = 0;
	region.guest_phys_addr = 0;
	region.memory_size = mem_size;
	region.userspace_addr = (uint64_t)(uintptr_t)vm->mem;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region))
		return -errno;
	return 0;
}

static int create(struct vm *vm, uint64_t mem_size, int fd, uint64_t offset,
		  const char **step)
{
	int mmap_size, ret;

	*vm = (struct vm){ .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1,
			   .mem_fd = -1 };

	*step = "open /dev/kvm";
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return -errno;
	*step = "check the KVM API version";
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		ret = -ENOTSUP;
		goto err;
	}
	*step = "create the VM (KVM_CREATE_VM)";
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		goto err_errno;
	*step = "map guest RAM";
	ret = map_memory(vm, mem_size, fd, offset);
	if (ret)
		goto err;
	*step = "create the vCPU (KVM_CREATE_VCPU)";
	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		goto err_errno;
	*step = "set the vCPU's CPUID";
	ret = set_cpuid(vm);
	if (ret)
		goto err;
	*step = "map the vCPU run area";
	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size <= 0)
		goto err_errno;
	vm->run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		goto err_errno;
	}
	vm->run_size = (size_t)mmap_size;
	return 0;

err_errno:
	ret = errno ? -errno : -EIO;
err:
	vm_destroy(vm);
	return ret;
}

int vm_create(struct vm *vm, uint64_t mem_size, const char **step)
{
	return create(vm, mem_size, -1, 0, step);
}

int vm_create_from_file(struct vm *vm, int fd, uint64_t offset,
			uint64_t mem_size, const char **step)
{
	return create(vm, mem_size, fd, offset, step);
}

/*
 * Identity-map the first 4 GiB with 2 MiB user pages. GPAs above RAM stay
 * mapped so that a stray access ends as a named MMIO exit, not a fault.
 */
static void write_page_tables(struct vm *vm)
{
	uint64_t *pml4 = (uint64_t *)(vm->mem + SBX_PML4_GPA);
	uint64_t *pdpt = (uint64_t *)(vm->mem + SBX_PDPT_GPA);
	uint64_t flags = PTE_PRESENT | PTE_WRITE | PTE_USER;

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = SBX_PDPT_GPA | flags;
	for (uint64_t g = 0; g < PD_COUNT; g++) {
		uint64_t pd_gpa = SBX_PD_GPA + g * 4096;
		uint64_t *pd = (uint64_t *)(vm->mem + pd_gpa);

		pdpt[g] = pd_gpa | flags;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = (g * GIB + (i << 21)) | flags | PTE_HUGE;
	}
}

static void set_segment(struct kvm_segment *seg, uint16_t selector,
			uint8_t type, uint8_t code64, uint8_t dpl)
{
	*seg = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.dpl = dpl,
		.db = code64 ? 0 : 1,
		.s = 1,
		.l = code64,
		.g = 1,
	};
}

static int set_sregs(struct vm *vm, bool cpl0)
{
	struct kvm_sregs sregs;

	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs))
		return -errno;
	if (cpl0) {
		set_segment(&sregs.cs, KERNEL_CODE_SELECTOR, 0xb, 1, 0);
		set_segment(&sregs.ds, KERNEL_DATA_SELECTOR, 0x3, 0, 0);
	} else {
		set_segment(&sregs.cs, SBX_CODE_SELECTOR, 0xb, 1, 3);
		set_segment(&sregs.ds, SBX_DATA_SELECTOR, 0x3, 0, 3);
	}
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;

	/*
	 * No IDT: any exception escalates to a triple fault, which the VMM
	 * reports. TR keeps the state KVM resets it to; on PVM hosts, a TR
	 * limited to a 104-byte TSS made every CPL3 `out` raise #GP.
	 */
	sregs.gdt.base = SBX_GDT_GPA;
	sregs.gdt.limit = sizeof(gdt) - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;

	sregs.cr3 = SBX_PML4_GPA;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs))
		return -errno;
	return 0;
}

int vm_setup_cpu(struct vm *vm, uint64_t entry, uint64_t boot_info,
		 bool cpl0, const char **step)
{
	struct kvm_regs regs = { 0 };
	int ret;

	memcpy(vm->mem + SBX_GDT_GPA, gdt, sizeof(gdt));
	write_page_tables(vm);

	*step = "set the vCPU's segment and control registers";
	ret = set_sregs(vm, cpl0);
	if (ret)
		return ret;

	/* RSP as right after a call: 8 bytes below a 16-byte boundary. */
	regs.rip = entry;
	regs.rdi = boot_info;
	regs.rsp = (vm->mem_size & ~15ull) - 8;
	/* IOPL 3 lets CPL3 use port I/O. Bit 1 is always set. */
	regs.rflags = 0x3002;
	*step = "set the vCPU's registers";
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs))
		return -errno;
	return 0;
}

int vm_set_signal_mask(struct vm *vm, const sigset_t *during_run)
{
	/* The header plus the kernel's 64-bit sigset, as x86_64 defines it. */
	uint64_t buf[2] = { 0 };
	struct kvm_signal_mask *mask = (struct kvm_signal_mask *)buf;

	mask->len = 8;
	memcpy(mask->sigset, during_run, 8);
	if (ioctl(vm->vcpu_fd, KVM_SET_SIGNAL_MASK, mask))
		return -errno;
	return 0;
}

int vm_complete_io(struct vm *vm)
{
	int ret;

	vm->run->immediate_exit = 1;
	ret = ioctl(vm->vcpu_fd, KVM_RUN, 0);
	vm->run->immediate_exit = 0;
	if (ret == 0)
		return -EIO; /* KVM made a new exit instead of returning */
	if (errno != EINTR)
		return -errno;
	return 0;
}

/*
 * MSRs kept across a snapshot: the syscall, segment-base and TSC MSRs that
 * a 64-bit guest can depend on. KVM on a PVM host with Linux 6.18 reads and
 * writes every one. A host that rejects one at snapshot time leaves it out
 * of the file; one that rejects it at restore fails the restore, naming it.
 */
static const uint32_t saved_msrs[] = {
	0x00000010, /* IA32_TSC */
	0x00000174, /* IA32_SYSENTER_CS */
	0x00000175, /* IA32_SYSENTER_ESP */
	0x00000176, /* IA32_SYSENTER_EIP */
	0x00000277, /* IA32_PAT */
	0xc0000080, /* EFER */
	0xc0000081, /* STAR */
	0xc0000082, /* LSTAR */
	0xc0000083, /* CSTAR */
	0xc0000084, /* SFMASK */
	0xc0000100, /* FS_BASE */
	0xc0000101, /* GS_BASE */
	0xc0000102, /* KERNEL_GS_BASE */
	0xc0000103, /* TSC_AUX */
};

_Static_assert(sizeof(saved_msrs) / sizeof(saved_msrs[0]) <= VM_MSR_MAX,
	       "struct vm_cpu_state has room for VM_MSR_MAX MSRs");

/* KVM_GET_MSRS and KVM_SET_MSRS take a header and a run of entries. */
union msr_buffer {
	struct kvm_msrs msrs;
	uint8_t storage[sizeof(struct kvm_msrs) +
			VM_MSR_MAX * sizeof(struct kvm_msr_entry)];
};

static int get_msrs(struct vm *vm, struct vm_cpu_state *state)
{
	union msr_buffer buf;
	int ret;

	state->msr_count = 0;
	for (size_t i = 0; i < sizeof(saved_msrs) / sizeof(saved_msrs[0]);
	     i++) {
		memset(&buf, 0, sizeof(buf));
		buf.msrs.nmsrs = 1;
		buf.msrs.entries[0].index = saved_msrs[i];
		/* KVM_GET_MSRS returns how many entries it read. */
		ret = ioctl(vm->vcpu_fd, KVM_GET_MSRS, &buf);
		if (ret < 0)
			return -errno;
		if (ret == 1)
			state->msrs[state->msr_count++] = buf.msrs.entries[0];
	}
	return 0;
}

static int set_msrs(struct vm *vm, const struct vm_cpu_state *state,
		    const char **step)
{
	static char failed_step[96]; /* *step must outlive this call */
	union msr_buffer buf;
	int ret;

	if (state->msr_count > VM_MSR_MAX)
		return -EINVAL;
	memset(&buf, 0, sizeof(buf));
	buf.msrs.nmsrs = state->msr_count;
	memcpy(buf.storage + sizeof(buf.msrs), state->msrs,
	       state->msr_count * sizeof(state->msrs[0]));
	ret = ioctl(vm->vcpu_fd, KVM_SET_MSRS, &buf);
	if (ret < 0)
		return -errno;
	/* KVM stops at the first MSR it rejects and returns its position. */
	if ((uint32_t)ret < state->msr_count) {
		snprintf(failed_step, sizeof(failed_step),
			 "set MSR 0x%x to 0x%llx (KVM_SET_MSRS rejected it)",
			 state->msrs[ret].index,
			 (unsigned long long)state->msrs[ret].data);
		*step = failed_step;
		return -EINVAL;
	}
	return 0;
}

int vm_get_cpu_state(struct vm *vm, struct vm_cpu_state *state,
		     const char **step)
{
	memset(state, 0, sizeof(*state));
	*step = "read the vCPU's registers (KVM_GET_REGS)";
	if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &state->regs))
		return -errno;
	*step = "read the vCPU's segment registers (KVM_GET_SREGS)";
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &state->sregs))
		return -errno;
	*step = "read the vCPU's extended control registers (KVM_GET_XCRS)";
	if (ioctl(vm->vcpu_fd, KVM_GET_XCRS, &state->xcrs))
		return -errno;
	*step = "read the vCPU's pending events (KVM_GET_VCPU_EVENTS)";
	if (ioctl(vm->vcpu_fd, KVM_GET_VCPU_EVENTS, &state->events))
		return -errno;
	*step = "read the vCPU's debug registers (KVM_GET_DEBUGREGS)";
	if (ioctl(vm->vcpu_fd, KVM_GET_DEBUGREGS, &state->debugregs))
		return -errno;
	/* 4096 bytes hold the whole XSAVE area unless the VMM enabled a
	 * dynamic feature (AMX) with arch_prctl(), which sbx-vmm never does. */
	*step = "read the vCPU's FPU and vector state (KVM_GET_XSAVE)";
	if (ioctl(vm->vcpu_fd, KVM_GET_XSAVE, state->xsave))
		return -errno;
	*step = "read the vCPU's MSRs (KVM_GET_MSRS)";
	return get_msrs(vm, state);
}

int vm_set_cpu_state(struct vm *vm, const struct vm_cpu_state *state,
		     const char **step)
{
	int ret;

	/* Control registers and EFER first: the MSRs and the XSAVE area are
	 * checked against the mode they define. */
	*step = "set the vCPU's segment registers (KVM_SET_SREGS)";
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &state->sregs))
		return -errno;
	*step = "set the vCPU's MSRs (KVM_SET_MSRS)";
	ret = set_msrs(vm, state, step);
	if (ret)
		return ret;
	*step = "set the vCPU's registers (KVM_SET_REGS)";
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &state->regs))
		return -errno;
	*step = "set the vCPU's extended control registers (KVM_SET_XCRS)";
	if (ioctl(vm->vcpu_fd, KVM_SET_XCRS, &state->xcrs))
		return -errno;
	*step = "set the vCPU's FPU and vector state (KVM_SET_XSAVE)";
	if (ioctl(vm->vcpu_fd, KVM_SET_XSAVE, state->xsave))
		return -errno;
	*step = "set the vCPU's pending events (KVM_SET_VCPU_EVENTS)";
	if (ioctl(vm->vcpu_fd, KVM_SET_VCPU_EVENTS, &state->events))
		return -errno;
	*step = "set the vCPU's debug registers (KVM_SET_DEBUGREGS)";
	if (ioctl(vm->vcpu_fd, KVM_SET_DEBUGREGS, &state->debugregs))
		return -errno;
	return 0;
}

uint64_t vm_rip(struct vm *vm)
{
	struct kvm_regs regs;

	if (vm->vcpu_fd < 0 || ioctl(vm->vcpu_fd, KVM_GET_REGS, &regs))
		return 0;
	return regs.rip;
}

void vm_destroy(struct vm *vm)
{
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	if (vm->mem_fd >= 0)
		close(vm->mem_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	*vm = (struct vm){ .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1,
			   .mem_fd = -1 };
}
