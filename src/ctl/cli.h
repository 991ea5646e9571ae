/* SPDX-License-Identifier: MIT */
/* Command-line parsing and help text of sbxctl. */
#ifndef SBXCTL_CLI_H
#define SBXCTL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cli_command {
	CLI_NONE,
	CLI_CREATE,
	CLI_LS,
	CLI_GET,
	CLI_EXEC,
	CLI_STOP,
	CLI_KILL,
	CLI_PAUSE,
	CLI_RESUME,
	CLI_SNAPSHOT,
	CLI_CHECKPOINT,
	CLI_NODE,
	CLI_FORCE_STOP,
	CLI_RESTORE_DRAINED,
	CLI_HELP,
	CLI_VERSION,
};

/* An integer option's value is CLI_UNSET until the user gives it. */
#define CLI_UNSET (-1LL)

struct cli {
	enum cli_command command;
	enum cli_command help_topic;	/* for "help CMD" and "CMD --help" */
	bool help;

	/* Options that every command accepts. */
	const char *socket;
	bool json;

	const char *id;			/* commands on one sandbox */

	/* create */
	long long memory_mib;
	const char *snapshot;		/* --snapshot: restore this file */
	const char *guest;
	const char *args;
	long long boot_delay_ms;
	bool ignore_stop;
	bool quiet;
	const char **meta;		/* "key=value" strings from argv */
	size_t meta_count;

	/* exec */
	long long timeout_ms;
	char **exec_argv;		/* points into argv */
	int exec_argc;

	/* stop */
	long long grace_ms;

	/* snapshot */
	const char *path;		/* where to save, NULL for the default */
	bool overwrite;

	/* node */
	bool watch;
	const char *instance;		/* --instance, NULL when not given */
	long long interval_ms;		/* --interval, CLI_UNSET by default */
};

/*
 * Parse argv into @cli. Strings in @cli point into argv. Returns 0, or
 * -EINVAL for a usage error with @err set, or -ENOMEM. Call cli_free()
 * after either.
 */
int cli_parse(int argc, char **argv, struct cli *cli, char *err,
	      size_t err_len);
void cli_free(struct cli *cli);

/* Print the usage of @command, or the overview for CLI_NONE. */
void cli_usage(FILE *out, enum cli_command command);

/* Print only the synopsis of @command and where to find more. */
void cli_usage_short(FILE *out, enum cli_command command);

/* Name of @command as typed, such as "force-stop". */
const char *cli_command_name(enum cli_command command);

#endif
