// SPDX-License-Identifier: MIT
/* Execution of one sbxctl command against sbxd. */
#include "commands.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "format.h"
#include "http.h"
#include "request.h"
#include "watch.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *connect_hint(int err)
{
	switch (err) {
	case -ENOENT:
		return "no socket there; start sbxd, or point sbxctl at its socket with --socket PATH or SBXD_SOCKET";
	case -ECONNREFUSED:
		return "nothing is listening (sbxd is not running, or the socket is stale); start sbxd, or point sbxctl at its socket with --socket PATH or SBXD_SOCKET";
	case -EACCES:
	case -EPERM:
		return "the socket is mode 0600; run sbxctl as the user that runs sbxd";
	default:
		return "check that sbxd is running, or set --socket PATH or SBXD_SOCKET";
	}
}

/* Kind of file at a unix socket path that is not a socket, or NULL. */
static const char *non_socket_kind(const struct ctl_addr *addr)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&addr->sa;
	struct stat st;

	if (addr->sa.ss_family != AF_UNIX || stat(sun->sun_path, &st) < 0 ||
	    S_ISSOCK(st.st_mode))
		return NULL;
	if (S_ISDIR(st.st_mode))
		return "a directory";
	if (S_ISREG(st.st_mode))
		return "a regular file";
	return "not a socket";
}

void cmd_report_connect_error(const struct ctl_addr *addr, int err)
{
	const char *kind = non_socket_kind(addr);

	if (kind) {
		fprintf(stderr, "sbxctl: cannot connect to sbxd at %s (%s): "
			"the path is %s, not a socket; point --socket or "
			"SBXD_SOCKET at sbxd's socket, STATE_DIR/sbxd.sock\n",
			addr->text, addr_source_name(addr->source), kind);
		return;
	}
	fprintf(stderr, "sbxctl: cannot connect to sbxd at %s (%s): %s; %s\n",
		addr->text, addr_source_name(addr->source), strerror(-err),
		connect_hint(err));
}

void cmd_report_transfer_error(const struct ctl_addr *addr, int err)
{
	switch (err) {
	case -ECONNRESET:
	case -EPIPE:
		fprintf(stderr,
			"sbxctl: sbxd at %s closed the connection before a complete response; see sbxd's log\n",
			addr->text);
		break;
	case -EPROTO:
		fprintf(stderr,
			"sbxctl: sbxd at %s sent a malformed HTTP response\n",
			addr->text);
		break;
	case -EFBIG:
		fprintf(stderr,
			"sbxctl: the response from sbxd at %s is larger than %u MiB\n",
			addr->text, HTTP_BODY_MAX >> 20);
		break;
	case -EAGAIN:
		fprintf(stderr,
			"sbxctl: sbxd at %s did not respond within %d s\n",
			addr->text, WATCH_RESPONSE_TIMEOUT_MS / 1000);
		break;
	default:
		fprintf(stderr,
			"sbxctl: failed to exchange a request with sbxd at %s: %s\n",
			addr->text, strerror(-err));
		break;
	}
}

static int resolve_address(const struct cli *cli, struct ctl_addr *addr)
{
	struct addr_env env = {
		.sbxd_socket = getenv("SBXD_SOCKET"),
		.state_dir = getenv("SBXD_STATE_DIR"),
		.runtime_dir = getenv("XDG_RUNTIME_DIR"),
		.root = geteuid() == 0,
	};
	char err[1024];
	int ret;

	ret = addr_resolve(cli->socket, &env, addr, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "sbxctl: %s\n", err);
		/* A malformed --socket is a usage error; the rest are not. */
		return ret == -EINVAL && cli->socket && *cli->socket ? 2 : 1;
	}
	return 0;
}

/*
 * Connect, send @req and read the response. Returns 0, or -errno after
 * printing why, so that callers only choose the exit status.
 */
static int exchange(const struct ctl_addr *addr, const struct ctl_request *req,
		    struct http_response *resp)
{
	int fd, ret;

	fd = http_connect(addr);
	if (fd < 0) {
		cmd_report_connect_error(addr, fd);
		return fd;
	}
	ret = http_roundtrip(fd, req->method, req->path, req->body, resp);
	close(fd);
	if (ret)
		cmd_report_transfer_error(addr, ret);
	return ret;
}

/*
 * An exec whose command ended the guest, such as "exit 3", gets 409
 * "exited" with the sandbox's exit object. Returns the guest's exit code
 * to pass on, or -1 when the guest did not exit by itself.
 */
static int guest_exit_code(const struct http_response *resp)
{
	json_t *root, *error, *exit_info, *code;
	int status = -1;

	if (resp->status != 409 || !resp->body)
		return -1;
	root = json_loads(resp->body, 0, NULL);
	error = json_object_get(root, "error");
	exit_info = json_object_get(error, "exit");
	code = json_object_get(exit_info, "exit_code");
	if (json_is_string(json_object_get(error, "code")) &&
	    strcmp(json_string_value(json_object_get(error, "code")),
		   "exited") == 0 &&
	    json_is_string(json_object_get(exit_info, "reason")) &&
	    strcmp(json_string_value(json_object_get(exit_info, "reason")),
		   "guest_exit") == 0 &&
	    json_is_integer(code) && json_integer_value(code) >= 0 &&
	    json_integer_value(code) <= 255)
		status = (int)json_integer_value(code);
	json_decref(root);
	return status;
}

