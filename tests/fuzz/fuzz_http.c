// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for sbxd's API connections: the input is the byte
 * stream a client sends on one connection. It goes through the code sbxd
 * runs for a socket (conn.c accept, recv and send handlers, the http-parser
 * callbacks in http.c, routing and body decoding in api.c) on a real
 * io_uring loop and memfd gate. The harness plays the kernel: it completes
 * each recv with the next chunk of input and each send with the bytes
 * sbxd queued, then checks every response.
 *
 * --max-sandboxes is 0, so a valid create gets a 429 response after its
 * body is decoded, and no VMM is ever spawned. No sandbox exists, so the
 * /v1/sandboxes/{id} routes end in 404 or 405 before they need one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "sbxd/conn.h"
#include "sbxd/http.h"
#include "sbxd/log.h"
#include "sbxd/sbxd.h"

/* Bound on recv and send completions for one input: each moves a byte. */
#define STEP_MAX (8u * 1024 * 1024)

static struct sbxd daemon_state;
static int devnull_fd = -1;

/*
 * Chunk sizes for recv and send completions, picked by the input length so
 * that the fuzzer also splits request lines, headers and chunked bodies
 * across reads, and responses across writes.
 */
static const size_t chunk_sizes[] = { CONN_RECV_SIZE, 1, 7, 64, 500 };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sbxd *d = &daemon_state;
	struct gate_config gate = {
		.backend = GATE_BACKEND_MEMFD,
		.instance = "fuzz",
	};
	int ret;

	fuzz_util_init();
	d->lock_fd = -1;
	d->signal_fd = -1;
	config_init(&d->cfg);
	d->cfg.max_sandboxes = 0;
	d->cfg.gate = GATE_BACKEND_MEMFD;
	snprintf(d->cfg.guest, sizeof(d->cfg.guest), "%s", SBX_FUZZ_GUEST);
	/* Only errors are logged, because none is expected here. */
	log_max_level = LOG_LEVEL_ERR;
	sandbox_table_init(&d->sandboxes);
	conn_table_init(&d->conns);
	snprintf(d->conns.listeners[0].addr.text,
		 sizeof(d->conns.listeners[0].addr.text), "fuzz");
	d->conns.listeners[0].req.op = LOOP_OP_ACCEPT;

	ret = loop_init(&d->loop, 256);
	if (ret)
		fuzz_fail("failed to set up io_uring: %s", strerror(-ret));
	ret = gate_open(&d->gate, &gate);
	if (ret)
		fuzz_fail("failed to open the memfd gate: %s", strerror(-ret));
	devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull_fd < 0)
		fuzz_fail("failed to open /dev/null: %s", strerror(errno));
	return 0;
}

static const char *find_bytes(const char *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle));
}

/* Check an error body: {"error":{"code":"...","message":"..."}}. */
static void check_error_body(int status, json_t *root)
{
	json_t *error = json_object_get(root, "error");

	FUZZ_CHECK(json_is_object(error), "status %d without an error object",
		   status);
	FUZZ_CHECK(json_is_string(json_object_get(error, "code")),
		   "status %d error without a code string", status);
	FUZZ_CHECK(json_is_string(json_object_get(error, "message")),
		   "status %d error without a message string", status);
}

static void check_body(int status, const char *headers, size_t header_len,
		       const char *body, size_t body_len)
{
	json_error_t jerr;
	json_t *root;

	if (!find_bytes(headers, header_len,
			"\r\nContent-Type: application/json\r\n"))
		return;
	root = json_loadb(body, body_len, 0, &jerr);
	FUZZ_CHECK(root, "status %d body is not valid JSON (%s): %.*s",
		   status, jerr.text, (int)(body_len > 512 ? 512 : body_len),
		   body);
	FUZZ_CHECK(json_is_object(root), "status %d body is not an object",
		   status);
	if (status >= 400)
		check_error_body(status, root);
	json_decref(root);
}

