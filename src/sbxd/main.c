// SPDX-License-Identifier: MIT
/* sbxd startup, the closers run at shutdown and the exit status. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sbxd/lock.h"
#include "sbxd/log.h"
#include "sbxd/sbxd.h"

#define EXIT_CLEAN 0
#define EXIT_UNCLEAN 1
#define EXIT_USAGE 2

void sbxd_add_closer(struct sbxd *d, const char *name, closer_fn fn)
{
	if (d->nclosers >= SBXD_CLOSER_MAX) {
		log_err("BUG: closer %s dropped: more than %d closers", name,
			SBXD_CLOSER_MAX);
		return;
	}
	d->closers[d->nclosers].name = name;
	d->closers[d->nclosers].fn = fn;
	d->nclosers++;
}

static int close_listeners(struct sbxd *d)
{
	int ret = 0;

	listeners_close(d);
	/* Remove extra unix sockets. The main one has its own closer. */
	for (int i = 0; i < d->conns.nlisteners; i++) {
		const struct listen_addr *addr = &d->conns.listeners[i].addr;

		if (addr->family != AF_UNIX ||
		    strcmp(addr->addr.un.sun_path, d->sock_path) == 0)
			continue;
		if (unlink(addr->addr.un.sun_path) < 0 && errno != ENOENT) {
			ret = -errno;
			log_err("failed to remove socket %s: %s",
				addr->addr.un.sun_path, strerror(-ret));
		}
	}
	return ret;
}

