/* SPDX-License-Identifier: MIT */
/*
 * The event loop: one io_uring ring. Every submission carries a pointer
 * to a struct loop_req embedded in its owner; the completion is dispatched
 * on loop_req.op. Timers share one kernel timeout armed at the earliest
 * deadline.
 */
#ifndef SBXD_LOOP_H
#define SBXD_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

/* liburing 2.3 lacks this flag; kernels since 6.4 support it. */
#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6)
#endif

/* glibc's sys/queue.h lacks the _SAFE iterators. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, next)                   \
	for ((var) = TAILQ_FIRST(head);                               \
	     (var) && ((next) = TAILQ_NEXT(var, field), 1);           \
	     (var) = (next))
#endif

struct sbxd;

enum loop_op {
	LOOP_OP_ACCEPT = 1,	/* multishot accept on a listener */
	LOOP_OP_RECV,		/* read from an API connection */
	LOOP_OP_SEND,		/* write to an API connection */
	LOOP_OP_SIGNAL,		/* read from the signalfd */
	LOOP_OP_CHILD,		/* a VMM pidfd became readable: it exited */
	LOOP_OP_CONTROL,	/* a VMM control socket became readable */
	LOOP_OP_TIMER,		/* the shared timer timeout fired */
	LOOP_OP_DRAIN_TICK,	/* multishot timeout of the drain waiter */
};

struct loop_req {
	enum loop_op op;
	bool pending;		/* a submission with this req is in flight */
};

struct timer;
typedef void (*timer_fn)(struct sbxd *d, struct timer *timer);

struct timer {
	TAILQ_ENTRY(timer) link;
	uint64_t deadline_ns;	/* CLOCK_MONOTONIC */
	timer_fn fn;
	bool armed;
};

TAILQ_HEAD(timer_list, timer);

struct loop {
	struct io_uring ring;
	struct timer_list timers;	/* sorted by deadline */
	struct loop_req timer_req;
	uint64_t kernel_deadline_ns;	/* of the pending kernel timeout */
	struct __kernel_timespec ts;	/* read by the kernel at submit */
};

int loop_init(struct loop *loop, unsigned int entries);
void loop_exit(struct loop *loop);

/* An SQE; submits queued ones first when the ring is full. Never NULL. */
struct io_uring_sqe *loop_sqe(struct loop *loop);
void loop_set_req(struct io_uring_sqe *sqe, struct loop_req *req);

/* Wait for completions and dispatch them until *stop becomes true. */
int loop_run(struct sbxd *d, const bool *stop);

void loop_timer_arm(struct loop *loop, struct timer *timer, uint64_t ms,
		    timer_fn fn);
void loop_timer_cancel(struct loop *loop, struct timer *timer);

uint64_t loop_now_ns(void);

#endif
