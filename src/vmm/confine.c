/* SPDX-License-Identifier: MIT */
/*
 * Confinement of one sbx-vmm process: namespaces, resource limits, an
 * unprivileged user, no capabilities, no_new_privs and a seccomp filter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SBX_ASAN 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define SBX_ASAN 1
#endif
#ifdef SBX_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#include "vmm/confine.h"
#include "vmm/filter.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

__attribute__((format(printf, 3, 4))) static int
fail(char *err, size_t err_size, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return saved ? -saved : -EIO;
}

static int lookup_user(struct confine *c, const char *name, char *err,
		       size_t err_size)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (!pw) {
		if (errno == 0)
			errno = ENOENT;
		return fail(err, err_size,
			    "failed to look up --vmm-user %s: %s; create it "
			    "with 'useradd --system --no-create-home --shell "
			    "/usr/sbin/nologin %s' (scripts/install-deps.sh "
			    "does), or pass --vmm-user NAME",
			    name, errno == ENOENT ? "no such user" :
			    strerror(errno), name);
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		errno = EINVAL;
		return fail(err, err_size,
			    "--vmm-user %s has uid %u and gid %u; it must be "
			    "an unprivileged user, not uid or gid 0",
			    name, (unsigned int)pw->pw_uid,
			    (unsigned int)pw->pw_gid);
	}
	c->uid = pw->pw_uid;
	c->gid = pw->pw_gid;
	return 0;
}

int confine_begin(struct vmm *vmm, char *err, size_t err_size)
{
	struct confine *c = &vmm->confine;
	int ret;

	c->active = true;
	c->root = geteuid() == 0;
	if (!c->root) {
		vmm_log(vmm, "not running as root: keeping uid %u and skipping "
			"the namespaces; confining with resource limits, "
			"no_new_privs and seccomp only",
			(unsigned int)geteuid());
		return 0;
	}
	ret = lookup_user(c, vmm->cfg->vmm_user, err, err_size);
	if (ret)
		return ret;

	/* The guest file and /dev/kvm are opened after this, through the
	 * copied mount table, so the same paths name the same files. */
	if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC))
		return fail(err, err_size,
			    "failed to create mount, network and IPC "
			    "namespaces (unshare): %s; run sbx-vmm with "
			    "CAP_SYS_ADMIN or pass --no-confine",
			    strerror(errno));
	/* Mounts made in here never reach the host, and the reverse. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return fail(err, err_size,
			    "failed to make mount propagation private: %s",
			    strerror(errno));
	return 0;
}

static int compare_ints(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * Close every descriptor that the run loop does not use, and return the
 * highest one kept. That includes /dev/kvm, which only creates VMs, and
 * any fd that a shell or test runner left open without close-on-exec.
 * The VM fd stays: sbxd counts live VMs by the kvm-vm files that VMMs
 * hold.
 */
static int close_other_fds(struct vmm *vmm)
{
	int keep[] = {
		0, 1, 2, vmm->cfg->control_fd, vmm->vm.vm_fd,
		vmm->vm.vcpu_fd, vmm->vm.mem_fd, vmm->snapshot_dir_fd,
		vmm->pagemap_fd,
	};
	size_t count = sizeof(keep) / sizeof(keep[0]);
	unsigned int next = 0;

	vmm->vm.kvm_fd = -1;
	qsort(keep, count, sizeof(keep[0]), compare_ints);
	for (size_t i = 0; i < count; i++) {
		if (keep[i] < 0)
			continue;
		if ((unsigned int)keep[i] > next &&
		    close_range(next, (unsigned int)keep[i] - 1, 0))
			return -errno;
		next = (unsigned int)keep[i] + 1;
	}
	if (close_range(next, ~0u, 0))
		return -errno;
	return (int)next - 1;
}

/* Bytes mapped now, from the first field of /proc/self/statm. */
static int mapped_bytes(uint64_t *bytes)
{
	unsigned long long pages;
	FILE *f = fopen("/proc/self/statm", "re");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "%llu", &pages);
	fclose(f);
	if (n != 1)
		return -EIO;
	*bytes = pages * (uint64_t)sysconf(_SC_PAGESIZE);
	return 0;
}

