// SPDX-License-Identifier: MIT
/*
 * Unit tests of sbxd's log lines: the timestamp, level and sandbox fields,
 * the level filter, and the newline at the end of a truncated line.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "sbxd/log.h"

static void redirect(void)
{
	cr_redirect_stderr();
	log_max_level = LOG_LEVEL_INFO;
}

TestSuite(log, .init = redirect);

/* Read everything written to the redirected stderr into buf. */
static void read_stderr(char *buf, size_t len)
{
	FILE *f = cr_get_redirected_stderr();
	size_t n;

	fflush(stderr);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
}

static bool matches(const char *text, const char *pattern)
{
	regex_t re;
	bool ok;

	cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
	ok = regexec(&re, text, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

Test(log, line_format)
{
	char out[8192];

	log_info("serving on %s", "unix:/x");
	sb_warn("abc123", "exited reason=%s", "killed");
	read_stderr(out, sizeof(out));
	cr_assert(matches(out, "^[0-9]+\\.[0-9]{3} info serving on unix:/x$"),
		  "line: %s", out);
	cr_assert(matches(out, "^[0-9]+\\.[0-9]{3} warn sandbox=abc123 "
			       "exited reason=killed$"), "line: %s", out);
}

Test(log, level_filter)
{
	char out[8192];

	log_debug("hidden %d", 1);
	log_max_level = LOG_LEVEL_ERR;
	log_warn("hidden %d", 2);
	log_err("shown %d", 3);
	log_max_level = LOG_LEVEL_DEBUG;
	log_debug("visible %d", 4);
	read_stderr(out, sizeof(out));
	cr_assert_null(strstr(out, "hidden"), "output: %s", out);
	cr_assert(strstr(out, "err shown 3"), "output: %s", out);
	cr_assert(matches(out, "debug visible 4 src=.*test_sbxd_log\\.c:"
			       "[0-9]+:log_level_filter"), "output: %s", out);
}

Test(log, long_line_keeps_newline)
{
	static char big[6000];
	static char out[16384];

	memset(big, 'x', sizeof(big) - 1);
	log_info("%s", big);
	log_info("next");
	read_stderr(out, sizeof(out));
	cr_assert(matches(out, "^[0-9]+\\.[0-9]{3} info next$"),
		  "the line after a truncated one was joined to it");
	cr_assert_lt(strlen(out), 4096 + 64, "the long line was not cut");
}

Test(log, parse_level)
{
	enum log_level level = LOG_LEVEL_INFO;

	cr_assert_eq(log_parse_level("debug", &level), 0);
	cr_assert_eq(level, LOG_LEVEL_DEBUG);
	cr_assert_eq(log_parse_level("err", &level), 0);
	cr_assert_eq(level, LOG_LEVEL_ERR);
	cr_assert_eq(log_parse_level("verbose", &level), -EINVAL);
	cr_assert_eq(level, LOG_LEVEL_ERR, "a failed parse changed the level");
}
