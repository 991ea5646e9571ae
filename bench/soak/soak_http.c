// SPDX-License-Identifier: MIT
/* Keep-alive HTTP/1.1 client over sbxd's unix socket for sbx-soak. */
#define _GNU_SOURCE
#include "soak_http.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RECV_CHUNK 16384

struct parse_state {
	struct soak_resp *resp;
	size_t body_cap;
	bool complete;
	int error;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void soak_conn_init(struct soak_conn *c, const char *sock_path,
		    int timeout_ms)
{
	c->sock_path = sock_path;
	c->timeout_ms = timeout_ms;
	c->fd = -1;
}

void soak_conn_close(struct soak_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void soak_resp_free(struct soak_resp *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

static int conn_open(struct soak_conn *c)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(c->sock_path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, c->sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/*
	 * A non-blocking unix stream connect completes at once or fails
	 * (EAGAIN when the listen backlog is full), so it needs no wait.
	 */
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	c->fd = fd;
	return 0;
}

/* Wait for @events on @fd until @deadline_ms; 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline_ms - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_all(int fd, const char *data, size_t len, int64_t deadline)
{
	ssize_t n;
	int ret;

	while (len > 0) {
		n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			ret = wait_fd(fd, POLLOUT, deadline);
			if (ret)
				return ret;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int soak_conn_finish(struct soak_conn *c)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	char byte;
	ssize_t n;
	int ret = 0;

	if (c->fd < 0)
		return 0;
	if (shutdown(c->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
		ret = -errno;
		goto close_conn;
	}
	for (;;) {
		n = recv(c->fd, &byte, 1, 0);
		if (n == 0)
			break;
		if (n > 0) {
			ret = -EPROTO;
			break;
		}
		if (errno == ECONNRESET)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			ret = -errno;
			break;
		}
		ret = wait_fd(c->fd, POLLIN, deadline);
		if (ret)
			break;
	}
close_conn:
	soak_conn_close(c);
	return ret;
}

static int on_body(http_parser *parser, const char *at, size_t len)
{
	struct parse_state *st = parser->data;
	struct soak_resp *resp = st->resp;
	size_t need = resp->body_len + len + 1;
	char *grown;

	if (need > SOAK_BODY_MAX) {
		st->error = -EFBIG;
		return -1;
	}
	if (need > st->body_cap) {
		grown = realloc(resp->body, need * 2);
		if (!grown) {
			st->error = -ENOMEM;
			return -1;
		}
		resp->body = grown;
		st->body_cap = need * 2;
	}
	memcpy(resp->body + resp->body_len, at, len);
	resp->body_len += len;
	resp->body[resp->body_len] = '\0';
	return 0;
}

static int on_message_complete(http_parser *parser)
{
	struct parse_state *st = parser->data;

	st->complete = true;
	st->resp->status = (int)parser->status_code;
	st->resp->keep_alive = http_should_keep_alive(parser);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/*
 * Read one response. Only one request is in flight per connection, so any
 * byte after the response is a protocol error.
 */
static int read_response(int fd, struct soak_resp *resp, int64_t deadline)
{
	struct parse_state st = { .resp = resp };
	char chunk[RECV_CHUNK];
	http_parser parser;
	size_t used;
	ssize_t n;
	int ret;

	http_parser_init(&parser, HTTP_RESPONSE);
	parser.data = &st;
	while (!st.complete) {
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EAGAIN) {
			ret = wait_fd(fd, POLLIN, deadline);
			if (ret)
				return ret;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		used = http_parser_execute(&parser, &parser_settings, chunk,
					   (size_t)n);
		if (st.error)
			return st.error;
		if (HTTP_PARSER_ERRNO(&parser) != HPE_OK)
			return -EPROTO;
		/* At EOF a body without a length ends, any other is cut. */
		if (n == 0)
			return st.complete ? 0 : -ECONNRESET;
		if (st.complete && used != (size_t)n)
			return -EPROTO;
	}
	return 0;
}

static int format_request(const char *method, const char *path,
			  const char *body, char **out, size_t *out_len)
{
	size_t body_len = body ? strlen(body) : 0;
	int n;

	if (body)
		n = asprintf(out,
			     "%s %s HTTP/1.1\r\nHost: sbxd\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n%s",
			     method, path, body_len, body);
	else
		n = asprintf(out,
			     "%s %s HTTP/1.1\r\nHost: sbxd\r\n"
			     "Content-Length: 0\r\n\r\n",
			     method, path);
	if (n < 0)
		return -ENOMEM;
	*out_len = (size_t)n;
	return 0;
}

int soak_request(struct soak_conn *c, const char *method, const char *path,
		 const char *body, struct soak_resp *resp)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	size_t req_len;
	char *req;
	int ret;

	memset(resp, 0, sizeof(*resp));
	ret = format_request(method, path, body, &req, &req_len);
	if (ret)
		return ret;
	if (c->fd < 0) {
		ret = conn_open(c);
		if (ret)
			goto free_req;
	}
	ret = send_all(c->fd, req, req_len, deadline);
	if (ret)
		goto close_conn;
	ret = read_response(c->fd, resp, deadline);
	if (ret)
		goto close_conn;
	if (!resp->body) {
		resp->body = strdup("");
		if (!resp->body) {
			ret = -ENOMEM;
			goto close_conn;
		}
	}
	/* Wait for the server's close: a count of its fds may follow. */
	if (!resp->keep_alive)
		soak_conn_finish(c);
	free(req);
	return 0;

close_conn:
	soak_conn_close(c);
free_req:
	free(req);
	return ret;
}
