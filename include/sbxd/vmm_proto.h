/* SPDX-License-Identifier: MIT */
/*
 * Control channel between sbxd and one sbx-vmm: a SOCK_SEQPACKET socket
 * inherited by the VMM as fd 3. Every message is one packet: a struct
 * sbx_msg header followed by `len` bytes of payload. Integers are host
 * endian because both ends run on the same machine.
 */
#ifndef SBXD_VMM_PROTO_H
#define SBXD_VMM_PROTO_H

#include <stdint.h>

#define SBX_CTL_FD 3
#define SBX_MSG_PAYLOAD_MAX 65536 /* also the cap on one exec's output */
#define SBX_MSG_MAX (sizeof(struct sbx_msg) + SBX_MSG_PAYLOAD_MAX)

enum sbx_msg_type {
	/* sbxd -> VMM */
	SBX_MSG_EXEC = 1, /* seq, arg = timeout_ms (0: none), payload = text */
	SBX_MSG_STOP = 2, /* ask the guest to stop gracefully */
	SBX_MSG_PAUSE = 3,    /* stop the vCPU; the reply is PAUSED */
	SBX_MSG_RESUME = 4,   /* run the vCPU again; the reply is RESUMED */
	SBX_MSG_SNAPSHOT = 5, /* seq; payload = absolute path, NUL-terminated.
			       * Pauses first; the reply is SNAPSHOT_DONE */

	/* VMM -> sbxd */
	SBX_MSG_READY = 64,	  /* arg = ns from VMM start to guest READY */
	SBX_MSG_EXEC_RESULT = 65, /* seq, arg = exit code (int32), payload = output */
	SBX_MSG_EXITED = 66,	  /* payload = struct sbx_exit_info */
	SBX_MSG_LOG = 67,	  /* payload = one line of text for sbxd's log */
	SBX_MSG_PAUSED = 68,	  /* seq echoed; arg = 0, or 1 if already paused */
	SBX_MSG_RESUMED = 69,	  /* seq echoed; arg = 0, or 1 if not paused */
	SBX_MSG_SNAPSHOT_DONE = 70, /* seq echoed; arg = 0 or -errno; payload =
				     * path or error text, NUL-terminated */
};

struct sbx_msg {
	uint32_t type;
	uint32_t len;	/* payload bytes after this header */
	uint64_t seq;	/* exec request id, echoed in EXEC_RESULT */
	int64_t arg;
};

/* Reason a guest ended, sent in SBX_MSG_EXITED just before the VMM exits. */
enum sbx_exit_reason {
	SBX_EXIT_GUEST = 1,	   /* EXIT hypercall; code is the guest's */
	SBX_EXIT_STOPPED = 2,	   /* guest exited after a stop request */
	SBX_EXIT_TRIPLE_FAULT = 3, /* KVM_EXIT_SHUTDOWN */
	SBX_EXIT_EMULATION = 4,	   /* KVM_EXIT_INTERNAL_ERROR, emulation */
	SBX_EXIT_HLT = 5,
	SBX_EXIT_BAD_PORT = 6,	   /* port I/O other than SBX_HC_PORT */
	SBX_EXIT_BAD_HYPERCALL = 7, /* unknown op or address outside RAM */
	SBX_EXIT_BAD_ACCESS = 8,   /* MMIO: access outside guest RAM */
	SBX_EXIT_VMM_ERROR = 9,	   /* KVM ioctl failed or similar */
};

struct sbx_exit_info {
	uint32_t reason;    /* enum sbx_exit_reason */
	int32_t exit_code;  /* guest exit code, or -1 for a crash */
	uint64_t rip;	    /* guest RIP at the end */
	uint64_t address;   /* faulting GPA or port, where it applies */
	char message[256];  /* human-readable, NUL-terminated */
};

/*
 * Exit status of the sbx-vmm process: the guest's exit code (0..255) for
 * SBX_EXIT_GUEST and SBX_EXIT_STOPPED, otherwise one of these.
 */
#define SBX_VMM_STATUS_CRASH 70 /* guest crashed; see sbx_exit_info */
#define SBX_VMM_STATUS_USAGE 2	/* bad flags or unusable guest ELF */
#define SBX_VMM_STATUS_ERROR 71 /* host-side failure (KVM, memory) */

#endif
