// SPDX-License-Identifier: MIT
/* Minimal setup that runs a CPL3 guest to its first port exit. */
#define _GNU_SOURCE
#include "floorvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sbx/guest.h"

#define PTE_PRESENT (1ull << 0)
#define PTE_WRITE (1ull << 1)
#define PTE_USER (1ull << 2)
#define PTE_HUGE (1ull << 7)

#define CR0_PE (1ull << 0)
#define CR0_PG (1ull << 31)
#define CR0_WP (1ull << 16)
#define CR4_PAE (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

/* IOPL 3 lets CPL3 code use `out`; bit 1 is reserved and must be set. */
#define RFLAGS_IOPL3 0x3002ull

#define CODE_GPA SBX_GUEST_LOAD_MIN

/* mov dx, SBX_HC_PORT; out dx, eax; jmp $ */
static const uint8_t guest_code[] = {
	0x66, 0xba, SBX_HC_PORT & 0xff, SBX_HC_PORT >> 8,
	0xef,
	0xeb, 0xfe,
};

/* Null, unused kernel code and data, user code (L=1) and data, DPL 3. */
static const uint64_t gdt[] = {
	0,
	0x00209a0000000000ull,
	0x0000920000000000ull,
	0x0020fa0000000000ull,
	0x0000f20000000000ull,
};

/* Identity-map the first GiB with 2 MiB user pages. */
static void write_memory(uint8_t *mem)
{
	uint64_t *pml4 = (uint64_t *)(mem + SBX_PML4_GPA);
	uint64_t *pdpt = (uint64_t *)(mem + SBX_PDPT_GPA);
	uint64_t *pd = (uint64_t *)(mem + SBX_PD_GPA);
	uint64_t flags = PTE_PRESENT | PTE_WRITE | PTE_USER;

	pml4[0] = SBX_PDPT_GPA | flags;
	pdpt[0] = SBX_PD_GPA | flags;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | flags | PTE_HUGE;
	memcpy(mem + SBX_GDT_GPA, gdt, sizeof(gdt));
	memcpy(mem + CODE_GPA, guest_code, sizeof(guest_code));
}

static void user_segment(struct kvm_segment *seg, uint16_t selector,
			 uint8_t type, uint8_t code64)
{
	*seg = (struct kvm_segment){
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.dpl = 3,
		.db = code64 ? 0 : 1,
		.s = 1,
		.l = code64,
		.g = 1,
	};
}

static int setup_vcpu(struct floorvm *vm)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { 0 };

	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs))
		return -errno;
	user_segment(&sregs.cs, SBX_CODE_SELECTOR, 0xb, 1);
	user_segment(&sregs.ds, SBX_DATA_SELECTOR, 0x3, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = SBX_GDT_GPA;
	sregs.gdt.limit = sizeof(gdt) - 1;
	sregs.cr3 = SBX_PML4_GPA;
	sregs.cr4 = CR4_PAE;
	sregs.cr0 = CR0_PE | CR0_WP | CR0_PG;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs))
		return -errno;

	regs.rip = CODE_GPA;
	regs.rflags = RFLAGS_IOPL3;
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs))
		return -errno;
	return 0;
}

static int map_ram(struct floorvm *vm, size_t mem_size)
{
	struct kvm_userspace_memory_region region = { 0 };

	vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		return -errno;
	}
	vm->mem_size = mem_size;
	write_memory(vm->mem);

	region.memory_size = mem_size;
	region.userspace_addr = (uint64_t)(uintptr_t)vm->mem;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region))
		return -errno;
	return 0;
}

static int run_to_port_exit(struct floorvm *vm)
{
	struct kvm_run *run = vm->run;

	if (ioctl(vm->vcpu_fd, KVM_RUN, 0))
		return -errno;
	if (run->exit_reason != KVM_EXIT_IO ||
	    run->io.direction != KVM_EXIT_IO_OUT || run->io.port != SBX_HC_PORT)
		return -EPROTO;
	return 0;
}

int floorvm_start(struct floorvm *vm, size_t mem_size, const char **step)
{
	int size;
	int ret;

	*vm = (struct floorvm){ .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1 };

	*step = "open /dev/kvm";
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return -errno;
	*step = "KVM_CREATE_VM";
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		goto err_errno;
	*step = "map guest RAM";
	ret = map_ram(vm, mem_size);
	if (ret)
		goto err;
	*step = "KVM_CREATE_VCPU";
	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		goto err_errno;
	*step = "map the vCPU run area";
	size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size <= 0)
		goto err_errno;
	vm->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		goto err_errno;
	}
	vm->run_size = (size_t)size;
	*step = "set the vCPU registers";
	ret = setup_vcpu(vm);
	if (ret)
		goto err;
	*step = "run the guest to its first port exit";
	ret = run_to_port_exit(vm);
	if (ret)
		goto err;
	return 0;

err_errno:
	ret = errno ? -errno : -EIO;
err:
	floorvm_close(vm);
	return ret;
}

void floorvm_close(struct floorvm *vm)
{
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	*vm = (struct floorvm){ .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1 };
}
