/* SPDX-License-Identifier: MIT */
/*
 * API connections and listeners on the loop: accept, read and parse
 * requests, hand each one to the API, write the response, keep-alive and
 * the request and idle timeouts.
 */
#ifndef SBXD_CONN_H
#define SBXD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "sbxd/buf.h"
#include "sbxd/config.h"
#include "sbxd/http.h"
#include "sbxd/loop.h"

#define CONN_RECV_SIZE 16384

struct sbxd;

struct listener {
	struct loop_req req;
	int fd;
	struct listen_addr addr;
};

enum conn_timer_mode {
	CONN_TIMER_NONE = 0,
	CONN_TIMER_IDLE,	/* --idle-timeout between requests */
	CONN_TIMER_REQUEST,	/* --request-timeout from a request's start */
	CONN_TIMER_SEND,	/* --request-timeout for writing a response */
};

struct conn {
	TAILQ_ENTRY(conn) link;
	int fd;
	struct loop_req recv_req;
	struct loop_req send_req;
	struct timer timer;
	enum conn_timer_mode timer_mode;

	struct http_reader reader;
	char in[CONN_RECV_SIZE];
	size_t in_off;		/* first byte not yet given to the parser */
	size_t in_len;

	struct buf out;
	size_t out_off;
	bool close_after_send;

	unsigned int served;	/* requests answered */
	bool needs_token;	/* TCP with --token-file: check Authorization */
	bool waiting;		/* an API handler will respond later */
	bool closing;
	uint64_t id;
};

TAILQ_HEAD(conn_list, conn);

struct conn_table {
	struct conn_list list;
	unsigned int count;
	uint64_t next_id;
	struct listener listeners[CONFIG_LISTEN_MAX + 1];
	int nlisteners;
	uint64_t rejected;		/* over --max-connections */
	uint64_t reject_logged_ns;
};

void conn_table_init(struct conn_table *table);
/* Bind and listen; returns 0 or a negative errno, logged here. */
int listener_open(struct sbxd *d, const struct listen_addr *addr);
void listeners_start(struct sbxd *d);
void listeners_close(struct sbxd *d);
/*
 * Accept what is queued on each listener as connections, so that those
 * clients get a response and not a reset once the listeners close. Unix
 * listeners refuse new connections from here on.
 */
void listeners_accept_backlog(struct sbxd *d);
/*
 * Close idle keep-alive connections. True when no response is still
 * being written and no connection still has a request to come.
 */
bool conns_flush_done(struct sbxd *d);

void listener_on_accept(struct sbxd *d, struct loop_req *req, int res,
			unsigned int flags);
void conn_on_recv(struct sbxd *d, struct loop_req *req, int res);
void conn_on_send(struct sbxd *d, struct loop_req *req, int res);

/*
 * Send a response to the request the connection is waiting on. The body
 * is JSON unless content_type names another type. extra_headers is NULL
 * or complete "Name: value\r\n" lines.
 */
void conn_respond(struct sbxd *d, struct conn *c, int status,
		  const char *content_type, const char *body, size_t len,
		  const char *extra_headers);

#endif
