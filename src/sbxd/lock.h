/* SPDX-License-Identifier: MIT */
/* The state directory and its lock file, STATE_DIR/sbxd.lock. */
#ifndef SBXD_LOCK_H
#define SBXD_LOCK_H

#include <stdbool.h>
#include <sys/types.h>

struct lock_info {
	int fd;
	bool unclean;	/* the file existed, so the last exit was unclean */
	pid_t old_pid;		/* pid found in it, or 0 */
};

/* Create dir with mode 0700 and its parents if missing. */
int lock_make_state_dir(const char *dir);
/*
 * Take STATE_DIR/sbxd.lock and write our pid. -EWOULDBLOCK when another
 * process holds it; info->old_pid is then that process.
 */
int lock_acquire(const char *state_dir, struct lock_info *info);
/* Remove the lock file (clean exit) or keep it, and close it. */
int lock_release(const char *state_dir, int fd, bool remove_file);

#endif
