// SPDX-License-Identifier: MIT
/* "sbxctl node --watch": live drain progress from the BPF map or the API. */
#include "watch.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "drainmap.h"
#include "format.h"
#include "http.h"

#define LINE_MAX_LEN 1024

static volatile sig_atomic_t interrupted;

struct watch {
	const struct cli *cli;
	const struct ctl_addr *addr;
	const struct ctl_request *req;
	bool tty;		/* stdout is a terminal: redraw in place */
	bool drawn;		/* a redrawn line is on the terminal */
	int interval_ms;
	/*
	 * Stream for the source and end messages: stdout, or stderr with
	 * --json so that stdout carries only JSON lines.
	 */
	FILE *notes;
	/* Last status printed without its time, to print only changes. */
	char last_status[LINE_MAX_LEN];
};

static void on_interrupt(int signo)
{
	interrupted = signo;
}

static void install_interrupt_handler(void)
{
	struct sigaction sa = { .sa_handler = on_interrupt };

	/* No SA_RESTART: the handler must cut nanosleep and recv short. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000,
	};

	/* A signal cuts the sleep short, and the loop then checks interrupted. */
	nanosleep(&ts, NULL);
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* End a line redrawn in place, so that the next output starts fresh. */
static void end_redraw(struct watch *w)
{
	if (w->drawn)
		fputc('\n', stdout);
	w->drawn = false;
}

/*
 * Show one status line: redrawn in place on a terminal, else printed only
 * when @status (the line without its time) differs from the last one.
 */
static void show_line(struct watch *w, const char *line, const char *status)
{
	if (w->tty) {
		/* \r returns to the line start, \033[K clears the rest. */
		printf("\r%s\033[K", line);
		w->drawn = true;
	} else if (strcmp(status, w->last_status) != 0) {
		printf("%s\n", line);
		snprintf(w->last_status, sizeof(w->last_status), "%s",
			 status);
	}
	fflush(stdout);
}

static void print_json_line(json_t *node)
{
	char *text = json_dumps(node, JSON_COMPACT | JSON_PRESERVE_ORDER);

	printf("%s\n", text ? text : "{}");
	free(text);
	fflush(stdout);
}

/* Show the node status, or with --json print its JSON on one line. */
static void show_node(struct watch *w, json_t *node)
{
	char line[LINE_MAX_LEN], status[LINE_MAX_LEN];

	if (w->cli->json) {
		print_json_line(node);
		return;
	}
	fmt_node_line(line, sizeof(line), node);
	fmt_node_status(status, sizeof(status), node);
	show_line(w, line, status);
}

/* Print the last state as "LABEL: LINE", or as JSON with --json. */
static void show_final(struct watch *w, json_t *node, const char *label)
{
	char line[LINE_MAX_LEN];

	end_redraw(w);
	if (w->cli->json) {
		print_json_line(node);
		return;
	}
	fmt_node_line(line, sizeof(line), node);
	printf("%s: %s\n", label, line);
	fflush(stdout);
}

static int interrupted_status(struct watch *w)
{
	end_redraw(w);
	return WATCH_EXIT_INTERRUPTED;
}

/* Read the map once and build its JSON. Print the error on failure. */
static json_t *read_map(const struct drainmap *map)
{
	struct sbxd_drain_state state;
	json_t *node;
	int ret;

	ret = drainmap_read(map, &state);
	if (ret) {
		fprintf(stderr, "sbxctl: reading %s failed: %s\n", map->path,
			strerror(-ret));
		return NULL;
	}
	node = drainmap_to_json(&state, monotonic_ns());
	if (!node)
		fprintf(stderr, "sbxctl: out of memory formatting the state\n");
	return node;
}

/*
 * Read the map every interval until the pin is removed or replaced. The
 * map fd keeps the map alive after sbxd unpins it, so the last read shows
 * the state sbxd left behind.
 *
 * NOTE: an sbxd killed by SIGKILL leaves its pin in place, so the watch
 * keeps showing its last state until Ctrl-C or until a new sbxd of the
 * same instance replaces the pin.
 */
static int watch_map(struct watch *w, const struct drainmap *map,
		     const char *instance, const char *instance_origin)
{
	enum drainmap_pin pin = DRAINMAP_PIN_PRESENT;
	json_t *node;
	int ret;

	fprintf(w->notes,
		"source: bpf map %s of sbxd instance \"%s\" (%s), "
		"read without requests to sbxd\n",
		map->path, instance, instance_origin);
	fflush(w->notes);

	while (pin == DRAINMAP_PIN_PRESENT) {
		node = read_map(map);
		if (!node)
			return 1;
		show_node(w, node);
		json_decref(node);

		sleep_ms(w->interval_ms);
		if (interrupted)
			return interrupted_status(w);
		ret = drainmap_check_pin(map, &pin);
		if (ret) {
			end_redraw(w);
			fprintf(stderr, "sbxctl: stat of %s failed: %s\n",
				map->path, strerror(-ret));
			return 1;
		}
	}

	node = read_map(map);
	if (!node)
		return 1;
	show_final(w, node, "final");
	json_decref(node);
	if (pin == DRAINMAP_PIN_REMOVED)
		fprintf(w->notes, "sbxd removed %s, as it does when it exits\n",
			map->path);
	else
		fprintf(w->notes,
			"%s now names another map, so the sbxd that pinned "
			"the watched map has exited\n",
			map->path);
	return 0;
}

/*
 * Fetch GET /v1/node once. Returns 0 with *node set to a 200 response's
 * JSON, 0 with *node NULL and @error set for any other response, or a
 * negative errno when the exchange failed.
 */
static int poll_node(const struct ctl_addr *addr,
		     const struct ctl_request *req, json_t **node,
		     char *error, size_t error_len)
{
	struct http_response resp;
	json_t *root;
	int fd, ret;

	*node = NULL;
	fd = http_connect(addr);
	if (fd < 0)
		return fd;
	http_response_init(&resp);
	ret = http_set_timeout(fd, WATCH_RESPONSE_TIMEOUT_MS);
	if (!ret)
		ret = http_roundtrip(fd, req->method, req->path, req->body,
				     &resp);
	close(fd);
	if (ret)
		goto free_resp;

	root = json_loads(resp.body ? resp.body : "", 0, NULL);
	if (resp.status != 200) {
		char message[400];

		fmt_error(message, sizeof(message), resp.status, resp.body,
			  resp.retry_after);
		snprintf(error, error_len, "error: %s", message);
		json_decref(root);
	} else if (!root) {
		snprintf(error, error_len, "error: the node status is not JSON");
	} else {
		*node = root;
	}

free_resp:
	http_response_free(&resp);
	return ret;
}

/* Say once why the map was not used, with sbxd's own gate as a hint. */
static void print_api_source(struct watch *w, json_t *node,
			     const char *map_reason, int map_error)
{
	const char *gate = json_string_value(json_object_get(node, "gate"));
	const char *hint = "";

	if (map_error == -ENOENT && gate && strcmp(gate, "memfd") == 0)
		hint = " (sbxd uses the memfd gate, which pins no map)";
	else if (map_error == -ENOENT && gate && strcmp(gate, "bpf") == 0)
		hint = " (sbxd uses the BPF gate under another instance "
		       "name: give that name with --instance or "
		       "SBXD_INSTANCE)";
	fprintf(w->notes,
		"source: API GET /v1/node at %s every %d ms, because %s%s\n",
		w->addr->text, w->interval_ms, map_reason, hint);
	fflush(w->notes);
}

/* Print the last state seen and why the watch ends. */
static void end_api_watch(struct watch *w, json_t *last, int err)
{
	/* With --json the last JSON line printed is already that state. */
	if (last && !w->cli->json)
		show_final(w, last, "last seen");
	end_redraw(w);
	fprintf(w->notes, "sbxd at %s went away: %s\n", w->addr->text,
		strerror(-err));
}

static bool is_connect_error(int err)
{
	return err == -ENOENT || err == -ECONNREFUSED || err == -EACCES ||
	       err == -EPERM;
}

/*
 * Poll GET /v1/node every interval until sbxd stops responding. The first
 * failure to reach sbxd is an error, and a later one means that sbxd went
 * away.
 */
static int watch_api(struct watch *w, const char *map_reason, int map_error)
{
	char error[LINE_MAX_LEN];
	json_t *node, *last = NULL;
	bool seen = false;
	int ret;

	while (!interrupted) {
		ret = poll_node(w->addr, w->req, &node, error, sizeof(error));
		if (ret == -EINTR || (ret && interrupted))
			break;
		if (ret == -EAGAIN) {
			snprintf(error, sizeof(error),
				 "no response from sbxd within %d s",
				 WATCH_RESPONSE_TIMEOUT_MS / 1000);
		} else if (ret && !seen) {
			fprintf(stderr,
				"sbxctl: not reading the BPF map, because %s\n",
				map_reason);
			if (is_connect_error(ret))
				cmd_report_connect_error(w->addr, ret);
			else
				cmd_report_transfer_error(w->addr, ret);
			return 1;
		} else if (ret) {
			end_api_watch(w, last, ret);
			json_decref(last);
			return 0;
		}

		if (!seen)
			print_api_source(w, node, map_reason, map_error);
		seen = true;

		if (node) {
			show_node(w, node);
			json_decref(last);
			last = node;
		} else if (w->cli->json) {
			fprintf(stderr, "sbxctl: %s\n", error);
		} else {
			show_line(w, error, error);
		}
		sleep_ms(w->interval_ms);
	}
	json_decref(last);
	return interrupted_status(w);
}

/*
 * Choose the instance: --instance, else SBXD_INSTANCE, else "default". An
 * empty SBXD_INSTANCE counts as unset, as sbxd treats it.
 */
static int resolve_instance(const struct cli *cli, const char **instance,
			    const char **origin)
{
	const char *env = getenv("SBXD_INSTANCE");

	if (cli->instance) {
		*instance = cli->instance;
		*origin = "from --instance";
	} else if (env && *env) {
		if (!drainmap_instance_valid(env)) {
			fprintf(stderr,
				"sbxctl: invalid SBXD_INSTANCE '%s': use the "
				"name given to sbxd --instance (%s), or unset "
				"it\n",
				env, DRAINMAP_INSTANCE_RULE);
			return -EINVAL;
		}
		*instance = env;
		*origin = "from SBXD_INSTANCE";
	} else {
		*instance = "default";
		*origin = "the default";
	}
	return 0;
}

int watch_run(const struct cli *cli, const struct ctl_addr *addr,
	      const struct ctl_request *req)
{
	struct watch w = {
		.cli = cli,
		.addr = addr,
		.req = req,
		.tty = !cli->json && isatty(STDOUT_FILENO),
		.interval_ms = cli->interval_ms == CLI_UNSET
				       ? WATCH_INTERVAL_MS
				       : (int)cli->interval_ms,
		.notes = cli->json ? stderr : stdout,
	};
	const char *instance, *origin;
	char path[DRAINMAP_PATH_MAX], reason[LINE_MAX_LEN];
	struct drainmap map;
	int ret, status;

	if (resolve_instance(cli, &instance, &origin))
		return 2;
	install_interrupt_handler();

	ret = drainmap_pin_path(DRAINMAP_BPFFS, instance, path, sizeof(path));
	if (ret)
		snprintf(reason, sizeof(reason),
			 "the pin path of instance \"%s\" is too long", instance);
	else
		ret = drainmap_open(&map, path, reason, sizeof(reason));
	if (ret)
		return watch_api(&w, reason, ret);

	status = watch_map(&w, &map, instance, origin);
	drainmap_close(&map);
	return status;
}
