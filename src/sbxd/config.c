// SPDX-License-Identifier: MIT
/* Flags, environment variables and defaults of sbxd. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sbxd/config.h"
#include "sbxd/http.h"

enum option_kind {
	OPT_DURATION,
	OPT_DURATION_SET,	/* also sets drain_timeout_set */
	OPT_UINT,
	OPT_PATH,
	OPT_INSTANCE,
	OPT_FLAG,		/* bool at offset: 1, true, 0, false or "" */
	OPT_POLICY,
	OPT_GATE,
	OPT_LOG_LEVEL,
	OPT_LISTEN,
	OPT_HELP,
	OPT_VERSION,
};

struct option_spec {
	const char *flag;
	const char *env;
	const char *metavar;
	enum option_kind kind;
	size_t offset;
	uint64_t min;
	uint64_t max;
	const char *help;
};

#define FIELD(name) offsetof(struct config, name)

static const struct option_spec options[] = {
	{ "--state-dir", "SBXD_STATE_DIR", "DIR", OPT_PATH, FIELD(state_dir),
	  0, 0, "state directory (socket, lock, sandboxes/); default "
	  "/run/sbxd as root, else $XDG_RUNTIME_DIR/sbxd" },
	{ "--listen", "SBXD_LISTEN", "ADDR", OPT_LISTEN, 0, 0, 0,
	  "extra listener, repeatable: unix:PATH or tcp:127.0.0.1:PORT "
	  "(loopback only); the environment variable takes a comma-separated "
	  "list; unix:STATE_DIR/sbxd.sock is always served" },
	{ "--instance", "SBXD_INSTANCE", "NAME", OPT_INSTANCE, FIELD(instance),
	  0, 0, "instance name, names the BPF pin dir; default \"default\"" },
	{ "--gate", "SBXD_GATE", "auto|bpf|memfd", OPT_GATE, FIELD(gate), 0, 0,
	  "admission gate backend; default auto (BPF if allowed, else memfd)" },
	{ "--drain-timeout", "SHUTDOWN_DRAIN_TIMEOUT", "DUR", OPT_DURATION_SET,
	  FIELD(drain_timeout_ms), 0, UINT64_MAX,
	  "bound on the graceful drain phase; default unset (wait forever), "
	  "0 forces at once" },
	{ "--force-timeout", "SHUTDOWN_FORCE_TIMEOUT", "DUR", OPT_DURATION,
	  FIELD(force_timeout_ms), 0, UINT64_MAX,
	  "bound on the forced drain phase; default 30s" },
	{ "--force-stop", "FORCE_STOP", NULL, OPT_FLAG, FIELD(force_stop), 0, 0,
	  "skip the graceful drain phase; the same as --drain-policy kill" },
	{ "--drain-policy", "SHUTDOWN_DRAIN_POLICY", "wait|checkpoint|kill",
	  OPT_POLICY, FIELD(drain_policy), 0, 0,
	  "what the drain does with live sandboxes: wait for them to end, "
	  "checkpoint them to STATE_DIR/drained/ and list them in "
	  "STATE_DIR/drained.json, or kill them (the forced phase at once); "
	  "default wait" },
	{ "--restore-drained", "SBXD_RESTORE_DRAINED", NULL, OPT_FLAG,
	  FIELD(restore_drained), 0, 0,
	  "at start, restore every sandbox listed in STATE_DIR/drained.json "
	  "under its old id" },
	{ "--drain-poll", "SBXD_DRAIN_POLL", "DUR", OPT_DURATION,
	  FIELD(drain_poll_ms), 1, UINT64_MAX,
	  "period of the drain waiter; default 10ms" },
	{ "--stop-grace", "SBXD_STOP_GRACE", "DUR", OPT_DURATION,
	  FIELD(stop_grace_ms), 0, UINT64_MAX,
	  "time between a stop request and SIGKILL; default 10s" },
	{ "--max-sandboxes", "SBXD_MAX_SANDBOXES", "N", OPT_UINT,
	  FIELD(max_sandboxes), 1, 1000000,
	  "maximum of live plus starting sandboxes; default from MemTotal" },
	{ "--vmm", "SBXD_VMM", "PATH", OPT_PATH, FIELD(vmm), 0, 0,
	  "sbx-vmm program; default sbx-vmm beside the sbxd executable" },
	{ "--guest", "SBXD_GUEST", "PATH", OPT_PATH, FIELD(guest), 0, 0,
	  "default guest ELF; default sbx-agent beside the sbxd executable" },
	{ "--token-file", "SBXD_TOKEN_FILE", "PATH", OPT_PATH,
	  FIELD(token_file), 0, 0,
	  "bearer token that TCP clients must send (Authorization: Bearer); "
	  "the file must not be readable by group or others" },
	{ "--max-connections", "SBXD_MAX_CONNECTIONS", "N", OPT_UINT,
	  FIELD(max_connections), 1, 65536,
	  "maximum of open API connections, extra ones are closed; "
	  "default 256" },
	{ "--request-timeout", "SBXD_REQUEST_TIMEOUT", "DUR", OPT_DURATION,
	  FIELD(request_timeout_ms), 1, UINT64_MAX,
	  "maximum time to receive one request or send one response; "
	  "default 10s" },
	{ "--idle-timeout", "SBXD_IDLE_TIMEOUT", "DUR", OPT_DURATION,
	  FIELD(idle_timeout_ms), 1, UINT64_MAX,
	  "keep-alive connection idle time before it is closed; default 60s" },
	{ "--max-requests", "SBXD_MAX_REQUESTS", "N", OPT_UINT,
	  FIELD(max_requests), 1, UINT32_MAX,
	  "requests served on one connection before it is closed; "
	  "default 1000" },
	{ "--max-header-size", "SBXD_MAX_HEADER_SIZE", "BYTES", OPT_UINT,
	  FIELD(max_header_size), 1024, 1048576,
	  "request line plus headers, larger gets 431; default 16384" },
	{ "--max-body-size", "SBXD_MAX_BODY_SIZE", "BYTES", OPT_UINT,
	  FIELD(max_body_size), 1024, 67108864,
	  "request body, larger gets 413; default 1048576" },
	{ "--log-level", "SBXD_LOG_LEVEL", "err|warn|info|debug", OPT_LOG_LEVEL,
	  FIELD(log_level), 0, 0, "minimum level logged; default info" },
	{ "--help", NULL, NULL, OPT_HELP, 0, 0, 0, "print this help and exit" },
	{ "--version", NULL, NULL, OPT_VERSION, 0, 0, 0,
	  "print the version and exit" },
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->instance, "default");
	cfg->force_timeout_ms = 30000;
	cfg->drain_poll_ms = 10;
	cfg->stop_grace_ms = 10000;
	cfg->gate = GATE_BACKEND_AUTO;
	cfg->max_connections = 256;
	cfg->request_timeout_ms = 10000;
	cfg->idle_timeout_ms = 60000;
	cfg->max_requests = 1000;
	cfg->max_header_size = HTTP_HEADER_MAX;
	cfg->max_body_size = HTTP_BODY_MAX;
	cfg->log_level = LOG_LEVEL_INFO;
}

