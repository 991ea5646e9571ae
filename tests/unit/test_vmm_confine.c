/* SPDX-License-Identifier: MIT */
/*
 * Confinement of the real sbx-vmm binary on real KVM. The tests check
 * what /proc shows of a confined VMM: user, capabilities, no_new_privs,
 * seccomp, namespaces, rlimits and fds. They check that echo, counter,
 * pause, snapshot and restore still work confined, and that a system call
 * outside the allow-list kills it with SIGSYS. Needs /dev/kvm; the user
 * and namespace checks need root.
 *
 * No guest can make sbx-vmm call a forbidden system call, so the SIGSYS
 * tests use the test-only flag --test-forbidden-syscall NAME, which makes
 * that call right after confinement: a stand-in for a VMM bug that a
 * hostile guest exploits.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbxd/vmm_proto.h"
#include "test_vmm_util.h"
#include "vmm/confine.h"
#include "vmm/snapshot.h"

#define TIMEOUT_S 60
#define MIB (1024ull * 1024)

/* An ASan build of sbx-vmm maps terabytes of shadow memory, which puts
 * RLIMIT_AS far above the guest's RAM. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SBX_ASAN 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define SBX_ASAN 1
#endif
#define VMM_MAX 4

struct packet {
	struct sbx_msg msg;
	uint8_t payload[SBX_MSG_PAYLOAD_MAX + 1];
};

/* One sbx-vmm under a control channel, owned by the running test. */
struct child {
	pid_t pid;
	int sock;
	int err_fd;
};

static struct child children[VMM_MAX];
static int child_count;
static char dir[] = "/tmp/sbx-confine-test-XXXXXX";
static bool dir_made;
static struct vmm_result res;

static void setup(void)
{
	require_kvm();
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	dir_made = true;
}

