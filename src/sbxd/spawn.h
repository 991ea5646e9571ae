/* SPDX-License-Identifier: MIT */
/* Fork and exec of one sbx-vmm with its control socket on fd 3. */
#ifndef SBXD_SPAWN_H
#define SBXD_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

struct spawn_request {
	const char *vmm;
	const char *guest;
	const char *id;
	const char *args;	/* "" for none */
	unsigned int memory_mib;
	unsigned int boot_delay_ms;
	bool ignore_stop;
	const char *console_path;	/* stdout and stderr, appended */
	/*
	 * A snapshot file to continue with --restore, or NULL to boot the
	 * guest. The file sets guest, memory, args, boot delay and
	 * ignore_stop, so those are not passed with it.
	 */
	const char *restore;
	bool verify_ram;		/* --verify-ram, with restore only */
	const char *snapshot_dir;	/* --snapshot-dir, or NULL */
	/*
	 * A pidfd of sbxd itself, or -1. In its own PID namespace the VMM's
	 * parent pid reads as 0, so the child polls this to check that sbxd
	 * lives.
	 */
	int parent_pidfd;
};

struct spawn_result {
	pid_t pid;
	int pidfd;	/* CLOEXEC */
	int ctl_fd;	/* sbxd's end of the socketpair: CLOEXEC, NONBLOCK */
};

/*
 * Spawn sbx-vmm. As root, it becomes pid 1 of a new PID namespace.
 * Returns 0 or a negative errno; nothing is left open on failure.
 */
int spawn_vmm(const struct spawn_request *request, struct spawn_result *out);

#endif
