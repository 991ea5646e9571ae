/* SPDX-License-Identifier: MIT */
/* Mapping of a parsed command line to an HTTP request of the sbxd API. */
#ifndef SBXCTL_REQUEST_H
#define SBXCTL_REQUEST_H

#include <stddef.h>

#include "cli.h"

struct ctl_request {
	const char *method;
	char *path;	/* percent-encoded target, such as /v1/sandboxes/ID */
	char *body;	/* JSON text, NULL for none */
};

/*
 * Build the request for @cli. @cwd makes a relative --guest, --snapshot or
 * snapshot PATH absolute, because sbxd resolves paths from its own
 * working directory. Returns 0, -EINVAL with @err set, or -ENOMEM. Call
 * request_free() after either.
 */
int request_build(const struct cli *cli, const char *cwd,
		  struct ctl_request *req, char *err, size_t err_len);
void request_free(struct ctl_request *req);

/* Join @argc words with single spaces into a malloc'ed string, or NULL. */
char *request_join_words(char *const *argv, int argc);

#endif