static void remove_tree(const char *path)
{
	char sub[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(path);

	if (!d) {
		unlink(path);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		remove_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

static void teardown(void)
{
	for (int i = 0; i < child_count; i++) {
		if (children[i].pid > 0) {
			kill(children[i].pid, SIGKILL);
			vmm_wait(children[i].pid, TIMEOUT_S);
		}
		if (children[i].sock >= 0)
			close(children[i].sock);
		if (children[i].err_fd >= 0)
			close(children[i].err_fd);
	}
	child_count = 0;
	vmm_result_free(&res);
	if (dir_made)
		remove_tree(dir);
	dir_made = false;
}

static char *path_in_dir(const char *name)
{
	static char paths[4][PATH_MAX];
	static int next;
	char *p = paths[next++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	return p;
}

static struct child *add_child(void)
{
	cr_assert_lt(child_count, VMM_MAX);
	return &children[child_count++];
}

/* Start sbx-vmm --control-fd 3 with `argv`, confined by default. */
static struct child *start(const char *const *argv)
{
	struct child *c = add_child();

	c->pid = vmm_spawn_control(argv, &c->sock, &c->err_fd);
	return c;
}

static void send_raw(struct child *c, uint32_t type, uint64_t seq,
		     const void *payload, uint32_t len)
{
	uint8_t buf[sizeof(struct sbx_msg) + PATH_MAX];
	struct sbx_msg msg = { .type = type, .len = len, .seq = seq };

	cr_assert_leq(len, PATH_MAX);
	memcpy(buf, &msg, sizeof(msg));
	if (len)
		memcpy(buf + sizeof(msg), payload, len);
	cr_assert_eq(send(c->sock, buf, sizeof(msg) + len, 0),
		     (ssize_t)(sizeof(msg) + len), "send: %s", strerror(errno));
}

static void recv_type(struct child *c, struct packet *p, uint32_t type)
{
	struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
	ssize_t n;

	cr_assert_eq(poll(&pfd, 1, TIMEOUT_S * 1000), 1,
		     "no message type %u from sbx-vmm within %d s", type,
		     TIMEOUT_S);
	n = recv(c->sock, p, sizeof(*p) - 1, 0);
	cr_assert_geq(n, (ssize_t)sizeof(p->msg),
		      "recv returned %zd (%s) waiting for message type %u",
		      n, n < 0 ? strerror(errno) : "end of file", type);
	p->payload[p->msg.len] = '\0';
	if (p->msg.type == SBX_MSG_EXITED && type != SBX_MSG_EXITED)
		cr_assert_fail("sbx-vmm exited while the test waited for "
			       "message type %u: %s", type,
			       ((struct sbx_exit_info *)p->payload)->message);
	cr_assert_eq(p->msg.type, type, "message type %u, expected %u (%s)",
		     p->msg.type, type, (const char *)p->payload);
}

static void expect_ready(struct child *c)
{
	struct packet p;

	recv_type(c, &p, SBX_MSG_READY);
}

static void exec(struct child *c, uint64_t seq, const char *command,
		 const char *output)
{
	struct packet p;

	send_raw(c, SBX_MSG_EXEC, seq, command, (uint32_t)strlen(command));
	recv_type(c, &p, SBX_MSG_EXEC_RESULT);
	cr_assert_eq(p.msg.seq, seq);
	cr_assert_eq(p.msg.arg, 0, "'%s' exit code %ld", command,
		     (long)p.msg.arg);
	cr_assert_str_eq((const char *)p.payload, output, "output of '%s'",
			 command);
}

static void expect_reply(struct child *c, uint32_t type, uint64_t seq)
{
	struct packet p;

	recv_type(c, &p, type);
	cr_assert_eq(p.msg.seq, seq);
	cr_assert_eq(p.msg.arg, 0, "type %u arg %ld", type, (long)p.msg.arg);
}

/* SNAPSHOT to `path`; returns SNAPSHOT_DONE's arg, with its text in `p`. */
static int64_t snapshot(struct child *c, uint64_t seq, const char *path,
			bool running, struct packet *p)
{
	send_raw(c, SBX_MSG_SNAPSHOT, seq, path, (uint32_t)strlen(path) + 1);
	if (running)
		expect_reply(c, SBX_MSG_PAUSED, seq);
	recv_type(c, p, SBX_MSG_SNAPSHOT_DONE);
	cr_assert_eq(p->msg.seq, seq);
	return p->msg.arg;
}

static int wait_child(struct child *c)
{
	int status = vmm_wait(c->pid, TIMEOUT_S);

	c->pid = -1;
	return status;
}

/* ---- /proc -------------------------------------------------------------- */


/* The value of `key` in the status file at `path`, copied to `out`. */
static void status_field_at(const char *path, const char *key, char *out,
			    size_t len)
{
	size_t key_len = strlen(key);
	bool found = false;
	char line[512];
	FILE *f;

	f = fopen(path, "re");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		const char *value = line + key_len + 1;

		if (strncmp(line, key, key_len) || line[key_len] != ':')
			continue;
		value += strspn(value, " \t");
		snprintf(out, len, "%s", value);
		out[strcspn(out, "\n")] = '\0';
		found = true;
		break;
	}
	fclose(f);
	cr_assert(found, "%s has no %s line", path, key);
}

static void expect_field_at(const char *path, const char *key,
			    const char *want)
{
	char value[256];

	status_field_at(path, key, value, sizeof(value));
	cr_assert_str_eq(value, want, "%s %s: '%s', expected '%s'", path, key,
			 value, want);
}

static void expect_field(pid_t pid, const char *key, const char *want)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	expect_field_at(path, key, want);
}

/* Soft and hard value of the /proc/PID/limits line that starts with name. */
static void read_limit(pid_t pid, const char *name, char *soft, char *hard)
{
	char path[64], line[256];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	f = fopen(path, "re");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, strlen(name)))
			continue;
		/* The name column is 26 characters wide. */
		cr_assert_eq(sscanf(line + 26, "%31s %31s", soft, hard), 2,
			     "cannot parse the %s line: %s", name, line);
		found = true;
		break;
	}
	fclose(f);
	cr_assert(found, "%s has no '%s' line", path, name);
}

/* Check that soft and hard limit are equal and finite; return them. */
static uint64_t expect_limit(pid_t pid, const char *name)
{
	char soft[32], hard[32];

	read_limit(pid, name, soft, hard);
	cr_assert_str_eq(soft, hard, "%s: soft %s, hard %s; they must match, "
			 "so that the VMM cannot raise the soft one", name,
			 soft, hard);
	cr_assert_str_neq(soft, "unlimited", "%s is unlimited", name);
	return strtoull(soft, NULL, 10);
}

static void read_link(const char *path, char *out, size_t len)
{
	ssize_t n = readlink(path, out, len - 1);

	cr_assert_gt(n, 0, "readlink %s: %s", path, strerror(errno));
	out[n] = '\0';
}

