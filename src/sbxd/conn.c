// SPDX-License-Identifier: MIT
/* Listeners and API connections on the io_uring loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sbxd/api.h"
#include "sbxd/conn.h"
#include "sbxd/log.h"
#include "sbxd/sbxd.h"

static const char continue_response[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void process_input(struct sbxd *d, struct conn *c);

void conn_table_init(struct conn_table *table)
{
	memset(table, 0, sizeof(*table));
	TAILQ_INIT(&table->list);
	for (int i = 0; i < CONFIG_LISTEN_MAX + 1; i++)
		table->listeners[i].fd = -1;
}

int listener_open(struct sbxd *d, const struct listen_addr *addr)
{
	struct conn_table *table = &d->conns;
	struct listener *ls;
	int one = 1;
	int fd;
	int ret;

	if (table->nlisteners >= CONFIG_LISTEN_MAX + 1)
		return -ENOSPC;
	ls = &table->listeners[table->nlisteners];

	fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		log_err("failed to create a socket for %s: %s", addr->text,
			strerror(-ret));
		return ret;
	}
	if (addr->family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

	if (addr->family == AF_UNIX) {
		/* The umask makes the socket 0600 from its first moment. */
		mode_t old = umask(0177);

		ret = bind(fd, (const struct sockaddr *)&addr->addr,
			   addr->addr_len);
		umask(old);
	} else {
		ret = bind(fd, (const struct sockaddr *)&addr->addr,
			   addr->addr_len);
	}
	if (ret < 0) {
		ret = -errno;
		log_err("failed to bind %s: %s%s", addr->text, strerror(-ret),
			ret == -EADDRINUSE ?
			"; another process listens there, pick another "
			"address" : "");
		goto err_close;
	}
	if (listen(fd, 512) < 0) {
		ret = -errno;
		log_err("failed to listen on %s: %s", addr->text,
			strerror(-ret));
		goto err_close;
	}

	ls->fd = fd;
	ls->addr = *addr;
	ls->req.op = LOOP_OP_ACCEPT;
	table->nlisteners++;
	if (addr->family != AF_UNIX && !d->cfg.token[0])
		log_warn("TCP listener %s has no --token-file, so every local "
			 "user can call the API on it", addr->text);
	return 0;

err_close:
	close(fd);
	return ret;
}

static void accept_arm(struct sbxd *d, struct listener *ls)
{
	struct io_uring_sqe *sqe = loop_sqe(&d->loop);

	io_uring_prep_multishot_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
	loop_set_req(sqe, &ls->req);
}

void listeners_start(struct sbxd *d)
{
	for (int i = 0; i < d->conns.nlisteners; i++)
		accept_arm(d, &d->conns.listeners[i]);
}

void listeners_close(struct sbxd *d)
{
	for (int i = 0; i < d->conns.nlisteners; i++) {
		struct listener *ls = &d->conns.listeners[i];
		struct io_uring_sqe *sqe;

		if (ls->fd < 0)
			continue;
		if (ls->req.pending) {
			sqe = loop_sqe(&d->loop);
			io_uring_prep_cancel(sqe, &ls->req, 0);
			loop_set_req(sqe, NULL);
		}
		close(ls->fd);
		ls->fd = -1;
	}
	io_uring_submit(&d->loop.ring);
}

static void conn_free(struct sbxd *d, struct conn *c)
{
	TAILQ_REMOVE(&d->conns.list, c, link);
	d->conns.count--;
	http_reader_free(&c->reader);
	buf_free(&c->out);
	free(c);
}

static void conn_maybe_free(struct sbxd *d, struct conn *c)
{
	if (c->closing && !c->recv_req.pending && !c->send_req.pending &&
	    !c->waiting)
		conn_free(d, c);
}

static void conn_close(struct sbxd *d, struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	loop_timer_cancel(&d->loop, &c->timer);
	/* Completes a pending recv with 0 and fails a pending send. */
	shutdown(c->fd, SHUT_RDWR);
	close(c->fd);
	c->fd = -1;
	conn_maybe_free(d, c);
}

static void conn_on_timer(struct sbxd *d, struct timer *timer)
{
	struct conn *c = container_of(timer, struct conn, timer);

	if (c->waiting)
		return;
	log_debug("closing connection: %s conn=%llu",
		  c->timer_mode == CONN_TIMER_SEND ? "response send timed out" :
		  c->timer_mode == CONN_TIMER_REQUEST ? "request timed out" :
		  "idle timeout", (unsigned long long)c->id);
	conn_close(d, c);
}

/* Take over an accepted socket as a new connection, or close it. */
/* Compare the request's bearer token in time independent of its bytes. */
static bool token_matches(const struct sbxd *d, const struct http_request *req)
{
	const char *token = d->cfg.token;
	const char *given = req->authorization;
	size_t len = strlen(token);
	unsigned char diff = 0;

	if (strncasecmp(given, "Bearer ", 7) != 0)
		return false;
	given += 7;
	if (strlen(given) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char)(given[i] ^ token[i]);
	return diff == 0;
}

