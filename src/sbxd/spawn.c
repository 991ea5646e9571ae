// SPDX-License-Identifier: MIT
/* Fork and exec of sbx-vmm with the control socket on fd 3. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <linux/sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbxd/spawn.h"
#include "sbxd/vmm_proto.h"

#define SPAWN_ARGV_MAX 24

/*
 * True while sbxd lives. In a new PID namespace getppid() returns 0, so
 * the child polls sbxd's pidfd, which turns readable once sbxd exited.
 */
static bool parent_alive(int parent_pidfd, pid_t parent)
{
	struct pollfd pfd = { .fd = parent_pidfd, .events = POLLIN };

	if (parent_pidfd < 0)
		return getppid() == parent;
	return poll(&pfd, 1, 0) == 0;
}

/* Runs in the forked child: only async-signal-safe calls, then exec. */
static void __attribute__((noreturn))
child_exec(const char *vmm, char *const argv[], int ctl_fd, int console_fd,
	   int null_fd, int parent_pidfd, pid_t parent)
{
	static const char exec_failed[] = "sbxd: failed to exec sbx-vmm\n";
	sigset_t empty;

	/*
	 * Die with sbxd. If sbxd died before the prctl, the child must not
	 * run on.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
	    !parent_alive(parent_pidfd, parent))
		_exit(SBX_VMM_STATUS_ERROR);

	/*
	 * Leave sbxd's process group, so that Ctrl-C or a kill of the group
	 * reaches only sbxd and starts its drain instead of stopping every
	 * guest at once. SIGINT and SIGTERM are still blocked here; setting
	 * them to SIG_IGN drops one that reached the old group meanwhile.
	 */
	if (setpgid(0, 0) < 0)
		_exit(SBX_VMM_STATUS_ERROR);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);

	if (dup2(null_fd, STDIN_FILENO) < 0 ||
	    dup2(console_fd, STDOUT_FILENO) < 0 ||
	    dup2(console_fd, STDERR_FILENO) < 0)
		_exit(SBX_VMM_STATUS_ERROR);
	if (ctl_fd == SBX_CTL_FD) {
		if (fcntl(ctl_fd, F_SETFD, 0) < 0)
			_exit(SBX_VMM_STATUS_ERROR);
	} else if (dup2(ctl_fd, SBX_CTL_FD) < 0) {
		_exit(SBX_VMM_STATUS_ERROR);
	}

	/* Descriptors sbxd inherited without close-on-exec stop here. */
	close_range(SBX_CTL_FD + 1, ~0U, 0);

	sigemptyset(&empty);
	sigprocmask(SIG_SETMASK, &empty, NULL);
	signal(SIGPIPE, SIG_DFL);

	execv(vmm, argv);
	if (write(STDERR_FILENO, exec_failed, sizeof(exec_failed) - 1) < 0) {
		/* Exit status 127 reports the failure as well. */
	}
	_exit(127);
}

int spawn_vmm(const struct spawn_request *request, struct spawn_result *out)
{
	char memory[16];
	char delay[16];
	char *argv[SPAWN_ARGV_MAX];
	int argc = 0;
	int pair[2];
	int console_fd;
	int null_fd;
	pid_t parent = getpid();
	struct clone_args args;
	pid_t pid;
	int pidfd = -1;
	int ret;

	snprintf(memory, sizeof(memory), "%u", request->memory_mib);
	snprintf(delay, sizeof(delay), "%u", request->boot_delay_ms);
	argv[argc++] = (char *)"sbx-vmm";
	argv[argc++] = (char *)"--control-fd";
	argv[argc++] = (char *)"3";
	argv[argc++] = (char *)"--id";
	argv[argc++] = (char *)request->id;
	if (request->snapshot_dir) {
		argv[argc++] = (char *)"--snapshot-dir";
		argv[argc++] = (char *)request->snapshot_dir;
	}
	if (request->restore) {
		argv[argc++] = (char *)"--restore";
		argv[argc++] = (char *)request->restore;
		if (request->verify_ram)
			argv[argc++] = (char *)"--verify-ram";
	} else {
		argv[argc++] = (char *)"--guest";
		argv[argc++] = (char *)request->guest;
		argv[argc++] = (char *)"--memory-mib";
		argv[argc++] = memory;
		if (request->args[0]) {
			argv[argc++] = (char *)"--args";
			argv[argc++] = (char *)request->args;
		}
		if (request->boot_delay_ms) {
			argv[argc++] = (char *)"--boot-delay-ms";
			argv[argc++] = delay;
		}
		if (request->ignore_stop)
			argv[argc++] = (char *)"--ignore-stop";
	}
	argv[argc] = NULL;

	console_fd = open(request->console_path,
			  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (console_fd < 0)
		return -errno;
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0) {
		ret = -errno;
		goto err_console;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		ret = -errno;
		goto err_null;
	}

	if (fcntl(pair[0], F_SETFL, O_NONBLOCK) < 0) {
		ret = -errno;
		goto err_pair;
	}

	/*
	 * clone3 with CLONE_PIDFD returns the pidfd with the fork, so no
	 * step can fail after the child exists. The child only makes
	 * async-signal-safe calls before exec, so skipping glibc's fork
	 * handlers is safe. As root, the VMM gets its own PID namespace, in
	 * which it cannot see or signal any other process. sbxd still
	 * signals it through the pidfd.
	 */
	memset(&args, 0, sizeof(args));
	args.flags = CLONE_PIDFD;
	if (geteuid() == 0 && request->parent_pidfd >= 0)
		args.flags |= CLONE_NEWPID;
	args.pidfd = (uint64_t)(uintptr_t)&pidfd;
	args.exit_signal = SIGCHLD;
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0) {
		ret = -errno;
		goto err_pair;
	}
	if (pid == 0)
		child_exec(request->vmm, argv, pair[1], console_fd, null_fd,
			   request->parent_pidfd, parent);

	close(pair[1]);
	close(null_fd);
	close(console_fd);
	out->pid = pid;
	out->pidfd = pidfd;
	out->ctl_fd = pair[0];
	return 0;

err_pair:
	close(pair[0]);
	close(pair[1]);
err_null:
	close(null_fd);
err_console:
	close(console_fd);
	return ret;
}