/* Highest fd number in /proc/PID/fd; stores the link targets in `links`. */
static int list_fds(pid_t pid, char *links, size_t len)
{
	char fd_dir[64], path[PATH_MAX], target[PATH_MAX];
	size_t used = 0;
	struct dirent *de;
	int max = -1;
	DIR *d;

	snprintf(fd_dir, sizeof(fd_dir), "/proc/%d/fd", (int)pid);
	d = opendir(fd_dir);
	cr_assert_not_null(d, "%s: %s", fd_dir, strerror(errno));
	links[0] = '\0';
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", fd_dir, de->d_name);
		read_link(path, target, sizeof(target));
		used += (size_t)snprintf(links + used, len - used, "%s=%s\n",
					 de->d_name, target);
		cr_assert_lt(used, len, "too many fds to list");
		if (atoi(de->d_name) > max)
			max = atoi(de->d_name);
	}
	closedir(d);
	return max;
}

/* Skip unless root; return the uid and gid of the sbx-vmm user. */
static void require_root_and_user(uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		/* A skipped test does not reach .fini, so clean up here. */
		teardown();
		cr_skip_test("skipped: only root can change to another user "
			     "and create namespaces");
	}
	pw = getpwnam(CONFINE_DEFAULT_USER);
	cr_assert_not_null(pw, "user %s is missing; scripts/install-deps.sh "
			   "creates it", CONFINE_DEFAULT_USER);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
}

TestSuite(confine, .init = setup, .fini = teardown, .timeout = 120);

Test(confine, runs_as_vmm_user)
{
	char want_uid[64], want_gid[64], path[PATH_MAX];
	struct dirent *de;
	struct child *c;
	int tasks = 0;
	uid_t uid;
	gid_t gid;
	DIR *d;

	require_root_and_user(&uid, &gid);
	c = start(NULL);
	expect_ready(c);

	snprintf(want_uid, sizeof(want_uid), "%u\t%u\t%u\t%u", uid, uid, uid,
		 uid);
	snprintf(want_gid, sizeof(want_gid), "%u\t%u\t%u\t%u", gid, gid, gid,
		 gid);
	expect_field(c->pid, "Uid", want_uid);
	expect_field(c->pid, "Gid", want_gid);
	expect_field(c->pid, "Groups", "");

	/* KVM's worker thread (kvm-nx-lpage-recovery) belongs to the VMM
	 * process; it must not keep root's ids either. */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)c->pid);
	d = opendir(path);
	cr_assert_not_null(d, "%s: %s", path, strerror(errno));
	while ((de = readdir(d))) {
		char status[PATH_MAX];

		if (de->d_name[0] == '.')
			continue;
		snprintf(status, sizeof(status), "/proc/%d/task/%s/status",
			 (int)c->pid, de->d_name);
		expect_field_at(status, "Uid", want_uid);
		tasks++;
	}
	closedir(d);
	cr_assert_geq(tasks, 1, "no task listed in %s", path);
}

Test(confine, holds_no_privileges)
{
	static const char zero[] = "0000000000000000";
	struct child *c = start(NULL);

	expect_ready(c);
	expect_field(c->pid, "CapInh", zero);
	expect_field(c->pid, "CapPrm", zero);
	expect_field(c->pid, "CapEff", zero);
	expect_field(c->pid, "CapAmb", zero);
	/* Only root may shrink the bounding set. */
	if (geteuid() == 0)
		expect_field(c->pid, "CapBnd", zero);
	expect_field(c->pid, "NoNewPrivs", "1");
	expect_field(c->pid, "Seccomp", "2");
}

Test(confine, own_namespaces)
{
	static const char *const names[] = { "mnt", "net", "ipc" };
	char mine[PATH_MAX], theirs[PATH_MAX], path[PATH_MAX];
	char line[1024];
	bool root_found = false;
	struct child *c;
	uid_t uid;
	gid_t gid;
	FILE *f;

	require_root_and_user(&uid, &gid);
	c = start(NULL);
	expect_ready(c);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", names[i]);
		read_link(path, mine, sizeof(mine));
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)c->pid,
			 names[i]);
		read_link(path, theirs, sizeof(theirs));
		cr_assert_str_neq(mine, theirs, "sbx-vmm shares the test's %s "
				  "namespace (%s)", names[i], mine);
	}

	/* Mount propagation is private: no "shared:N" tag on any mount. */
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)c->pid);
	f = fopen(path, "re");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		cr_assert_null(strstr(line, " shared:"), "%s has a shared "
			       "mount: %s", path, line);
		if (strstr(line, " / / "))
			root_found = true;
	}
	fclose(f);
	cr_assert(root_found, "%s lists no root mount", path);
}

