// SPDX-License-Identifier: MIT
/*
 * Unit tests of GET /metrics: the start-latency histogram's buckets and
 * the text that metrics_format writes for a daemon state built here, with
 * a memfd gate and sandboxes that exist only in the table.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sbxd/metrics.h"
#include "sbxd/sbxd.h"

static struct sbxd daemon_state;
static struct sandbox sandboxes[4];

static void setup(void)
{
	struct gate_config config = {
		.backend = GATE_BACKEND_MEMFD,
		.instance = "unit-metrics",
	};

	memset(&daemon_state, 0, sizeof(daemon_state));
	memset(sandboxes, 0, sizeof(sandboxes));
	config_init(&daemon_state.cfg);
	daemon_state.cfg.max_sandboxes = 42;
	sandbox_table_init(&daemon_state.sandboxes);
	conn_table_init(&daemon_state.conns);
	cr_assert_eq(gate_open(&daemon_state.gate, &config), 0,
		     "memfd gate: %s", daemon_state.gate.fallback_reason);
}

static void teardown(void)
{
	gate_close(&daemon_state.gate);
}

TestSuite(metrics, .init = setup, .fini = teardown);

static void add_sandbox(int i, enum sandbox_state state)
{
	sandboxes[i].state = state;
	TAILQ_INSERT_TAIL(&daemon_state.sandboxes.list, &sandboxes[i], link);
	daemon_state.sandboxes.total++;
}

/* Format the metrics into text, which the caller frees with buf_free. */
static void format(struct buf *text)
{
	memset(text, 0, sizeof(*text));
	cr_assert_eq(metrics_format(&daemon_state, text), 0);
	cr_assert_not_null(text->data);
}

static void assert_line(const struct buf *text, const char *line)
{
	char want[256];

	snprintf(want, sizeof(want), "\n%s\n", line);
	cr_assert(strstr(text->data, want), "line \"%s\" missing from:\n%s",
		  line, text->data);
}

Test(metrics, histogram_bucket_edges)
{
	struct metrics m = { 0 };

	metrics_observe_start(&m, 0.001);	/* on the first bound */
	metrics_observe_start(&m, 0.0011);
	metrics_observe_start(&m, 10.0);	/* on the last bound */
	metrics_observe_start(&m, 10.5);	/* above every bound */
	metrics_observe_start(&m, -1.0);	/* clock step: counted as 0 */
	cr_assert_eq(m.start_buckets[0], 2);
	cr_assert_eq(m.start_buckets[1], 1);
	cr_assert_eq(m.start_buckets[METRICS_START_BUCKETS - 1], 1);
	cr_assert_eq(m.start_buckets[METRICS_START_BUCKETS], 1);
	cr_assert_eq(m.start_count, 5);
	cr_assert_float_eq(m.start_sum_seconds, 0.001 + 0.0011 + 10.0 + 10.5,
			   1e-9);
}

Test(metrics, histogram_is_cumulative)
{
	struct buf text;

	metrics_observe_start(&daemon_state.metrics, 0.003);
	metrics_observe_start(&daemon_state.metrics, 0.2);
	metrics_observe_start(&daemon_state.metrics, 30.0);
	format(&text);
	assert_line(&text, "# TYPE sbxd_start_duration_seconds histogram");
	assert_line(&text, "sbxd_start_duration_seconds_bucket{le=\"0.001\"} 0");
	assert_line(&text, "sbxd_start_duration_seconds_bucket{le=\"0.005\"} 1");
	assert_line(&text, "sbxd_start_duration_seconds_bucket{le=\"0.25\"} 2");
	assert_line(&text, "sbxd_start_duration_seconds_bucket{le=\"10\"} 2");
	assert_line(&text, "sbxd_start_duration_seconds_bucket{le=\"+Inf\"} 3");
	assert_line(&text, "sbxd_start_duration_seconds_sum 30.203000");
	assert_line(&text, "sbxd_start_duration_seconds_count 3");
	buf_free(&text);
}

Test(metrics, sandboxes_by_state)
{
	struct buf text;

	add_sandbox(0, SANDBOX_STARTING);
	add_sandbox(1, SANDBOX_RUNNING);
	add_sandbox(2, SANDBOX_RUNNING);
	add_sandbox(3, SANDBOX_EXITED);
	format(&text);
	assert_line(&text, "sbxd_sandboxes{state=\"starting\"} 1");
	assert_line(&text, "sbxd_sandboxes{state=\"running\"} 2");
	assert_line(&text, "sbxd_sandboxes{state=\"stopping\"} 0");
	assert_line(&text, "sbxd_sandboxes{state=\"exited\"} 1");
	assert_line(&text, "sbxd_sandboxes_listed 4");
	assert_line(&text, "sbxd_sandboxes_max 42");
	buf_free(&text);
}

Test(metrics, gate_counters_and_state)
{
	struct buf text;

	cr_assert_eq(gate_enter(&daemon_state.gate), 0);
	cr_assert_eq(gate_enter(&daemon_state.gate), 0);
	cr_assert_eq(gate_exit(&daemon_state.gate, true), 0);
	cr_assert_eq(gate_set_live(&daemon_state.gate, 1), 0);
	format(&text);
	assert_line(&text, "sbxd_drain_state 0");
	assert_line(&text, "sbxd_node_state{state=\"serving\"} 1");
	assert_line(&text, "sbxd_node_state{state=\"draining\"} 0");
	assert_line(&text, "sbxd_drain_duration_seconds 0.000");
	assert_line(&text, "sbxd_inflight_starts 1");
	assert_line(&text, "sbxd_sandboxes_live 1");
	assert_line(&text, "sbxd_starts_admitted_total 2");
	assert_line(&text, "sbxd_starts_succeeded_total 1");
	assert_line(&text, "sbxd_starts_failed_total 0");
	assert_line(&text, "sbxd_starts_rejected_total 0");
	buf_free(&text);
}

Test(metrics, draining_state_and_duration)
{
	struct buf text;

	daemon_state.drain.state = SBXD_FORCING;
	daemon_state.drain.started_ns = loop_now_ns() - 2500000000ull;
	format(&text);
	assert_line(&text, "sbxd_drain_state 2");
	assert_line(&text, "sbxd_node_state{state=\"serving\"} 0");
	assert_line(&text, "sbxd_node_state{state=\"forcing\"} 1");
	cr_assert(strstr(text.data, "\nsbxd_drain_duration_seconds 2.5"),
		  "drain duration is not about 2.5 s:\n%s", text.data);
	buf_free(&text);
}

Test(metrics, live_vms_omitted_on_memfd)
{
	struct buf text;

	format(&text);
	cr_assert_null(strstr(text.data, "sbxd_live_vms"),
		       "the memfd gate cannot count VMs, yet:\n%s", text.data);
	buf_free(&text);
}

Test(metrics, every_sample_has_help_and_type)
{
	struct buf text;
	char *save = NULL;
	char family[128] = "";

	format(&text);
	for (char *line = strtok_r(text.data, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# TYPE ", 7) == 0) {
			sscanf(line + 7, "%127s", family);
			continue;
		}
		if (line[0] == '#')
			continue;
		cr_assert(family[0] && strncmp(line, family,
					       strlen(family)) == 0,
			  "sample \"%s\" does not follow its # TYPE line",
			  line);
	}
	buf_free(&text);
}
