// SPDX-License-Identifier: MIT
/* Prometheus text metrics of the node, its gate and its connections. */
#include "sbxd/metrics.h"
#include "sbxd/sbxd.h"

static int metric(struct buf *out, const char *name, const char *type,
		  const char *help, unsigned long long value)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name,
			  help, name, type, name, value);
}

int metrics_format(struct sbxd *d, struct buf *out)
{
	struct sbxd_drain_state st;
	int ret = 0;

	gate_read(&d->gate, &st);
	ret |= metric(out, "sbxd_node_state", "gauge",
		      "Node state: 0 serving, 1 draining, 2 forcing, "
		      "3 closing.",
		      d->drain.state);
	ret |= metric(out, "sbxd_inflight_starts", "gauge",
		      "Admitted starts whose guest is not ready yet.",
		      (unsigned long long)(st.inflight_starts < 0 ? 0 :
					   st.inflight_starts));
	ret |= metric(out, "sbxd_sandboxes_live", "gauge",
		      "Sandboxes with a ready guest and a running VMM.",
		      st.live);
	ret |= metric(out, "sbxd_sandboxes_listed", "gauge",
		      "Sandboxes listed by the API, ended ones included.",
		      d->sandboxes.total);
	ret |= metric(out, "sbxd_sandboxes_max", "gauge",
		      "Maximum of live plus starting sandboxes.",
		      d->cfg.max_sandboxes);
	ret |= metric(out, "sbxd_starts_admitted_total", "counter",
		      "Starts admitted by the gate.", st.admitted);
	ret |= metric(out, "sbxd_starts_rejected_total", "counter",
		      "Starts rejected by the gate while draining.",
		      st.rejected);
	ret |= metric(out, "sbxd_starts_succeeded_total", "counter",
		      "Admitted starts whose guest became ready.", st.started);
	ret |= metric(out, "sbxd_starts_failed_total", "counter",
		      "Admitted starts that failed before ready.", st.failed);
	ret |= metric(out, "sbxd_connections", "gauge",
		      "Open API connections.", d->conns.count);
	ret |= metric(out, "sbxd_connections_rejected_total", "counter",
		      "Connections closed at accept by --max-connections.",
		      d->conns.rejected);
	return ret ? -ENOMEM : 0;
}