Test(confine, limits_are_set)
{
	const uint64_t mem = 16 * MIB;
	char links[4096];
	struct child *c = start(NULL);
	uint64_t value;
	int max_fd;

	expect_ready(c);
	max_fd = list_fds(c->pid, links, sizeof(links));
	value = expect_limit(c->pid, "Max open files");
	cr_assert_eq(value, (uint64_t)max_fd + 1 + CONFINE_FD_MARGIN,
		     "RLIMIT_NOFILE %llu, highest fd %d; fds:\n%s",
		     (unsigned long long)value, max_fd, links);

	/* Guest RAM, the margin, and a few MiB of program and libraries. */
	value = expect_limit(c->pid, "Max address space");
	cr_assert_geq(value, mem + CONFINE_AS_MARGIN, "RLIMIT_AS %llu",
		      (unsigned long long)value);
#ifndef SBX_ASAN
	cr_assert_leq(value, mem + CONFINE_AS_MARGIN + 32 * MIB,
		      "RLIMIT_AS %llu", (unsigned long long)value);
#endif

	value = expect_limit(c->pid, "Max file size");
	cr_assert_eq(value, mem + SNAP_META_MAX, "RLIMIT_FSIZE %llu",
		     (unsigned long long)value);
	cr_assert_eq(expect_limit(c->pid, "Max core file size"), 0);
	cr_assert_eq(expect_limit(c->pid, "Max processes"), 0);
	cr_assert_eq(expect_limit(c->pid, "Max locked memory"), 0);
	cr_assert_eq(expect_limit(c->pid, "Max msgqueue size"), 0);
}

Test(confine, keeps_only_vm_fds)
{
	char links[4096];
	struct child *c;
	int stray;

	/* An fd left open without close-on-exec, as a careless parent
	 * could; sbx-vmm inherits it and must close it. */
	stray = open("/etc/hostname", O_RDONLY);
	cr_assert_geq(stray, 0, "/etc/hostname: %s", strerror(errno));
	c = start(NULL);
	close(stray);
	expect_ready(c);

	list_fds(c->pid, links, sizeof(links));
	cr_assert_null(strstr(links, "/etc/hostname"),
		       "an inherited fd is still open:\n%s", links);
	cr_assert_null(strstr(links, "=/dev/kvm\n"),
		       "/dev/kvm is still open:\n%s", links);
	cr_assert_not_null(strstr(links, "=anon_inode:kvm-vm\n"),
			   "the VM fd is gone:\n%s", links);
	cr_assert_not_null(strstr(links, "=anon_inode:kvm-vcpu:0\n"),
			   "the vCPU fd is gone:\n%s", links);
}

Test(confine, commands_and_snapshots_work)
{
	const char *path = path_in_dir("counter.snap");
	const char *flags[] = { "--snapshot-dir", dir, NULL };
	const char *restore[] = { "--snapshot-dir", dir, "--restore", path,
				  NULL };
	struct packet p;
	struct child *c;
	int64_t ret;

	c = start(flags);
	expect_ready(c);
	exec(c, 1, "echo confined", "confined");
	exec(c, 2, "counter", "1");
	exec(c, 3, "counter", "2");
	send_raw(c, SBX_MSG_PAUSE, 4, NULL, 0);
	expect_reply(c, SBX_MSG_PAUSED, 4);
	send_raw(c, SBX_MSG_RESUME, 5, NULL, 0);
	expect_reply(c, SBX_MSG_RESUMED, 5);
	ret = snapshot(c, 6, path, true, &p);
	cr_assert_eq(ret, 0, "SNAPSHOT_DONE %ld: %s", (long)ret,
		     (const char *)p.payload);
	kill(c->pid, SIGKILL);
	wait_child(c);

	/* The restored VMM is confined too, and its snapshots read
	 * /proc/self/pagemap through the fd it opened before. */
	c = start(restore);
	expect_ready(c);
	expect_field(c->pid, "Seccomp", "2");
	exec(c, 1, "counter", "3");
	ret = snapshot(c, 2, path, true, &p);
	cr_assert_eq(ret, 0, "SNAPSHOT_DONE %ld: %s", (long)ret,
		     (const char *)p.payload);
	kill(c->pid, SIGKILL);
	wait_child(c);

	c = start(restore);
	expect_ready(c);
	exec(c, 1, "counter", "4");
}

