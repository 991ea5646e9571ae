// SPDX-License-Identifier: MIT
/*
 * Unit tests of sbxd's HTTP request reader and response formatter: whole,
 * split and pipelined requests, size limits, malformed input, 100-continue.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/http.h"

static struct http_reader reader;

static void setup(void)
{
	http_reader_init(&reader);
}

static void teardown(void)
{
	http_reader_free(&reader);
}

TestSuite(http, .init = setup, .fini = teardown);

static enum http_feed feed_all(const char *text, size_t *used)
{
	return http_reader_feed(&reader, text, strlen(text), used);
}

Test(http, get_complete)
{
	const char *text = "GET /v1/node?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t used;

	cr_assert_eq(feed_all(text, &used), HTTP_FEED_REQUEST);
	cr_assert_eq(used, strlen(text));
	cr_assert_eq(reader.req.method, HTTP_GET);
	cr_assert_str_eq(reader.req.url.data, "/v1/node?x=1");
	cr_assert(reader.req.keep_alive);
	cr_assert_not(reader.req.has_length);
	cr_assert_eq(reader.req.body.len, 0);
}

Test(http, post_body_split_bytewise)
{
	const char *text = "POST /v1/sandboxes HTTP/1.1\r\n"
			   "Content-Length: 13\r\n\r\n{\"vcpus\": 1}\n";
	enum http_feed result = HTTP_FEED_MORE;
	size_t len = strlen(text);

	for (size_t i = 0; i < len; i++) {
		size_t used;

		result = http_reader_feed(&reader, text + i, 1, &used);
		cr_assert_eq(used, 1, "byte %zu not consumed", i);
		if (i + 1 < len)
			cr_assert_eq(result, HTTP_FEED_MORE, "early at %zu", i);
	}
	cr_assert_eq(result, HTTP_FEED_REQUEST);
	cr_assert_eq(reader.req.method, HTTP_POST);
	cr_assert(reader.req.has_length);
	cr_assert_eq(reader.req.body.len, 13);
	cr_assert_str_eq(reader.req.body.data, "{\"vcpus\": 1}\n");
}

Test(http, pipelined_pauses_between)
{
	const char *text = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n"
			   "Connection: close\r\n\r\n";
	size_t len = strlen(text);
	size_t used;
	size_t more;

	cr_assert_eq(feed_all(text, &used), HTTP_FEED_REQUEST);
	cr_assert_lt(used, len, "the reader must stop after one request");
	cr_assert_str_eq(reader.req.url.data, "/a");

	http_reader_next(&reader);
	cr_assert_eq(http_reader_feed(&reader, text + used, len - used, &more),
		     HTTP_FEED_REQUEST);
	cr_assert_eq(used + more, len);
	cr_assert_str_eq(reader.req.url.data, "/b");
	cr_assert_not(reader.req.keep_alive, "Connection: close ignored");
}

Test(http, http10_closes)
{
	size_t used;

	cr_assert_eq(feed_all("GET / HTTP/1.0\r\n\r\n", &used),
		     HTTP_FEED_REQUEST);
	cr_assert_not(reader.req.keep_alive);
}

Test(http, garbage_is_400)
{
	size_t used;

	cr_assert_eq(feed_all("GARBAGE\r\n\r\n", &used), HTTP_FEED_ERROR);
	cr_assert_eq(reader.error_status, 400);
	cr_assert_not_null(reader.error_message);
}

Test(http, bad_content_length_is_400)
{
	size_t used;

	cr_assert_eq(feed_all("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
			      &used), HTTP_FEED_ERROR);
	cr_assert_eq(reader.error_status, 400);
}

Test(http, unknown_version_is_400)
{
	size_t used;

	cr_assert_eq(feed_all("GET / HTTP/9.9\r\n\r\n", &used),
		     HTTP_FEED_ERROR);
	cr_assert_eq(reader.error_status, 400);
	cr_assert(strstr(reader.error_message, "version"), "message: %s",
		  reader.error_message);
}

Test(http, large_content_length_is_413)
{
	size_t used;

	cr_assert_eq(feed_all("POST / HTTP/1.1\r\nContent-Length: 1048577\r\n"
			      "\r\n", &used), HTTP_FEED_ERROR);
	cr_assert_eq(reader.error_status, 413);
}

Test(http, body_at_limit_accepted)
{
	char head[128];
	char *body = malloc(HTTP_BODY_MAX);
	size_t used;

	cr_assert_not_null(body);
	memset(body, 'a', HTTP_BODY_MAX);
	snprintf(head, sizeof(head), "POST / HTTP/1.1\r\nContent-Length: %d"
		 "\r\n\r\n", HTTP_BODY_MAX);
	cr_assert_eq(feed_all(head, &used), HTTP_FEED_MORE);
	cr_assert_eq(http_reader_feed(&reader, body, HTTP_BODY_MAX, &used),
		     HTTP_FEED_REQUEST);
	cr_assert_eq(reader.req.body.len, HTTP_BODY_MAX);
	free(body);
}

Test(http, chunked_over_limit_is_413)
{
	static const char head[] = "POST / HTTP/1.1\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n";
	char chunk[64];
	char *data = malloc(512 * 1024);
	enum http_feed result = HTTP_FEED_MORE;
	size_t used;

	cr_assert_not_null(data);
	memset(data, 'b', 512 * 1024);
	cr_assert_eq(feed_all(head, &used), HTTP_FEED_MORE);
	for (int i = 0; i < 3 && result == HTTP_FEED_MORE; i++) {
		snprintf(chunk, sizeof(chunk), "%x\r\n", 512 * 1024);
		result = feed_all(chunk, &used);
		if (result != HTTP_FEED_MORE)
			break;
		result = http_reader_feed(&reader, data, 512 * 1024, &used);
		if (result == HTTP_FEED_MORE)
			result = feed_all("\r\n", &used);
	}
	cr_assert_eq(result, HTTP_FEED_ERROR);
	cr_assert_eq(reader.error_status, 413);
	free(data);
}

Test(http, headers_over_16k_is_431)
{
	size_t size = HTTP_HEADER_MAX + 1024;
	char *text = malloc(size + 64);
	size_t used;
	size_t n;

	cr_assert_not_null(text);
	n = (size_t)sprintf(text, "GET / HTTP/1.1\r\nX-Big: ");
	memset(text + n, 'x', size);
	strcpy(text + n + size, "\r\n\r\n");
	cr_assert_eq(feed_all(text, &used), HTTP_FEED_ERROR);
	cr_assert_eq(reader.error_status, 431);
	free(text);
}

Test(http, expect_continue)
{
	const char *head = "POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 2"
			   "\r\nExpect: 100-continue\r\n\r\n";
	size_t used;

	cr_assert_eq(feed_all(head, &used), HTTP_FEED_CONTINUE);
	cr_assert(reader.req.expect_continue);
	/* The rest of the head, if any was held back, and then the body. */
	cr_assert_eq(http_reader_feed(&reader, head + used,
				      strlen(head) - used, &used),
		     HTTP_FEED_MORE);
	cr_assert_eq(feed_all("{}", &used), HTTP_FEED_REQUEST);
	cr_assert_str_eq(reader.req.body.data, "{}");
}

Test(http, response_format)
{
	struct buf out = { 0 };

	cr_assert_eq(http_format_response(&out, 503, NULL, "{}", 2,
					  "Retry-After: 5\r\n", false), 0);
	cr_assert_str_eq(out.data,
			 "HTTP/1.1 503 Service Unavailable\r\n"
			 "Content-Type: application/json\r\n"
			 "Content-Length: 2\r\n"
			 "Connection: close\r\n"
			 "Retry-After: 5\r\n\r\n{}");
	buf_reset(&out);
	cr_assert_eq(http_format_response(&out, 200, "text/plain", "ok", 2,
					  NULL, true), 0);
	cr_assert_str_eq(out.data,
			 "HTTP/1.1 200 OK\r\n"
			 "Content-Type: text/plain\r\n"
			 "Content-Length: 2\r\n\r\nok");
	buf_free(&out);
}