static int close_socket_file(struct sbxd *d)
{
	if (unlink(d->sock_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int close_gate(struct sbxd *d)
{
	return gate_close(&d->gate);
}

static int close_notify(struct sbxd *d)
{
	notify_exit(&d->notify);
	return 0;
}

static int close_leftovers(struct sbxd *d)
{
	return sandbox_remove_leftovers(d->cfg.state_dir);
}

/* Run the closers in reverse order of opening and return how many failed. */
static int run_closers(struct sbxd *d)
{
	int failed = 0;

	for (int i = d->nclosers - 1; i >= 0; i--) {
		int ret = d->closers[i].fn(d);

		if (ret) {
			log_err("closer %s failed: %s", d->closers[i].name,
				strerror(-ret));
			failed++;
		} else {
			log_debug("closer %s done", d->closers[i].name);
		}
	}
	d->nclosers = 0;
	return failed;
}

/* Each VMM costs sbxd two descriptors: its pidfd and its control socket. */
static void raise_fd_limit(struct sbxd *d)
{
	struct rlimit rl;
	rlim_t need;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	need = 64 + d->cfg.max_connections + 2 * (rlim_t)d->cfg.max_sandboxes;
	if (rl.rlim_cur < need)
		log_warn("open file limit %llu is below the %llu that "
			 "--max-sandboxes %u and --max-connections %u need; "
			 "raise it with ulimit -n",
			 (unsigned long long)rl.rlim_cur,
			 (unsigned long long)need, d->cfg.max_sandboxes,
			 d->cfg.max_connections);
}

static int take_lock(struct sbxd *d)
{
	struct lock_info info;
	int ret;

	ret = lock_acquire(d->cfg.state_dir, &info);
	if (ret == -EWOULDBLOCK) {
		fprintf(stderr, "sbxd: state dir %s is in use by pid %d\n",
			d->cfg.state_dir, (int)info.old_pid);
		return ret;
	}
	if (ret) {
		fprintf(stderr, "sbxd: failed to lock %s/sbxd.lock: %s\n",
			d->cfg.state_dir, strerror(-ret));
		return ret;
	}
	d->lock_fd = info.fd;
	if (info.unclean) {
		log_warn("unclean shutdown of the last sbxd (pid %d) found in "
			 "%s; taking over and clearing its socket and sandbox "
			 "directories", (int)info.old_pid, d->cfg.state_dir);
		unlink(d->sock_path);
		ret = sandbox_remove_leftovers(d->cfg.state_dir);
		if (ret)
			log_warn("failed to clear %s/sandboxes: %s",
				 d->cfg.state_dir, strerror(-ret));
	}
	return 0;
}

static int open_gate(struct sbxd *d)
{
	struct gate_config config = {
		.backend = d->cfg.gate,
		.instance = d->cfg.instance,
		.bpffs = "/sys/fs/bpf",
	};
	int ret = gate_open(&d->gate, &config);

	if (ret) {
		log_err("failed to open the %s gate for instance %s: %s%s%s",
			gate_backend_name(d->cfg.gate), d->cfg.instance,
			strerror(-ret), d->gate.fallback_reason[0] ? ": " : "",
			d->gate.fallback_reason);
		return ret;
	}
	if (d->gate.fallback_reason[0])
		log_warn("gate: using memfd, not BPF: %s",
			 d->gate.fallback_reason);
	if (d->gate.pin_note[0])
		log_info("gate: %s", d->gate.pin_note);
	return 0;
}

static int open_listeners(struct sbxd *d)
{
	struct listen_addr addr;
	char text[PATH_MAX + 8];
	char err[256];
	int ret;

	snprintf(text, sizeof(text), "unix:%s", d->sock_path);
	ret = config_parse_listen(text, &addr, err, sizeof(err));
	if (ret) {
		log_err("%s; pass a shorter --state-dir", err);
		return ret;
	}
	/* We hold the lock, so a socket file here is a stale one. */
	unlink(d->sock_path);
	ret = listener_open(d, &addr);
	if (ret)
		return ret;
	sbxd_add_closer(d, "socket file", close_socket_file);

	for (int i = 0; i < d->cfg.nlisten; i++) {
		if (d->cfg.listen[i].family == AF_UNIX &&
		    strcmp(d->cfg.listen[i].addr.un.sun_path,
			   d->sock_path) == 0)
			continue;
		ret = listener_open(d, &d->cfg.listen[i]);
		if (ret)
			break;
	}
	sbxd_add_closer(d, "listeners", close_listeners);
	return ret;
}

static void log_serving(struct sbxd *d)
{
	char addrs[1024] = "";
	size_t used = 0;

	for (int i = 0; i < d->conns.nlisteners; i++) {
		int n = snprintf(addrs + used, sizeof(addrs) - used, "%s%s",
				 i ? " " : "", d->conns.listeners[i].addr.text);

		if (n < 0 || (size_t)n >= sizeof(addrs) - used)
			break;
		used += (size_t)n;
	}
	log_info("serving on %s gate=%s max_sandboxes=%u pid=%d version=%s",
		 addrs, gate_backend_name(d->gate.backend),
		 d->cfg.max_sandboxes, (int)getpid(), SBXD_VERSION);
}

/* Open everything in order, registering a closer for each step. */
static int start(struct sbxd *d)
{
	char path[PATH_MAX + 16];
	int ret;

	ret = loop_init(&d->loop, 256);
	if (ret) {
		log_err("failed to set up io_uring: %s", strerror(-ret));
		return ret;
	}
	ret = drain_init(d);
	if (ret) {
		log_err("failed to set up signal handling: %s",
			strerror(-ret));
		return ret;
	}

	/*
	 * Spawned VMMs poll this to check that sbxd still lives, because
	 * in their own PID namespace their parent pid reads as 0.
	 */
	d->self_pidfd = pidfd_open(getpid(), 0);
	if (d->self_pidfd < 0)
		log_warn("failed to open a pidfd of sbxd: %s; VMMs share "
			 "sbxd's PID namespace", strerror(errno));
	else
		fcntl(d->self_pidfd, F_SETFD, FD_CLOEXEC);

	/* drained/ and drained.json outlive sbxd: no closer removes them. */
	snprintf(path, sizeof(path), "%s/sandboxes", d->cfg.state_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		log_err("failed to create %s: %s", path, strerror(-ret));
		return ret;
	}
	sbxd_add_closer(d, "state dir leftovers", close_leftovers);

	ret = open_gate(d);
	if (ret)
		return ret;
	sbxd_add_closer(d, "gate", close_gate);

	ret = open_listeners(d);
	if (ret)
		return ret;

	listeners_start(d);
	drain_start_signals(d);
	io_uring_submit(&d->loop.ring);
	log_serving(d);
	notify_init(&d->notify, d->cfg.drain_poll_ms, NULL);
	sbxd_add_closer(d, "notify socket", close_notify);
	notify_ready(&d->notify, gate_backend_name(d->gate.backend),
		     d->cfg.max_sandboxes);
	if (d->cfg.restore_drained)
		drained_restore(d, NULL);
	else
		drained_log_pending(d);
	return 0;
}

static int parse_config(struct sbxd *d, int argc, char **argv)
{
	struct sockaddr_un sun;
	char err[512];
	int ret;

	config_init(&d->cfg);
	ret = config_parse(&d->cfg, argc, argv, err, sizeof(err));
	if (ret == CONFIG_EXIT)
		return 1;
	if (ret == CONFIG_RUN)
		ret = config_resolve(&d->cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "sbxd: %s\n", err);
		return ret;
	}
	/* The socket path must fit sockaddr_un.sun_path with its NUL. */
	if ((size_t)snprintf(d->sock_path, sizeof(d->sock_path), "%s/sbxd.sock",
			     d->cfg.state_dir) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "sbxd: state dir %s is too long: the socket "
			"path %s/sbxd.sock exceeds %zu bytes; pass a shorter "
			"--state-dir\n", d->cfg.state_dir, d->cfg.state_dir,
			sizeof(sun.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	log_max_level = d->cfg.log_level;
	return 0;
}

int main(int argc, char **argv)
{
	static struct sbxd daemon;
	struct sbxd *d = &daemon;
	const char *reason;
	bool clean;
	int failed;
	int ret;

	d->lock_fd = -1;
	d->signal_fd = -1;
	d->self_pidfd = -1;
	sandbox_table_init(&d->sandboxes);
	drained_init(d);
	conn_table_init(&d->conns);

	ret = parse_config(d, argc, argv);
	if (ret)
		return ret > 0 ? EXIT_CLEAN : EXIT_USAGE;
	raise_fd_limit(d);

	ret = lock_make_state_dir(d->cfg.state_dir);
	if (ret) {
		fprintf(stderr, "sbxd: failed to create state dir %s: %s; pass "
			"--state-dir DIR\n", d->cfg.state_dir, strerror(-ret));
		return EXIT_USAGE;
	}
	if (take_lock(d))
		return EXIT_USAGE;

	ret = start(d);
	if (ret) {
		/* A BPF instance owned by another live sbxd is a configuration
		 * conflict, like a held lock: the user picks another name. */
		int status = ret == -EBUSY ? EXIT_USAGE : EXIT_UNCLEAN;

		failed = run_closers(d);
		lock_release(d->cfg.state_dir, d->lock_fd, failed == 0);
		log_info("exiting status=%d reason=\"startup failed: %s\"",
			 status, strerror(-ret));
		return status;
	}

	ret = loop_run(d, &d->stop);
	if (ret)
		log_err("the event loop failed: %s; shutting down without a "
			"drain", strerror(-ret));

	failed = run_closers(d);
	clean = ret == 0 && failed == 0 && d->sandboxes.unreaped == 0 &&
		!d->drain.timed_out && d->drained.unsaved == 0 &&
		!d->drained.write_failed;
	if (ret)
		reason = "event loop failed";
	else if (d->drain.timed_out)
		reason = "force timeout expired";
	else if (d->sandboxes.unreaped)
		reason = "sandboxes still running";
	else if (failed)
		reason = "a closer failed";
	else if (d->drained.unsaved || d->drained.write_failed)
		reason = "the checkpoint drain did not save every sandbox";
	else
		reason = "drained";
	drained_free(d);

	ret = lock_release(d->cfg.state_dir, d->lock_fd, clean);
	if (ret) {
		log_err("failed to remove %s/sbxd.lock: %s", d->cfg.state_dir,
			strerror(-ret));
		clean = false;
		reason = "lock file not removed";
	}
	d->exit_status = clean ? EXIT_CLEAN : EXIT_UNCLEAN;
	log_info("exiting status=%d reason=\"%s\" unreaped=%u "
		 "closers_failed=%d", d->exit_status, reason,
		 d->sandboxes.unreaped, failed);
	return d->exit_status;
}