Test(confine, snapshot_dir_given_to_user)
{
	const char *flags[] = { "--snapshot-dir", dir, NULL };
	struct child *c;
	struct stat st;
	uid_t uid;
	gid_t gid;

	require_root_and_user(&uid, &gid);
	c = start(flags);
	expect_ready(c);
	cr_assert_eq(stat(dir, &st), 0, "%s: %s", dir, strerror(errno));
	cr_assert_eq(st.st_uid, uid, "%s owned by uid %u, expected %u", dir,
		     st.st_uid, uid);
	cr_assert_eq(st.st_gid, gid, "%s owned by gid %u, expected %u", dir,
		     st.st_gid, gid);
}

Test(confine, snapshot_outside_dir_denied)
{
	const char *path = path_in_dir("denied.snap");
	struct child *c;
	struct packet p;
	int64_t ret;
	uid_t uid;
	gid_t gid;

	/* Without --snapshot-dir, the root-owned 0700 test directory is
	 * closed to the VMM user. */
	require_root_and_user(&uid, &gid);
	c = start(NULL);
	expect_ready(c);
	ret = snapshot(c, 1, path, true, &p);
	cr_assert_eq(ret, -EACCES, "SNAPSHOT_DONE %ld: %s", (long)ret,
		     (const char *)p.payload);
	cr_assert_not_null(strstr((const char *)p.payload, "--snapshot-dir"),
			   "the message does not name --snapshot-dir: %s",
			   (const char *)p.payload);
	send_raw(c, SBX_MSG_RESUME, 2, NULL, 0);
	expect_reply(c, SBX_MSG_RESUMED, 2);
	exec(c, 3, "echo still running", "still running");
}

Test(confine, snapshot_to_standalone)
{
	const char *path = path_in_dir("standalone.snap");
	const char *make[] = { "--confine", "--snapshot-dir", dir,
			       "--snapshot-to", path, "--", "counter", NULL };
	const char *use[] = { "--confine", "--snapshot-dir", dir, "--restore",
			      path, "--", "counter", NULL };

	vmm_run_standalone(make, TIMEOUT_S, &res);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "1\n");
	vmm_result_free(&res);

	vmm_run_standalone(use, TIMEOUT_S, &res);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "2\n");
}

/* Calls that the allow-list rejects; each must end sbx-vmm with SIGSYS. */
static const char *const forbidden[] = {
	"socket", "execve", "fork", "ptrace", "setuid", "kvm-create-vm",
	"vcpu-set-regs", "write-control", "mmap-exec",
};

Test(confine, forbidden_syscalls_kill)
{
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		const char *argv[] = { "--confine", "--test-forbidden-syscall",
				       forbidden[i], "--", "echo", "alive",
				       NULL };

		vmm_run_standalone(argv, TIMEOUT_S, &res);
		cr_expect_eq(res.status, 128 + SIGSYS,
			     "%s: status %d, expected %d (SIGSYS); stderr: %s",
			     forbidden[i], res.status, 128 + SIGSYS, res.err);
		cr_expect_str_empty(res.out, "%s: the guest ran: %s",
				    forbidden[i], res.out);
		vmm_result_free(&res);
	}
}

Test(confine, allowed_syscall_keeps_running)
{
	const char *argv[] = { "--confine", "--test-forbidden-syscall",
			       "getpid", "--", "echo", "alive", NULL };

	/* getpid is on the list: the same flag must not kill. This shows
	 * that the kills above come from the filter's list. */
	vmm_run_standalone(argv, TIMEOUT_S, &res);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "alive\n");
	cr_assert_not_null(strstr(res.err, "the filter allowed it"),
			   "stderr: %s", res.err);
}

Test(confine, forbidden_syscall_kills_under_sbxd)
{
	const char *argv[] = { "--test-forbidden-syscall", "socket", NULL };
	struct child *c = start(argv);
	char buf[64];

	/* Confined by default under a control fd, so it dies before READY
	 * and the channel reaches end of file. */
	cr_assert_eq(wait_child(c), 128 + SIGSYS);
	cr_assert_eq(recv(c->sock, buf, sizeof(buf), MSG_DONTWAIT), 0,
		     "sbx-vmm sent a message before the filter killed it");
}

