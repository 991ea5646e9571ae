/* SPDX-License-Identifier: MIT */
/* Choice and parsing of the address sbxctl connects to. */
#ifndef SBXCTL_ADDR_H
#define SBXCTL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Source of the address, named in error messages. */
enum addr_source {
	ADDR_FROM_FLAG,		/* --socket */
	ADDR_FROM_ENV,		/* SBXD_SOCKET */
	ADDR_FROM_STATE_DIR,	/* $SBXD_STATE_DIR/sbxd.sock */
	ADDR_FROM_ROOT_DEFAULT,	/* /run/sbxd/sbxd.sock */
	ADDR_FROM_USER_DEFAULT,	/* $XDG_RUNTIME_DIR/sbxd/sbxd.sock */
};

/* The environment that addr_resolve() reads; empty strings count as unset. */
struct addr_env {
	const char *sbxd_socket;	/* SBXD_SOCKET */
	const char *state_dir;		/* SBXD_STATE_DIR */
	const char *runtime_dir;	/* XDG_RUNTIME_DIR */
	bool root;			/* effective uid is 0 */
};

struct ctl_addr {
	enum addr_source source;
	char text[512];		/* "unix:PATH" or "tcp:HOST:PORT", as tried */
	struct sockaddr_storage sa;
	socklen_t sa_len;
};

/*
 * Resolve the server address in the order --socket, SBXD_SOCKET,
 * $SBXD_STATE_DIR/sbxd.sock, then sbxd's own default for this user.
 * Returns 0, or -EINVAL for a malformed address and -ENOENT when no
 * address can be derived; either way @err contains a message for the user.
 */
int addr_resolve(const char *flag, const struct addr_env *env,
		 struct ctl_addr *addr, char *err, size_t err_len);

/*
 * Parse one address: "unix:PATH", "tcp:IPV4:PORT", "tcp:[IPV6]:PORT" or a
 * bare PATH. Host names are not resolved. Returns 0 or -EINVAL with @err set.
 */
int addr_parse(const char *text, struct ctl_addr *addr, char *err,
	       size_t err_len);

/* Describe where @addr came from, such as "from SBXD_SOCKET". */
const char *addr_source_name(enum addr_source source);

#endif
