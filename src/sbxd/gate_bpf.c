/* SPDX-License-Identifier: MIT */
/* BPF gate backend: a pinned, mmapable array map updated by syscall programs. */
#include <errno.h>
#include <stdio.h>

#include "sbxd/gate.h"
#include "sbxd/gate_ops.h"

#ifdef SBX_HAVE_BPF

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>

#include "bpf/drain.skel.h"

/*
 * Maximum length of the bpffs mount point path, so that every pin path
 * and every message that names it fits its buffer.
 */
#define BPFFS_PATH_MAX 128
#define ROOT_DIR_MAX (BPFFS_PATH_MAX + sizeof("/sbxd"))
#define INSTANCE_DIR_MAX (ROOT_DIR_MAX + 1 + 64)
#define PIN_PATH_MAX (INSTANCE_DIR_MAX + 16)

/* Pin names inside BPFFS/sbxd/INSTANCE/. */
static const char *const pin_names[] = { "drain_state", "live_vms" };

struct bpf_gate {
	struct drain_bpf *skel;
	struct bpf_link *iter_link;
	void *map;
	size_t map_len;
	char root_dir[ROOT_DIR_MAX];	/* BPFFS/sbxd */
	char dir[INSTANCE_DIR_MAX];		/* BPFFS/sbxd/INSTANCE */
	int dir_fd;	/* the instance dir, flocked while we own it */
	bool pinned;
};

/* libbpf prints warnings on its own; SBXD_DEBUG_BPF=1 lets them through. */
__attribute__((format(printf, 2, 0)))
static int libbpf_print(enum libbpf_print_level level, const char *format,
			va_list args)
{
	const char *debug = getenv("SBXD_DEBUG_BPF");

	/* libbpf's own lines already start with "libbpf: ". */
	if (!debug || strcmp(debug, "1"))
		return 0;
	return vfprintf(stderr, format, args);
}

static struct bpf_gate *bpf_gate(struct gate *gate)
{
	return gate->priv;
}

/* Mount bpffs at `path` unless one is already there. */
static int bpffs_ensure(const char *path, char *reason, size_t reason_len)
{
	struct statfs fs;
	int ret;

	if (statfs(path, &fs) < 0) {
		ret = -errno;
		snprintf(reason, reason_len, "bpffs mount point %s: %s", path,
			 strerror(-ret));
		return ret;
	}
	if (fs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", path, "bpf", 0, NULL) < 0) {
		ret = -errno;
		snprintf(reason, reason_len,
			 "%s is not bpffs and mounting bpffs there failed: %s",
			 path, strerror(-ret));
		return ret;
	}
	return 0;
}

static int make_dir(const char *path, bool *existed, char *reason,
		    size_t reason_len)
{
	int ret;

	*existed = false;
	if (!mkdir(path, 0700))
		return 0;
	ret = -errno;
	if (ret == -EEXIST) {
		*existed = true;
		return 0;
	}
	snprintf(reason, reason_len, "failed to create %s: %s", path, strerror(-ret));
	return ret;
}

static void pin_path(const struct bpf_gate *bg, const char *name, char *path,
		     size_t len)
{
	snprintf(path, len, "%s/%s", bg->dir, name);
}

/*
 * Remove our pins from the instance dir. A missing pin is fine, since a
 * crashed sbxd may have pinned only some of them.
 */
static int unlink_pins(const struct bpf_gate *bg)
{
	char path[PIN_PATH_MAX];
	int ret = 0;
	size_t i;

	for (i = 0; i < sizeof(pin_names) / sizeof(pin_names[0]); i++) {
		pin_path(bg, pin_names[i], path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT && !ret)
			ret = -errno;
	}
	return ret;
}

/*
 * Find the pid holding a flock on the file with this device and inode, from
 * /proc/locks. Returns the pid, or 0 when it cannot be found.
 */