Test(confine, no_confine_flag)
{
	const char *argv[] = { "--no-confine", NULL };
	struct child *c = start(argv);

	expect_ready(c);
	expect_field(c->pid, "Seccomp", "0");
	expect_field(c->pid, "NoNewPrivs", "0");
	exec(c, 1, "echo open", "open");
}

Test(confine, conflicting_flags_rejected)
{
	const char *argv[] = { "--confine", "--no-confine", "--", "echo", "hi",
			       NULL };

	vmm_run_standalone(argv, TIMEOUT_S, &res);
	cr_assert_eq(res.status, SBX_VMM_STATUS_USAGE, "status %d; stderr: %s",
		     res.status, res.err);
	cr_assert_not_null(strstr(res.err, "--confine and --no-confine"),
			   "stderr: %s", res.err);
}

Test(confine, missing_user_reported)
{
	const char *argv[] = { "--vmm-user", "sbx-test-no-such-user", NULL };
	struct sbx_exit_info info;
	struct child *c;
	struct packet p;
	uid_t uid;
	gid_t gid;

	require_root_and_user(&uid, &gid);
	c = start(argv);
	recv_type(c, &p, SBX_MSG_EXITED);
	memcpy(&info, p.payload, sizeof(info));
	cr_assert_eq(info.reason, SBX_EXIT_VMM_ERROR, "reason %u: %s",
		     info.reason, info.message);
	cr_assert_not_null(strstr(info.message, "sbx-test-no-such-user"),
			   "%s", info.message);
	cr_assert_not_null(strstr(info.message, "useradd"), "%s",
			   info.message);
	cr_assert_eq(wait_child(c), SBX_VMM_STATUS_ERROR);
}

/*
 * In a forked child: become user `pw` but keep CAP_DAC_OVERRIDE as an
 * ambient capability, so that sbx-vmm, started unprivileged, can still
 * open /dev/kvm (mode 0600 here). sbx-vmm must drop that capability
 * itself. Exits 126 on failure.
 */
static void become_user_with_kvm(const struct passwd *pw)
{
	struct __user_cap_header_struct header = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	uint32_t bit = 1u << CAP_DAC_OVERRIDE;

	memset(data, 0, sizeof(data));
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) || setgroups(0, NULL) ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid))
		_exit(126);
	data[0].effective = data[0].permitted = data[0].inheritable = bit;
	if (syscall(SYS_capset, &header, data) ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_OVERRIDE, 0,
		  0))
		_exit(126);
}

/*
 * Start sbx-vmm --control-fd 3 with `argv` through clone3 with
 * `clone_flags`, as user `pw` (with become_user_with_kvm()) unless it is
 * NULL.
 */
static struct child *start_with(const char *const *argv,
				 uint64_t clone_flags,
				 const struct passwd *pw)
{
	const char *full[16] = { "sbx-vmm", "--control-fd", "3" };
	struct clone_args args = { .flags = clone_flags,
				   .exit_signal = SIGCHLD };
	struct child *c = add_child();
	int sv[2], err_pipe[2], n = 3;
	pid_t pid;

	for (; argv && *argv; argv++) {
		cr_assert_lt(n, 15, "too many flags");
		full[n++] = *argv;
	}
	full[n] = NULL;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv),
		     0, "socketpair: %s", strerror(errno));
	cr_assert_eq(pipe2(err_pipe, O_CLOEXEC), 0, "pipe2: %s",
		     strerror(errno));
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	cr_assert_geq(pid, 0, "clone3: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (sv[1] == 3)
			fcntl(3, F_SETFD, 0);
		else
			dup2(sv[1], 3);
		dup2(err_pipe[1], 2);
		if (pw)
			become_user_with_kvm(pw);
		execv(VMM_PATH, (char *const *)full);
		_exit(127);
	}
	close(sv[1]);
	close(err_pipe[1]);
	c->pid = pid;
	c->sock = sv[0];
	c->err_fd = err_pipe[0];
	return c;
}

