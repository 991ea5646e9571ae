/* SPDX-License-Identifier: MIT */
/* Execution of one sbxctl command against sbxd. */
#ifndef SBXCTL_COMMANDS_H
#define SBXCTL_COMMANDS_H

#include "addr.h"
#include "cli.h"

/*
 * Send the request for @cli, print the result and return the exit status:
 * 0 on success, 1 on failure (the reason is printed on stderr), 2 for a
 * malformed --socket, or the exit code of an exec'ed command.
 */
int cmd_run(const struct cli *cli);

/* Print why connecting to @addr failed (@err is -errno) and what to do. */
void cmd_report_connect_error(const struct ctl_addr *addr, int err);

/* Print why a request to @addr failed after connecting (@err is -errno). */
void cmd_report_transfer_error(const struct ctl_addr *addr, int err);

#endif
