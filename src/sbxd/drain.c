// SPDX-License-Identifier: MIT
/* Signal handling and the drain state machine. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sbxd/drain.h"
#include "sbxd/drained.h"
#include "sbxd/log.h"
#include "sbxd/probes.h"
#include "sbxd/sbxd.h"

/*
 * Bound on the closing phase: reading the requests of clients that
 * connected during the drain, writing the last responses and reaping
 * VMMs killed by the force timeout.
 */
#define DRAIN_FLUSH_MS 1000

const char *drain_state_name(enum sbxd_node_state state)
{
	switch (state) {
	case SBXD_SERVING: return "serving";
	case SBXD_DRAINING: return "draining";
	case SBXD_FORCING: return "forcing";
	case SBXD_CLOSING: return "closing";
	}
	return "unknown";
}

int drain_init(struct sbxd *d)
{
	struct drain *drain = &d->drain;
	sigset_t mask;

	memset(drain, 0, sizeof(*drain));
	drain->state = SBXD_SERVING;
	drain->tick_req.op = LOOP_OP_DRAIN_TICK;
	drain->signal_req.op = LOOP_OP_SIGNAL;
	drain->siginfo = calloc(1, sizeof(*drain->siginfo));
	if (!drain->siginfo)
		return -ENOMEM;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		goto err_free;
	signal(SIGPIPE, SIG_IGN);
	d->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (d->signal_fd < 0)
		goto err_free;
	return 0;

err_free:
	free(drain->siginfo);
	drain->siginfo = NULL;
	return -errno;
}

void drain_start_signals(struct sbxd *d)
{
	struct io_uring_sqe *sqe = loop_sqe(&d->loop);

	io_uring_prep_read(sqe, d->signal_fd, d->drain.siginfo,
			   sizeof(*d->drain.siginfo), 0);
	loop_set_req(sqe, &d->drain.signal_req);
}

static void start_tick(struct sbxd *d)
{
	struct __kernel_timespec ts;
	struct io_uring_sqe *sqe;
	uint64_t ns = d->cfg.drain_poll_ms * 1000000ull;

	if (d->drain.tick_req.pending)
		return;
	ts.tv_sec = (long long)(ns / 1000000000ull);
	ts.tv_nsec = (long long)(ns % 1000000000ull);
	sqe = loop_sqe(&d->loop);
	io_uring_prep_timeout(sqe, &ts, 0, IORING_TIMEOUT_MULTISHOT);
	loop_set_req(sqe, &d->drain.tick_req);
	/* The kernel reads ts at submit, while it is still in scope. */
	io_uring_submit(&d->loop.ring);
}

static void set_gate_state(struct sbxd *d, enum sbxd_node_state state)
{
	int ret = gate_drain(&d->gate, state, loop_now_ns());

	if (ret)
		log_err("failed to set the gate to %s: %s",
			drain_state_name(state), strerror(-ret));
}

/* Milliseconds until timer fires, 0 when it is due or unarmed. */
static uint64_t timer_left_ms(const struct timer *timer, uint64_t now)
{
	if (!timer->armed || timer->deadline_ns <= now)
		return 0;
	return (timer->deadline_ns - now + 999999) / 1000000ull;
}

/*
 * Time left until the drain ends at the latest, or NOTIFY_UNBOUNDED
 * while the graceful phase may wait forever.
 */
static uint64_t drain_bound_left_ms(struct sbxd *d, uint64_t now)
{
	struct drain *drain = &d->drain;

	switch (drain->state) {
	case SBXD_DRAINING:
		if (!drain->drain_timer.armed)
			return NOTIFY_UNBOUNDED;
		return timer_left_ms(&drain->drain_timer, now) +
		       d->cfg.force_timeout_ms + DRAIN_FLUSH_MS;
	case SBXD_FORCING:
		return timer_left_ms(&drain->force_timer, now) +
		       DRAIN_FLUSH_MS;
	case SBXD_CLOSING:
		return timer_left_ms(&drain->flush_timer, now);
	case SBXD_SERVING:
		break;
	}
	return NOTIFY_UNBOUNDED;
}

/* Tell systemd about the drain. changed is true on a new phase. */
static void notify_progress(struct sbxd *d, bool changed)
{
	struct sbxd_drain_state st;
	struct notify_counts counts;
	uint64_t now = loop_now_ns();

	if (!d->notify.enabled)
		return;
	gate_read(&d->gate, &st);
	counts.state = d->drain.state;
	counts.inflight = st.inflight_starts;
	counts.live = st.live;
	counts.unreaped = d->sandboxes.unreaped;
	notify_drain(&d->notify, &counts, now, d->drain.started_ns,
		     drain_bound_left_ms(d, now), changed);
}

