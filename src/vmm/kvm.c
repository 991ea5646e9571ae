/* SPDX-License-Identifier: MIT */
/* One KVM VM with one vCPU and memfd-backed RAM at GPA 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
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

static int map_memory(struct vm *vm, uint64_t mem_size)
{
	struct kvm_userspace_memory_region region = { 0 };

	vm->mem_fd = memfd_create("sbx-guest-ram", MFD_CLOEXEC);
	if (vm->mem_fd < 0)
		return -errno;
	if (ftruncate(vm->mem_fd, (off_t)mem_size))
		return -errno;
	vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->mem_fd, 0);
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		return -errno;
	}
	vm->mem_size = mem_size;

	region.slot = 0;
	region.guest_phys_addr = 0;
	region.memory_size = mem_size;
	region.userspace_addr = (uint64_t)(uintptr_t)vm->mem;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region))
		return -errno;
	return 0;
}

int vm_create(struct vm *vm, uint64_t mem_size, const char **step)
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
	ret = map_memory(vm, mem_size);
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