/* Lower the soft and hard limit to `value`, never raising either. */
static int lower_limit(int resource, uint64_t value)
{
	struct rlimit rl;

	if (getrlimit(resource, &rl))
		return -errno;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < value)
		value = rl.rlim_max;
	rl.rlim_cur = value;
	rl.rlim_max = value;
	if (setrlimit(resource, &rl))
		return -errno;
	return 0;
}

/*
 * Limits for a process that keeps a few fds, one VM's memory and writes
 * at most one snapshot file at a time. RLIMIT_NPROC comes later, in
 * start_kvm_workers().
 */
static int set_limits(struct vmm *vmm, char *err, size_t err_size)
{
	struct {
		int resource;
		const char *name;
		uint64_t value;
	} limits[] = {
		{ RLIMIT_NOFILE, "RLIMIT_NOFILE", 0 },
		{ RLIMIT_AS, "RLIMIT_AS", 0 },
		{ RLIMIT_FSIZE, "RLIMIT_FSIZE",
		  vmm->vm.mem_size + SNAP_META_MAX },
		{ RLIMIT_CORE, "RLIMIT_CORE", 0 },
		{ RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK", 0 },
		{ RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE", 0 },
	};
	uint64_t mapped = 0;
	int ret, fd;

	fd = close_other_fds(vmm);
	if (fd < 0) {
		errno = -fd;
		return fail(err, err_size, "failed to close the file "
			    "descriptors that sbx-vmm does not use: %s",
			    strerror(errno));
	}
	limits[0].value = (uint64_t)fd + 1 + CONFINE_FD_MARGIN;
	ret = mapped_bytes(&mapped);
	if (ret) {
		errno = -ret;
		return fail(err, err_size, "failed to read /proc/self/statm: %s",
			    strerror(errno));
	}
	limits[1].value = mapped + CONFINE_AS_MARGIN;

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		ret = lower_limit(limits[i].resource, limits[i].value);
		if (ret) {
			errno = -ret;
			return fail(err, err_size,
				    "failed to set %s to %llu: %s",
				    limits[i].name,
				    (unsigned long long)limits[i].value,
				    strerror(errno));
		}
	}
	/* A write past RLIMIT_FSIZE fails with EFBIG instead of killing. */
	signal(SIGXFSZ, SIG_IGN);
	return 0;
}

/*
 * KVM starts a worker thread per VM (kvm-nx-lpage-recovery, on Linux 6.18)
 * at the first KVM_RUN, as a thread of the calling process with its
 * credentials, and that thread counts against RLIMIT_NPROC of the
 * process's user. With several VMMs sharing one user, no small limit
 * leaves room for it. So start it now, as the final user, with a KVM_RUN
 * that runs no guest code, and only then forbid new processes with
 * RLIMIT_NPROC 0. KVM_RUN fails with EAGAIN forever if the limit comes
 * first.
 */
static int start_kvm_workers(struct vmm *vmm, char *err, size_t err_size)
{
	int ret;

	ret = vm_complete_io(&vmm->vm);
	if (ret) {
		errno = -ret;
		return fail(err, err_size, "failed to start KVM's worker "
			    "threads (KVM_RUN with immediate_exit): %s",
			    strerror(errno));
	}
	ret = lower_limit(RLIMIT_NPROC, 0);
	if (ret) {
		errno = -ret;
		return fail(err, err_size, "failed to set RLIMIT_NPROC to 0: %s",
			    strerror(errno));
	}
	return 0;
}

/*
 * Empty the bounding set and the ambient set. Emptying the bounding set
 * needs CAP_SETPCAP, which root has. A non-root process without it keeps
 * its bounding set, but no_new_privs keeps it from gaining anything.
 */
static int drop_capability_sets(bool root, char *err, size_t err_size)
{
	for (unsigned long cap = 0;; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL && cap > 0)
			break; /* past the kernel's last capability */
		if (errno == EPERM && !root)
			break;
		return fail(err, err_size, "failed to drop capability %lu "
			    "from the bounding set: %s", cap, strerror(errno));
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))
		return fail(err, err_size,
			    "failed to clear the ambient capabilities: %s",
			    strerror(errno));
	return 0;
}

