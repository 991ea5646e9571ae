// SPDX-License-Identifier: MIT
/* Read-only access to sbxd's pinned BPF drain-state map. */
#include "drainmap.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/magic.h>

/* The map's name in bpf/drain.bpf.c, as the kernel reports it. */
#define DRAIN_MAP_NAME "drain_state"

bool drainmap_instance_valid(const char *instance)
{
	size_t len = strlen(instance);

	if (len == 0 || len > DRAINMAP_INSTANCE_MAX ||
	    strcmp(instance, ".") == 0 || strcmp(instance, "..") == 0)
		return false;
	for (const char *p = instance; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' &&
		    *p != '.')
			return false;
	}
	return true;
}

int drainmap_pin_path(const char *bpffs, const char *instance, char *path,
		      size_t len)
{
	int n = snprintf(path, len, "%s/sbxd/%s/drain_state", bpffs,
			 instance);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

static const char *open_hint(const char *path, int err)
{
	struct statfs fs;

	switch (err) {
	case -EACCES:
		/* The kernel also returns EACCES for a file outside bpffs. */
		if (statfs(path, &fs) == 0 && fs.f_type != BPF_FS_MAGIC)
			return " (the path is not on a bpffs mount)";
		return " (reading the map needs root, or CAP_BPF and read "
		       "access to the pin)";
	case -EPERM:
		return " (reading the map needs root, or CAP_BPF and read "
		       "access to the pin)";
	default:
		return "";
	}
}

/*
 * Check that @fd is a map: a pinned program or link opens too. Returns
 * true also when /proc is not mounted, and check_shape() then still
 * compares the fields of what may be another object's info.
 */
static bool is_map_fd(int fd)
{
	static const char map_link[] = "anon_inode:bpf-map";
	char link[64], target[sizeof(map_link) + 1];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target));
	if (n < 0)
		return true;
	return (size_t)n == sizeof(map_link) - 1 &&
	       memcmp(target, map_link, (size_t)n) == 0;
}

/* Check that the map has the type, sizes and name of sbxd's drain state. */
static int check_shape(int fd, const char *path, char *reason,
		       size_t reason_len)
{
	struct bpf_map_info info;
	__u32 info_len = sizeof(info);
	int ret;

	if (!is_map_fd(fd)) {
		snprintf(reason, reason_len, "%s is a BPF pin but not a map",
			 path);
		return -EPROTO;
	}
	memset(&info, 0, sizeof(info));
	ret = bpf_obj_get_info_by_fd(fd, &info, &info_len);
	if (ret < 0) {
		ret = -errno;
		snprintf(reason, reason_len, "reading the map info of %s "
			 "failed: %s", path, strerror(-ret));
		return ret;
	}
	if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != sizeof(__u32) ||
	    info.value_size != sizeof(struct sbxd_drain_state) ||
	    info.max_entries < 1 || strcmp(info.name, DRAIN_MAP_NAME) != 0) {
		snprintf(reason, reason_len,
			 "%s is not sbxd's drain-state map: map \"%s\" of type "
			 "%u with %u-byte keys and %u-byte values, expected "
			 "\"%s\", an array with 4-byte keys and %zu-byte values "
			 "(sbxctl and sbxd may be different versions)",
			 path, info.name, info.type, info.key_size,
			 info.value_size, DRAIN_MAP_NAME,
			 sizeof(struct sbxd_drain_state));
		return -EPROTO;
	}
	return 0;
}

int drainmap_open(struct drainmap *map, const char *path, char *reason,
		  size_t reason_len)
{
	LIBBPF_OPTS(bpf_obj_get_opts, opts, .file_flags = BPF_F_RDONLY);
	struct stat st;
	int fd, ret;

	map->fd = -1;
	snprintf(map->path, sizeof(map->path), "%s", path);
	if (strlen(path) >= sizeof(map->path)) {
		snprintf(reason, reason_len, "pin path %.64s... is longer "
			 "than %zu bytes", path, sizeof(map->path) - 1);
		return -ENAMETOOLONG;
	}

	fd = bpf_obj_get_opts(path, &opts);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			snprintf(reason, reason_len, "%s does not exist", path);
		else
			snprintf(reason, reason_len, "opening %s failed: %s%s",
				 path, strerror(-ret), open_hint(path, ret));
		return ret;
	}
	ret = check_shape(fd, path, reason, reason_len);
	if (ret < 0)
		goto close_fd;
	/*
	 * Stat after the open. If sbxd replaces the pin in between, the
	 * first drainmap_check_pin() reports a replaced pin and the watch
	 * ends early rather than follow a dead sbxd's map.
	 */
	if (stat(path, &st) < 0) {
		ret = -errno;
		snprintf(reason, reason_len, "stat of %s failed: %s", path,
			 strerror(-ret));
		goto close_fd;
	}
	map->pin_dev = st.st_dev;
	map->pin_ino = st.st_ino;
	map->fd = fd;
	return 0;

close_fd:
	close(fd);
	return ret;
}

int drainmap_read(const struct drainmap *map, struct sbxd_drain_state *out)
{
	__u32 key = 0;

	if (bpf_map_lookup_elem(map->fd, &key, out) < 0)
		return -errno;
	return 0;
}

int drainmap_check_pin(const struct drainmap *map, enum drainmap_pin *pin)
{
	struct stat st;

	if (stat(map->path, &st) < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		*pin = DRAINMAP_PIN_REMOVED;
	} else if (st.st_dev != map->pin_dev || st.st_ino != map->pin_ino) {
		*pin = DRAINMAP_PIN_REPLACED;
	} else {
		*pin = DRAINMAP_PIN_PRESENT;
	}
	return 0;
}

void drainmap_close(struct drainmap *map)
{
	if (map->fd >= 0)
		close(map->fd);
	map->fd = -1;
}

const char *drainmap_state_name(uint32_t draining)
{
	switch (draining) {
	case SBXD_SERVING:
		return "serving";
	case SBXD_DRAINING:
		return "draining";
	case SBXD_FORCING:
		return "forcing";
	case SBXD_CLOSING:
		return "closing";
	default:
		return "unknown";
	}
}

json_t *drainmap_to_json(const struct sbxd_drain_state *state,
			 uint64_t now_ns)
{
	json_t *node, *draining_for = json_null();
	uint64_t elapsed_ns = 0;

	node = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "state", drainmap_state_name(state->draining),
			 "inflight_starts", (json_int_t)state->inflight_starts,
			 "live", (json_int_t)state->live,
			 "admitted", (json_int_t)state->admitted,
			 "rejected", (json_int_t)state->rejected,
			 "started", (json_int_t)state->started,
			 "failed", (json_int_t)state->failed);
	if (!node)
		return NULL;
	if (state->drain_started_ns) {
		if (now_ns > state->drain_started_ns)
			elapsed_ns = now_ns - state->drain_started_ns;
		draining_for = json_integer((json_int_t)(elapsed_ns /
							 1000000u));
	}
	/* json_object_set_new releases draining_for also when it fails. */
	if (json_object_set_new(node, "draining_for_ms", draining_for)) {
		json_decref(node);
		return NULL;
	}
	return node;
}