static pid_t find_lock_owner(dev_t dev, ino_t ino)
{
	char line[256], want[64];
	unsigned long pid;
	FILE *f;

	snprintf(want, sizeof(want), " %02x:%02x:%lu ", major(dev), minor(dev),
		 (unsigned long)ino);
	f = fopen("/proc/locks", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, want))
			continue;
		if (sscanf(line, "%*d: FLOCK %*s %*s %lu", &pid) == 1) {
			fclose(f);
			return (pid_t)pid;
		}
	}
	fclose(f);
	return 0;
}

/*
 * Take an exclusive flock on the instance dir. A live sbxd holds it for as
 * long as its pins exist, so a second sbxd with the same instance name is
 * rejected instead of replacing pins that are not stale. Returns -EBUSY
 * when another process holds it.
 */
static int lock_instance_dir(struct bpf_gate *bg, const char *instance,
			     char *reason, size_t reason_len)
{
	struct stat st;
	pid_t owner;
	int fd;

	fd = open(bg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(reason, reason_len, "failed to open %s: %s", bg->dir,
			 strerror(errno));
		return -errno;
	}
	if (!flock(fd, LOCK_EX | LOCK_NB)) {
		bg->dir_fd = fd;
		return 0;
	}
	if (errno != EWOULDBLOCK) {
		snprintf(reason, reason_len, "failed to lock %s: %s", bg->dir,
			 strerror(errno));
		close(fd);
		return -EIO;
	}
	owner = fstat(fd, &st) ? 0 : find_lock_owner(st.st_dev, st.st_ino);
	close(fd);
	if (owner > 0)
		snprintf(reason, reason_len,
			 "instance %s is in use by pid %d (pins in %s); pass "
			 "another --instance", instance, (int)owner, bg->dir);
	else
		snprintf(reason, reason_len,
			 "instance %s is in use by another process (pins in "
			 "%s); pass another --instance", instance, bg->dir);
	return -EBUSY;
}

/*
 * Create BPFFS/sbxd/INSTANCE/ and pin the map and the iterator link there.
 * An existing instance dir that no process has locked is left over by
 * an sbxd that died without closing the gate, so its pins are replaced
 * and the fresh state starts serving.
 */
static int pin_all(struct gate *gate, const char *bpffs, const char *instance,
		   char *reason, size_t reason_len)
{
	struct bpf_gate *bg = bpf_gate(gate);
	char path[PIN_PATH_MAX];
	bool existed;
	int ret;

	if (strlen(bpffs) > BPFFS_PATH_MAX) {
		snprintf(reason, reason_len,
			 "bpffs path %.32s... is longer than %d bytes", bpffs,
			 BPFFS_PATH_MAX);
		return -ENAMETOOLONG;
	}
	ret = bpffs_ensure(bpffs, reason, reason_len);
	if (ret < 0)
		return ret;
	snprintf(bg->root_dir, sizeof(bg->root_dir), "%.128s/sbxd", bpffs);
	snprintf(bg->dir, sizeof(bg->dir), "%s/%.64s", bg->root_dir, instance);
	ret = make_dir(bg->root_dir, &existed, reason, reason_len);
	if (ret < 0)
		return ret;
	ret = make_dir(bg->dir, &existed, reason, reason_len);
	if (ret < 0)
		return ret;
	ret = lock_instance_dir(bg, instance, reason, reason_len);
	if (ret < 0)
		return ret;
	/* From here on unpin_all() removes whatever this function made. */
	bg->pinned = true;
	if (existed) {
		ret = unlink_pins(bg);
		if (ret < 0) {
			snprintf(reason, reason_len,
				 "failed to remove stale pins in %s: %s",
				 bg->dir, strerror(-ret));
			return ret;
		}
		snprintf(gate->pin_note, sizeof(gate->pin_note),
			 "replaced stale pins in %s", bg->dir);
	}

	pin_path(bg, "drain_state", path, sizeof(path));
	ret = bpf_map__pin(bg->skel->maps.drain_state, path);
	if (ret < 0)
		goto err_pin;
	pin_path(bg, "live_vms", path, sizeof(path));
	ret = bpf_link__pin(bg->iter_link, path);
	if (ret < 0)
		goto err_pin;
	return 0;

err_pin:
	snprintf(reason, reason_len, "failed to pin %s: %s", path,
		 strerror(-ret));
	return ret;
}

