// SPDX-License-Identifier: MIT
/*
 * sbxctl's reader of the pinned drain-state map. Instance names and the
 * JSON conversion need nothing. The map cases pin real BPF maps, made by
 * sbxd's own gate or created here, in a private bpffs mounted in a
 * temporary dir, and skip when not root or when /sys/fs/bpf is not bpffs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/magic.h>

#include "ctl/drainmap.h"
#include "sbxd/gate.h"

#define INSTANCE "ctl-test"

/* Static, so that the fini still cleans up after a failed assert. */
static char bpffs[64];
static struct gate gate;
static bool gate_opened;
static struct drainmap map = { .fd = -1 };

static void cleanup(void)
{
	drainmap_close(&map);
	if (gate_opened)
		gate_close(&gate);
	gate_opened = false;
	if (bpffs[0]) {
		/* Detaching the mount drops every pin left in it. */
		umount2(bpffs, MNT_DETACH);
		rmdir(bpffs);
		bpffs[0] = '\0';
	}
}

TestSuite(drainmap, .fini = cleanup);

static void require_bpf(void)
{
	struct statfs fs;

	if (geteuid() != 0)
		cr_skip_test("skipped: BPF maps need root");
	if (statfs("/sys/fs/bpf", &fs) < 0 || fs.f_type != BPF_FS_MAGIC)
		cr_skip_test("skipped: /sys/fs/bpf is not a bpffs mount");
}

/* Mount a private bpffs in a new temporary dir. */
static void mount_bpffs(void)
{
	require_bpf();
	strcpy(bpffs, "/tmp/sbxctl-drainmap-XXXXXX");
	cr_assert_not_null(mkdtemp(bpffs), "mkdtemp: %s", strerror(errno));
	cr_assert_eq(mount("bpf", bpffs, "bpf", 0, NULL), 0,
		     "mounting bpffs at %s: %s", bpffs, strerror(errno));
}

/* Open sbxd's BPF gate on the private bpffs, as sbxd does at startup. */
static void open_gate(void)
{
	struct gate_config config = {
		.backend = GATE_BACKEND_BPF,
		.instance = INSTANCE,
		.bpffs = bpffs,
	};
	int ret;

	ret = gate_open(&gate, &config);
	if (ret == -EOPNOTSUPP)
		cr_skip_test("skipped: %s", gate.fallback_reason);
	cr_assert_eq(ret, 0, "gate_open: %s (%s)", strerror(-ret),
		     gate.fallback_reason);
	gate_opened = true;
}

static void pin_path(char *path, size_t len)
{
	cr_assert_eq(drainmap_pin_path(bpffs, INSTANCE, path, len), 0);
}

/* Create an array map and pin it at the instance's pin path. */
static int pin_array(const char *name, __u32 value_size)
{
	char dir[128], path[DRAINMAP_PATH_MAX];
	int fd;

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(__u32),
			    value_size, 1, NULL);
	cr_assert_geq(fd, 0, "bpf_map_create: %s", strerror(errno));
	snprintf(dir, sizeof(dir), "%s/sbxd", bpffs);
	mkdir(dir, 0700);
	snprintf(dir, sizeof(dir), "%s/sbxd/%s", bpffs, INSTANCE);
	mkdir(dir, 0700);
	pin_path(path, sizeof(path));
	cr_assert_eq(bpf_obj_pin(fd, path), 0, "bpf_obj_pin %s: %s", path,
		     strerror(errno));
	return fd;
}

/* Load a socket filter that returns 0 and pin it at @path. */
static int pin_program(const char *path)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd;

	fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "not_a_map", "GPL",
			   insns, 2, NULL);
	cr_assert_geq(fd, 0, "bpf_prog_load: %s", strerror(errno));
	cr_assert_eq(bpf_obj_pin(fd, path), 0, "bpf_obj_pin %s: %s", path,
		     strerror(errno));
	return fd;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

Test(drainmap, instance_names)
{
	static const char *const valid[] = {
		"default", "a", "itest-Ab_9.x", "...",
		"123456789012345678901234567890123456789012345678901234567890123",
	};
	static const char *const invalid[] = {
		"", ".", "..", "a/b", "a b", "ä", "x\n",
		"1234567890123456789012345678901234567890123456789012345678901234",
	};

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		cr_assert(drainmap_instance_valid(valid[i]),
			  "'%s' rejected", valid[i]);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		cr_assert_not(drainmap_instance_valid(invalid[i]),
			      "'%s' accepted", invalid[i]);
}

