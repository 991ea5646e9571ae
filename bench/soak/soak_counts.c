// SPDX-License-Identifier: MIT
/* Resource counts of a running sbxd that a soak run compares before/after. */
#define _GNU_SOURCE
#include "soak_counts.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "soak_http.h"

#define BPFFS_SBXD "/sys/fs/bpf/sbxd"
#define FD_SETTLE_MS 20
#define FD_SETTLE_TRIES 50

/* Read a small file into @buf as a NUL-terminated string. */
static int read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = '\0';
	return 0;
}

/* Parent pid and start time (fields 4 and 22) of /proc/PID/stat. */
static int stat_read(pid_t pid, pid_t *ppid, unsigned long long *start_time)
{
	char path[64], text[1024], *field;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	ret = read_text(path, text, sizeof(text));
	if (ret)
		return ret;
	/* comm may contain spaces and ')': fields start after the last ')'. */
	field = strrchr(text, ')');
	if (!field)
		return -EINVAL;
	field += 2;
	for (int i = 3; i < 22; i++) {
		if (i == 4 && ppid)
			*ppid = (pid_t)strtol(field, NULL, 10);
		field = strchr(field, ' ');
		if (!field)
			return -EINVAL;
		field++;
	}
	if (start_time)
		*start_time = strtoull(field, NULL, 10);
	return 0;
}

/* Count the entries of @dir_fd's tree, below it; closes @dir_fd. */
static long count_tree_fd(int dir_fd)
{
	DIR *dir = fdopendir(dir_fd);
	struct dirent *de;
	long count = 0, sub;
	int fd;

	if (!dir) {
		close(dir_fd);
		return -errno;
	}
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		count++;
		if (de->d_type != DT_DIR)
			continue;
		fd = openat(dirfd(dir), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* A sandbox dir may vanish between readdir and openat. */
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0) {
			count = -errno;
			break;
		}
		sub = count_tree_fd(fd);
		if (sub < 0) {
			count = sub;
			break;
		}
		count += sub;
	}
	closedir(dir);
	return count;
}

/* Entries below @path, recursively; 0 when @path does not exist. */
static long count_tree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	return count_tree_fd(fd);
}

static long count_fds(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	return count_tree(path);
}

static long read_rss_kib(pid_t pid)
{
	char path[64], text[4096], *line;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	ret = read_text(path, text, sizeof(text));
	if (ret)
		return ret;
	line = strstr(text, "\nVmRSS:");
	if (!line)
		return -ENODATA;
	return strtol(line + strlen("\nVmRSS:"), NULL, 10);
}

static long count_children(pid_t parent)
{
	DIR *dir = opendir("/proc");
	struct dirent *de;
	long count = 0;
	pid_t pid, ppid;

	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)strtol(de->d_name, NULL, 10);
		if (stat_read(pid, &ppid, NULL) == 0 && ppid == parent)
			count++;
	}
	closedir(dir);
	return count;
}

static int read_lock_pid(const char *state_dir, pid_t *pid)
{
	char path[PATH_MAX + 16], text[32];
	int ret;

	snprintf(path, sizeof(path), "%s/sbxd.lock", state_dir);
	ret = read_text(path, text, sizeof(text));
	if (ret) {
		fprintf(stderr, "sbx-soak: failed to read %s: %s; is sbxd "
			"running with --state-dir %s?\n", path,
			strerror(-ret), state_dir);
		return ret;
	}
	*pid = (pid_t)strtol(text, NULL, 10);
	if (*pid <= 0) {
		fprintf(stderr, "sbx-soak: %s contains no pid (\"%s\")\n", path,
			text);
		return -EINVAL;
	}
	return 0;
}

/*
 * GET /v1/node on a connection of its own; stores the parsed body in
 * @node (json_decref it). Returns 0 or -errno after printing why.
 */
static int node_get(const char *sock_path, int timeout_ms, json_t **node)
{
	struct soak_conn conn;
	struct soak_resp resp;
	json_error_t jerr;
	int ret;

	soak_conn_init(&conn, sock_path, timeout_ms);
	ret = soak_request(&conn, "GET", "/v1/node", NULL, &resp);
	soak_conn_finish(&conn);
	if (ret) {
		fprintf(stderr, "sbx-soak: GET /v1/node on %s failed: %s\n",
			sock_path, strerror(-ret));
		goto free_resp;
	}
	if (resp.status != 200) {
		fprintf(stderr, "sbx-soak: GET /v1/node returned %d: %s\n",
			resp.status, resp.body);
		ret = -EPROTO;
		goto free_resp;
	}
	*node = json_loads(resp.body, 0, &jerr);
	if (!json_is_object(*node)) {
		fprintf(stderr, "sbx-soak: GET /v1/node returned a body that "
			"is not a JSON object: %s\n", resp.body);
		json_decref(*node);
		ret = -EPROTO;
	}
free_resp:
	soak_resp_free(&resp);
	return ret;
}