/* Remove the pins, the instance dir, and BPFFS/sbxd once it is empty. */
static int unpin_all(struct bpf_gate *bg)
{
	int ret;

	if (!bg->pinned)
		return 0;
	bg->pinned = false;
	ret = unlink_pins(bg);
	if (rmdir(bg->dir) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	/* Another instance may still use BPFFS/sbxd. */
	if (rmdir(bg->root_dir) < 0 && errno != ENOTEMPTY && errno != EEXIST &&
	    errno != ENOENT && !ret)
		ret = -errno;
	/* Closing the dir releases the instance lock, after the pins are gone. */
	if (bg->dir_fd >= 0) {
		close(bg->dir_fd);
		bg->dir_fd = -1;
	}
	return ret;
}

static int load_object(struct bpf_gate *bg, char *reason, size_t reason_len)
{
	int ret;

	libbpf_set_print(libbpf_print);
	bg->skel = drain_bpf__open();
	if (!bg->skel) {
		ret = -errno;
		snprintf(reason, reason_len, "opening drain.bpf.o failed: %s",
			 strerror(-ret));
		return ret;
	}
	ret = drain_bpf__load(bg->skel);
	if (ret < 0) {
		snprintf(reason, reason_len, "loading drain.bpf.o failed: %s%s",
			 strerror(-ret),
			 ret == -EPERM ? " (run as root, or with CAP_BPF and "
					 "CAP_PERFMON)" : "");
		goto err_destroy;
	}
	bg->iter_link = bpf_program__attach_iter(bg->skel->progs.live_vms,
						 NULL);
	if (!bg->iter_link) {
		ret = -errno;
		snprintf(reason, reason_len,
			 "attaching the live_vms iterator failed: %s",
			 strerror(-ret));
		goto err_destroy;
	}
	return 0;

err_destroy:
	drain_bpf__destroy(bg->skel);
	bg->skel = NULL;
	return ret;
}

static void unload_object(struct bpf_gate *bg)
{
	bpf_link__destroy(bg->iter_link);
	bg->iter_link = NULL;
	drain_bpf__destroy(bg->skel);
	bg->skel = NULL;
}

/* Map the array read-only: every write goes through a program. */
static int map_state(struct bpf_gate *bg, char *reason, size_t reason_len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int fd = bpf_map__fd(bg->skel->maps.drain_state);
	int ret;

	bg->map_len = (sizeof(struct sbxd_drain_state) + page - 1) / page *
		      page;
	bg->map = mmap(NULL, bg->map_len, PROT_READ, MAP_SHARED, fd, 0);
	if (bg->map == MAP_FAILED) {
		ret = -errno;
		bg->map = NULL;
		snprintf(reason, reason_len, "failed to map drain_state: %s",
			 strerror(-ret));
		return ret;
	}
	return 0;
}

static int bpf_open(struct gate *gate, const struct gate_config *config,
		    char *reason, size_t reason_len)
{
	struct bpf_gate *bg;
	int ret;

	bg = calloc(1, sizeof(*bg));
	if (!bg) {
		snprintf(reason, reason_len, "out of memory");
		return -ENOMEM;
	}
	bg->dir_fd = -1;
	gate->priv = bg;

	ret = load_object(bg, reason, reason_len);
	if (ret < 0)
		goto err_free;
	ret = map_state(bg, reason, reason_len);
	if (ret < 0)
		goto err_unload;
	ret = pin_all(gate, config->bpffs, config->instance, reason, reason_len);
	if (ret < 0)
		goto err_unpin;

	gate->state = bg->map;
	return 0;

err_unpin:
	unpin_all(bg);
	gate->pin_note[0] = '\0';
	munmap(bg->map, bg->map_len);
err_unload:
	unload_object(bg);
err_free:
	free(bg);
	gate->priv = NULL;
	return ret;
}

static int bpf_close(struct gate *gate)
{
	struct bpf_gate *bg = bpf_gate(gate);
	int ret;

	ret = unpin_all(bg);
	if (munmap(bg->map, bg->map_len) < 0 && !ret)
		ret = -errno;
	unload_object(bg);
	free(bg);
	return ret;
}

/*
 * Run one syscall program. Its return value is 0 or a negative errno;
 * -EBUSY means the compare-and-swap lost GATE_BPF_CAS_TRIES times in a row,
 * so the call is repeated.
 */
static int run_prog(struct bpf_program *prog, struct gate_bpf_args *args)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args,
		    .ctx_size_in = sizeof(*args));
	int fd = bpf_program__fd(prog);
	int ret;

	do {
		ret = bpf_prog_test_run_opts(fd, &opts);
		if (ret < 0)
			return -errno;
	} while ((int)opts.retval == -EBUSY);
	return (int)opts.retval;
}