static void conn_add(struct sbxd *d, struct listener *ls, int fd)
{
	struct conn_table *table = &d->conns;
	struct conn *c;

	if (table->count >= d->cfg.max_connections) {
		uint64_t now = loop_now_ns();

		close(fd);
		table->rejected++;
		if (now - table->reject_logged_ns >= 1000000000ull) {
			log_warn("rejected connection on %s: %u connections "
				 "open, the maximum set by --max-connections "
				 "rejected_total=%llu", ls->addr.text,
				 table->count,
				 (unsigned long long)table->rejected);
			table->reject_logged_ns = now;
		}
		return;
	}

	c = calloc(1, sizeof(*c));
	if (!c) {
		log_err("failed to allocate a connection: out of memory");
		close(fd);
		return;
	}
	c->fd = fd;
	c->id = ++table->next_id;
	c->needs_token = ls->addr.family != AF_UNIX && d->cfg.token[0];
	c->recv_req.op = LOOP_OP_RECV;
	c->send_req.op = LOOP_OP_SEND;
	http_reader_init(&c->reader);
	c->reader.header_max = d->cfg.max_header_size;
	c->reader.body_max = d->cfg.max_body_size;
	TAILQ_INSERT_TAIL(&table->list, c, link);
	table->count++;
	process_input(d, c);
}

void listener_on_accept(struct sbxd *d, struct loop_req *req, int res,
			unsigned int flags)
{
	struct listener *ls = container_of(req, struct listener, req);

	if (res >= 0)
		conn_add(d, ls, res);
	else if (res != -ECANCELED && ls->fd >= 0)
		log_warn("failed to accept on %s: %s", ls->addr.text,
			 strerror(-res));
	if (!(flags & IORING_CQE_F_MORE) && ls->fd >= 0)
		accept_arm(d, ls);
}

/* Accept every connection queued on one listener, without blocking. */
static void accept_backlog(struct sbxd *d, struct listener *ls)
{
	int flags = fcntl(ls->fd, F_GETFL);
	unsigned int count = 0;
	int fd;

	/*
	 * A unix listener that is shut down for reading refuses new
	 * connections but still hands out the queued ones, so no client
	 * slips in between the last accept and the close. A TCP listener
	 * would reset its queue instead, so it is only drained.
	 */
	if (ls->addr.family == AF_UNIX && shutdown(ls->fd, SHUT_RD) < 0)
		log_warn("failed to shut down %s for new connections: %s",
			 ls->addr.text, strerror(errno));
	if (flags < 0 || fcntl(ls->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		log_warn("failed to make %s non-blocking: %s; its queued "
			 "connections will be reset", ls->addr.text,
			 strerror(errno));
		return;
	}
	for (;;) {
		fd = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && errno == EINTR)
			continue;
		if (fd < 0)
			break;
		conn_add(d, ls, fd);
		count++;
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK)
		log_warn("failed to accept the queued connections on %s: %s",
			 ls->addr.text, strerror(errno));
	if (count)
		log_info("accepted %u queued connections on %s before "
			 "closing it", count, ls->addr.text);
}

void listeners_accept_backlog(struct sbxd *d)
{
	for (int i = 0; i < d->conns.nlisteners; i++) {
		struct listener *ls = &d->conns.listeners[i];

		if (ls->fd >= 0)
			accept_backlog(d, ls);
	}
}

static void start_recv(struct sbxd *d, struct conn *c)
{
	struct io_uring_sqe *sqe = loop_sqe(&d->loop);

	c->in_off = 0;
	c->in_len = 0;
	io_uring_prep_recv(sqe, c->fd, c->in, sizeof(c->in), 0);
	loop_set_req(sqe, &c->recv_req);
}

static void start_send(struct sbxd *d, struct conn *c)
{
	struct io_uring_sqe *sqe = loop_sqe(&d->loop);

	io_uring_prep_send(sqe, c->fd, c->out.data + c->out_off,
			   c->out.len - c->out_off, MSG_NOSIGNAL);
	loop_set_req(sqe, &c->send_req);
}

static void respond_reader_error(struct sbxd *d, struct conn *c)
{
	struct http_reader *r = &c->reader;

	r->req.keep_alive = false;
	c->waiting = true;
	api_error(d, c, r->error_status,
		  r->error_status == 413 ? "too_large" :
		  r->error_status == 431 ? "headers_too_large" :
		  r->error_status == 500 ? "internal" : "invalid",
		  NULL, "invalid HTTP request: %s", r->error_message);
}