static void drain_timeout_expired(struct sbxd *d, struct timer *timer)
{
	drain_force(d, "drain timeout expired");
}

static void flush_expired(struct sbxd *d, struct timer *timer)
{
	log_warn("stopped waiting for the last requests, responses and reaps "
		 "after %d ms; closing %u connection%s", DRAIN_FLUSH_MS,
		 d->conns.count, d->conns.count == 1 ? "" : "s");
	d->stop = true;
}

static void drain_close(struct sbxd *d, const char *reason)
{
	struct drain *drain = &d->drain;

	drain->state = SBXD_CLOSING;
	set_gate_state(d, SBXD_CLOSING);
	loop_timer_cancel(&d->loop, &drain->drain_timer);
	loop_timer_cancel(&d->loop, &drain->force_timer);
	drained_finish(d);
	log_info("drain finished reason=\"%s\" elapsed_ms=%llu", reason,
		 (unsigned long long)((loop_now_ns() - drain->started_ns) /
				      1000000ull));
	listeners_accept_backlog(d);
	listeners_close(d);
	loop_timer_arm(&d->loop, &drain->flush_timer, DRAIN_FLUSH_MS,
		       flush_expired);
	notify_progress(d, true);
	drain_check(d);
}

static void force_expired(struct sbxd *d, struct timer *timer)
{
	unsigned int killed;

	log_err("force timeout expired after %llu ms with %u %s not "
		"reaped; sending SIGKILL to each",
		(unsigned long long)d->cfg.force_timeout_ms,
		d->sandboxes.unreaped,
		d->sandboxes.unreaped == 1 ? "sandbox" : "sandboxes");
	killed = sandbox_kill_all(d);
	d->drain.timed_out = true;
	drain_close(d, killed ? "force timeout expired" :
			       "force timeout expired, nothing left to kill");
}

/* --force-stop and --drain-policy kill skip the graceful phase. */
static bool skip_graceful(const struct sbxd *d)
{
	return d->cfg.force_stop || d->cfg.drain_policy == DRAIN_POLICY_KILL;
}

void drain_begin(struct sbxd *d, const char *reason)
{
	struct drain *drain = &d->drain;

	if (drain->state != SBXD_SERVING)
		return;
	drain->started_ns = loop_now_ns();
	drain->reason = reason;
	set_gate_state(d, SBXD_DRAINING);
	drain->state = SBXD_DRAINING;
	PROBE_DRAIN_BEGIN(reason);
	log_info("drain started reason=\"%s\" policy=%s inflight=%u "
		 "live=%u", reason,
		 config_drain_policy_name(d->cfg.drain_policy),
		 d->sandboxes.starting, d->sandboxes.live);
	start_tick(d);

	if (d->cfg.drain_timeout_set && d->cfg.drain_timeout_ms > 0 &&
	    !skip_graceful(d))
		loop_timer_arm(&d->loop, &drain->drain_timer,
			       d->cfg.drain_timeout_ms, drain_timeout_expired);
	notify_progress(d, true);

	if (d->cfg.force_stop) {
		drain_force(d, "--force-stop is set");
		return;
	}
	if (d->cfg.drain_policy == DRAIN_POLICY_KILL) {
		drain_force(d, "--drain-policy is kill");
		return;
	}
	if (d->cfg.drain_timeout_set && d->cfg.drain_timeout_ms == 0) {
		drain_force(d, "drain timeout is 0");
		return;
	}
	drain_check(d);
}

void drain_force(struct sbxd *d, const char *reason)
{
	struct drain *drain = &d->drain;

	if (drain->state == SBXD_SERVING)
		drain_begin(d, reason);
	if (drain->state != SBXD_DRAINING)
		return;
	drain->state = SBXD_FORCING;
	PROBE_FORCE_BEGIN(reason);
	set_gate_state(d, SBXD_FORCING);
	loop_timer_cancel(&d->loop, &drain->drain_timer);
	loop_timer_arm(&d->loop, &drain->force_timer, d->cfg.force_timeout_ms,
		       force_expired);
	log_warn("forced phase started reason=\"%s\" inflight=%u live=%u "
		 "force_timeout_ms=%llu", reason, d->sandboxes.starting,
		 d->sandboxes.live,
		 (unsigned long long)d->cfg.force_timeout_ms);
	notify_progress(d, true);
	drain_check(d);
}

