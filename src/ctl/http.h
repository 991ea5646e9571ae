/* SPDX-License-Identifier: MIT */
/* Minimal HTTP/1.1 client: one request per connection, JSON bodies. */
#ifndef SBXCTL_HTTP_H
#define SBXCTL_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

/* Largest response body accepted; a full list of sandboxes fits easily. */
#define HTTP_BODY_MAX (32u << 20)

struct http_response {
	int status;		/* 0 until the status line is parsed */
	char *body;		/* NUL-terminated, NULL while empty */
	size_t body_len;
	long retry_after;	/* Retry-After in seconds, -1 when absent */
	bool complete;

	/* Parser state. */
	http_parser parser;
	http_parser_settings settings;
	char field[64];		/* current header name, cut to fit */
	size_t field_len;
	char value[64];		/* current header value, cut to fit */
	size_t value_len;
	bool in_value;
	size_t body_cap;
	int error;		/* -errno from a callback */
};

void http_response_init(struct http_response *resp);
void http_response_free(struct http_response *resp);

/*
 * Feed received bytes to the parser; @len 0 means the peer closed the
 * connection. Returns 1 once the response is complete, 0 while more is
 * needed, -EPROTO for a malformed response, -EFBIG for a body over
 * HTTP_BODY_MAX and -ENOMEM.
 */
int http_response_feed(struct http_response *resp, const char *data,
		       size_t len);

/*
 * Format a request with "Connection: close" and, when @body is not NULL, a
 * JSON body. Stores a malloc'ed buffer in @out. Returns 0 or -ENOMEM.
 */
int http_request_format(const char *method, const char *path,
			const char *body, char **out, size_t *out_len);

/* Connect to @addr. Returns the socket, or -errno from socket/connect. */
int http_connect(const struct ctl_addr *addr);

/* Make reads on @fd fail with -EAGAIN after @ms. Returns 0 or -errno. */
int http_set_timeout(int fd, int ms);

/*
 * Send one request on @fd and read the response into @resp, which the
 * caller has initialised. Returns 0, -errno from send/recv (-ECONNRESET
 * also when the peer closes before the response is complete), or an error
 * from http_response_feed().
 */
int http_roundtrip(int fd, const char *method, const char *path,
		   const char *body, struct http_response *resp);

#endif
