/* SPDX-License-Identifier: MIT */
/*
 * Confinement of one sbx-vmm process: namespaces, resource limits, an
 * unprivileged user, no capabilities, no_new_privs and a seccomp filter.
 */
#ifndef SBX_VMM_CONFINE_H
#define SBX_VMM_CONFINE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vmm;

#define CONFINE_DEFAULT_USER "sbx-vmm"

/*
 * File descriptors beyond the highest one open at confinement time that
 * RLIMIT_NOFILE leaves room for. A snapshot opens one (its temporary
 * file), or two when its directory is not the --snapshot-dir.
 */
#define CONFINE_FD_MARGIN 8

/*
 * Address space that RLIMIT_AS leaves on top of what is mapped at
 * confinement time (guest RAM included). The run loop needed 31.8 MiB
 * more at most, measured (VmPeak) with a full exec queue (256 commands of
 * 65000 bytes) and a snapshot of it, for 16 MiB and 4 GiB guests. The
 * rest is headroom for malloc's rounding.
 */
#define CONFINE_AS_MARGIN (64ull << 20)

/* Decisions of confine_begin(), which confine_apply() acts on. */
struct confine {
	bool active;	/* confine_begin() ran: confine_apply() must run */
	bool root;	/* euid 0: namespaces and the user change apply */
	uid_t uid;	/* the --vmm-user to become, when root */
	gid_t gid;
};

/*
 * First step, before the VM exists: look up the --vmm-user and, as root,
 * move into new mount, network and IPC namespaces with private mount
 * propagation. Without root it logs once that it skips both. Returns 0,
 * or a negative errno with `err` naming the failed step and the fix.
 */
int confine_begin(struct vmm *vmm, char *err, size_t err_size);

/*
 * Last step before the first KVM_RUN, once every file the VMM needs is
 * open: set the resource limits, hand the --snapshot-dir to the VMM user,
 * drop every capability, become the VMM user (as root), set
 * no_new_privs and install the seccomp filter. Returns 0, or a negative
 * errno with `err` set as for confine_begin().
 */
int confine_apply(struct vmm *vmm, char *err, size_t err_size);

#endif
