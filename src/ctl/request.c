// SPDX-License-Identifier: MIT
/* Mapping of a parsed command line to an HTTP request of the sbxd API. */
#include "request.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* Build "/v1/sandboxes/ID[SUFFIX]" with the ID percent-encoded. */
static char *sandbox_path(const char *id, const char *suffix)
{
	static const char prefix[] = "/v1/sandboxes/";
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(id);
	char *path, *p;

	path = malloc(sizeof(prefix) + 3 * len + strlen(suffix));
	if (!path)
		return NULL;
	p = stpcpy(path, prefix);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if (is_unreserved(c)) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	strcpy(p, suffix);
	return path;
}

char *request_join_words(char *const *argv, int argc)
{
	size_t len = 1;
	char *text, *p;

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	text = malloc(len);
	if (!text)
		return NULL;
	p = text;
	*p = '\0';
	for (int i = 0; i < argc; i++) {
		if (i)
			*p++ = ' ';
		p = stpcpy(p, argv[i]);
	}
	return text;
}

static int set_new(json_t *obj, const char *key, json_t *value)
{
	if (!value || json_object_set_new(obj, key, value))
		return -ENOMEM;
	return 0;
}

/*
 * Check that @text is valid UTF-8, as JSON strings must be. json_string()
 * fails both for invalid text and when out of memory, so the unchecked
 * variant distinguishes the two.
 */
static int check_utf8(const char *text, const char *what, char *err,
		      size_t err_len)
{
	json_t *probe = json_string(text);

	if (probe) {
		json_decref(probe);
		return 0;
	}
	probe = json_string_nocheck(text);
	if (!probe)
		return -ENOMEM;
	json_decref(probe);
	snprintf(err, err_len, "%s '%s' is not valid UTF-8; pass UTF-8 text",
		 what, text);
	return -EINVAL;
}

static int set_string(json_t *obj, const char *key, const char *value,
		      const char *what, char *err, size_t err_len)
{
	int ret = check_utf8(value, what, err, err_len);

	if (ret)
		return ret;
	return set_new(obj, key, json_string(value));
}

/*
 * Set @key to @path made absolute from @cwd, because sbxd resolves paths
 * from its own working directory. @what names the path in messages.
 */
static int add_path(json_t *body, const char *key, const char *path,
		    const char *cwd, const char *what, char *err,
		    size_t err_len)
{
	char *full;
	int ret;

	if (path[0] == '/' || path[0] == '\0')
		return set_string(body, key, path, what, err, err_len);
	if (!cwd) {
		snprintf(err, err_len,
			 "cannot make %s '%s' absolute because the current directory is unknown; give an absolute path",
			 what, path);
		return -EINVAL;
	}
	if (asprintf(&full, "%s/%s", cwd, path) < 0)
		return -ENOMEM;
	ret = set_string(body, key, full, what, err, err_len);
	free(full);
	return ret;
}

static int add_metadata(json_t *body, const struct cli *cli, char *err,
			size_t err_len)
{
	json_t *meta = json_object();
	int ret;

	if (!meta)
		return -ENOMEM;
	for (size_t i = 0; i < cli->meta_count; i++) {
		const char *eq = strchr(cli->meta[i], '=');
		char *key = strndup(cli->meta[i], (size_t)(eq - cli->meta[i]));

		if (!key) {
			json_decref(meta);
			return -ENOMEM;
		}
		ret = check_utf8(key, "metadata key", err, err_len);
		if (!ret)
			ret = set_string(meta, key, eq + 1, "metadata value",
					 err, err_len);
		free(key);
		if (ret) {
			json_decref(meta);
			return ret;
		}
	}
	return set_new(body, "metadata", meta);
}

/* Only options the user gave are sent, so sbxd's defaults apply. */
static int create_body(const struct cli *cli, const char *cwd, json_t *body,
		       char *err, size_t err_len)
{
	int ret = 0;

	if (cli->memory_mib != CLI_UNSET)
		ret = set_new(body, "memory_mib",
			      json_integer(cli->memory_mib));
	if (!ret && cli->guest)
		ret = add_path(body, "guest", cli->guest, cwd, "guest path",
			       err, err_len);
	if (!ret && cli->snapshot)
		ret = add_path(body, "snapshot", cli->snapshot, cwd,
			       "snapshot path", err, err_len);
	if (!ret && cli->args)
		ret = set_string(body, "args", cli->args, "guest arguments",
				 err, err_len);
	if (!ret && cli->boot_delay_ms != CLI_UNSET)
		ret = set_new(body, "boot_delay_ms",
			      json_integer(cli->boot_delay_ms));
	if (!ret && cli->ignore_stop)
		ret = set_new(body, "ignore_stop", json_true());
	if (!ret && cli->meta_count)
		ret = add_metadata(body, cli, err, err_len);
	return ret;
}