/* Parse buffered input, then wait for more, respond or hand over. */
static void process_input(struct sbxd *d, struct conn *c)
{
	struct http_reader *r = &c->reader;
	enum http_feed result;
	size_t used;

	if (c->closing)
		return;
	result = http_reader_feed(r, c->in + c->in_off, c->in_len - c->in_off,
				  &used);
	c->in_off += used;

	switch (result) {
	case HTTP_FEED_MORE:
		/*
		 * The request bound runs from the request's first byte, so
		 * trickling bytes does not extend it.
		 */
		if (r->in_message && c->timer_mode != CONN_TIMER_REQUEST) {
			c->timer_mode = CONN_TIMER_REQUEST;
			loop_timer_arm(&d->loop, &c->timer,
				       d->cfg.request_timeout_ms,
				       conn_on_timer);
		} else if (!r->in_message) {
			c->timer_mode = CONN_TIMER_IDLE;
			loop_timer_arm(&d->loop, &c->timer,
				       d->cfg.idle_timeout_ms, conn_on_timer);
		}
		start_recv(d, c);
		break;
	case HTTP_FEED_CONTINUE:
		buf_append(&c->out, continue_response,
			   sizeof(continue_response) - 1);
		c->timer_mode = CONN_TIMER_SEND;
		loop_timer_arm(&d->loop, &c->timer, d->cfg.request_timeout_ms,
			       conn_on_timer);
		start_send(d, c);
		break;
	case HTTP_FEED_REQUEST:
		c->timer_mode = CONN_TIMER_NONE;
		loop_timer_cancel(&d->loop, &c->timer);
		c->waiting = true;
		if (c->needs_token && !token_matches(d, &r->req)) {
			log_warn("rejected request on TCP connection %llu: "
				 "missing or invalid bearer token",
				 (unsigned long long)c->id);
			api_error(d, c, 401, "unauthorized",
				  "WWW-Authenticate: Bearer\r\n",
				  "missing or invalid bearer token; send "
				  "Authorization: Bearer TOKEN from "
				  "--token-file");
		} else {
			api_handle(d, c, &r->req);
		}
		break;
	case HTTP_FEED_ERROR:
		loop_timer_cancel(&d->loop, &c->timer);
		respond_reader_error(d, c);
		break;
	}
}

void conn_on_recv(struct sbxd *d, struct loop_req *req, int res)
{
	struct conn *c = container_of(req, struct conn, recv_req);

	if (c->closing) {
		conn_maybe_free(d, c);
		return;
	}
	if (res <= 0) {
		if (res < 0 && res != -ECONNRESET)
			log_debug("closing connection: recv failed: %s "
				  "conn=%llu", strerror(-res),
				  (unsigned long long)c->id);
		conn_close(d, c);
		return;
	}
	c->in_off = 0;
	c->in_len = (size_t)res;
	process_input(d, c);
}

void conn_on_send(struct sbxd *d, struct loop_req *req, int res)
{
	struct conn *c = container_of(req, struct conn, send_req);

	if (c->closing) {
		conn_maybe_free(d, c);
		return;
	}
	if (res < 0) {
		log_debug("closing connection: send failed: %s conn=%llu",
			  strerror(-res), (unsigned long long)c->id);
		conn_close(d, c);
		return;
	}
	c->out_off += (size_t)res;
	if (c->out_off < c->out.len) {
		start_send(d, c);
		return;
	}

	buf_reset(&c->out);
	c->out_off = 0;
	/* After 100 Continue the request's own bound goes on. */
	if (c->timer_mode == CONN_TIMER_SEND) {
		c->timer_mode = CONN_TIMER_NONE;
		loop_timer_cancel(&d->loop, &c->timer);
	}
	if (c->close_after_send) {
		conn_close(d, c);
		return;
	}
	if (c->reader.complete)
		http_reader_next(&c->reader);
	process_input(d, c);
}

void conn_respond(struct sbxd *d, struct conn *c, int status,
		  const char *content_type, const char *body, size_t len,
		  const char *extra_headers)
{
	bool keep_alive;

	if (!c->waiting) {
		log_err("BUG: response %d for a connection with no request",
			status);
		return;
	}
	c->waiting = false;
	if (c->closing) {
		conn_maybe_free(d, c);
		return;
	}

	c->served++;
	keep_alive = c->reader.req.keep_alive && !c->reader.error_status &&
		     c->served < d->cfg.max_requests &&
		     d->drain.state != SBXD_CLOSING;
	c->close_after_send = !keep_alive;
	buf_reset(&c->out);
	c->out_off = 0;
	if (http_format_response(&c->out, status, content_type, body, len,
				 extra_headers, keep_alive)) {
		log_err("failed to format a %d response: out of memory; "
			"closing connection conn=%llu", status,
			(unsigned long long)c->id);
		conn_close(d, c);
		return;
	}
	c->timer_mode = CONN_TIMER_SEND;
	loop_timer_arm(&d->loop, &c->timer, d->cfg.request_timeout_ms,
		       conn_on_timer);
	start_send(d, c);
}

/*
 * Whether c still has a request to come: its first one, from a client
 * that connected during the drain or waited in the listen queue, or the
 * rest of a request that has begun to arrive.
 */
static bool conn_expects_request(const struct conn *c)
{
	return c->served == 0 || c->reader.in_message ||
	       c->in_off < c->in_len;
}

bool conns_flush_done(struct sbxd *d)
{
	struct conn *c;
	struct conn *next;
	bool done = true;

	TAILQ_FOREACH_SAFE(c, &d->conns.list, link, next) {
		if (c->closing)
			continue;
		if (c->send_req.pending || c->waiting ||
		    conn_expects_request(c)) {
			done = false;
			continue;
		}
		conn_close(d, c);
	}
	return done;
}