static int bpf_enter(struct gate *gate)
{
	struct gate_bpf_args args = { 0 };

	return run_prog(bpf_gate(gate)->skel->progs.gate_enter, &args);
}

static int bpf_exit(struct gate *gate, bool ok)
{
	struct gate_bpf_args args = { .ok = ok };

	return run_prog(bpf_gate(gate)->skel->progs.gate_exit, &args);
}

static int bpf_drain(struct gate *gate, uint32_t state, uint64_t now_ns)
{
	struct gate_bpf_args args = { .state = state, .now_ns = now_ns };

	return run_prog(bpf_gate(gate)->skel->progs.gate_drain, &args);
}

static int bpf_set_live(struct gate *gate, uint32_t live)
{
	struct gate_bpf_args args = { .live = live };

	return run_prog(bpf_gate(gate)->skel->progs.gate_set_live, &args);
}

static int bpf_reset(struct gate *gate)
{
	struct sbxd_drain_state zero = { 0 };
	__u32 key = 0;

	if (bpf_map__update_elem(bpf_gate(gate)->skel->maps.drain_state, &key,
				 sizeof(key), &zero, sizeof(zero), 0) < 0)
		return -errno;
	return 0;
}

static int bpf_track_vmm(struct gate *gate, pid_t pid)
{
	__u32 key = (__u32)pid;
	__u8 one = 1;
	int ret;

	ret = bpf_map__update_elem(bpf_gate(gate)->skel->maps.vmm_pids, &key,
				   sizeof(key), &one, sizeof(one), BPF_ANY);
	return ret < 0 ? -errno : 0;
}

static int bpf_untrack_vmm(struct gate *gate, pid_t pid)
{
	__u32 key = (__u32)pid;
	int ret;

	ret = bpf_map__delete_elem(bpf_gate(gate)->skel->maps.vmm_pids, &key,
				   sizeof(key), 0);
	return ret < 0 ? -errno : 0;
}

/* Run the live_vms iterator and count its lines, one per KVM VM. */
static int bpf_count_live_vms(struct gate *gate)
{
	struct bpf_gate *bg = bpf_gate(gate);
	char buf[4096];
	int fd, count = 0;
	ssize_t n, i;

	fd = bpf_iter_create(bpf_link__fd(bg->iter_link));
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (i = 0; i < n; i++)
			count += buf[i] == '\n';
	if (n < 0)
		count = -errno;
	close(fd);
	return count;
}

const struct gate_ops gate_bpf_ops = {
	.open = bpf_open,
	.close = bpf_close,
	.enter = bpf_enter,
	.exit = bpf_exit,
	.drain = bpf_drain,
	.set_live = bpf_set_live,
	.reset = bpf_reset,
	.track_vmm = bpf_track_vmm,
	.untrack_vmm = bpf_untrack_vmm,
	.count_live_vms = bpf_count_live_vms,
};

#else /* !SBX_HAVE_BPF */

static int bpf_open(struct gate *gate, const struct gate_config *config,
		    char *reason, size_t reason_len)
{
	snprintf(reason, reason_len,
		 "this sbxd was built with SBX_BPF=OFF, without the BPF gate");
	return -EOPNOTSUPP;
}

const struct gate_ops gate_bpf_ops = {
	.open = bpf_open,
};

#endif