int config_parse_drain_policy(const char *text, enum drain_policy *out)
{
	if (strcmp(text, "wait") == 0)
		*out = DRAIN_POLICY_WAIT;
	else if (strcmp(text, "checkpoint") == 0)
		*out = DRAIN_POLICY_CHECKPOINT;
	else if (strcmp(text, "kill") == 0)
		*out = DRAIN_POLICY_KILL;
	else
		return -EINVAL;
	return 0;
}

const char *config_drain_policy_name(enum drain_policy policy)
{
	switch (policy) {
	case DRAIN_POLICY_WAIT: return "wait";
	case DRAIN_POLICY_CHECKPOINT: return "checkpoint";
	case DRAIN_POLICY_KILL: return "kill";
	}
	return "unknown";
}

int config_parse_duration(const char *text, uint64_t *ms)
{
	uint64_t value = 0;
	uint64_t scale;
	const char *p = text;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p)) {
		unsigned int digit = (unsigned int)(*p - '0');

		if (value > (UINT64_MAX - digit) / 10)
			return -EINVAL;
		value = value * 10 + digit;
		p++;
	}

	if (strcmp(p, "ms") == 0)
		scale = 1;
	else if (strcmp(p, "s") == 0)
		scale = 1000;
	else if (strcmp(p, "m") == 0)
		scale = 60 * 1000;
	else if (strcmp(p, "h") == 0)
		scale = 3600 * 1000;
	else if (*p == '\0' && value == 0)
		scale = 1; /* a bare 0 needs no unit */
	else
		return -EINVAL;

	if (value > UINT64_MAX / scale)
		return -EINVAL;
	*ms = value * scale;
	return 0;
}