Test(drainmap, pin_path_form)
{
	char path[DRAINMAP_PATH_MAX], small[20];

	cr_assert_eq(drainmap_pin_path(DRAINMAP_BPFFS, "x", path,
				       sizeof(path)), 0);
	cr_assert_str_eq(path, "/sys/fs/bpf/sbxd/x/drain_state");
	cr_assert_eq(drainmap_pin_path(DRAINMAP_BPFFS, "x", small,
				       sizeof(small)), -ENAMETOOLONG);
}

Test(drainmap, json_of_state)
{
	struct sbxd_drain_state serving = {
		.live = 2, .admitted = 5, .started = 4, .failed = 1,
	};
	struct sbxd_drain_state draining = {
		.draining = SBXD_FORCING, .inflight_starts = 1, .live = 3,
		.rejected = 7, .drain_started_ns = 10000000000ull,
	};
	struct sbxd_drain_state odd = { .draining = 9, .drain_started_ns = 5 };
	json_t *node;
	char *text;

	node = drainmap_to_json(&serving, 42);
	text = json_dumps(node, JSON_COMPACT | JSON_PRESERVE_ORDER);
	cr_assert_str_eq(text, "{\"state\":\"serving\",\"inflight_starts\":0,"
			       "\"live\":2,\"admitted\":5,\"rejected\":0,"
			       "\"started\":4,\"failed\":1,"
			       "\"draining_for_ms\":null}");
	free(text);
	json_decref(node);

	node = drainmap_to_json(&draining, 12500000000ull);
	cr_assert_str_eq(json_string_value(json_object_get(node, "state")),
			 "forcing");
	cr_assert_eq(json_integer_value(json_object_get(node,
							"draining_for_ms")),
		     2500);
	cr_assert_eq(json_integer_value(json_object_get(node,
							"inflight_starts")),
		     1);
	json_decref(node);

	/* A clock behind drain_started_ns shows 0, not a huge number. */
	node = drainmap_to_json(&odd, 1);
	cr_assert_str_eq(json_string_value(json_object_get(node, "state")),
			 "unknown");
	cr_assert_eq(json_integer_value(json_object_get(node,
							"draining_for_ms")),
		     0);
	json_decref(node);
}

/* The map of sbxd's real gate, followed from serving to its removal. */
Test(drainmap, reads_gate_map)
{
	char path[DRAINMAP_PATH_MAX], reason[512];
	struct sbxd_drain_state st;
	enum drainmap_pin pin;
	uint64_t before_ns;
	int ret;

	mount_bpffs();
	open_gate();
	pin_path(path, sizeof(path));

	ret = drainmap_open(&map, path, reason, sizeof(reason));
	cr_assert_eq(ret, 0, "drainmap_open: %s (%s)", strerror(-ret),
		     reason);
	cr_assert_eq(drainmap_read(&map, &st), 0);
	cr_assert_eq(st.draining, SBXD_SERVING);
	cr_assert_eq(st.drain_started_ns, 0);

	cr_assert_eq(gate_enter(&gate), 0);
	cr_assert_eq(gate_enter(&gate), 0);
	cr_assert_eq(gate_exit(&gate, true), 0);
	cr_assert_eq(gate_set_live(&gate, 1), 0);
	before_ns = monotonic_ns();
	cr_assert_eq(gate_drain(&gate, SBXD_DRAINING, 0), 0);
	cr_assert_eq(gate_enter(&gate), -EAGAIN);

	cr_assert_eq(drainmap_read(&map, &st), 0);
	cr_assert_eq(st.draining, SBXD_DRAINING);
	cr_assert_eq(st.inflight_starts, 1);
	cr_assert_eq(st.live, 1);
	cr_assert_eq(st.admitted, 2);
	cr_assert_eq(st.rejected, 1);
	cr_assert_eq(st.started, 1);
	cr_assert_eq(st.failed, 0);
	cr_assert_geq(st.drain_started_ns, before_ns,
		      "drain_started_ns is not CLOCK_MONOTONIC");
	cr_assert_leq(st.drain_started_ns, monotonic_ns());

	cr_assert_eq(drainmap_check_pin(&map, &pin), 0);
	cr_assert_eq(pin, DRAINMAP_PIN_PRESENT);

	/* sbxd unpins at exit, but the open fd still reads the last state. */
	cr_assert_eq(gate_set_live(&gate, 0), 0);
	cr_assert_eq(gate_drain(&gate, SBXD_CLOSING, 0), 0);
	cr_assert_eq(gate_close(&gate), 0);
	gate_opened = false;
	cr_assert_eq(drainmap_check_pin(&map, &pin), 0);
	cr_assert_eq(pin, DRAINMAP_PIN_REMOVED);
	cr_assert_eq(drainmap_read(&map, &st), 0);
	cr_assert_eq(st.draining, SBXD_CLOSING);
	cr_assert_eq(st.live, 0);
}

