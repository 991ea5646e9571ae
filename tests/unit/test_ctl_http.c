// SPDX-License-Identifier: MIT
/*
 * sbxctl's HTTP layer: request text, response parsing fed in pieces, and
 * one round trip over a socketpair standing in for the server.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/http.h"

/* Feed @text one byte at a time and return the last feed result. */
static int feed_bytewise(struct http_response *resp, const char *text)
{
	size_t len = strlen(text);
	int ret = 0;

	for (size_t i = 0; i < len && ret == 0; i++)
		ret = http_response_feed(resp, text + i, 1);
	return ret;
}

Test(http, request_with_body)
{
	char *text;
	size_t len;

	cr_assert_eq(http_request_format("POST", "/v1/sandboxes", "{}", &text,
					 &len), 0);
	cr_assert_eq(len, strlen(text));
	cr_assert(strncmp(text, "POST /v1/sandboxes HTTP/1.1\r\n", 29) == 0,
		  "request line: %s", text);
	cr_assert(strstr(text, "\r\nContent-Length: 2\r\n"), "%s", text);
	cr_assert(strstr(text, "\r\nContent-Type: application/json\r\n"),
		  "%s", text);
	cr_assert(strstr(text, "\r\nConnection: close\r\n"), "%s", text);
	cr_assert(strcmp(text + len - 6, "\r\n\r\n{}") == 0, "%s", text);
	free(text);
}

Test(http, request_without_body)
{
	char *text;
	size_t len;

	cr_assert_eq(http_request_format("GET", "/v1/node", NULL, &text, &len),
		     0);
	cr_assert_null(strstr(text, "Content-Length"), "%s", text);
	cr_assert(strcmp(text + len - 4, "\r\n\r\n") == 0, "%s", text);
	free(text);
}

Test(http, response_content_length_bytewise)
{
	struct http_response resp;

	http_response_init(&resp);
	cr_assert_eq(feed_bytewise(&resp,
				   "HTTP/1.1 503 Service Unavailable\r\n"
				   "Content-Type: application/json\r\n"
				   "retry-after: 2\r\n"
				   "Content-Length: 7\r\n\r\n{\"a\":1}"),
		     1);
	cr_assert_eq(resp.status, 503);
	cr_assert_eq(resp.retry_after, 2);
	cr_assert_eq(resp.body_len, 7);
	cr_assert_str_eq(resp.body, "{\"a\":1}");
	http_response_free(&resp);
}

Test(http, response_chunked)
{
	struct http_response resp;

	http_response_init(&resp);
	cr_assert_eq(http_response_feed(&resp,
					"HTTP/1.1 200 OK\r\n"
					"Transfer-Encoding: chunked\r\n\r\n"
					"3\r\n{\"x\r\n4\r\n\":0}\r\n0\r\n\r\n",
					69), 1);
	cr_assert_eq(resp.status, 200);
	cr_assert_eq(resp.retry_after, -1);
	cr_assert_str_eq(resp.body, "{\"x\":0}");
	http_response_free(&resp);
}

Test(http, response_until_eof)
{
	static const char head[] = "HTTP/1.1 200 OK\r\n\r\nhello";
	struct http_response resp;

	http_response_init(&resp);
	cr_assert_eq(http_response_feed(&resp, head, strlen(head)), 0);
	cr_assert_eq(http_response_feed(&resp, "", 0), 1);
	cr_assert_str_eq(resp.body, "hello");
	http_response_free(&resp);
}

Test(http, response_cut_short)
{
	static const char head[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
	struct http_response resp;

	http_response_init(&resp);
	cr_assert_eq(http_response_feed(&resp, head, strlen(head)), 0);
	cr_assert_eq(http_response_feed(&resp, "", 0), -ECONNRESET);
	http_response_free(&resp);
}

Test(http, response_garbage)
{
	struct http_response resp;

	http_response_init(&resp);
	cr_assert_eq(http_response_feed(&resp, "SSH-2.0-OpenSSH\r\n", 17),
		     -EPROTO);
	http_response_free(&resp);
}

Test(http, response_continue_then_final)
{
	static const char text[] = "HTTP/1.1 100 Continue\r\n\r\n"
				   "HTTP/1.1 201 Created\r\n"
				   "Content-Length: 2\r\n\r\n{}";
	struct http_response resp;

	http_response_init(&resp);
	cr_assert_eq(http_response_feed(&resp, text, strlen(text)), 1);
	cr_assert_eq(resp.status, 201);
	cr_assert_str_eq(resp.body, "{}");
	http_response_free(&resp);
}

Test(http, roundtrip_over_socketpair)
{
	static const char response[] = "HTTP/1.1 200 OK\r\n"
				     "Content-Length: 11\r\n\r\n"
				     "{\"ok\":true}";
	struct http_response resp;
	char request[4096];
	ssize_t n;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* The response fits the socket buffer, so it can be queued first. */
	cr_assert_eq(write(sv[1], response, strlen(response)),
		     (ssize_t)strlen(response));

	http_response_init(&resp);
	cr_assert_eq(http_roundtrip(sv[0], "GET", "/healthz", NULL, &resp), 0);
	cr_assert_eq(resp.status, 200);
	cr_assert_str_eq(resp.body, "{\"ok\":true}");

	n = read(sv[1], request, sizeof(request) - 1);
	cr_assert_gt(n, 0);
	request[n] = '\0';
	cr_assert(strncmp(request, "GET /healthz HTTP/1.1\r\n", 23) == 0,
		  "request: %s", request);
	http_response_free(&resp);
	close(sv[0]);
	close(sv[1]);
}

Test(http, roundtrip_peer_closes)
{
	struct http_response resp;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	http_response_init(&resp);
	cr_assert_eq(http_roundtrip(sv[0], "GET", "/v1/node", NULL, &resp),
		     -ECONNRESET);
	http_response_free(&resp);
	close(sv[0]);
}