static int parse_uint(const char *text, uint64_t min, uint64_t max,
		      uint64_t *out)
{
	unsigned long long value;
	char *end;

	if (!isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || *end != '\0' || value < min || value > max)
		return -EINVAL;
	*out = value;
	return 0;
}

static bool is_loopback4(const struct in_addr *addr)
{
	return (ntohl(addr->s_addr) >> 24) == 127;
}

int config_parse_listen(const char *text, struct listen_addr *out,
			char *err, size_t errlen)
{
	char host[64];
	const char *rest;
	const char *colon;
	uint64_t port;
	size_t host_len;

	memset(out, 0, sizeof(*out));
	if (strlen(text) >= sizeof(out->text)) {
		snprintf(err, errlen, "listen address %.40s... is too long",
			 text);
		return -EINVAL;
	}
	strcpy(out->text, text);

	if (strncmp(text, "unix:", 5) == 0) {
		rest = text + 5;
		if (rest[0] != '/' ||
		    strlen(rest) >= sizeof(out->addr.un.sun_path)) {
			snprintf(err, errlen,
				 "invalid listen address %s: expected "
				 "unix:/ABSOLUTE/PATH shorter than %zu bytes",
				 text, sizeof(out->addr.un.sun_path));
			return -EINVAL;
		}
		out->family = AF_UNIX;
		out->addr.un.sun_family = AF_UNIX;
		strcpy(out->addr.un.sun_path, rest);
		out->addr_len = sizeof(out->addr.un);
		return 0;
	}

	if (strncmp(text, "tcp:", 4) != 0) {
		snprintf(err, errlen,
			 "invalid listen address %s: expected unix:PATH or "
			 "tcp:127.0.0.1:PORT", text);
		return -EINVAL;
	}
	rest = text + 4;
	colon = strrchr(rest, ':');
	if (!colon || colon == rest ||
	    parse_uint(colon + 1, 1, 65535, &port)) {
		snprintf(err, errlen,
			 "invalid listen address %s: expected tcp:HOST:PORT "
			 "with a port from 1 to 65535", text);
		return -EINVAL;
	}
	host_len = (size_t)(colon - rest);
	if (host_len >= sizeof(host)) {
		snprintf(err, errlen, "invalid listen address %s: host too "
			 "long", text);
		return -EINVAL;
	}
	memcpy(host, rest, host_len);
	host[host_len] = '\0';

	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (host[0] == '[' && host[host_len - 1] == ']') {
		memmove(host, host + 1, host_len - 2);
		host[host_len - 2] = '\0';
		out->family = AF_INET6;
		out->addr.in6.sin6_family = AF_INET6;
		out->addr.in6.sin6_port = htons((uint16_t)port);
		out->addr_len = sizeof(out->addr.in6);
		if (inet_pton(AF_INET6, host, &out->addr.in6.sin6_addr) != 1)
			goto bad_host;
		if (!IN6_IS_ADDR_LOOPBACK(&out->addr.in6.sin6_addr))
			goto not_loopback;
		return 0;
	}

	out->family = AF_INET;
	out->addr.in.sin_family = AF_INET;
	out->addr.in.sin_port = htons((uint16_t)port);
	out->addr_len = sizeof(out->addr.in);
	if (inet_pton(AF_INET, host, &out->addr.in.sin_addr) != 1)
		goto bad_host;
	if (!is_loopback4(&out->addr.in.sin_addr))
		goto not_loopback;
	return 0;

bad_host:
	snprintf(err, errlen, "invalid listen address %s: host %s is not an "
		 "IPv4 address or a bracketed IPv6 address", text, host);
	return -EINVAL;
not_loopback:
	snprintf(err, errlen, "rejected listen address %s: only loopback "
		 "addresses (127.0.0.0/8, [::1]) are supported for now, "
		 "because the API has no authentication", text);
	return -EINVAL;
}

