/* SPDX-License-Identifier: MIT */
/* State of one sbx-vmm run: the VM, the command queue and how it ended. */
#ifndef SBX_VMM_VMM_H
#define SBX_VMM_VMM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "sbx/guest.h"
#include "sbxd/vmm_proto.h"
#include "vmm/confine.h"
#include "vmm/kvm.h"

#define VMM_CONSOLE_MAX (1u << 20) /* guest WRITE bytes kept per VM */
#define VMM_EXEC_QUEUE_MAX 256	   /* queued exec requests per VM */

struct vmm_config {
	const char *guest_path;
	uint64_t mem_size;
	const char *id;
	const char *args;
	uint32_t boot_delay_ms;
	bool ignore_stop;
	bool cpl0;	     /* enter at CPL0: kernel-mode test guests only */
	int control_fd;	     /* -1 in standalone mode */
	const char *command; /* standalone: command text after "--", or NULL */
	const char *restore_path; /* --restore: snapshot file to resume */
	bool verify_ram;	  /* --verify-ram: check the RAM checksum */
	const char *snapshot_to;  /* standalone --snapshot-to PATH */
	const char *snapshot_dir; /* --snapshot-dir: absolute, or NULL */
	bool confine;		  /* confine before the first KVM_RUN */
	const char *vmm_user;	  /* --vmm-user: the user to become */
	const char *test_syscall; /* --test-forbidden-syscall, or NULL */
};

/* One command waiting for, or being run by, the guest. */
struct vmm_exec {
	struct vmm_exec *next;
	uint64_t seq;
	uint32_t len;
	char text[];
};

/*
 * The hypercall being executed: taken from the guest at a KVM_EXIT_IO,
 * with its `ret` not yet written. A snapshot stores it, and a restored VMM
 * executes it again before it runs the vCPU, because the guest is still
 * waiting for that `ret`.
 */
struct vmm_hypercall {
	bool active;
	uint64_t gpa;			/* where the guest's request lives */
	struct sbx_hypercall request;	/* copy taken at the exit */
	bool deadline_set;		/* SLEEP_NS: deadline_ns is valid */
	uint64_t deadline_ns;		/* SLEEP_NS end, on the guest clock */
};

struct vmm {
	const struct vmm_config *cfg;
	struct vm vm;
	struct confine confine;
	int snapshot_dir_fd;	/* cfg->snapshot_dir, opened early, or -1 */
	int pagemap_fd;		/* /proc/self/pagemap, opened early, or -1 */
	uint64_t start_ns;
	sigset_t run_mask; /* signal mask while blocked in KVM_RUN or ppoll */

	/*
	 * Guest clock (CLOCK_NS) = host CLOCK_MONOTONIC + clock_offset_ns. The
	 * offset is 0 at a cold start, grows more negative by the time spent
	 * paused, and is set at a restore so that the clock continues from
	 * its value at the snapshot.
	 */
	int64_t clock_offset_ns;
	bool paused;		/* PAUSE received: the vCPU must not run */
	uint64_t paused_at_ns;	/* host clock when paused */
	struct vmm_hypercall hc;

	bool ready;
	bool stop_pending;   /* a stop request not yet given to the guest */
	bool stop_delivered; /* the guest has been given a stop */

	struct vmm_exec *queue_head, *queue_tail;
	unsigned int queue_len;
	struct vmm_exec *running; /* delivered, waiting for REPLY */

	/* Standalone mode: the command has been given to the guest. */
	bool command_delivered;
	bool command_replied;
	int32_t command_code;

	uint64_t console_bytes;
	bool console_capped;

	bool control_closed;
	bool started; /* KVM_RUN has been called, so RIP is meaningful */
	bool ended;
	struct sbx_exit_info exit;
};

/* Set by the SIGINT/SIGTERM handler; turned into a stop request. */
extern volatile sig_atomic_t vmm_signalled;

uint64_t vmm_now_ns(void);

/* Guest clock now: frozen while paused. */
uint64_t vmm_guest_ns(const struct vmm *vmm);

/*
 * Pause or resume the guest. Both return false when the VM already was in
 * that state. While paused, the vCPU does not run and no hypercall makes
 * progress; control messages are still served.
 */
bool vmm_pause(struct vmm *vmm);
bool vmm_resume(struct vmm *vmm);

/* Block, serving control messages, until the VM is resumed or ends. */
void vmm_wait_resumed(struct vmm *vmm);

/* Log one line to stderr, prefixed with the program and sandbox id. */
__attribute__((format(printf, 2, 3))) void
vmm_log(const struct vmm *vmm, const char *fmt, ...);

/* Name of an enum sbx_exit_reason value, for messages. */
const char *vmm_reason_name(uint32_t reason);

/* Record how the guest ended. Only the first call counts. */
__attribute__((format(printf, 5, 6))) void
vmm_end(struct vmm *vmm, uint32_t reason, int32_t code, uint64_t address,
	const char *fmt, ...);

/*
 * Run the vCPU until the guest ends; vmm->exit records how. A hypercall
 * restored from a snapshot (vmm->hc.active) is finished first.
 */
void vmm_run(struct vmm *vmm);

/* Exit status for the sbx-vmm process, as defined in vmm_proto.h. */
int vmm_exit_status(const struct vmm *vmm);

/*
 * Control channel (control.c). ctl_poll() waits up to `timeout_ns` (-1:
 * forever, 0: just check) for a control message or a signal and handles
 * what arrived. In standalone mode it waits for signals only.
 */
void ctl_poll(struct vmm *vmm, int64_t timeout_ns);

/*
 * Make the kernel send SIGIO to this thread whenever the control channel
 * becomes readable, so that a message interrupts KVM_RUN even while the
 * guest runs without hypercalls. SIGIO must have a handler and be blocked
 * outside KVM_RUN and ppoll() (vmm->run_mask). Returns 0 or -errno.
 */
int ctl_enable_kick(struct vmm *vmm);

void ctl_send(struct vmm *vmm, uint32_t type, uint64_t seq, int64_t arg,
	      const void *payload, uint32_t len);
void ctl_free_queue(struct vmm *vmm);

/*
 * Hypercalls (hypercall.c). hc_range_ok() checks that [gpa, gpa + len)
 * lies inside guest RAM of `mem_size` bytes, without overflowing.
 */
bool hc_range_ok(uint64_t mem_size, uint64_t gpa, uint64_t len);
void hc_dispatch(struct vmm *vmm, uint64_t gpa);

/* Execute vmm->hc (active) and write its result into guest memory. */
void hc_execute(struct vmm *vmm);

#endif
