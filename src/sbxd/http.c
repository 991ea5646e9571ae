// SPDX-License-Identifier: MIT
/* HTTP/1.1 request parsing with http-parser, and response formatting. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sbxd/http.h"

static struct http_reader *reader_of(http_parser *p)
{
	return p->data;
}

static int fail(struct http_reader *r, int status, const char *message)
{
	r->error_status = status;
	r->error_message = message;
	return -1;
}

static int count_header(struct http_reader *r, size_t len)
{
	r->header_bytes += len;
	if (r->header_bytes > r->header_max)
		return fail(r, 431, "request line and headers exceed "
			    "--max-header-size");
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct http_reader *r = reader_of(p);

	r->in_message = true;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_reader *r = reader_of(p);

	if (count_header(r, len))
		return -1;
	if (buf_append(&r->req.url, at, len))
		return fail(r, 500, "out of memory");
	return 0;
}

static void header_done(struct http_reader *r)
{
	const char *name = r->field.data;
	const char *value = r->value.data;

	if (!name || !value)
		return;
	if (strcasecmp(name, "Expect") == 0 &&
	    strcasecmp(value, "100-continue") == 0)
		r->req.expect_continue = true;
	/* A value too long for any token is kept as "x", which never matches. */
	if (strcasecmp(name, "Authorization") == 0)
		snprintf(r->req.authorization, sizeof(r->req.authorization),
			 "%s", strlen(value) < sizeof(r->req.authorization) ?
				       value : "x");
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_reader *r = reader_of(p);

	/* Each header takes ": " and CRLF besides its name and value. */
	if (count_header(r, r->in_value ? len + 4 : len))
		return -1;
	if (r->in_value) {
		header_done(r);
		buf_reset(&r->field);
		buf_reset(&r->value);
		r->in_value = false;
	}
	if (buf_append(&r->field, at, len))
		return fail(r, 500, "out of memory");
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_reader *r = reader_of(p);

	if (count_header(r, len))
		return -1;
	r->in_value = true;
	if (buf_append(&r->value, at, len))
		return fail(r, 500, "out of memory");
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_reader *r = reader_of(p);

	if (r->in_value)
		header_done(r);
	if (p->http_major != 1 || p->http_minor > 1)
		return fail(r, 400, "unsupported HTTP version; use HTTP/1.1");
	r->req.method = p->method;
	r->req.keep_alive = http_should_keep_alive(p);
	r->req.has_length = (p->flags & F_CHUNKED) ||
			    p->content_length != ULLONG_MAX;
	if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
	    p->content_length > r->body_max)
		return fail(r, 413, "request body exceeds --max-body-size");
	if (r->req.expect_continue)
		http_parser_pause(p, 1);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_reader *r = reader_of(p);

	if (r->req.body.len + len > r->body_max)
		return fail(r, 413, "request body exceeds --max-body-size");
	if (buf_append(&r->req.body, at, len))
		return fail(r, 500, "out of memory");
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_reader *r = reader_of(p);

	r->complete = true;
	r->in_message = false;
	/* One request at a time: the caller resumes after responding. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void http_reader_init(struct http_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->header_max = HTTP_HEADER_MAX;
	r->body_max = HTTP_BODY_MAX;
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
}

void http_reader_free(struct http_reader *r)
{
	buf_free(&r->req.url);
	buf_free(&r->req.body);
	buf_free(&r->field);
	buf_free(&r->value);
}

void http_reader_next(struct http_reader *r)
{
	buf_reset(&r->req.url);
	buf_reset(&r->req.body);
	buf_reset(&r->field);
	buf_reset(&r->value);
	r->req.has_length = false;
	r->req.keep_alive = false;
	r->req.expect_continue = false;
	r->req.authorization[0] = '\0';
	r->in_value = false;
	r->complete = false;
	r->header_bytes = 0;
	http_parser_pause(&r->parser, 0);
}

enum http_feed http_reader_feed(struct http_reader *r, const char *data,
				size_t len, size_t *used)
{
	enum http_errno err;
	bool was_continue = r->req.expect_continue;

	if (r->error_status) {
		*used = 0;
		return HTTP_FEED_ERROR;
	}
	/* Resume after a pause for 100 Continue. */
	if (HTTP_PARSER_ERRNO(&r->parser) == HPE_PAUSED && !r->complete)
		http_parser_pause(&r->parser, 0);

	*used = http_parser_execute(&r->parser, &settings, data, len);
	err = HTTP_PARSER_ERRNO(&r->parser);
	if (r->complete)
		return HTTP_FEED_REQUEST;
	if (err == HPE_PAUSED && r->req.expect_continue && !was_continue)
		return HTTP_FEED_CONTINUE;
	if (err == HPE_OK || err == HPE_PAUSED)
		return HTTP_FEED_MORE;
	if (!r->error_status) {
		r->error_status = 400;
		r->error_message = http_errno_description(err);
	}
	return HTTP_FEED_ERROR;
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

int http_format_response(struct buf *out, int status, const char *type,
			 const char *body, size_t len, const char *extra,
			 bool keep_alive)
{
	int ret;

	ret = buf_printf(out,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "%s%s\r\n",
			 status, http_status_text(status),
			 type ? type : "application/json", len,
			 keep_alive ? "" : "Connection: close\r\n",
			 extra ? extra : "");
	if (ret)
		return ret;
	return buf_append(out, body, len);
}
