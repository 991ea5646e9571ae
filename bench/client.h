/* SPDX-License-Identifier: MIT */
/*
 * Keep-alive HTTP/1.1 client for the load generator: one request at a
 * time per connection, reconnecting when the server closes.
 */
#ifndef SBX_BENCH_CLIENT_H
#define SBX_BENCH_CLIENT_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Largest response body kept; longer bodies fail with -EFBIG. */
#define CLIENT_BODY_MAX (8u << 20)

struct client_addr {
	char text[256];		/* as given: unix:PATH or tcp:127.x.y.z:PORT */
	struct sockaddr_storage sa;
	socklen_t sa_len;
};

struct client {
	const struct client_addr *addr;
	int fd;			/* -1 while disconnected */
	http_parser parser;
	http_parser_settings settings;
	int status;
	bool complete;
	bool keep_alive;
	char *body;		/* NUL-terminated response body */
	size_t body_len;
	size_t body_cap;
	char *out;		/* formatted request */
	size_t out_cap;
	char in[16384];
};

/*
 * Parse "unix:PATH" or "tcp:IPV4:PORT". TCP must target 127.0.0.0/8
 * because the benchmarks load only servers on this machine.
 * Returns 0 or -EINVAL after printing the reason.
 */
int client_addr_parse(const char *text, struct client_addr *addr);

void client_init(struct client *c, const struct client_addr *addr);
void client_close(struct client *c);

/*
 * Send one request (a JSON @body when not NULL) and wait for the whole
 * response; c->status and c->body hold it. Connects first when needed.
 * Returns 0 or -errno; -ECONNRESET when the server closed early.
 */
int client_request(struct client *c, const char *method, const char *path,
		   const char *body);

/* Wait until @addr accepts a connection, for at most @timeout_ms. */
int client_wait_ready(const struct client_addr *addr, int timeout_ms);

#endif