static bool valid_instance(const char *text)
{
	size_t len = strlen(text);

	if (len == 0 || len >= CONFIG_INSTANCE_MAX || strcmp(text, ".") == 0 ||
	    strcmp(text, "..") == 0)
		return false;
	for (const char *p = text; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' &&
		    *p != '.')
			return false;
	}
	return true;
}

/* Name of a setting in messages: the flag, and the variable if it came
 * from the environment. */
static void source_name(const struct option_spec *opt, bool from_env,
			char *out, size_t outlen)
{
	if (from_env)
		snprintf(out, outlen, "%s (%s)", opt->env, opt->flag);
	else
		snprintf(out, outlen, "%s", opt->flag);
}

static int add_listen(struct config *cfg, const char *text, char *err,
		      size_t errlen)
{
	if (cfg->nlisten >= CONFIG_LISTEN_MAX) {
		snprintf(err, errlen, "too many listen addresses: at most %d",
			 CONFIG_LISTEN_MAX);
		return -EINVAL;
	}
	if (config_parse_listen(text, &cfg->listen[cfg->nlisten], err, errlen))
		return -EINVAL;
	cfg->nlisten++;
	return 0;
}

static int apply_listen_list(struct config *cfg, const char *value,
			     char *err, size_t errlen)
{
	char copy[1024];
	char *save = NULL;

	if (strlen(value) >= sizeof(copy)) {
		snprintf(err, errlen, "SBXD_LISTEN is longer than %zu bytes",
			 sizeof(copy) - 1);
		return -EINVAL;
	}
	strcpy(copy, value);
	for (char *item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		if (add_listen(cfg, item, err, errlen))
			return -EINVAL;
	}
	return 0;
}

