/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 request reader over http-parser and the response formatter.
 * No I/O here: bytes in, requests and response text out.
 */
#ifndef SBXD_HTTP_H
#define SBXD_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

#include "sbxd/buf.h"

#define HTTP_HEADER_MAX (16 * 1024)	/* request line plus headers */
#define HTTP_BODY_MAX (1024 * 1024)

struct http_request {
	enum http_method method;
	struct buf url;
	struct buf body;
	bool has_length;	/* Content-Length given, or chunked */
	bool keep_alive;
	bool expect_continue;	/* "Expect: 100-continue" */
	char authorization[300]; /* Authorization value, "" when absent */
};

struct http_reader {
	http_parser parser;
	struct http_request req;
	struct buf field;	/* current header name */
	struct buf value;	/* current header value */
	bool in_value;
	bool in_message;	/* bytes of a request seen, not complete yet */
	bool complete;
	size_t header_bytes;
	size_t header_max;	/* HTTP_HEADER_MAX unless the caller sets it */
	size_t body_max;	/* HTTP_BODY_MAX unless the caller sets it */
	int error_status;	/* 400, 413 or 431 once the reader failed */
	const char *error_message;
};

enum http_feed {
	HTTP_FEED_MORE = 0,	/* all input used, no complete request */
	HTTP_FEED_REQUEST,	/* reader->req is complete; reader paused */
	HTTP_FEED_CONTINUE,	/* headers asked for 100 Continue */
	HTTP_FEED_ERROR,	/* see error_status; close after answering */
};

void http_reader_init(struct http_reader *r);
void http_reader_free(struct http_reader *r);
/*
 * Parse up to len bytes and store in *used how many were consumed. After
 * HTTP_FEED_REQUEST call http_reader_next() before feeding again.
 */
enum http_feed http_reader_feed(struct http_reader *r, const char *data,
				size_t len, size_t *used);
void http_reader_next(struct http_reader *r);

const char *http_status_text(int status);
/* Append status line, headers and body to out; 0 or -ENOMEM. */
int http_format_response(struct buf *out, int status, const char *type,
			 const char *body, size_t len, const char *extra,
			 bool keep_alive);

#endif
