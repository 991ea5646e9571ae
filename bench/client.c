// SPDX-License-Identifier: MIT
/* Keep-alive HTTP/1.1 client for the load generator. */
#define _GNU_SOURCE
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

int client_addr_parse(const char *text, struct client_addr *addr)
{
	memset(addr, 0, sizeof(*addr));
	if (strlen(text) >= sizeof(addr->text)) {
		bench_err("address too long: '%s'\n", text);
		return -EINVAL;
	}
	strcpy(addr->text, text);

	if (strncmp(text, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&addr->sa;

		if (strlen(text + 5) >= sizeof(un->sun_path)) {
			bench_err("socket path too long for sun_path: '%s'\n",
				  text + 5);
			return -EINVAL;
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, text + 5);
		addr->sa_len = sizeof(*un);
		return 0;
	}
	if (strncmp(text, "tcp:", 4) == 0) {
		struct sockaddr_in *in = (struct sockaddr_in *)&addr->sa;
		char host[64];
		const char *colon = strrchr(text + 4, ':');
		unsigned long port;
		size_t host_len;

		if (!colon || colon == text + 4)
			goto bad;
		host_len = (size_t)(colon - (text + 4));
		if (host_len >= sizeof(host))
			goto bad;
		memcpy(host, text + 4, host_len);
		host[host_len] = '\0';
		port = bench_parse_ulong("port", colon + 1, 1, 65535);
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			goto bad;
		if ((ntohl(in->sin_addr.s_addr) >> 24) != 127) {
			bench_err("address %s is not loopback: the benchmarks "
				  "load only servers on 127.0.0.0/8\n",
				  host);
			return -EINVAL;
		}
		addr->sa_len = sizeof(*in);
		return 0;
	}
bad:
	bench_err("invalid address '%s': expected unix:PATH or tcp:127.0.0.1:PORT\n",
		  text);
	return -EINVAL;
}

static int on_headers_complete(http_parser *parser)
{
	struct client *c = parser->data;

	c->status = (int)parser->status_code;
	return 0;
}

static int on_body(http_parser *parser, const char *at, size_t len)
{
	struct client *c = parser->data;

	if (c->body_len + len + 1 > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap : 4096;
		char *body;

		while (cap < c->body_len + len + 1)
			cap *= 2;
		if (cap > CLIENT_BODY_MAX)
			return -1;
		body = realloc(c->body, cap);
		if (!body)
			return -1;
		c->body = body;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, at, len);
	c->body_len += len;
	c->body[c->body_len] = '\0';
	return 0;
}

static int on_message_complete(http_parser *parser)
{
	struct client *c = parser->data;

	c->complete = true;
	c->keep_alive = http_should_keep_alive(parser);
	return 0;
}

void client_init(struct client *c, const struct client_addr *addr)
{
	memset(c, 0, sizeof(*c));
	c->addr = addr;
	c->fd = -1;
	c->settings.on_headers_complete = on_headers_complete;
	c->settings.on_body = on_body;
	c->settings.on_message_complete = on_message_complete;
}

void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->body);
	free(c->out);
	c->body = NULL;
	c->out = NULL;
	c->body_cap = 0;
	c->out_cap = 0;
}

static int client_connect(struct client *c)
{
	int one = 1;
	int fd;

	fd = socket(c->addr->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&c->addr->sa,
		    c->addr->sa_len) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	if (c->addr->sa.ss_family == AF_INET)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	return 0;
}

static int format_request(struct client *c, const char *method,
			  const char *path, const char *body, size_t *len)
{
	size_t body_len = body ? strlen(body) : 0;
	size_t need = strlen(method) + strlen(path) + body_len + 160;
	int n;

	if (need > c->out_cap) {
		char *out = realloc(c->out, need);

		if (!out)
			return -ENOMEM;
		c->out = out;
		c->out_cap = need;
	}
	if (body)
		n = snprintf(c->out, c->out_cap,
			     "%s %s HTTP/1.1\r\nHost: sbxd\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n%s",
			     method, path, body_len, body);
	else
		n = snprintf(c->out, c->out_cap,
			     "%s %s HTTP/1.1\r\nHost: sbxd\r\n\r\n", method,
			     path);
	if (n < 0 || (size_t)n >= c->out_cap)
		return -EOVERFLOW;
	*len = (size_t)n;
	return 0;
}

static int send_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

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

static int read_response(struct client *c)
{
	http_parser_init(&c->parser, HTTP_RESPONSE);
	c->parser.data = c;
	c->status = 0;
	c->complete = false;
	c->body_len = 0;
	if (c->body)
		c->body[0] = '\0';

	while (!c->complete) {
		ssize_t n = recv(c->fd, c->in, sizeof(c->in), 0);
		size_t used;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		used = http_parser_execute(&c->parser, &c->settings, c->in,
					   (size_t)n);
		if (c->parser.http_errno != HPE_OK)
			return c->body_len + 1 > CLIENT_BODY_MAX ? -EFBIG :
								  -EPROTO;
		if (n == 0 && !c->complete)
			return -ECONNRESET;
		(void)used;
	}
	return 0;
}

int client_request(struct client *c, const char *method, const char *path,
		   const char *body)
{
	bool fresh = false;
	size_t len;
	int ret;

	ret = format_request(c, method, path, body, &len);
	if (ret)
		return ret;
	if (c->fd < 0) {
		ret = client_connect(c);
		if (ret)
			return ret;
		fresh = true;
	}
	ret = send_all(c->fd, c->out, len);
	if (!ret)
		ret = read_response(c);
	/*
	 * sbxd closes a kept-alive connection on its own only while it is
	 * idle (the idle timeout), so an end of file before any response
	 * byte means it never read this request: retry once on a fresh
	 * connection.
	 */
	if ((ret == -ECONNRESET || ret == -EPIPE) && !fresh &&
	    c->status == 0) {
		close(c->fd);
		c->fd = -1;
		ret = client_connect(c);
		if (ret)
			return ret;
		ret = send_all(c->fd, c->out, len);
		if (!ret)
			ret = read_response(c);
	}
	if (ret || !c->keep_alive) {
		close(c->fd);
		c->fd = -1;
	}
	return ret;
}

int client_wait_ready(const struct client_addr *addr, int timeout_ms)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * NS_PER_MS;
	struct client c;
	int ret;

	client_init(&c, addr);
	for (;;) {
		ret = client_connect(&c);
		if (!ret) {
			client_close(&c);
			return 0;
		}
		if (bench_now_ns() >= deadline)
			return ret;
		usleep(5000);
	}
}
