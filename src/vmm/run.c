/* SPDX-License-Identifier: MIT */
/* The vCPU loop: run the guest and turn each KVM exit into an action. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "sbx/guest.h"
#include "vmm/vmm.h"

#define MIB (1024 * 1024)

volatile sig_atomic_t vmm_signalled;

uint64_t vmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

uint64_t vmm_guest_ns(const struct vmm *vmm)
{
	uint64_t host = vmm->paused ? vmm->paused_at_ns : vmm_now_ns();

	return host + (uint64_t)vmm->clock_offset_ns;
}

bool vmm_pause(struct vmm *vmm)
{
	if (vmm->paused)
		return false;
	vmm->paused = true;
	vmm->paused_at_ns = vmm_now_ns();
	return true;
}

bool vmm_resume(struct vmm *vmm)
{
	if (!vmm->paused)
		return false;
	/* Hide the paused time from the guest clock. */
	vmm->clock_offset_ns -= (int64_t)(vmm_now_ns() - vmm->paused_at_ns);
	vmm->paused = false;
	return true;
}

void vmm_wait_resumed(struct vmm *vmm)
{
	while (vmm->paused && !vmm->ended)
		ctl_poll(vmm, -1);
}

void vmm_log(const struct vmm *vmm, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sbx-vmm %s: %s\n", vmm->cfg->id, line);
}

const char *vmm_reason_name(uint32_t reason)
{
	switch (reason) {
	case SBX_EXIT_GUEST:
		return "guest exit";
	case SBX_EXIT_STOPPED:
		return "stopped";
	case SBX_EXIT_TRIPLE_FAULT:
		return "triple fault";
	case SBX_EXIT_EMULATION:
		return "emulation error";
	case SBX_EXIT_HLT:
		return "hlt";
	case SBX_EXIT_BAD_PORT:
		return "bad port";
	case SBX_EXIT_BAD_HYPERCALL:
		return "bad hypercall";
	case SBX_EXIT_BAD_ACCESS:
		return "bad access";
	case SBX_EXIT_VMM_ERROR:
		return "vmm error";
	}
	return "unknown";
}

void vmm_end(struct vmm *vmm, uint32_t reason, int32_t code, uint64_t address,
	     const char *fmt, ...)
{
	va_list ap;

	if (vmm->ended)
		return;
	vmm->ended = true;
	vmm->exit.reason = reason;
	vmm->exit.exit_code = code;
	vmm->exit.address = address;
	vmm->exit.rip = vmm->started ? vm_rip(&vmm->vm) : 0;
	va_start(ap, fmt);
	vsnprintf(vmm->exit.message, sizeof(vmm->exit.message), fmt, ap);
	va_end(ap);
}

int vmm_exit_status(const struct vmm *vmm)
{
	switch (vmm->exit.reason) {
	case SBX_EXIT_GUEST:
		return vmm->exit.exit_code & 0xff;
	case SBX_EXIT_STOPPED:
		/* Standalone: the command's code, not the guest's exit 0. */
		if (vmm->cfg->control_fd < 0 && vmm->command_replied)
			return vmm->command_code & 0xff;
		return vmm->exit.exit_code & 0xff;
	case SBX_EXIT_VMM_ERROR:
		return SBX_VMM_STATUS_ERROR;
	default:
		return SBX_VMM_STATUS_CRASH;
	}
}

static void handle_io(struct vmm *vmm)
{
	const struct kvm_run *run = vmm->vm.run;
	uint32_t gpa;

	if (run->io.port != SBX_HC_PORT) {
		vmm_end(vmm, SBX_EXIT_BAD_PORT, -1, run->io.port,
			"guest used I/O port 0x%x (%s, %u bytes); only port 0x%x is served",
			run->io.port,
			run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
			run->io.size, SBX_HC_PORT);
		return;
	}
	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4 ||
	    run->io.count != 1) {
		vmm_end(vmm, SBX_EXIT_BAD_HYPERCALL, -1, run->io.port,
			"hypercall port 0x%x used with %s of %u bytes x %u; "
			"expected one 4-byte out (outl)",
			SBX_HC_PORT,
			run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
			run->io.size, run->io.count);
		return;
	}
	memcpy(&gpa, (const uint8_t *)run + run->io.data_offset, sizeof(gpa));
	hc_dispatch(vmm, gpa);
}

static void handle_exit(struct vmm *vmm)
{
	const struct kvm_run *run = vmm->vm.run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(vmm);
		break;
	case KVM_EXIT_MMIO:
		vmm_end(vmm, SBX_EXIT_BAD_ACCESS, -1, run->mmio.phys_addr,
			"guest %s %u bytes at GPA 0x%llx, outside guest RAM (%" PRIu64
			" MiB)",
			run->mmio.is_write ? "wrote" : "read", run->mmio.len,
			(unsigned long long)run->mmio.phys_addr,
			vmm->vm.mem_size / MIB);
		break;
	case KVM_EXIT_SHUTDOWN:
		vmm_end(vmm, SBX_EXIT_TRIPLE_FAULT, -1, 0,
			"the guest took an exception with no IDT to handle it");
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		vmm_end(vmm, SBX_EXIT_EMULATION, -1, 0,
			"KVM could not emulate a guest instruction (internal error, suberror %u)",
			run->internal.suberror);
		break;
	case KVM_EXIT_HLT:
		vmm_end(vmm, SBX_EXIT_HLT, -1, 0,
			"guest halted (HLT) with no way to wake it");
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		vmm_end(vmm, SBX_EXIT_TRIPLE_FAULT, -1, 0,
			"guest requested a system event (type %u)",
			run->system_event.type);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"KVM failed to enter the guest (hardware reason 0x%llx)",
			(unsigned long long)
				run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTR:
		break;
	default:
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"unexpected KVM exit reason %u", run->exit_reason);
		break;
	}
}

/*
 * A control message interrupts KVM_RUN with SIGIO (ctl_enable_kick), so
 * PAUSE stops even a guest that spins without hypercalls.
 * NOTE: STOP still reaches the guest only at its next WAIT_COMMAND or
 * SLEEP_NS; sbxd ends a guest that never makes one with SIGKILL after its
 * grace period.
 */
void vmm_run(struct vmm *vmm)
{
	vmm->started = true;
	if (vmm->hc.active)
		hc_execute(vmm);
	while (!vmm->ended) {
		vmm_wait_resumed(vmm);
		if (vmm->ended)
			break;
		if (ioctl(vmm->vm.vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* A signal arrived: a stop signal or SIGIO from
				 * the control channel. */
				ctl_poll(vmm, 0);
				continue;
			}
			vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
				"KVM_RUN failed: %s", strerror(errno));
			break;
		}
		handle_exit(vmm);
	}
}
