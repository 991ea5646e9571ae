// SPDX-License-Identifier: MIT
/* sbxctl: command-line client of the sbxd HTTP API. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

#ifndef SBX_VERSION
#define SBX_VERSION "unknown"
#endif

int main(int argc, char **argv)
{
	struct cli cli;
	char err[1024];
	int ret, status;

	ret = cli_parse(argc, argv, &cli, err, sizeof(err));
	if (ret == -ENOMEM) {
		fprintf(stderr, "sbxctl: out of memory parsing arguments\n");
		status = 1;
		goto free_cli;
	}
	if (ret) {
		fprintf(stderr, "sbxctl: %s\n", err);
		cli_usage_short(stderr, cli.command);
		status = 2;
		goto free_cli;
	}

	if (cli.command == CLI_VERSION) {
		printf("sbxctl %s\n", SBX_VERSION);
		status = 0;
	} else if (cli.help || cli.command == CLI_HELP) {
		cli_usage(stdout, cli.help_topic);
		status = 0;
	} else {
		status = cmd_run(&cli);
	}

	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "sbxctl: failed to write to stdout: %s\n",
			strerror(errno));
		if (status == 0)
			status = 1;
	}
free_cli:
	cli_free(&cli);
	return status;
}