/* Check one whole response that sbxd queued for sending. */
static void check_response(const char *text, size_t len)
{
	static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	const char *end = find_bytes(text, len, "\r\n\r\n");
	const char *field;
	unsigned long long content_length;
	size_t header_len;
	int status;
	char *after;

	FUZZ_CHECK(len > 12 && memcmp(text, "HTTP/1.1 ", 9) == 0 &&
			   text[12] == ' ',
		   "malformed status line: %.*s", (int)(len > 64 ? 64 : len),
		   text);
	status = (text[9] - '0') * 100 + (text[10] - '0') * 10 +
		 (text[11] - '0');
	FUZZ_CHECK(strcmp(http_status_text(status), "Unknown") != 0,
		   "status %d has no reason phrase", status);
	/* Only an allocation failure inside sbxd may produce a 500. */
	FUZZ_CHECK(status != 500, "500 response: %.*s",
		   (int)(len > 512 ? 512 : len), text);
	if (status == 100) {
		FUZZ_CHECK(len == sizeof(continue_line) - 1 &&
				   memcmp(text, continue_line, len) == 0,
			   "malformed 100 Continue");
		return;
	}

	FUZZ_CHECK(end, "response without the end of its headers");
	header_len = (size_t)(end - text) + 2;
	field = find_bytes(text, header_len, "\r\nContent-Length: ");
	FUZZ_CHECK(field, "status %d without Content-Length", status);
	content_length = strtoull(field + 18, &after, 10);
	FUZZ_CHECK(after[0] == '\r', "malformed Content-Length");
	FUZZ_CHECK(content_length == len - header_len - 2,
		   "Content-Length %llu but %zu body bytes", content_length,
		   len - header_len - 2);
	check_body(status, text, header_len, end + 4, len - header_len - 2);
}

static struct conn *only_conn(struct sbxd *d)
{
	struct conn *c = TAILQ_FIRST(&d->conns.list);

	FUZZ_CHECK(!c || TAILQ_NEXT(c, link) == NULL,
		   "more than one connection open");
	return c;
}

/* Complete the pending send with up to `chunk` bytes of the response. */
static void complete_send(struct sbxd *d, struct conn *c, size_t chunk)
{
	size_t left = c->out.len - c->out_off;
	size_t n = left < chunk ? left : chunk;

	if (c->out_off == 0)
		check_response(c->out.data, c->out.len);
	c->send_req.pending = false;
	conn_on_send(d, &c->send_req, (int)n);
}

/* Complete the pending recv with the next chunk, or end of file. */
static void complete_recv(struct sbxd *d, struct conn *c, const uint8_t *data,
			  size_t size, size_t *off, size_t chunk)
{
	size_t n = size - *off < chunk ? size - *off : chunk;

	memcpy(c->in, data + *off, n);
	*off += n;
	c->recv_req.pending = false;
	conn_on_recv(d, &c->recv_req, (int)n);
}

/*
 * Drop the recv and send submissions that the handlers queued: the harness
 * completes them itself, and the kernel would only fail them on /dev/null
 * at about half the harness's run time. Timer submissions never wait here,
 * because loop.c submits each one at once.
 * NOTE: this resets liburing 2.3's sqe_tail, a field of struct io_uring_sq
 * in liburing.h that no function sets.
 */
static void drop_queued_sqes(struct sbxd *d)
{
	struct io_uring_sq *sq = &d->loop.ring.sq;

	sq->sqe_tail = sq->sqe_head;
}

/*
 * Reap the completions of what loop.c submitted: only the shared kernel
 * timeout, whose pending flag is cleared as loop.c's dispatch does.
 */
static void reap_completions(struct sbxd *d)
{
	struct io_uring *ring = &d->loop.ring;
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(ring, &cqe) == 0) {
		if (io_uring_cqe_get_data(cqe) == &d->loop.timer_req)
			d->loop.timer_req.pending = false;
		io_uring_cqe_seen(ring, cqe);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sbxd *d = &daemon_state;
	size_t chunk = chunk_sizes[size % (sizeof(chunk_sizes) /
					   sizeof(chunk_sizes[0]))];
	size_t off = 0;
	struct conn *c;
	int fd;

	/* conn_close() closes the socket, so it gets a copy of /dev/null. */
	fd = dup(devnull_fd);
	if (fd < 0)
		fuzz_fail("dup of /dev/null failed: %s", strerror(errno));
	listener_on_accept(d, &d->conns.listeners[0].req, fd,
			   IORING_CQE_F_MORE);
	drop_queued_sqes(d);

	for (unsigned int step = 0; (c = only_conn(d)); step++) {
		FUZZ_CHECK(step < STEP_MAX, "connection still open after %u "
			   "recv and send completions", step);
		FUZZ_CHECK(c->in_off <= c->in_len, "in_off %zu past in_len %zu",
			   c->in_off, c->in_len);
		if (c->send_req.pending)
			complete_send(d, c, chunk);
		else if (c->recv_req.pending)
			complete_recv(d, c, data, size, &off, chunk);
		else
			fuzz_fail("connection waits for nothing: waiting=%d "
				  "closing=%d", c->waiting, c->closing);
		drop_queued_sqes(d);
	}

	FUZZ_CHECK(d->conns.count == 0, "%u connections counted, none listed",
		   d->conns.count);
	FUZZ_CHECK(TAILQ_EMPTY(&d->loop.timers),
		   "a timer is still armed after the connection closed");
	FUZZ_CHECK(TAILQ_EMPTY(&d->sandboxes.list), "a sandbox was created");
	reap_completions(d);
	return 0;
}