int counts_target_open(struct soak_target *t, const char *state_dir,
		       const char *sock_path, const char *instance,
		       int timeout_ms)
{
	json_t *node, *gate, *pid;
	int ret;

	memset(t, 0, sizeof(*t));
	if (snprintf(t->state_dir, sizeof(t->state_dir), "%s", state_dir) >=
		    (int)sizeof(t->state_dir) ||
	    snprintf(t->sock_path, sizeof(t->sock_path), "%s", sock_path) >=
		    (int)sizeof(t->sock_path) ||
	    snprintf(t->pin_dir, sizeof(t->pin_dir), "%s/%s", BPFFS_SBXD,
		     instance) >= (int)sizeof(t->pin_dir)) {
		fprintf(stderr, "sbx-soak: state dir, socket path or instance "
			"name too long\n");
		return -ENAMETOOLONG;
	}
	ret = read_lock_pid(state_dir, &t->pid);
	if (ret)
		return ret;
	ret = stat_read(t->pid, NULL, &t->start_time);
	if (ret) {
		fprintf(stderr, "sbx-soak: sbxd pid %d from %s/sbxd.lock is "
			"not running (%s); start sbxd first\n", (int)t->pid,
			state_dir, strerror(-ret));
		return ret;
	}

	ret = node_get(sock_path, timeout_ms, &node);
	if (ret)
		return ret;
	pid = json_object_get(node, "pid");
	gate = json_object_get(node, "gate");
	if (!json_is_integer(pid) || json_integer_value(pid) != t->pid) {
		fprintf(stderr, "sbx-soak: %s is served by pid %lld, but %s/"
			"sbxd.lock holds pid %d; pass the --state-dir of the "
			"sbxd behind that socket\n", sock_path,
			json_is_integer(pid) ? json_integer_value(pid) : -1LL,
			state_dir, (int)t->pid);
		ret = -EINVAL;
		goto put_node;
	}
	t->bpf_gate = json_is_string(gate) &&
		      strcmp(json_string_value(gate), "bpf") == 0;
	if (t->bpf_gate && access(t->pin_dir, F_OK) < 0) {
		fprintf(stderr, "sbx-soak: sbxd pid %d uses the BPF gate but "
			"%s does not exist; pass the --instance that sbxd "
			"runs with\n", (int)t->pid, t->pin_dir);
		ret = -ENOENT;
	}
put_node:
	json_decref(node);
	return ret;
}

bool counts_target_alive(const struct soak_target *t)
{
	unsigned long long start_time;

	return stat_read(t->pid, NULL, &start_time) == 0 &&
	       start_time == t->start_time;
}

/* Store @value in @out, or print what failed and return it. */
static int count_store(long value, long *out, const char *subject)
{
	if (value < 0) {
		fprintf(stderr, "sbx-soak: failed to count %s: %s\n", subject,
			strerror((int)-value));
		return (int)value;
	}
	*out = value;
	return 0;
}

/*
 * Count sbxd's fds until two readings FD_SETTLE_MS apart agree. sbxd shuts
 * a connection down before it closes its fd, so the EOF that
 * soak_conn_finish() waits for can come a moment before the close.
 */
static long count_fds_settled(pid_t pid)
{
	long last = count_fds(pid), now;

	for (int i = 0; i < FD_SETTLE_TRIES && last >= 0; i++) {
		usleep(FD_SETTLE_MS * 1000);
		now = count_fds(pid);
		if (now == last)
			break;
		last = now;
	}
	return last;
}

int counts_read(const struct soak_target *t, struct soak_counts *c,
		int timeout_ms)
{
	char sandboxes_dir[PATH_MAX + 16];
	json_t *node, *live_vms, *sandboxes;
	int ret;

	if (!counts_target_alive(t)) {
		fprintf(stderr, "sbx-soak: sbxd pid %d is gone\n",
			(int)t->pid);
		return -ESRCH;
	}
	ret = node_get(t->sock_path, timeout_ms, &node);
	if (ret)
		return ret;
	live_vms = json_object_get(node, "live_vms");
	sandboxes = json_object_get(node, "sandboxes");
	c->live_vms = json_is_integer(live_vms) ?
			      (long)json_integer_value(live_vms) : -1;
	c->sandboxes = json_is_integer(sandboxes) ?
			       (long)json_integer_value(sandboxes) : -1;
	json_decref(node);
	if (c->sandboxes < 0) {
		fprintf(stderr, "sbx-soak: GET /v1/node has no integer "
			"\"sandboxes\"\n");
		return -EPROTO;
	}

	snprintf(sandboxes_dir, sizeof(sandboxes_dir), "%s/sandboxes",
		 t->state_dir);
	ret = count_store(count_fds_settled(t->pid), &c->fds,
			  "sbxd's open fds");
	if (!ret)
		ret = count_store(read_rss_kib(t->pid), &c->rss_kib,
				  "sbxd's VmRSS");
	if (!ret)
		ret = count_store(count_children(t->pid), &c->children,
				  "sbxd's child processes");
	if (!ret)
		ret = count_store(count_tree(t->pin_dir), &c->pins,
				  t->pin_dir);
	if (!ret)
		ret = count_store(count_tree(sandboxes_dir), &c->entries,
				  sandboxes_dir);
	return ret;
}
