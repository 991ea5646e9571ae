// SPDX-License-Identifier: MIT
/* The state directory and the flock-held lock file with the owner's pid. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sbxd/lock.h"

int lock_make_state_dir(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	if (strlen(dir) >= sizeof(path))
		return -ENAMETOOLONG;
	strcpy(path, dir);
	/* Parents get the usual mode; the state dir itself is private. */
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return 0;
}

static pid_t read_pid(int fd)
{
	char text[32];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);

	if (n <= 0)
		return 0;
	text[n] = '\0';
	return (pid_t)strtol(text, NULL, 10);
}

int lock_acquire(const char *state_dir, struct lock_info *info)
{
	char path[PATH_MAX];
	char text[32];
	int len;
	int fd;
	int ret;

	memset(info, 0, sizeof(info[0]));
	info->fd = -1;
	if ((size_t)snprintf(path, sizeof(path), "%s/sbxd.lock", state_dir) >=
	    sizeof(path))
		return -ENAMETOOLONG;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* Left by a running sbxd, or by one that exited uncleanly. */
		info->unclean = true;
		fd = open(path, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;

	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		info->old_pid = read_pid(fd);
		info->unclean = false;
		goto err_close;
	}
	info->old_pid = info->unclean ? read_pid(fd) : 0;

	len = snprintf(text, sizeof(text), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)len, 0) != len) {
		ret = -errno;
		goto err_close;
	}
	info->fd = fd;
	return 0;

err_close:
	close(fd);
	return ret;
}

int lock_release(const char *state_dir, int fd, bool remove_file)
{
	char path[PATH_MAX];
	int ret = 0;

	snprintf(path, sizeof(path), "%s/sbxd.lock", state_dir);
	/* Unlink while holding the lock, so no successor finds a stale file. */
	if (remove_file && unlink(path) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	return ret;
}
