// SPDX-License-Identifier: MIT
/* The io_uring event loop, its completion dispatch and its timers. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "sbxd/conn.h"
#include "sbxd/drain.h"
#include "sbxd/log.h"
#include "sbxd/loop.h"
#include "sbxd/sandbox.h"
#include "sbxd/sbxd.h"

uint64_t loop_now_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

int loop_init(struct loop *loop, unsigned int entries)
{
	struct io_uring_params params;
	int ret;

	memset(loop, 0, sizeof(*loop));
	memset(&params, 0, sizeof(params));
	/* Multishot accepts and polls can outpace one pass of the loop. */
	params.flags = IORING_SETUP_CQSIZE;
	params.cq_entries = entries * 8;
	ret = io_uring_queue_init_params(entries, &loop->ring, &params);
	if (ret < 0)
		return ret;
	TAILQ_INIT(&loop->timers);
	loop->timer_req.op = LOOP_OP_TIMER;
	return 0;
}

void loop_exit(struct loop *loop)
{
	io_uring_queue_exit(&loop->ring);
}

struct io_uring_sqe *loop_sqe(struct loop *loop)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);

	while (!sqe) {
		io_uring_submit(&loop->ring);
		sqe = io_uring_get_sqe(&loop->ring);
	}
	return sqe;
}

void loop_set_req(struct io_uring_sqe *sqe, struct loop_req *req)
{
	io_uring_sqe_set_data(sqe, req);
	if (req)
		req->pending = true;
}

static void set_ts(struct __kernel_timespec *ts, uint64_t ns)
{
	ts->tv_sec = (long long)(ns / 1000000000ull);
	ts->tv_nsec = (long long)(ns % 1000000000ull);
}

/* Make the kernel timeout fire no later than the earliest timer. */
static void timer_rearm(struct loop *loop)
{
	struct timer *first = TAILQ_FIRST(&loop->timers);
	struct io_uring_sqe *sqe;

	if (!first)
		return;
	if (loop->timer_req.pending &&
	    loop->kernel_deadline_ns <= first->deadline_ns)
		return;

	sqe = loop_sqe(loop);
	set_ts(&loop->ts, first->deadline_ns);
	if (loop->timer_req.pending) {
		io_uring_prep_timeout_update(sqe, &loop->ts,
					     (__u64)(uintptr_t)&loop->timer_req,
					     IORING_TIMEOUT_ABS);
		loop_set_req(sqe, NULL);
	} else {
		io_uring_prep_timeout(sqe, &loop->ts, 0, IORING_TIMEOUT_ABS);
		loop_set_req(sqe, &loop->timer_req);
	}
	loop->kernel_deadline_ns = first->deadline_ns;
	/* The kernel copies the timespec at submit, so submit before reuse. */
	io_uring_submit(&loop->ring);
}

void loop_timer_arm(struct loop *loop, struct timer *timer, uint64_t ms,
		    timer_fn fn)
{
	struct timer *pos;

	if (timer->armed)
		TAILQ_REMOVE(&loop->timers, timer, link);
	timer->deadline_ns = loop_now_ns() + ms * 1000000ull;
	timer->fn = fn;
	timer->armed = true;

	TAILQ_FOREACH_REVERSE(pos, &loop->timers, timer_list, link) {
		if (pos->deadline_ns <= timer->deadline_ns)
			break;
	}
	if (pos)
		TAILQ_INSERT_AFTER(&loop->timers, pos, timer, link);
	else
		TAILQ_INSERT_HEAD(&loop->timers, timer, link);
	timer_rearm(loop);
}

void loop_timer_cancel(struct loop *loop, struct timer *timer)
{
	/* A pending kernel timeout may still fire and find nothing due. */
	if (!timer->armed)
		return;
	TAILQ_REMOVE(&loop->timers, timer, link);
	timer->armed = false;
}

static void timer_on_fire(struct sbxd *d)
{
	struct loop *loop = &d->loop;
	uint64_t now = loop_now_ns();
	struct timer *timer;

	loop->timer_req.pending = false;
	while ((timer = TAILQ_FIRST(&loop->timers)) &&
	       timer->deadline_ns <= now) {
		TAILQ_REMOVE(&loop->timers, timer, link);
		timer->armed = false;
		timer->fn(d, timer);
	}
	timer_rearm(loop);
}

static void dispatch(struct sbxd *d, struct io_uring_cqe *cqe)
{
	struct loop_req *req = io_uring_cqe_get_data(cqe);

	/* Cancellations and timeout updates carry no request. */
	if (!req)
		return;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		req->pending = false;

	switch (req->op) {
	case LOOP_OP_ACCEPT:
		listener_on_accept(d, req, cqe->res, cqe->flags);
		break;
	case LOOP_OP_RECV:
		conn_on_recv(d, req, cqe->res);
		break;
	case LOOP_OP_SEND:
		conn_on_send(d, req, cqe->res);
		break;
	case LOOP_OP_SIGNAL:
		drain_on_signal(d, cqe->res);
		break;
	case LOOP_OP_CHILD:
		sandbox_on_child(d, req, cqe->res);
		break;
	case LOOP_OP_CONTROL:
		sandbox_on_control(d, req, cqe->res);
		break;
	case LOOP_OP_TIMER:
		timer_on_fire(d);
		break;
	case LOOP_OP_DRAIN_TICK:
		drain_on_tick(d, cqe->res, cqe->flags);
		break;
	default:
		log_err("BUG: completion with unknown op %d dropped", req->op);
		break;
	}
}

int loop_run(struct sbxd *d, const bool *stop)
{
	struct io_uring *ring = &d->loop.ring;

	while (!*stop) {
		struct io_uring_cqe *cqe;
		unsigned int head;
		unsigned int count = 0;
		int ret;

		ret = io_uring_submit_and_wait(ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY) {
			log_err("failed to wait for io_uring completions: %s",
				strerror(-ret));
			return ret;
		}
		io_uring_for_each_cqe(ring, head, cqe) {
			dispatch(d, cqe);
			count++;
		}
		io_uring_cq_advance(ring, count);
	}
	return 0;
}
