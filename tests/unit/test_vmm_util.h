/* SPDX-License-Identifier: MIT */
/* Helpers that run the real sbx-vmm binary for the sbx-vmm tests. */
#ifndef SBX_TEST_VMM_UTIL_H
#define SBX_TEST_VMM_UTIL_H

#include <stddef.h>
#include <sys/types.h>

#define VMM_PATH SBX_BIN_DIR "/sbx-vmm"
#define AGENT_PATH SBX_BIN_DIR "/sbx-agent"

struct vmm_result {
	int status;   /* exit status, or 128 + signal */
	char *out;    /* everything sbx-vmm wrote to stdout, NUL-terminated */
	size_t out_len;
	char *err;    /* same for stderr */
};

/* Skip the current test unless /dev/kvm can be opened read-write. */
void require_kvm(void);

/*
 * Run sbx-vmm with `argv` (NULL-terminated, without the program name) to
 * completion, collecting its output. Kills it after `timeout_s` seconds.
 */
void vmm_run_standalone(const char *const *argv, int timeout_s,
			struct vmm_result *res);
void vmm_result_free(struct vmm_result *res);

/*
 * Start sbx-vmm --control-fd 3 with `argv` appended, over a new
 * SOCK_SEQPACKET socketpair. Returns the pid; *sock is the test's end and
 * *err_fd a pipe carrying the VMM's stderr.
 */
pid_t vmm_spawn_control(const char *const *argv, int *sock, int *err_fd);

/* Wait for `pid` for up to `timeout_s` seconds, then SIGKILL it. */
int vmm_wait(pid_t pid, int timeout_s);

/* Read all of `fd` until EOF into a malloc'd NUL-terminated string. */
char *read_all(int fd);

#endif
