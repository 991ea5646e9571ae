/* SPDX-License-Identifier: MIT */
/* Helpers that run the real sbx-vmm binary for the sbx-vmm tests. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_vmm_util.h"

#define ARGV_MAX 32

void require_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		cr_skip_test("skipped: /dev/kvm not available");
	close(fd);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int decode_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	return 128 + WTERMSIG(wstatus);
}

/* Build "sbx-vmm" + prefix + argv for execv. */
static void build_argv(const char **out, const char *const *prefix,
		       const char *const *argv)
{
	int n = 0;

	out[n++] = "sbx-vmm";
	for (; prefix && *prefix; prefix++)
		out[n++] = *prefix;
	for (; argv && *argv && n < ARGV_MAX - 1; argv++)
		out[n++] = *argv;
	out[n] = NULL;
}

/* In the child: die with the test process, so no VMM outlives a test. */
static void child_exec(const char **argv)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	execv(VMM_PATH, (char *const *)argv);
	_exit(127);
}

struct growbuf {
	char *data;
	size_t len, cap;
};

static void growbuf_read(struct growbuf *b, int fd, bool *eof)
{
	ssize_t n;

	if (b->cap - b->len < 65536) {
		b->cap = b->cap * 2 + 65536;
		b->data = realloc(b->data, b->cap + 1);
		cr_assert_not_null(b->data, "out of memory reading output");
	}
	n = read(fd, b->data + b->len, b->cap - b->len);
	if (n > 0)
		b->len += (size_t)n;
	else if (n == 0 || errno != EINTR)
		*eof = true;
}

void vmm_run_standalone(const char *const *argv, int timeout_s,
			struct vmm_result *res)
{
	const char *full[ARGV_MAX];
	struct growbuf out = { 0 }, err = { 0 };
	int out_pipe[2], err_pipe[2], wstatus;
	bool out_eof = false, err_eof = false;
	double deadline = now_s() + timeout_s;
	pid_t pid;

	build_argv(full, NULL, argv);
	cr_assert_eq(pipe2(out_pipe, O_CLOEXEC), 0, "pipe2: %s",
		     strerror(errno));
	cr_assert_eq(pipe2(err_pipe, O_CLOEXEC), 0, "pipe2: %s",
		     strerror(errno));
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(out_pipe[1], 1);
		dup2(err_pipe[1], 2);
		child_exec(full);
	}
	close(out_pipe[1]);
	close(err_pipe[1]);

	while (!out_eof || !err_eof) {
		struct pollfd pfd[2] = {
			{ .fd = out_eof ? -1 : out_pipe[0], .events = POLLIN },
			{ .fd = err_eof ? -1 : err_pipe[0], .events = POLLIN },
		};
		double left = deadline - now_s();

		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(pfd, 2, (int)(left * 1000) + 1) <= 0)
			continue;
		if (pfd[0].revents)
			growbuf_read(&out, out_pipe[0], &out_eof);
		if (pfd[1].revents)
			growbuf_read(&err, err_pipe[0], &err_eof);
	}
	close(out_pipe[0]);
	close(err_pipe[0]);
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	if (!out.data)
		out.data = calloc(1, 1);
	if (!err.data)
		err.data = calloc(1, 1);
	out.data[out.len] = '\0';
	err.data[err.len] = '\0';
	res->status = decode_status(wstatus);
	res->out = out.data;
	res->out_len = out.len;
	res->err = err.data;
}

void vmm_result_free(struct vmm_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

pid_t vmm_spawn_control(const char *const *argv, int *sock, int *err_fd)
{
	static const char *const prefix[] = { "--control-fd", "3", NULL };
	const char *full[ARGV_MAX];
	int sv[2], err_pipe[2];
	pid_t pid;

	build_argv(full, prefix, argv);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv),
		     0, "socketpair: %s", strerror(errno));
	cr_assert_eq(pipe2(err_pipe, O_CLOEXEC), 0, "pipe2: %s",
		     strerror(errno));
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* dup2 clears FD_CLOEXEC on the copy, so fd 3 survives exec.
		 * When the socket already is fd 3, clear the flag by hand. */
		if (sv[1] == 3)
			fcntl(3, F_SETFD, 0);
		else
			dup2(sv[1], 3);
		dup2(err_pipe[1], 2);
		child_exec(full);
	}
	close(sv[1]);
	close(err_pipe[1]);
	*sock = sv[0];
	*err_fd = err_pipe[0];
	return pid;
}

int vmm_wait(pid_t pid, int timeout_s)
{
	double deadline = now_s() + timeout_s;
	int wstatus;

	for (;;) {
		pid_t r = waitpid(pid, &wstatus, WNOHANG);

		if (r == pid)
			return decode_status(wstatus);
		if (r < 0 && errno != EINTR)
			cr_assert_fail("waitpid %d: %s", pid, strerror(errno));
		if (now_s() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &wstatus, 0);
			cr_assert_fail("sbx-vmm pid %d still running after %d s; killed it",
				       pid, timeout_s);
		}
		usleep(10000);
	}
}

char *read_all(int fd)
{
	struct growbuf b = { 0 };
	bool eof = false;

	while (!eof)
		growbuf_read(&b, fd, &eof);
	b.data[b.len] = '\0';
	return b.data;
}