static void log_progress(struct sbxd *d, const struct sbxd_drain_state *st)
{
	struct drain *drain = &d->drain;
	uint64_t now = loop_now_ns();

	if (now - drain->last_progress_ns < 1000000000ull)
		return;
	drain->last_progress_ns = now;
	log_info("drain progress state=%s inflight=%d live=%u unreaped=%u "
		 "elapsed_ms=%llu", drain_state_name(drain->state),
		 st->inflight_starts, st->live, d->sandboxes.unreaped,
		 (unsigned long long)((now - drain->started_ns) / 1000000ull));
}

/*
 * Check the kernel's own count of KVM VMs held by our VMMs (BPF gate
 * only). It should be 0 once every VMM is reaped, and a VM counted here
 * keeps the drain waiting.
 */
static bool live_vms_remain(struct sbxd *d)
{
	int count = gate_count_live_vms(&d->gate);
	uint64_t now;

	if (count == 0 || count == -EOPNOTSUPP)
		return false;
	now = loop_now_ns();
	if (now - d->drain.last_vm_warn_ns >= 1000000000ull) {
		d->drain.last_vm_warn_ns = now;
		if (count > 0)
			log_warn("drain waits: the kernel still counts %d KVM "
				 "VMs held by this instance's VMMs", count);
		else
			log_warn("failed to count live KVM VMs: %s; not "
				 "waiting for that count", strerror(-count));
	}
	return count > 0;
}

void drain_check(struct sbxd *d)
{
	struct drain *drain = &d->drain;
	struct sbxd_drain_state st;

	if (drain->state == SBXD_SERVING)
		return;
	if (drain->state == SBXD_CLOSING) {
		if (conns_flush_done(d) &&
		    (!drain->timed_out || d->sandboxes.unreaped == 0))
			d->stop = true;
		return;
	}

	gate_read(&d->gate, &st);
	/* Second pass: starts that became ready in the forced phase. */
	if (drain->state == SBXD_FORCING)
		sandbox_force_stop_all(d, NULL);
	/*
	 * The checkpoint policy saves live sandboxes once no start is in
	 * flight, so a checkpoint admitted before the drain has finished.
	 */
	if (drain->state == SBXD_DRAINING && st.inflight_starts == 0 &&
	    d->cfg.drain_policy == DRAIN_POLICY_CHECKPOINT)
		drained_save_pass(d);
	log_progress(d, &st);
	notify_progress(d, false);
	if (st.inflight_starts != 0 || st.live != 0 ||
	    d->sandboxes.unreaped != 0 || live_vms_remain(d))
		return;
	drain_close(d, drain->state == SBXD_FORCING ?
		       "forced phase finished" : "all sandboxes ended");
}

void drain_on_tick(struct sbxd *d, int res, unsigned int flags)
{
	if (res != -ETIME && res != 0)
		log_warn("drain waiter timeout completed with %s",
			 strerror(-res));
	drain_check(d);
	if (!(flags & IORING_CQE_F_MORE) && !d->stop)
		start_tick(d);
}

static const char *signal_name(uint32_t signo)
{
	switch (signo) {
	case SIGTERM: return "SIGTERM";
	case SIGINT: return "SIGINT";
	case SIGCHLD: return "SIGCHLD";
	default: return "signal";
	}
}

void drain_on_signal(struct sbxd *d, int res)
{
	struct drain *drain = &d->drain;
	uint32_t signo;

	if (res != (int)sizeof(*drain->siginfo)) {
		if (res != -EAGAIN)
			log_err("failed to read the signalfd: %s",
				res < 0 ? strerror(-res) : "short read");
		goto rearm;
	}
	signo = drain->siginfo->ssi_signo;
	if (signo == SIGCHLD) {
		/* VMM exits arrive through their pidfds. */
		goto rearm;
	}

	switch (drain->state) {
	case SBXD_SERVING:
		log_info("received %s", signal_name(signo));
		drain_begin(d, signal_name(signo));
		break;
	case SBXD_DRAINING:
		log_warn("second signal %s during the graceful drain; forcing",
			 signal_name(signo));
		drain_force(d, "second signal");
		break;
	default:
		log_warn("%s ignored: the drain is already %s, bounded by "
			 "--force-timeout", signal_name(signo),
			 drain_state_name(drain->state));
		break;
	}

rearm:
	if (!d->stop)
		drain_start_signals(d);
}
