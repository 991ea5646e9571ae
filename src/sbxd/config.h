/* SPDX-License-Identifier: MIT */
/*
 * sbxd configuration: command-line flags over environment variables over
 * defaults. Parsing is pure (no files touched) so unit tests cover it;
 * config_resolve() fills the defaults that need the system.
 */
#ifndef SBXD_CONFIG_H
#define SBXD_CONFIG_H

#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "sbxd/gate.h"
#include "sbxd/log.h"

#define CONFIG_LISTEN_MAX 8
#define CONFIG_INSTANCE_MAX 64

struct listen_addr {
	int family; /* AF_UNIX or AF_INET or AF_INET6 */
	char text[128]; /* as given, for logs */
	union {
		struct sockaddr_un un;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} addr;
	socklen_t addr_len;
};

/* Drain policy: the drain's action for live sandboxes. */
enum drain_policy {
	DRAIN_POLICY_WAIT = 0,	/* wait until they end by themselves */
	DRAIN_POLICY_CHECKPOINT, /* save each to STATE_DIR/drained/, stop it */
	DRAIN_POLICY_KILL,	/* skip the graceful phase, like force_stop */
};

/* Maximum length of the bearer token in --token-file. */
#define CONFIG_TOKEN_MAX 255

struct config {
	char state_dir[PATH_MAX];	/* "" until resolved */
	struct listen_addr listen[CONFIG_LISTEN_MAX]; /* extra listeners */
	int nlisten;
	char instance[CONFIG_INSTANCE_MAX];
	bool drain_timeout_set;
	uint64_t drain_timeout_ms;
	uint64_t force_timeout_ms;
	bool force_stop;
	enum drain_policy drain_policy;
	bool restore_drained;	/* restore STATE_DIR/drained.json at start */
	uint64_t drain_poll_ms;
	unsigned int max_sandboxes;	/* 0 until resolved from MemTotal */
	uint64_t stop_grace_ms;
	char vmm[PATH_MAX];		/* "" until resolved */
	char guest[PATH_MAX];		/* "" until resolved */
	char token_file[PATH_MAX];	/* "" without --token-file */
	char token[CONFIG_TOKEN_MAX + 1]; /* read from token_file */
	enum gate_backend gate;
	unsigned int max_connections;
	uint64_t request_timeout_ms;
	uint64_t idle_timeout_ms;
	unsigned int max_requests;	/* per connection */
	unsigned int max_header_size;	/* bytes of request line and headers */
	unsigned int max_body_size;	/* bytes of one request body */
	enum log_level log_level;
};

enum config_result {
	CONFIG_RUN = 0,		/* start the daemon */
	CONFIG_EXIT = 1,	/* --help or --version printed; exit 0 */
};

void config_init(struct config *cfg);
/*
 * Apply the environment (via getenv), then argv. Returns CONFIG_RUN,
 * CONFIG_EXIT, or -EINVAL with a message naming the flag and the value
 * in err (the caller prints it and exits 2).
 */
int config_parse(struct config *cfg, int argc, char **argv, char *err,
		 size_t errlen);
/*
 * Fill the state dir, VMM, guest and max-sandboxes defaults, and check
 * that the VMM is executable.
 */
int config_resolve(struct config *cfg, char *err, size_t errlen);

/* "wait", "checkpoint" or "kill"; 0 or -EINVAL. */
int config_parse_drain_policy(const char *text, enum drain_policy *out);
const char *config_drain_policy_name(enum drain_policy policy);
/* "500ms", "30s", "5m", "1h" or "0" to milliseconds; 0 or -EINVAL. */
int config_parse_duration(const char *text, uint64_t *ms);
/* "unix:PATH" or "tcp:HOST:PORT" with a loopback HOST; 0 or -EINVAL. */
int config_parse_listen(const char *text, struct listen_addr *out,
			char *err, size_t errlen);
/* Default --max-sandboxes for a host with mem_total_kib of RAM. */
unsigned int config_default_max_sandboxes(uint64_t mem_total_kib);

void config_print_help(void);

#endif