static int apply_option(struct config *cfg, const struct option_spec *opt,
			const char *value, bool from_env, char *err,
			size_t errlen)
{
	char *base = (char *)cfg;
	char name[96];
	uint64_t number;

	source_name(opt, from_env, name, sizeof(name));
	switch (opt->kind) {
	case OPT_DURATION:
	case OPT_DURATION_SET:
		if (config_parse_duration(value, &number) ||
		    number < opt->min) {
			snprintf(err, errlen,
				 "invalid value \"%s\" for %s: expected a "
				 "duration such as 500ms, 30s, 5m or 1h%s",
				 value, name,
				 opt->min ? " (at least 1ms)" : ", or 0");
			return -EINVAL;
		}
		*(uint64_t *)(base + opt->offset) = number;
		if (opt->kind == OPT_DURATION_SET)
			cfg->drain_timeout_set = true;
		return 0;
	case OPT_UINT:
		if (parse_uint(value, opt->min, opt->max, &number)) {
			snprintf(err, errlen,
				 "invalid value \"%s\" for %s: expected an "
				 "integer from %llu to %llu", value, name,
				 (unsigned long long)opt->min,
				 (unsigned long long)opt->max);
			return -EINVAL;
		}
		*(unsigned int *)(base + opt->offset) = (unsigned int)number;
		return 0;
	case OPT_PATH:
		if (value[0] == '\0' || strlen(value) >= PATH_MAX) {
			snprintf(err, errlen,
				 "invalid value \"%.64s\" for %s: expected a "
				 "non-empty path shorter than %d bytes",
				 value, name, PATH_MAX);
			return -EINVAL;
		}
		strcpy(base + opt->offset, value);
		return 0;
	case OPT_INSTANCE:
		if (!valid_instance(value)) {
			snprintf(err, errlen,
				 "invalid value \"%.64s\" for %s: expected 1 "
				 "to %d characters from A-Z a-z 0-9 _ - .",
				 value, name, CONFIG_INSTANCE_MAX - 1);
			return -EINVAL;
		}
		strcpy(cfg->instance, value);
		return 0;
	case OPT_FLAG:
		if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0) {
			*(bool *)(base + opt->offset) = true;
		} else if (strcmp(value, "0") == 0 ||
			   strcmp(value, "false") == 0 || value[0] == '\0') {
			*(bool *)(base + opt->offset) = false;
		} else {
			snprintf(err, errlen,
				 "invalid value \"%s\" for %s: expected 1 or 0",
				 value, name);
			return -EINVAL;
		}
		return 0;
	case OPT_POLICY:
		if (config_parse_drain_policy(value, &cfg->drain_policy)) {
			snprintf(err, errlen,
				 "invalid value \"%s\" for %s: expected wait, "
				 "checkpoint or kill", value, name);
			return -EINVAL;
		}
		return 0;
	case OPT_GATE:
		if (strcmp(value, "auto") == 0) {
			cfg->gate = GATE_BACKEND_AUTO;
		} else if (strcmp(value, "bpf") == 0) {
			cfg->gate = GATE_BACKEND_BPF;
		} else if (strcmp(value, "memfd") == 0) {
			cfg->gate = GATE_BACKEND_MEMFD;
		} else {
			snprintf(err, errlen,
				 "invalid value \"%s\" for %s: expected auto, "
				 "bpf or memfd", value, name);
			return -EINVAL;
		}
		return 0;
	case OPT_LOG_LEVEL:
		if (log_parse_level(value, &cfg->log_level)) {
			snprintf(err, errlen,
				 "invalid value \"%s\" for %s: expected err, "
				 "warn, info or debug", value, name);
			return -EINVAL;
		}
		return 0;
	case OPT_LISTEN: {
		char inner[384];
		int ret;

		if (from_env)
			ret = apply_listen_list(cfg, value, inner,
						sizeof(inner));
		else
			ret = add_listen(cfg, value, inner, sizeof(inner));
		if (ret)
			snprintf(err, errlen, "%s: %s", name, inner);
		return ret;
	}
	case OPT_HELP:
	case OPT_VERSION:
		return 0;
	}
	return -EINVAL;
}

static const struct option_spec *find_option(const char *flag, size_t len)
{
	for (size_t i = 0; i < NOPTIONS; i++) {
		if (strlen(options[i].flag) == len &&
		    strncmp(options[i].flag, flag, len) == 0)
			return &options[i];
	}
	return NULL;
}

static int apply_env(struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < NOPTIONS; i++) {
		const char *value;

		if (!options[i].env)
			continue;
		value = getenv(options[i].env);
		if (!value || (value[0] == '\0' && options[i].kind != OPT_FLAG))
			continue;
		if (apply_option(cfg, &options[i], value, true, err, errlen))
			return -EINVAL;
	}
	return 0;
}

int config_parse(struct config *cfg, int argc, char **argv, char *err,
		 size_t errlen)
{
	bool flag_listen = false;
	int ret;

	ret = apply_env(cfg, err, errlen);
	if (ret)
		return ret;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *eq = strchr(arg, '=');
		size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
		const struct option_spec *opt = NULL;
		const char *value;

		if (strncmp(arg, "--", 2) == 0)
			opt = find_option(arg, name_len);
		if (!opt) {
			snprintf(err, errlen,
				 "unknown argument \"%.64s\"; see sbxd --help",
				 arg);
			return -EINVAL;
		}
		if (opt->kind == OPT_HELP) {
			config_print_help();
			return CONFIG_EXIT;
		}
		if (opt->kind == OPT_VERSION) {
			printf("sbxd %s\n", SBXD_VERSION);
			return CONFIG_EXIT;
		}
		if (opt->kind == OPT_FLAG && !eq) {
			value = "1";
		} else if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(err, errlen, "missing value for %s %s",
				 opt->flag, opt->metavar);
			return -EINVAL;
		}
		/* Flags replace the environment's listeners. */
		if (opt->kind == OPT_LISTEN && !flag_listen) {
			cfg->nlisten = 0;
			flag_listen = true;
		}
		ret = apply_option(cfg, opt, value, false, err, errlen);
		if (ret)
			return ret;
	}
	return CONFIG_RUN;
}

