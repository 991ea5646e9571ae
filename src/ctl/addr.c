// SPDX-License-Identifier: MIT
/* Choice and parsing of the address sbxctl connects to. */
#include "addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define SOCKET_NAME "sbxd.sock"
#define ROOT_STATE_DIR "/run/sbxd"

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

static int parse_unix(const char *path, struct ctl_addr *addr, char *err,
		      size_t err_len)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&addr->sa;
	size_t len = strlen(path);

	if (len == 0) {
		snprintf(err, err_len,
			 "invalid socket address 'unix:': the path is empty; use unix:/PATH/sbxd.sock");
		return -EINVAL;
	}
	if (len >= sizeof(sun->sun_path)) {
		snprintf(err, err_len,
			 "socket path '%s' is %zu bytes, longer than the %zu that a unix socket allows; use a shorter state directory",
			 path, len, sizeof(sun->sun_path) - 1);
		return -EINVAL;
	}

	memset(&addr->sa, 0, sizeof(addr->sa));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, len + 1);
	addr->sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				   len + 1);
	snprintf(addr->text, sizeof(addr->text), "unix:%s", path);
	return 0;
}

static int parse_port(const char *text, const char *port, uint16_t *out,
		      char *err, size_t err_len)
{
	char *end;
	unsigned long value;

	errno = 0;
	value = strtoul(port, &end, 10);
	if (*port < '0' || *port > '9' || *end || errno || value == 0 ||
	    value > 65535) {
		snprintf(err, err_len,
			 "invalid port '%s' in socket address '%s': use a number from 1 to 65535",
			 port, text);
		return -EINVAL;
	}
	*out = (uint16_t)value;
	return 0;
}

static int parse_tcp(const char *text, const char *hostport,
		     struct ctl_addr *addr, char *err, size_t err_len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port;
	size_t host_len;
	uint16_t port_num;
	int ret;

	if (hostport[0] == '[') {
		const char *close = strchr(hostport, ']');

		if (!close || close[1] != ':')
			goto bad_form;
		host_len = (size_t)(close - hostport - 1);
		hostport++;
		port = close + 2;
	} else {
		const char *colon = strrchr(hostport, ':');

		if (!colon)
			goto bad_form;
		host_len = (size_t)(colon - hostport);
		port = colon + 1;
	}
	if (host_len == 0 || host_len >= sizeof(host))
		goto bad_form;
	memcpy(host, hostport, host_len);
	host[host_len] = '\0';

	ret = parse_port(text, port, &port_num, err, err_len);
	if (ret)
		return ret;

	memset(&addr->sa, 0, sizeof(addr->sa));
	if (strchr(host, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr->sa;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			goto bad_host;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port_num);
		addr->sa_len = sizeof(*in6);
	} else {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&addr->sa;

		if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
			goto bad_host;
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port_num);
		addr->sa_len = sizeof(*in4);
	}
	snprintf(addr->text, sizeof(addr->text), "%s", text);
	return 0;

bad_form:
	snprintf(err, err_len,
		 "invalid socket address '%s': use tcp:127.0.0.1:PORT or tcp:[::1]:PORT",
		 text);
	return -EINVAL;
bad_host:
	snprintf(err, err_len,
		 "invalid host '%s' in socket address '%s': use a numeric IP address such as 127.0.0.1 (host names are not resolved)",
		 host, text);
	return -EINVAL;
}

/* Length of a URI scheme such as "ftp" before a ':' at text, or 0. */
static size_t scheme_len(const char *text)
{
	size_t i = 0;

	if (!isalpha((unsigned char)text[0]))
		return 0;
	while (isalnum((unsigned char)text[i]) || text[i] == '+' ||
	       text[i] == '-' || text[i] == '.')
		i++;
	return text[i] == ':' ? i : 0;
}

int addr_parse(const char *text, struct ctl_addr *addr, char *err,
	       size_t err_len)
{
	size_t scheme;

	if (text[0] == '\0') {
		snprintf(err, err_len,
			 "empty socket address; use PATH, unix:PATH or tcp:127.0.0.1:PORT");
		return -EINVAL;
	}
	if (strncmp(text, "tcp:", 4) == 0)
		return parse_tcp(text, text + 4, addr, err, err_len);
	if (strncmp(text, "unix:", 5) == 0)
		return parse_unix(text + 5, addr, err, err_len);
	/* "ftp:x" is a scheme; write "./ftp:x" for such a file name. */
	scheme = scheme_len(text);
	if (scheme) {
		snprintf(err, err_len,
			 "unknown scheme '%.*s' in socket address '%s': use PATH, unix:PATH or tcp:127.0.0.1:PORT",
			 (int)scheme, text, text);
		return -EINVAL;
	}
	return parse_unix(text, addr, err, err_len);
}

static int parse_dir_socket(const char *dir, struct ctl_addr *addr,
			    char *err, size_t err_len)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	/* Join without doubling the slash of "/run/sbxd/". */
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if ((size_t)snprintf(path, sizeof(path), "%.*s/%s", (int)len, dir,
			     SOCKET_NAME) >= sizeof(path)) {
		snprintf(err, err_len, "state directory '%s' is too long",
			 dir);
		return -EINVAL;
	}
	return parse_unix(path, addr, err, err_len);
}

int addr_resolve(const char *flag, const struct addr_env *env,
		 struct ctl_addr *addr, char *err, size_t err_len)
{
	const char *value;
	int ret;

	if (nonempty(flag)) {
		addr->source = ADDR_FROM_FLAG;
		ret = addr_parse(flag, addr, err, err_len);
	} else if ((value = nonempty(env->sbxd_socket))) {
		addr->source = ADDR_FROM_ENV;
		ret = addr_parse(value, addr, err, err_len);
	} else if ((value = nonempty(env->state_dir))) {
		addr->source = ADDR_FROM_STATE_DIR;
		ret = parse_dir_socket(value, addr, err, err_len);
	} else if (env->root) {
		addr->source = ADDR_FROM_ROOT_DEFAULT;
		ret = parse_dir_socket(ROOT_STATE_DIR, addr, err, err_len);
	} else if ((value = nonempty(env->runtime_dir))) {
		char dir[PATH_MAX];

		addr->source = ADDR_FROM_USER_DEFAULT;
		snprintf(dir, sizeof(dir), "%s/sbxd", value);
		ret = parse_dir_socket(dir, addr, err, err_len);
	} else {
		snprintf(err, err_len,
			 "cannot find the sbxd socket: XDG_RUNTIME_DIR is not set; pass --socket PATH or set SBXD_SOCKET or SBXD_STATE_DIR");
		return -ENOENT;
	}
	if (ret && addr->source != ADDR_FROM_FLAG) {
		size_t used = strlen(err);

		snprintf(err + used, err_len - used, " (address taken %s)",
			 addr_source_name(addr->source));
	}
	return ret;
}

const char *addr_source_name(enum addr_source source)
{
	switch (source) {
	case ADDR_FROM_FLAG:
		return "from --socket";
	case ADDR_FROM_ENV:
		return "from SBXD_SOCKET";
	case ADDR_FROM_STATE_DIR:
		return "from SBXD_STATE_DIR";
	case ADDR_FROM_ROOT_DEFAULT:
		return "from the default for root";
	case ADDR_FROM_USER_DEFAULT:
		return "from the default under XDG_RUNTIME_DIR";
	}
	return "from an unknown source";
}
