/* SPDX-License-Identifier: MIT */
/* Execution of one sbxctl command against sbxd. */
#ifndef SBXCTL_COMMANDS_H
#define SBXCTL_COMMANDS_H

#include "cli.h"

/*
 * Send the request for @cli, print the result and return the exit status:
 * 0 on success, 1 on failure (the reason is printed on stderr), 2 for a
 * malformed --socket, or the exit code of an exec'ed command.
 */
int cmd_run(const struct cli *cli);

#endif