unsigned int config_default_max_sandboxes(uint64_t mem_total_kib)
{
	/*
	 * Keep 1 GiB (or half of a smaller host) for the host itself, and
	 * budget each sandbox the default 16 MiB of guest RAM plus 1 MiB for
	 * its sbx-vmm process. An idle VMM measured about 0.7 MiB on our
	 * hosts, so 1 MiB is a rounded-up estimate.
	 */
	uint64_t total_mib = mem_total_kib / 1024;
	uint64_t reserve_mib = total_mib >= 2048 ? 1024 : total_mib / 2;
	uint64_t count = (total_mib - reserve_mib) / (16 + 1);

	if (count < 1)
		count = 1;
	if (count > 4096)
		count = 4096;
	return (unsigned int)count;
}

static int read_mem_total_kib(uint64_t *kib)
{
	char line[256];
	FILE *f = fopen("/proc/meminfo", "re");
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long value;

		if (sscanf(line, "MemTotal: %llu kB", &value) == 1) {
			*kib = value;
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

static int exe_sibling(const char *name, char *out, size_t outlen)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n < 0)
		return -errno;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	if ((size_t)snprintf(out, outlen, "%s/%s", exe, name) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Read the bearer token from --token-file: one line of 16 to 255 visible
 * ASCII characters, in a file that group and others cannot read.
 */
static int read_token(struct config *cfg, char *err, size_t errlen)
{
	char text[CONFIG_TOKEN_MAX + 3];
	struct stat st;
	size_t len;
	FILE *f;

	f = fopen(cfg->token_file, "re");
	if (!f) {
		snprintf(err, errlen, "failed to open --token-file %s: %s",
			 cfg->token_file, strerror(errno));
		return -EINVAL;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
		fclose(f);
		snprintf(err, errlen, "invalid --token-file %s: mode %04o lets "
			 "group or others read it; chmod 600 it",
			 cfg->token_file, (unsigned int)(st.st_mode & 07777));
		return -EINVAL;
	}
	if (!fgets(text, sizeof(text), f))
		text[0] = '\0';
	fclose(f);
	len = strcspn(text, "\r\n");
	text[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (text[i] <= ' ' || text[i] > '~')
			len = 0;
	}
	if (len < 16 || len > CONFIG_TOKEN_MAX) {
		snprintf(err, errlen, "invalid --token-file %s: expected one "
			 "line of 16 to %d visible ASCII characters",
			 cfg->token_file, CONFIG_TOKEN_MAX);
		return -EINVAL;
	}
	memcpy(cfg->token, text, len + 1);
	return 0;
}

int config_resolve(struct config *cfg, char *err, size_t errlen)
{
	int ret;

	if (cfg->state_dir[0] == '\0') {
		const char *runtime = getenv("XDG_RUNTIME_DIR");

		if (geteuid() == 0) {
			strcpy(cfg->state_dir, "/run/sbxd");
		} else if (runtime && runtime[0] == '/') {
			if ((size_t)snprintf(cfg->state_dir, PATH_MAX,
					     "%s/sbxd", runtime) >= PATH_MAX)
				goto too_long;
		} else {
			snprintf(err, errlen,
				 "no state directory: not root and "
				 "XDG_RUNTIME_DIR is unset; pass --state-dir "
				 "DIR");
			return -EINVAL;
		}
	}
	if (cfg->state_dir[0] != '/') {
		snprintf(err, errlen, "invalid --state-dir \"%s\": it must be "
			 "an absolute path", cfg->state_dir);
		return -EINVAL;
	}

	if (cfg->vmm[0] == '\0') {
		ret = exe_sibling("sbx-vmm", cfg->vmm, sizeof(cfg->vmm));
		if (ret) {
			snprintf(err, errlen, "failed to locate sbx-vmm beside "
				 "the sbxd executable: %s; pass --vmm PATH",
				 strerror(-ret));
			return ret;
		}
	}
	if (access(cfg->vmm, X_OK) < 0) {
		snprintf(err, errlen, "VMM %s is not executable: %s; build it "
			 "or pass --vmm PATH", cfg->vmm, strerror(errno));
		return -EINVAL;
	}
	if (cfg->guest[0] == '\0') {
		ret = exe_sibling("sbx-agent", cfg->guest, sizeof(cfg->guest));
		if (ret) {
			snprintf(err, errlen, "failed to locate sbx-agent "
				 "beside the sbxd executable: %s; pass --guest "
				 "PATH", strerror(-ret));
			return ret;
		}
	}
	if (cfg->token_file[0]) {
		ret = read_token(cfg, err, errlen);
		if (ret)
			return ret;
	}
	if (access(cfg->guest, R_OK) < 0) {
		snprintf(err, errlen, "guest %s is not readable: %s; build it "
			 "or pass --guest PATH", cfg->guest, strerror(errno));
		return -EINVAL;
	}

	if (cfg->max_sandboxes == 0) {
		uint64_t kib;

		ret = read_mem_total_kib(&kib);
		if (ret) {
			snprintf(err, errlen, "failed to read MemTotal from "
				 "/proc/meminfo: %s; pass --max-sandboxes N",
				 strerror(-ret));
			return ret;
		}
		cfg->max_sandboxes = config_default_max_sandboxes(kib);
	}
	return 0;

too_long:
	snprintf(err, errlen, "state directory path is too long; pass "
		 "--state-dir DIR");
	return -ENAMETOOLONG;
}

#define HELP_WIDTH 80
#define HELP_INDENT 31	/* "  " + 28 columns for the flag + " " */

/*
 * Print text from column HELP_INDENT, wrapped at HELP_WIDTH columns; the
 * first line continues the caller's output. A word longer than a line is
 * printed whole.
 */
static void print_wrapped(const char *text)
{
	const int width = HELP_WIDTH - HELP_INDENT;
	int col = 0;

	while (*text) {
		int len = (int)strcspn(text, " ");

		if (col > 0 && col + 1 + len > width) {
			printf("\n%*s", HELP_INDENT, "");
			col = 0;
		} else if (col > 0) {
			putchar(' ');
			col++;
		}
		printf("%.*s", len, text);
		col += len;
		text += len;
		while (*text == ' ')
			text++;
	}
	putchar('\n');
}

void config_print_help(void)
{
	printf("usage: sbxd [FLAGS]\n\n"
	       "Node supervisor: serves an HTTP/1.1 JSON API on "
	       "unix:STATE_DIR/sbxd.sock\nand runs each sandbox as a KVM VM "
	       "in its own sbx-vmm process. SIGTERM or\nSIGINT drains.\n\n"
	       "Flags override environment variables. Durations: 500ms, "
	       "30s, 5m, 1h, or 0.\n\n");
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct option_spec *opt = &options[i];
		char left[64];
		char env[96];

		snprintf(left, sizeof(left), "%s%s%s", opt->flag,
			 opt->metavar ? " " : "",
			 opt->metavar ? opt->metavar : "");
		if (strlen(left) > HELP_INDENT - 3)
			printf("  %s\n%*s", left, HELP_INDENT, "");
		else
			printf("  %-*s ", HELP_INDENT - 3, left);
		print_wrapped(opt->help);
		if (!opt->env)
			continue;
		snprintf(env, sizeof(env), "environment: %s%s", opt->env,
			 opt->kind == OPT_FLAG ? "=1" : "");
		printf("%*s", HELP_INDENT, "");
		print_wrapped(env);
	}
	printf("\nExit status: 0 clean shutdown, 1 unclean shutdown "
	       "(a sandbox or a closer failed,\nor the checkpoint drain "
	       "could not save a sandbox), 2 usage, configuration\nor state "
	       "directory in use.\n");
}