Test(drainmap, replaced_pin)
{
	char path[DRAINMAP_PATH_MAX], reason[512];
	struct sbxd_drain_state value = { .live = 4 };
	struct sbxd_drain_state st;
	enum drainmap_pin pin;
	__u32 key = 0;
	int fd, ret;

	mount_bpffs();
	fd = pin_array("drain_state", sizeof(struct sbxd_drain_state));
	cr_assert_eq(bpf_map_update_elem(fd, &key, &value, 0), 0);
	pin_path(path, sizeof(path));

	ret = drainmap_open(&map, path, reason, sizeof(reason));
	cr_assert_eq(ret, 0, "drainmap_open: %s (%s)", strerror(-ret),
		     reason);
	cr_assert_eq(drainmap_read(&map, &st), 0);
	cr_assert_eq(st.live, 4);

	/* A new sbxd of the same instance replaces a dead one's pin. */
	cr_assert_eq(unlink(path), 0);
	close(fd);
	fd = pin_array("drain_state", sizeof(struct sbxd_drain_state));
	cr_assert_eq(drainmap_check_pin(&map, &pin), 0);
	cr_assert_eq(pin, DRAINMAP_PIN_REPLACED);
	close(fd);
}

Test(drainmap, rejects_other_maps)
{
	char path[DRAINMAP_PATH_MAX], reason[512];
	int fd, ret;

	mount_bpffs();
	fd = pin_array("drain_state", 8);
	pin_path(path, sizeof(path));
	ret = drainmap_open(&map, path, reason, sizeof(reason));
	cr_assert_eq(ret, -EPROTO, "wrong value size: %d (%s)", ret, reason);
	cr_assert(strstr(reason, path), "reason lacks the path: %s", reason);
	cr_assert(strstr(reason, "8-byte values"), "reason: %s", reason);
	cr_assert_eq(map.fd, -1);
	cr_assert_eq(unlink(path), 0);
	close(fd);

	fd = pin_array("other", sizeof(struct sbxd_drain_state));
	ret = drainmap_open(&map, path, reason, sizeof(reason));
	cr_assert_eq(ret, -EPROTO, "wrong name: %d (%s)", ret, reason);
	cr_assert(strstr(reason, "\"other\""), "reason: %s", reason);
	cr_assert_eq(unlink(path), 0);
	close(fd);

	/* A pinned program opens with the same call as a map. */
	fd = pin_program(path);
	ret = drainmap_open(&map, path, reason, sizeof(reason));
	cr_assert_eq(ret, -EPROTO, "program pin: %d (%s)", ret, reason);
	cr_assert(strstr(reason, "not a map"), "reason: %s", reason);
	close(fd);
}

Test(drainmap, missing_and_non_bpf_paths)
{
	char path[DRAINMAP_PATH_MAX], reason[512];
	int fd, ret;

	mount_bpffs();
	pin_path(path, sizeof(path));
	ret = drainmap_open(&map, path, reason, sizeof(reason));
	cr_assert_eq(ret, -ENOENT, "missing pin: %d (%s)", ret, reason);
	cr_assert(strstr(reason, path), "reason lacks the path: %s", reason);
	cr_assert(strstr(reason, "does not exist"), "reason: %s", reason);

	/* A regular file outside bpffs is not a pin. */
	snprintf(path, sizeof(path), "%s.file", bpffs);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	close(fd);
	ret = drainmap_open(&map, path, reason, sizeof(reason));
	unlink(path);
	cr_assert_eq(ret, -EACCES, "a regular file: %d (%s)", ret, reason);
	cr_assert(strstr(reason, path), "reason lacks the path: %s", reason);
	cr_assert(strstr(reason, "not on a bpffs mount"), "reason: %s",
		  reason);
	cr_assert_eq(map.fd, -1);
}
