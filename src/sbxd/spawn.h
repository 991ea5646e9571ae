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
};

struct spawn_result {
	pid_t pid;
	int pidfd;	/* CLOEXEC */
	int ctl_fd;	/* sbxd's end of the socketpair: CLOEXEC, NONBLOCK */
};

/* Returns 0 or a negative errno; nothing is left open on failure. */
int spawn_vmm(const struct spawn_request *request, struct spawn_result *out);

#endif