static void report_http_error(const struct http_response *resp)
{
	char message[2048];

	fmt_error(message, sizeof(message), resp->status, resp->body,
		  resp->retry_after);
	fprintf(stderr, "sbxctl: %s\n", message);
}

static int print_exec_result(json_t *result, bool json)
{
	json_t *output = json_object_get(result, "output");
	json_t *code = json_object_get(result, "exit_code");
	json_int_t status;

	if (!json_is_integer(code)) {
		fprintf(stderr,
			"sbxctl: sbxd's exec response has no integer exit_code\n");
		return 1;
	}
	if (!json && json_is_string(output)) {
		size_t len = json_string_length(output);
		const char *text = json_string_value(output);

		fwrite(text, 1, len, stdout);
		if (len && text[len - 1] != '\n')
			fputc('\n', stdout);
	}

	status = json_integer_value(code);
	if (status < 0 || status > 255) {
		fprintf(stderr,
			"sbxctl: the command's exit code %" JSON_INTEGER_FORMAT " does not fit an exit status; exiting with 1\n",
			status);
		return 1;
	}
	return (int)status;
}

static int print_create(json_t *sandbox, const struct cli *cli)
{
	json_t *list;
	int ret;

	if (cli->quiet) {
		json_t *id = json_object_get(sandbox, "id");

		printf("%s\n", json_is_string(id) ? json_string_value(id) : "-");
		return 0;
	}
	list = json_array();
	if (!list || json_array_append(list, sandbox)) {
		json_decref(list);
		fprintf(stderr, "sbxctl: out of memory printing the sandbox\n");
		return 1;
	}
	ret = fmt_sandbox_table(stdout, list, now_ms());
	json_decref(list);
	if (ret) {
		fprintf(stderr, "sbxctl: out of memory printing the sandbox\n");
		return 1;
	}
	return 0;
}

static int print_list(json_t *root)
{
	json_t *list = json_object_get(root, "sandboxes");

	if (!json_is_array(list)) {
		fprintf(stderr,
			"sbxctl: sbxd's list response has no \"sandboxes\" array\n");
		return 1;
	}
	if (fmt_sandbox_table(stdout, list, now_ms())) {
		fprintf(stderr, "sbxctl: out of memory printing the table\n");
		return 1;
	}
	return 0;
}

/* Print a successful response in the form of @cli's command. */
static int print_result(const struct cli *cli, json_t *root)
{
	if (cli->command == CLI_EXEC)
		return print_exec_result(root, cli->json);
	if (cli->json)
		return 0;

	switch (cli->command) {
	case CLI_CREATE:
		return print_create(root, cli);
	case CLI_LS:
		return print_list(root);
	case CLI_GET:
		fmt_sandbox_detail(stdout, root, now_ms());
		return 0;
	case CLI_STOP:
	case CLI_KILL:
	case CLI_PAUSE:
	case CLI_RESUME:
	case CLI_CHECKPOINT:
		fmt_sandbox_summary(stdout, root);
		return 0;
	case CLI_SNAPSHOT:
		fmt_snapshot(stdout, cli->id, root);
		return 0;
	case CLI_RESTORE_DRAINED:
		fmt_restore_drained(stdout, root);
		return 0;
	case CLI_NODE:
		fmt_node(stdout, root);
		return 0;
	case CLI_FORCE_STOP:
		fmt_force_stop(stdout, root);
		return 0;
	default:
		return 0;
	}
}

static int handle_response(const struct cli *cli,
			   const struct http_response *resp)
{
	json_error_t error;
	json_t *root;
	int status;

	if (resp->status < 200 || resp->status > 299) {
		status = cli->command == CLI_EXEC ? guest_exit_code(resp) : -1;
		if (status >= 0) {
			fprintf(stderr, "sbxctl: the guest exited with code %d "
				"and its sandbox ended\n", status);
			return status;
		}
		report_http_error(resp);
		return 1;
	}
	root = json_loads(resp->body ? resp->body : "", 0, &error);
	if (!root) {
		fprintf(stderr,
			"sbxctl: sbxd returned HTTP %d with a body that is not JSON: %s\n",
			resp->status, error.text);
		return 1;
	}
	if (cli->json)
		fmt_pretty_json(stdout, resp->body);
	status = print_result(cli, root);
	json_decref(root);
	return status;
}

int cmd_run(const struct cli *cli)
{
	struct http_response resp;
	struct ctl_request req;
	struct ctl_addr addr;
	char cwd[PATH_MAX];
	char err[1024];
	int ret, status;

	status = resolve_address(cli, &addr);
	if (status)
		return status;

	ret = request_build(cli, getcwd(cwd, sizeof(cwd)), &req, err,
			   sizeof(err));
	if (ret) {
		fprintf(stderr, "sbxctl: %s\n", err);
		status = ret == -EINVAL ? 2 : 1;
		goto free_request;
	}

	if (cli->command == CLI_NODE && cli->watch) {
		status = watch_run(cli, &addr, &req);
		goto free_request;
	}

	http_response_init(&resp);
	ret = exchange(&addr, &req, &resp);
	status = ret ? 1 : handle_response(cli, &resp);
	http_response_free(&resp);
free_request:
	request_free(&req);
	return status;
}