Test(confine, runs_as_pid_1_of_own_namespace)
{
	char mine[PATH_MAX], theirs[PATH_MAX], path[64], nspid[64];
	struct child *c;
	struct packet p;
	uid_t uid;
	gid_t gid;

	require_root_and_user(&uid, &gid);
	c = start_with(NULL, CLONE_NEWPID, NULL);
	expect_ready(c);

	read_link("/proc/self/ns/pid", mine, sizeof(mine));
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)c->pid);
	read_link(path, theirs, sizeof(theirs));
	cr_assert_str_neq(mine, theirs, "sbx-vmm shares the test's PID "
			  "namespace (%s)", mine);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)c->pid);
	status_field_at(path, "NSpid", nspid, sizeof(nspid));
	cr_assert_not_null(strstr(nspid, "\t1"), "NSpid '%s': not pid 1 in "
			   "its namespace", nspid);
	expect_field(c->pid, "Seccomp", "2");
	exec(c, 1, "echo pid one", "pid one");

	/* As pid 1 it gets only the signals it handles, and SIGTERM is one:
	 * it sends the guest a stop request. */
	cr_assert_eq(kill(c->pid, SIGTERM), 0, "kill: %s", strerror(errno));
	recv_type(c, &p, SBX_MSG_EXITED);
	cr_assert_eq(((struct sbx_exit_info *)p.payload)->reason,
		     SBX_EXIT_STOPPED);
	cr_assert_eq(wait_child(c), 0);
}

/*
 * Run sbx-vmm standalone with `argv` as user `pw`, stdout and stderr both
 * into `out`. Returns the exit status, or 128 + signal.
 */
static int run_as_user(const struct passwd *pw, const char *const *argv,
		       char **out)
{
	const char *full[16] = { "sbx-vmm" };
	int pipefd[2], n = 1, wstatus;
	pid_t pid;

	for (; *argv; argv++)
		full[n++] = *argv;
	full[n] = NULL;
	cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0, "pipe2: %s",
		     strerror(errno));
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		become_user_with_kvm(pw);
		execv(VMM_PATH, (char *const *)full);
		_exit(127);
	}
	close(pipefd[1]);
	*out = read_all(pipefd[0]);
	close(pipefd[0]);
	cr_assert_eq(waitpid(pid, &wstatus, 0), pid);
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) :
				    128 + WTERMSIG(wstatus);
}

static const struct passwd *require_nobody(void)
{
	const struct passwd *pw;

	if (geteuid() != 0) {
		teardown();
		cr_skip_test("skipped: the test runs sbx-vmm as user nobody "
			     "and needs root to change to it");
	}
	pw = getpwnam("nobody");
	cr_assert_not_null(pw, "user nobody is missing");
	return pw;
}

Test(confine, unprivileged_vmm_still_filtered)
{
	const char *echo[] = { "--confine", "--", "echo", "hi", NULL };
	const char *bad[] = { "--confine", "--test-forbidden-syscall",
			      "socket", "--", "echo", "hi", NULL };
	const struct passwd *pw = require_nobody();
	char *out;
	int status;

	status = run_as_user(pw, echo, &out);
	cr_assert_eq(status, 0, "status %d; output: %s", status, out);
	cr_assert_not_null(strstr(out, "hi\n"), "output: %s", out);
	cr_assert_not_null(strstr(out, "not running as root"), "output: %s",
			   out);
	free(out);

	status = run_as_user(pw, bad, &out);
	cr_assert_eq(status, 128 + SIGSYS, "status %d; output: %s", status,
		     out);
	free(out);
}

Test(confine, unprivileged_vmm_drops_capability)
{
	static const char zero[] = "0000000000000000";
	const struct passwd *pw = require_nobody();
	char want[64];
	struct child *c;

	/* It starts with CAP_DAC_OVERRIDE (ambient) and must end with no
	 * capability, though it cannot change its user. */
	c = start_with(NULL, 0, pw);
	expect_ready(c);
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", pw->pw_uid,
		 pw->pw_uid, pw->pw_uid, pw->pw_uid);
	expect_field(c->pid, "Uid", want);
	expect_field(c->pid, "CapInh", zero);
	expect_field(c->pid, "CapPrm", zero);
	expect_field(c->pid, "CapEff", zero);
	expect_field(c->pid, "CapAmb", zero);
	expect_field(c->pid, "NoNewPrivs", "1");
	expect_field(c->pid, "Seccomp", "2");
	exec(c, 1, "echo unprivileged", "unprivileged");
}
