// SPDX-License-Identifier: MIT
/* Leveled logging to stderr with monotonic timestamps. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sbxd/log.h"

enum log_level log_max_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {
	[LOG_LEVEL_ERR] = "err",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

const char *log_level_name(enum log_level level)
{
	if (level > LOG_LEVEL_DEBUG)
		return "?";
	return level_names[level];
}

int log_parse_level(const char *text, enum log_level *level)
{
	for (int i = LOG_LEVEL_ERR; i <= LOG_LEVEL_DEBUG; i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*level = i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_write(enum log_level level, const char *sandbox_id,
	       const char *fmt, ...)
{
	char line[4096];
	struct timespec now;
	va_list ap;
	size_t len;
	int n;
	int saved_errno = errno;

	clock_gettime(CLOCK_MONOTONIC, &now);
	n = snprintf(line, sizeof(line), "%lld.%03ld %s ",
		     (long long)now.tv_sec, now.tv_nsec / 1000000,
		     log_level_name(level));
	len = (size_t)n;
	if (sandbox_id) {
		n = snprintf(line + len, sizeof(line) - len, "sandbox=%s ",
			     sandbox_id);
		len += (size_t)n;
	}

	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	len += (size_t)n;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2; /* truncated: keep the newline */
	line[len++] = '\n';

	/* One write per line, so lines from other writers never interleave. */
	if (write(STDERR_FILENO, line, len) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved_errno;
}
