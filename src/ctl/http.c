// SPDX-License-Identifier: MIT
/* Minimal HTTP/1.1 client: one request per connection, JSON bodies. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef SBX_VERSION
#define SBX_VERSION "unknown"
#endif

static struct http_response *response_of(http_parser *parser)
{
	return parser->data;
}

static void header_done(struct http_response *resp)
{
	char *end;
	long seconds;

	if (resp->field_len == strlen("Retry-After") &&
	    strncasecmp(resp->field, "Retry-After", resp->field_len) == 0) {
		resp->value[resp->value_len] = '\0';
		errno = 0;
		seconds = strtol(resp->value, &end, 10);
		/* sbxd sends seconds, so the HTTP-date form is ignored. */
		if (!errno && end != resp->value && seconds >= 0)
			resp->retry_after = seconds;
	}
	resp->field_len = 0;
	resp->value_len = 0;
	resp->in_value = false;
}

static void append_cut(char *buf, size_t cap, size_t *len, const char *at,
		       size_t n)
{
	size_t room = cap - 1 - *len;

	if (n > room)
		n = room;
	memcpy(buf + *len, at, n);
	*len += n;
}

static int on_header_field(http_parser *parser, const char *at, size_t n)
{
	struct http_response *resp = response_of(parser);

	if (resp->in_value)
		header_done(resp);
	append_cut(resp->field, sizeof(resp->field), &resp->field_len, at, n);
	return 0;
}

static int on_header_value(http_parser *parser, const char *at, size_t n)
{
	struct http_response *resp = response_of(parser);

	resp->in_value = true;
	append_cut(resp->value, sizeof(resp->value), &resp->value_len, at, n);
	return 0;
}

static int on_headers_complete(http_parser *parser)
{
	struct http_response *resp = response_of(parser);

	if (resp->in_value)
		header_done(resp);
	resp->status = (int)parser->status_code;
	return 0;
}

static int on_body(http_parser *parser, const char *at, size_t n)
{
	struct http_response *resp = response_of(parser);
	size_t need = resp->body_len + n + 1;
	char *grown;

	if (need > HTTP_BODY_MAX + 1) {
		resp->error = -EFBIG;
		return 1;
	}
	if (need > resp->body_cap) {
		size_t cap = resp->body_cap ? resp->body_cap : 4096;

		while (cap < need)
			cap *= 2;
		grown = realloc(resp->body, cap);
		if (!grown) {
			resp->error = -ENOMEM;
			return 1;
		}
		resp->body = grown;
		resp->body_cap = cap;
	}
	memcpy(resp->body + resp->body_len, at, n);
	resp->body_len += n;
	resp->body[resp->body_len] = '\0';
	return 0;
}

static int on_message_complete(http_parser *parser)
{
	struct http_response *resp = response_of(parser);

	/* 1xx responses carry no body and precede the final response. */
	if (parser->status_code >= 100 && parser->status_code < 200)
		return 0;
	resp->complete = true;
	/* Pause, because sbxctl sends one request and expects one response. */
	http_parser_pause(parser, 1);
	return 0;
}

void http_response_init(struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	http_parser_init(&resp->parser, HTTP_RESPONSE);
	resp->parser.data = resp;
	http_parser_settings_init(&resp->settings);
	resp->settings.on_header_field = on_header_field;
	resp->settings.on_header_value = on_header_value;
	resp->settings.on_headers_complete = on_headers_complete;
	resp->settings.on_body = on_body;
	resp->settings.on_message_complete = on_message_complete;
}

void http_response_free(struct http_response *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
	resp->body_cap = 0;
}

int http_response_feed(struct http_response *resp, const char *data,
		       size_t len)
{
	size_t used;

	if (resp->complete)
		return 1;
	used = http_parser_execute(&resp->parser, &resp->settings, data, len);
	if (resp->error)
		return resp->error;
	if (resp->complete)
		return 1;
	/* EOF before a complete response: the server went away. */
	if (len == 0)
		return -ECONNRESET;
	if (HTTP_PARSER_ERRNO(&resp->parser) != HPE_OK || used != len)
		return -EPROTO;
	return 0;
}

int http_request_format(const char *method, const char *path,
			const char *body, char **out, size_t *out_len)
{
	char *text = NULL;
	int len;

	if (body)
		len = asprintf(&text,
			       "%s %s HTTP/1.1\r\n"
			       "Host: sbxd\r\n"
			       "User-Agent: sbxctl/%s\r\n"
			       "Accept: application/json\r\n"
			       "Connection: close\r\n"
			       "Content-Type: application/json\r\n"
			       "Content-Length: %zu\r\n"
			       "\r\n%s",
			       method, path, SBX_VERSION, strlen(body), body);
	else
		len = asprintf(&text,
			       "%s %s HTTP/1.1\r\n"
			       "Host: sbxd\r\n"
			       "User-Agent: sbxctl/%s\r\n"
			       "Accept: application/json\r\n"
			       "Connection: close\r\n"
			       "\r\n",
			       method, path, SBX_VERSION);
	if (len < 0)
		return -ENOMEM;
	*out = text;
	*out_len = (size_t)len;
	return 0;
}

int http_connect(const struct ctl_addr *addr)
{
	int fd, ret;

	fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	do {
		ret = connect(fd, (const struct sockaddr *)&addr->sa,
			      addr->sa_len);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int http_set_timeout(int fd, int ms)
{
	struct timeval tv = {
		.tv_sec = ms / 1000,
		.tv_usec = (ms % 1000) * 1000,
	};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

static int send_all(int fd, const char *data, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int receive(int fd, struct http_response *resp)
{
	char buf[16384];
	ssize_t n;
	int ret;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		ret = http_response_feed(resp, buf, (size_t)n);
		if (ret < 0)
			return ret;
		if (ret == 1)
			return 0;
	}
}

int http_roundtrip(int fd, const char *method, const char *path,
		   const char *body, struct http_response *resp)
{
	char *request;
	size_t len;
	int ret;

	ret = http_request_format(method, path, body, &request, &len);
	if (ret)
		return ret;
	ret = send_all(fd, request, len);
	free(request);
	/*
	 * A server that rejects a request early may close before reading it
	 * all; its response can still be waiting, so read on after EPIPE.
	 */
	if (ret && ret != -EPIPE && ret != -ECONNRESET)
		return ret;
	return receive(fd, resp);
}