/* Clear the permitted, effective and inheritable sets. */
static int clear_capabilities(char *err, size_t err_size)
{
	struct __user_cap_header_struct header = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &header, data))
		return fail(err, err_size, "failed to clear the capability "
			    "sets (capset): %s", strerror(errno));
	return 0;
}

/*
 * Become c->uid and c->gid with no supplementary groups: real, effective
 * and saved ids, so that no way back to root remains.
 */
static int change_user(const struct confine *c, const char *name, char *err,
		       size_t err_size)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	if (setgroups(0, NULL))
		return fail(err, err_size, "failed to drop the supplementary "
			    "groups (setgroups): %s", strerror(errno));
	if (setresgid(c->gid, c->gid, c->gid))
		return fail(err, err_size, "failed to set gid %u of --vmm-user "
			    "%s: %s", (unsigned int)c->gid, name,
			    strerror(errno));
	if (setresuid(c->uid, c->uid, c->uid))
		return fail(err, err_size, "failed to set uid %u of --vmm-user "
			    "%s: %s", (unsigned int)c->uid, name,
			    strerror(errno));
	if (getresuid(&ruid, &euid, &suid) || getresgid(&rgid, &egid, &sgid) ||
	    ruid != c->uid || euid != c->uid || suid != c->uid ||
	    rgid != c->gid || egid != c->gid || sgid != c->gid) {
		errno = EPERM;
		return fail(err, err_size, "the uid or gid did not change to "
			    "%u:%u of --vmm-user %s", (unsigned int)c->uid,
			    (unsigned int)c->gid, name);
	}
	return 0;
}

/* Give the snapshot directory to the VMM user, who writes files there. */
static int hand_over_snapshot_dir(const struct vmm *vmm, char *err,
				  size_t err_size)
{
	const struct confine *c = &vmm->confine;
	struct stat st;

	if (vmm->snapshot_dir_fd < 0)
		return 0;
	if (fstat(vmm->snapshot_dir_fd, &st))
		return fail(err, err_size, "failed to stat --snapshot-dir %s: "
			    "%s", vmm->cfg->snapshot_dir, strerror(errno));
	if (st.st_uid == c->uid && st.st_gid == c->gid)
		return 0;
	if (fchown(vmm->snapshot_dir_fd, c->uid, c->gid))
		return fail(err, err_size, "failed to make --snapshot-dir %s "
			    "owned by --vmm-user %s: %s",
			    vmm->cfg->snapshot_dir, vmm->cfg->vmm_user,
			    strerror(errno));
	return 0;
}

int confine_apply(struct vmm *vmm, char *err, size_t err_size)
{
	const struct confine *c = &vmm->confine;
	struct filter_fds fds = {
		.vcpu = vmm->vm.vcpu_fd,
		.control = vmm->cfg->control_fd,
	};
	int ret;

#ifdef SBX_ASAN
	/* LeakSanitizer's check at exit ptraces this process from a new
	 * thread, which confinement forbids, so a sanitizer build checks for
	 * leaks here, while it still can, and skips the check at exit.
	 * NOTE: leaks made after confinement go unreported in such builds. */
	__lsan_do_leak_check();
#endif
	ret = set_limits(vmm, err, err_size);
	if (ret)
		return ret;
	if (c->root) {
		ret = hand_over_snapshot_dir(vmm, err, err_size);
		if (ret)
			return ret;
	}
	ret = drop_capability_sets(c->root, err, err_size);
	if (ret)
		return ret;
	if (c->root) {
		ret = change_user(c, vmm->cfg->vmm_user, err, err_size);
		if (ret)
			return ret;
	}
	ret = start_kvm_workers(vmm, err, err_size);
	if (ret)
		return ret;
	/* A non-root process may still hold capabilities of its own. */
	ret = clear_capabilities(err, err_size);
	if (ret)
		return ret;
	/* Other processes of the same user may not ptrace this one or open
	 * its /proc files; the uid change already did this for root. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		return fail(err, err_size, "failed to clear the dumpable flag: "
			    "%s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return fail(err, err_size, "failed to set no_new_privs: %s",
			    strerror(errno));
	return filter_install(&fds, err, err_size);
}
