/* SPDX-License-Identifier: MIT */
/* The seccomp allow-list of sbx-vmm's run loop, built with libseccomp. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmm/filter.h"

/*
 * System calls allowed with any arguments. The list comes from strace of
 * the sbx-vmm tests (every guest end, the control channel, pause, resume,
 * snapshot and restore) from the first KVM_RUN on, plus what glibc's
 * malloc, free, exit and abort may call there.
 */
static const int plain_syscalls[] = {
	/* waiting for control messages, signals and the guest clock */
	SCMP_SYS(ppoll),
	SCMP_SYS(clock_gettime),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(restart_syscall),
	/* snapshot files: a temporary file, written, synced and renamed */
	SCMP_SYS(openat),
	SCMP_SYS(close),
	SCMP_SYS(pwrite64),
	SCMP_SYS(pread64),
	SCMP_SYS(lseek),
	SCMP_SYS(ftruncate),
	SCMP_SYS(fsync),
	SCMP_SYS(renameat),
	SCMP_SYS(rename),
	SCMP_SYS(unlinkat),
	SCMP_SYS(unlink),
	SCMP_SYS(getpid),
	/* malloc and free; mmap and mprotect have their own rules */
	SCMP_SYS(brk),
	SCMP_SYS(munmap),
	SCMP_SYS(mremap),
	SCMP_SYS(madvise),
	SCMP_SYS(exit_group),
	SCMP_SYS(exit),
};

/*
 * KVM ioctls allowed on the vCPU fd: running it, and reading the state
 * that a snapshot saves. Every KVM_SET_* call happens before the filter,
 * at boot or restore, and KVM_CREATE_* is never needed again.
 */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN,
	KVM_GET_REGS,
	KVM_GET_SREGS,
	KVM_GET_XCRS,
	KVM_GET_VCPU_EVENTS,
	KVM_GET_DEBUGREGS,
	KVM_GET_XSAVE,
	KVM_GET_MSRS,
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Argument `arg` equals `value`. libseccomp's SCMP_A* macros leave
 * datum_b out, which clang's -Wmissing-field-initializers rejects. */
static struct scmp_arg_cmp arg_eq(unsigned int arg, scmp_datum_t value)
{
	return (struct scmp_arg_cmp){ .arg = arg, .op = SCMP_CMP_EQ,
				      .datum_a = value, .datum_b = 0 };
}

/* Argument `arg` has none of the bits in `mask` set. */
static struct scmp_arg_cmp arg_clear(unsigned int arg, scmp_datum_t mask)
{
	return (struct scmp_arg_cmp){ .arg = arg, .op = SCMP_CMP_MASKED_EQ,
				      .datum_a = mask, .datum_b = 0 };
}

static int add_rules(scmp_filter_ctx ctx, const struct filter_fds *fds,
		     const char **step)
{
	int ret;

	*step = "add the plain system calls";
	for (size_t i = 0; i < ARRAY_SIZE(plain_syscalls); i++) {
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, plain_syscalls[i],
				       0);
		if (ret)
			return ret;
	}

	*step = "add the KVM ioctls";
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_ioctls); i++) {
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
				       arg_eq(0, (scmp_datum_t)fds->vcpu),
				       arg_eq(1, vcpu_ioctls[i]));
		if (ret)
			return ret;
	}

	/* Console output and log lines: stdout and stderr only. */
	*step = "add write";
	for (int fd = 1; fd <= 2; fd++) {
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(write), 1,
				       arg_eq(0, (scmp_datum_t)fd));
		if (ret)
			return ret;
	}

	/* The control channel: send() is sendto() with no address. */
	*step = "add the control channel calls";
	if (fds->control >= 0) {
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(recvmsg), 1,
				       arg_eq(0, (scmp_datum_t)fds->control));
		if (ret)
			return ret;
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sendto), 2,
				       arg_eq(0, (scmp_datum_t)fds->control),
				       arg_eq(4, 0));
		if (ret)
			return ret;
	}

	/* Memory for malloc, but never executable: no new code. */
	*step = "add mmap and mprotect";
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
			       arg_clear(2, PROT_EXEC));
	if (ret)
		return ret;
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
			       arg_clear(2, PROT_EXEC));
	if (ret)
		return ret;

	/* abort() signals its own process, so a failed assertion still ends
	 * with SIGABRT. */
	*step = "add tgkill";
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				arg_eq(0, (scmp_datum_t)getpid()));
}

int filter_install(const struct filter_fds *fds, char *err, size_t err_size)
{
	const char *step = "create the filter (seccomp_init)";
	scmp_filter_ctx ctx;
	int ret;

	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx) {
		snprintf(err, err_size, "failed to %s: out of memory", step);
		return -ENOMEM;
	}
	ret = add_rules(ctx, fds, &step);
	if (!ret) {
		step = "load the filter (seccomp_load)";
		ret = seccomp_load(ctx);
	}
	if (ret)
		snprintf(err, err_size, "failed to %s: %s", step,
			 strerror(-ret));
	seccomp_release(ctx);
	return ret;
}

/* getpid is allowed: a test of it checks that the VMM lives on. */
const char *const filter_test_names[] = {
	"getpid", "socket", "execve", "fork", "ptrace", "setuid",
	"kvm-create-vm", "vcpu-set-regs", "write-control", "mmap-exec", NULL,
};

/* Each case returns what the call returned, or -errno. */
static long call_by_name(const char *name, int kvm_fd, int vcpu_fd,
			 int control_fd, bool *known)
{
	static char *const argv[] = { (char *)"true", NULL };
	struct kvm_regs regs = { 0 };
	void *addr;
	long ret;

	*known = true;
	if (!strcmp(name, "getpid")) {
		ret = getpid();
	} else if (!strcmp(name, "socket")) {
		ret = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	} else if (!strcmp(name, "execve")) {
		ret = execve("/bin/true", argv, argv + 1);
	} else if (!strcmp(name, "fork")) {
		ret = fork();
		if (ret == 0)
			_exit(0);
	} else if (!strcmp(name, "ptrace")) {
		ret = ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	} else if (!strcmp(name, "setuid")) {
		ret = syscall(SYS_setuid, 0);
	} else if (!strcmp(name, "kvm-create-vm")) {
		ret = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	} else if (!strcmp(name, "vcpu-set-regs")) {
		ret = ioctl(vcpu_fd, KVM_GET_REGS, &regs);
		if (ret == 0)
			ret = ioctl(vcpu_fd, KVM_SET_REGS, &regs);
	} else if (!strcmp(name, "write-control")) {
		ret = write(control_fd, "", 1);
	} else if (!strcmp(name, "mmap-exec")) {
		addr = mmap(NULL, 4096, PROT_READ | PROT_EXEC,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ret = addr == MAP_FAILED ? -1 : 0;
		if (addr != MAP_FAILED)
			munmap(addr, 4096);
	} else {
		*known = false;
		return -EINVAL;
	}
	return ret < 0 ? -errno : ret;
}

int filter_test_call(const char *name, int kvm_fd, int vcpu_fd,
		     int control_fd, long *result)
{
	bool known;

	*result = call_by_name(name, kvm_fd, vcpu_fd, control_fd, &known);
	return known ? 0 : -EINVAL;
}
