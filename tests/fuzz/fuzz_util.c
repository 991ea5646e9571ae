// SPDX-License-Identifier: MIT
/* Failure reports and memfd helpers shared by the libFuzzer harnesses. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_util.h"

static int report_fd = 2;

void fuzz_util_init(void)
{
	int fd = dup(2);

	if (fd >= 0)
		report_fd = fd;
}

void fuzz_fail(const char *fmt, ...)
{
	char message[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(message))
		n = sizeof(message) - 1;
	dprintf(report_fd, "fuzz invariant failed: %.*s\n", n, message);
	abort();
}

int fuzz_memfd(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		fuzz_fail("memfd_create(%s) failed: %s", name, strerror(errno));
	return fd;
}

void fuzz_memfd_fill(int fd, const uint8_t *data, size_t len)
{
	size_t done = 0;

	if (ftruncate(fd, 0) < 0)
		fuzz_fail("ftruncate of the memfd failed: %s", strerror(errno));
	while (done < len) {
		ssize_t n = pwrite(fd, data + done, len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fuzz_fail("write to the memfd failed: %s",
				  n < 0 ? strerror(errno) : "wrote 0 bytes");
		done += (size_t)n;
	}
}

const char *fuzz_fd_path(int fd)
{
	static char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return path;
}
