// SPDX-License-Identifier: MIT
/* Prometheus text metrics of the node, its gate and its connections. */
#include <errno.h>
#include <string.h>

#include "sbxd/log.h"
#include "sbxd/metrics.h"
#include "sbxd/sbxd.h"

static const double start_bounds[METRICS_START_BUCKETS] = {
	METRICS_START_BOUNDS
};

/* Bucket labels, written as the bounds above so that no float is printed. */
static const char *const start_labels[METRICS_START_BUCKETS] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
	"0.5", "1", "2.5", "5", "10",
};

void metrics_observe_start(struct metrics *m, double seconds)
{
	int i = 0;

	if (seconds < 0)
		seconds = 0;
	while (i < METRICS_START_BUCKETS && seconds > start_bounds[i])
		i++;
	m->start_buckets[i]++;
	m->start_count++;
	m->start_sum_seconds += seconds;
}

/* How long GET /v1/node and /metrics reuse one iterator count. */
#define LIVE_VMS_CACHE_NS 100000000ull

/*
 * Count live KVM VMs with the gate's BPF iterator for the API. The
 * iterator walks the files of every task on the host: about 0.35 ms with
 * 98 processes on the development machine, and more on busier hosts. So
 * the count is reused for up to 100 ms, unless a VMM started, became
 * ready or ended meanwhile. The drain calls the iterator directly and
 * never sees a cached count.
 */
int metrics_count_live_vms(struct sbxd *d)
{
	struct metrics *m = &d->metrics;
	uint64_t now = loop_now_ns();
	int count;

	if (m->live_vms_cached_ns &&
	    now - m->live_vms_cached_ns < LIVE_VMS_CACHE_NS)
		return m->live_vms_cached;
	count = gate_count_live_vms(&d->gate);
	if (count >= 0 || count == -EOPNOTSUPP) {
		m->live_vms_cached = count;
		m->live_vms_cached_ns = now ? now : 1;
		return count;
	}
	if (now - m->live_vms_warned_ns >= 1000000000ull) {
		m->live_vms_warned_ns = now;
		log_warn("failed to count live KVM VMs with the BPF iterator: "
			 "%s; live_vms is reported as unknown",
			 strerror(-count));
	}
	return count;
}

void metrics_live_vms_changed(struct sbxd *d)
{
	d->metrics.live_vms_cached_ns = 0;
}

static int header(struct buf *out, const char *name, const char *type,
		  const char *help)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			  name, type);
}

static int metric(struct buf *out, const char *name, const char *type,
		  const char *help, unsigned long long value)
{
	return header(out, name, type, help) |
	       buf_printf(out, "%s %llu\n", name, value);
}

static int format_node_state(struct sbxd *d, struct buf *out)
{
	int ret;

	ret = metric(out, "sbxd_drain_state", "gauge",
		     "Node state: 0 serving, 1 draining, 2 forcing, 3 closing.",
		     d->drain.state);
	ret |= header(out, "sbxd_node_state", "gauge",
		      "1 for the state the node is in, 0 for the others.");
	for (int s = SBXD_SERVING; s <= SBXD_CLOSING; s++)
		ret |= buf_printf(out, "sbxd_node_state{state=\"%s\"} %d\n",
				  drain_state_name(s),
				  (int)d->drain.state == s);
	ret |= header(out, "sbxd_drain_duration_seconds", "gauge",
		      "Time since the drain began; 0 while serving.");
	ret |= buf_printf(out, "sbxd_drain_duration_seconds %.3f\n",
			  d->drain.started_ns ?
			  (double)(loop_now_ns() - d->drain.started_ns) / 1e9 :
			  0.0);
	return ret;
}

static int format_sandboxes(struct sbxd *d, struct buf *out)
{
	unsigned int by_state[SANDBOX_STATE_COUNT] = { 0 };
	struct sandbox *sb;
	int ret;

	TAILQ_FOREACH(sb, &d->sandboxes.list, link) {
		if ((unsigned int)sb->state < SANDBOX_STATE_COUNT)
			by_state[sb->state]++;
	}
	ret = header(out, "sbxd_sandboxes", "gauge",
		     "Listed sandboxes by lifecycle state.");
	for (int s = 0; s < SANDBOX_STATE_COUNT; s++)
		ret |= buf_printf(out, "sbxd_sandboxes{state=\"%s\"} %u\n",
				  sandbox_state_name(s), by_state[s]);
	ret |= metric(out, "sbxd_sandboxes_listed", "gauge",
		      "Sandboxes listed by the API, ended ones included.",
		      d->sandboxes.total);
	ret |= metric(out, "sbxd_sandboxes_max", "gauge",
		      "Maximum of live plus starting sandboxes.",
		      d->cfg.max_sandboxes);
	ret |= metric(out, "sbxd_vmm_processes", "gauge",
		      "sbx-vmm processes that sbxd has not reaped yet.",
		      d->sandboxes.unreaped);
	return ret;
}