static int exec_body(const struct cli *cli, json_t *body, char *err,
		     size_t err_len)
{
	char *command = request_join_words(cli->exec_argv, cli->exec_argc);
	int ret;

	if (!command)
		return -ENOMEM;
	ret = set_string(body, "command", command, "command", err, err_len);
	free(command);
	if (!ret && cli->timeout_ms != CLI_UNSET)
		ret = set_new(body, "timeout_ms",
			      json_integer(cli->timeout_ms));
	return ret;
}

static int build_body(const struct cli *cli, const char *cwd,
		      struct ctl_request *req, char *err, size_t err_len)
{
	json_t *body = json_object();
	int ret;

	if (!body)
		return -ENOMEM;
	switch (cli->command) {
	case CLI_CREATE:
		ret = create_body(cli, cwd, body, err, err_len);
		break;
	case CLI_EXEC:
		ret = exec_body(cli, body, err, err_len);
		break;
	case CLI_STOP:
		ret = 0;
		if (cli->grace_ms != CLI_UNSET)
			ret = set_new(body, "grace_ms",
				      json_integer(cli->grace_ms));
		break;
	case CLI_SNAPSHOT:
		ret = 0;
		if (cli->path)
			ret = add_path(body, "path", cli->path, cwd,
				       "snapshot path", err, err_len);
		if (!ret && cli->overwrite)
			ret = set_new(body, "overwrite", json_true());
		break;
	default:
		ret = 0;
		break;
	}
	if (!ret) {
		req->body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!req->body)
			ret = -ENOMEM;
	}
	if (ret == -ENOMEM && !err[0])
		snprintf(err, err_len, "out of memory building the request");
	json_decref(body);
	return ret;
}

int request_build(const struct cli *cli, const char *cwd,
		  struct ctl_request *req, char *err, size_t err_len)
{
	bool has_body = false;

	memset(req, 0, sizeof(*req));
	err[0] = '\0';
	switch (cli->command) {
	case CLI_CREATE:
		req->method = "POST";
		req->path = strdup("/v1/sandboxes");
		has_body = true;
		break;
	case CLI_LS:
		req->method = "GET";
		req->path = strdup("/v1/sandboxes");
		break;
	case CLI_GET:
		req->method = "GET";
		req->path = sandbox_path(cli->id, "");
		break;
	case CLI_EXEC:
		req->method = "POST";
		req->path = sandbox_path(cli->id, "/exec");
		has_body = true;
		break;
	case CLI_STOP:
		req->method = "POST";
		req->path = sandbox_path(cli->id, "/stop");
		has_body = true;
		break;
	case CLI_KILL:
		req->method = "DELETE";
		req->path = sandbox_path(cli->id, "");
		break;
	case CLI_PAUSE:
		req->method = "POST";
		req->path = sandbox_path(cli->id, "/pause");
		break;
	case CLI_RESUME:
		req->method = "POST";
		req->path = sandbox_path(cli->id, "/resume");
		break;
	case CLI_SNAPSHOT:
		req->method = "POST";
		req->path = sandbox_path(cli->id, "/snapshot");
		has_body = true;
		break;
	case CLI_CHECKPOINT:
		req->method = "POST";
		req->path = sandbox_path(cli->id, "/checkpoint");
		break;
	case CLI_RESTORE_DRAINED:
		req->method = "POST";
		req->path = strdup("/v1/node/restore-drained");
		break;
	case CLI_NODE:
		req->method = "GET";
		req->path = strdup("/v1/node");
		break;
	case CLI_FORCE_STOP:
		req->method = "POST";
		req->path = strdup("/v1/node/force-stop");
		has_body = true;
		break;
	default:
		snprintf(err, err_len, "command '%s' sends no request",
			 cli_command_name(cli->command));
		return -EINVAL;
	}
	if (!req->path) {
		snprintf(err, err_len, "out of memory building the request");
		return -ENOMEM;
	}
	if (has_body)
		return build_body(cli, cwd, req, err, err_len);
	return 0;
}

void request_free(struct ctl_request *req)
{
	free(req->path);
	free(req->body);
	req->path = NULL;
	req->body = NULL;
}
