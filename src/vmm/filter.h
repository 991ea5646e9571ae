/* SPDX-License-Identifier: MIT */
/* The seccomp allow-list of sbx-vmm's run loop, built with libseccomp. */
#ifndef SBX_VMM_FILTER_H
#define SBX_VMM_FILTER_H

#include <stddef.h>

/* The descriptors that some rules of the filter are bound to. */
struct filter_fds {
	int vcpu;	/* KVM ioctls are allowed on this fd only */
	int control;	/* recvmsg and sendto: -1 in standalone mode */
};

/*
 * Install the filter on this thread. Any system call outside the list
 * kills the whole process with SIGSYS. Returns 0, or a negative errno with
 * `err` naming the failed step.
 */
int filter_install(const struct filter_fds *fds, char *err, size_t err_size);

/*
 * Test aid for --test-forbidden-syscall: make the system call that `name`
 * names (one of filter_test_names) so that a test can check that the
 * filter kills the process. Returns only when the call was allowed, with
 * the call's result (or -errno) in *result. Returns -EINVAL for an
 * unknown name.
 */
int filter_test_call(const char *name, int kvm_fd, int vcpu_fd,
		     int control_fd, long *result);

/* The names that filter_test_call() takes, NULL-terminated. */
extern const char *const filter_test_names[];

#endif