static int format_gate(struct sbxd *d, struct buf *out)
{
	struct sbxd_drain_state st;
	int live_vms;
	int ret;

	gate_read(&d->gate, &st);
	ret = metric(out, "sbxd_inflight_starts", "gauge",
		     "Admitted starts whose guest is not ready yet.",
		     (unsigned long long)(st.inflight_starts < 0 ? 0 :
					  st.inflight_starts));
	ret |= metric(out, "sbxd_sandboxes_live", "gauge",
		      "Sandboxes with a ready guest and a running VMM.",
		      st.live);
	ret |= metric(out, "sbxd_starts_admitted_total", "counter",
		      "Starts admitted by the gate.", st.admitted);
	ret |= metric(out, "sbxd_starts_rejected_total", "counter",
		      "Starts rejected by the gate while draining.",
		      st.rejected);
	ret |= metric(out, "sbxd_starts_succeeded_total", "counter",
		      "Admitted starts whose guest became ready.", st.started);
	ret |= metric(out, "sbxd_starts_failed_total", "counter",
		      "Admitted starts that failed before ready.", st.failed);

	/* Only the BPF gate can count the VMs, so memfd omits the metric. */
	live_vms = metrics_count_live_vms(d);
	if (live_vms >= 0)
		ret |= metric(out, "sbxd_live_vms", "gauge",
			      "KVM VMs held by this instance's VMMs, counted "
			      "by the kernel iterator.", (unsigned int)live_vms);
	return ret;
}

static int format_start_histogram(struct sbxd *d, struct buf *out)
{
	const struct metrics *m = &d->metrics;
	const char *name = "sbxd_start_duration_seconds";
	uint64_t cumulative = 0;
	int ret;

	ret = header(out, name, "histogram",
		     "Time from admission to the guest's READY, per start "
		     "that became ready.");
	for (int i = 0; i < METRICS_START_BUCKETS; i++) {
		cumulative += m->start_buckets[i];
		ret |= buf_printf(out, "%s_bucket{le=\"%s\"} %llu\n", name,
				  start_labels[i],
				  (unsigned long long)cumulative);
	}
	ret |= buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
			  (unsigned long long)m->start_count);
	ret |= buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
			  m->start_sum_seconds, name,
			  (unsigned long long)m->start_count);
	return ret;
}

static int counter_pair(struct buf *out, const char *name, const char *help,
			uint64_t ok, uint64_t failed)
{
	return header(out, name, "counter", help) |
	       buf_printf(out, "%s{result=\"ok\"} %llu\n%s{result=\"failed\"} "
			  "%llu\n", name, (unsigned long long)ok, name,
			  (unsigned long long)failed);
}

static int format_snapshots(struct sbxd *d, struct buf *out)
{
	const struct metrics *m = &d->metrics;

	return counter_pair(out, "sbxd_snapshots_total",
			    "Snapshots written to a file, for the API or the "
			    "checkpoint drain, by result.",
			    m->snapshots_ok, m->snapshots_failed) |
	       counter_pair(out, "sbxd_checkpoints_total",
			    "Checkpoints: a sandbox moved into a new VMM, by "
			    "result.", m->checkpoints_ok,
			    m->checkpoints_failed) |
	       counter_pair(out, "sbxd_restores_total",
			    "Sandboxes created from a snapshot file, by "
			    "result.", m->restores_ok, m->restores_failed);
}

static int format_connections(struct sbxd *d, struct buf *out)
{
	return metric(out, "sbxd_connections", "gauge",
		      "Open API connections.", d->conns.count) |
	       metric(out, "sbxd_connections_rejected_total", "counter",
		      "Connections closed at accept by --max-connections.",
		      d->conns.rejected);
}

int metrics_format(struct sbxd *d, struct buf *out)
{
	int ret;

	ret = format_node_state(d, out);
	ret |= format_sandboxes(d, out);
	ret |= format_gate(d, out);
	ret |= format_start_histogram(d, out);
	ret |= format_snapshots(d, out);
	ret |= format_connections(d, out);
	return ret ? -ENOMEM : 0;
}
