// SPDX-License-Identifier: MIT
/*
 * sbxctl argument parsing, the requests built from it, and the choice of
 * the socket address. Pure functions: no server, no environment reads.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "ctl/addr.h"
#include "ctl/cli.h"
#include "ctl/request.h"

#define ARGC(argv) ((int)(sizeof(argv) / sizeof((argv)[0])))

static char err[1024];

/* Parse and expect success. */
static void parse_ok(int argc, char **argv, struct cli *cli)
{
	int ret = cli_parse(argc, argv, cli, err, sizeof(err));

	cr_assert_eq(ret, 0, "cli_parse failed: %d (%s)", ret, err);
}

/* Parse, expect a usage error and return its message. */
static const char *parse_usage_error(int argc, char **argv)
{
	struct cli cli;
	int ret = cli_parse(argc, argv, &cli, err, sizeof(err));

	cli_free(&cli);
	cr_assert_eq(ret, -EINVAL, "expected a usage error, got %d", ret);
	cr_assert_neq(err[0], '\0', "usage error without a message");
	return err;
}

Test(cli, create_options)
{
	char *argv[] = { "sbxctl", "create", "--memory-mib", "64",
			 "--guest=/bin/g", "--args", "a b", "--boot-delay-ms",
			 "250", "--ignore-stop", "--meta", "team=red",
			 "--meta", "job=7", "-q" };
	struct cli cli;

	parse_ok(ARGC(argv), argv, &cli);
	cr_assert_eq(cli.command, CLI_CREATE);
	cr_assert_eq(cli.memory_mib, 64);
	cr_assert_str_eq(cli.guest, "/bin/g");
	cr_assert_str_eq(cli.args, "a b");
	cr_assert_eq(cli.boot_delay_ms, 250);
	cr_assert(cli.ignore_stop);
	cr_assert(cli.quiet);
	cr_assert_eq(cli.meta_count, 2);
	cr_assert_str_eq(cli.meta[0], "team=red");
	cr_assert_str_eq(cli.meta[1], "job=7");
	cli_free(&cli);
}

Test(cli, defaults_unset)
{
	char *argv[] = { "sbxctl", "create" };
	struct cli cli;

	parse_ok(ARGC(argv), argv, &cli);
	cr_assert_eq(cli.memory_mib, CLI_UNSET);
	cr_assert_eq(cli.boot_delay_ms, CLI_UNSET);
	cr_assert_null(cli.guest);
	cr_assert_not(cli.ignore_stop);
	cli_free(&cli);
}

Test(cli, global_options_both_places)
{
	char *before[] = { "sbxctl", "--socket", "/tmp/s", "--json", "ls" };
	char *after[] = { "sbxctl", "ls", "--json", "--socket=/tmp/s" };
	struct cli cli;

	parse_ok(ARGC(before), before, &cli);
	cr_assert_eq(cli.command, CLI_LS);
	cr_assert(cli.json);
	cr_assert_str_eq(cli.socket, "/tmp/s");
	cli_free(&cli);

	parse_ok(ARGC(after), after, &cli);
	cr_assert_eq(cli.command, CLI_LS);
	cr_assert(cli.json);
	cr_assert_str_eq(cli.socket, "/tmp/s");
	cli_free(&cli);
}

Test(cli, exec_with_double_dash)
{
	char *argv[] = { "sbxctl", "exec", "sb-1", "--timeout-ms", "500", "--",
			 "echo", "--json", "x" };
	struct cli cli;

	parse_ok(ARGC(argv), argv, &cli);
	cr_assert_eq(cli.command, CLI_EXEC);
	cr_assert_str_eq(cli.id, "sb-1");
	cr_assert_eq(cli.timeout_ms, 500);
	cr_assert_not(cli.json, "--json after -- belongs to the command");
	cr_assert_eq(cli.exec_argc, 3);
	cr_assert_str_eq(cli.exec_argv[0], "echo");
	cr_assert_str_eq(cli.exec_argv[1], "--json");
	cli_free(&cli);
}

Test(cli, exec_command_ends_options)
{
	char *argv[] = { "sbxctl", "exec", "sb-1", "echo", "--timeout-ms" };
	struct cli cli;

	parse_ok(ARGC(argv), argv, &cli);
	cr_assert_eq(cli.timeout_ms, CLI_UNSET);
	cr_assert_eq(cli.exec_argc, 2);
	cr_assert_str_eq(cli.exec_argv[1], "--timeout-ms");
	cli_free(&cli);
}

Test(cli, help_forms)
{
	char *flag[] = { "sbxctl", "stop", "--help" };
	char *word[] = { "sbxctl", "help", "node" };
	char *top[] = { "sbxctl", "-h" };
	char *missing_id[] = { "sbxctl", "exec", "-h" };
	struct cli cli;

	parse_ok(ARGC(flag), flag, &cli);
	cr_assert(cli.help);
	cr_assert_eq(cli.help_topic, CLI_STOP);
	cli_free(&cli);

	parse_ok(ARGC(word), word, &cli);
	cr_assert_eq(cli.command, CLI_HELP);
	cr_assert_eq(cli.help_topic, CLI_NODE);
	cli_free(&cli);

	parse_ok(ARGC(top), top, &cli);
	cr_assert(cli.help);
	cr_assert_eq(cli.help_topic, CLI_NONE);
	cli_free(&cli);

	parse_ok(ARGC(missing_id), missing_id, &cli);
	cr_assert_eq(cli.help_topic, CLI_EXEC);
	cli_free(&cli);
}

Test(cli, node_watch_and_version)
{
	char *watch[] = { "sbxctl", "node", "-w" };
	char *version[] = { "sbxctl", "--version" };
	struct cli cli;

	parse_ok(ARGC(watch), watch, &cli);
	cr_assert(cli.watch);
	cli_free(&cli);

	parse_ok(ARGC(version), version, &cli);
	cr_assert_eq(cli.command, CLI_VERSION);
	cli_free(&cli);
}

Test(cli, node_watch_options)
{
	char *given[] = { "sbxctl", "node", "--watch", "--instance",
			  "itest-1.a_b", "--interval", "2s" };
	char *defaults[] = { "sbxctl", "node", "-w" };
	struct cli cli;

	parse_ok(ARGC(given), given, &cli);
	cr_assert(cli.watch);
	cr_assert_str_eq(cli.instance, "itest-1.a_b");
	cr_assert_eq(cli.interval_ms, 2000);
	cli_free(&cli);

	parse_ok(ARGC(defaults), defaults, &cli);
	cr_assert_null(cli.instance);
	cr_assert_eq(cli.interval_ms, CLI_UNSET);
	cli_free(&cli);
}

Test(cli, interval_units)
{
	static const struct {
		const char *text;
		long long ms;
	} cases[] = {
		{ "1ms", 1 },	     { "150ms", 150 },	   { "2s", 2000 },
		{ "1m", 60000 },     { "1h", 3600000 },	   { "007s", 7000 },
		{ "2147483647ms", 2147483647LL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char option[64];
		char *argv[] = { "sbxctl", "node", "-w", option };
		struct cli cli;

		snprintf(option, sizeof(option), "--interval=%s",
			 cases[i].text);
		parse_ok(ARGC(argv), argv, &cli);
		cr_assert_eq(cli.interval_ms, cases[i].ms, "%s: %lld ms",
			     cases[i].text, cli.interval_ms);
		cli_free(&cli);
	}
}

Test(cli, node_watch_usage_errors)
{
	static const char *const bad_intervals[] = {
		"0ms", "0", "5", "1.5s", "2d", "ms", "-1s", "", "2147483648ms",
		"99999999999999999999s", "1000h",
	};
	char *no_watch_instance[] = { "sbxctl", "node", "--instance", "x" };
	char *no_watch_interval[] = { "sbxctl", "node", "--interval", "1s" };
	char *slash[] = { "sbxctl", "node", "-w", "--instance", "a/b" };
	char *dots[] = { "sbxctl", "node", "-w", "--instance", ".." };
	char *empty[] = { "sbxctl", "node", "-w", "--instance=" };

	for (size_t i = 0; i < sizeof(bad_intervals) / sizeof(bad_intervals[0]);
	     i++) {
		char *argv[] = { "sbxctl", "node", "-w", "--interval",
				 (char *)bad_intervals[i] };
		char want[64];

		snprintf(want, sizeof(want), "'%s' for --interval",
			 bad_intervals[i]);
		cr_assert(strstr(parse_usage_error(ARGC(argv), argv), want),
			  "%s: %s", bad_intervals[i], err);
	}
	cr_assert(strstr(parse_usage_error(ARGC(no_watch_instance),
					   no_watch_instance),
			 "--instance needs --watch"), "%s", err);
	cr_assert(strstr(parse_usage_error(ARGC(no_watch_interval),
					   no_watch_interval),
			 "--interval needs --watch"), "%s", err);
	cr_assert(strstr(parse_usage_error(ARGC(slash), slash),
			 "'a/b' for --instance"), "%s", err);
	cr_assert(strstr(parse_usage_error(ARGC(dots), dots),
			 "'..' for --instance"), "%s", err);
	cr_assert(strstr(parse_usage_error(ARGC(empty), empty),
			 "'' for --instance"), "%s", err);
}

Test(cli, usage_errors)
{
	char *none[] = { "sbxctl" };
	char *unknown[] = { "sbxctl", "frobnicate" };
	char *bad_int[] = { "sbxctl", "create", "--memory-mib", "12x" };
	char *zero_mem[] = { "sbxctl", "create", "--memory-mib", "0" };
	char *negative[] = { "sbxctl", "stop", "sb", "--grace-ms", "-1" };
	char *huge[] = { "sbxctl", "stop", "sb", "--grace-ms", "9999999999" };
	char *no_value[] = { "sbxctl", "create", "--guest" };
	char *flag_value[] = { "sbxctl", "create", "--ignore-stop=yes" };
	char *wrong_cmd_opt[] = { "sbxctl", "ls", "--watch" };
	char *no_id[] = { "sbxctl", "get" };
	char *extra[] = { "sbxctl", "get", "a", "b" };
	char *no_cmd[] = { "sbxctl", "exec", "sb-1", "--" };
	char *bad_meta[] = { "sbxctl", "create", "--meta", "=v" };
	char *dup_meta[] = { "sbxctl", "create", "--meta", "k=1", "--meta",
			     "k=2" };
	char *single_dash[] = { "sbxctl", "ls", "-json" };
	char *help_unknown[] = { "sbxctl", "help", "nope" };

	cr_assert(strstr(parse_usage_error(ARGC(none), none), "missing"));
	cr_assert(strstr(parse_usage_error(ARGC(unknown), unknown),
			 "'frobnicate'"));
	cr_assert(strstr(parse_usage_error(ARGC(bad_int), bad_int), "'12x'"));
	cr_assert(strstr(parse_usage_error(ARGC(zero_mem), zero_mem),
			 "--memory-mib"));
	cr_assert(strstr(parse_usage_error(ARGC(negative), negative),
			 "--grace-ms"));
	cr_assert(strstr(parse_usage_error(ARGC(huge), huge), "9999999999"));
	cr_assert(strstr(parse_usage_error(ARGC(no_value), no_value),
			 "needs a value"));
	cr_assert(strstr(parse_usage_error(ARGC(flag_value), flag_value),
			 "takes no value"));
	cr_assert(strstr(parse_usage_error(ARGC(wrong_cmd_opt), wrong_cmd_opt),
			 "'--watch'"));
	cr_assert(strstr(parse_usage_error(ARGC(no_id), no_id), "ID"));
	cr_assert(strstr(parse_usage_error(ARGC(extra), extra), "'b'"));
	cr_assert(strstr(parse_usage_error(ARGC(no_cmd), no_cmd),
			 "needs a command"));
	cr_assert(strstr(parse_usage_error(ARGC(bad_meta), bad_meta), "=v"));
	cr_assert(strstr(parse_usage_error(ARGC(dup_meta), dup_meta),
			 "'k'"));
	cr_assert(strstr(parse_usage_error(ARGC(single_dash), single_dash),
			 "'-json'"));
	cr_assert(strstr(parse_usage_error(ARGC(help_unknown), help_unknown),
			 "'nope'"));
}

/* Build the request for argv and return it; the caller frees it. */
static void build(int argc, char **argv, const char *cwd,
		  struct ctl_request *req)
{
	struct cli cli;
	int ret;

	parse_ok(argc, argv, &cli);
	ret = request_build(&cli, cwd, req, err, sizeof(err));
	cli_free(&cli);
	cr_assert_eq(ret, 0, "request_build failed: %d (%s)", ret, err);
}

Test(request, create_sends_only_given_fields)
{
	char *bare[] = { "sbxctl", "create" };
	char *full[] = { "sbxctl", "create", "--memory-mib", "32", "--guest",
			 "guests/g.elf", "--args", "x", "--boot-delay-ms", "5",
			 "--ignore-stop", "--meta", "a=1", "--meta", "b=c=d" };
	struct ctl_request req;

	build(ARGC(bare), bare, "/home/u", &req);
	cr_assert_str_eq(req.method, "POST");
	cr_assert_str_eq(req.path, "/v1/sandboxes");
	cr_assert_str_eq(req.body, "{}");
	request_free(&req);

	build(ARGC(full), full, "/home/u", &req);
	cr_assert_str_eq(req.body,
			 "{\"memory_mib\":32,\"guest\":\"/home/u/guests/g.elf\","
			 "\"args\":\"x\",\"boot_delay_ms\":5,"
			 "\"ignore_stop\":true,"
			 "\"metadata\":{\"a\":\"1\",\"b\":\"c=d\"}}");
	request_free(&req);
}

Test(request, exec_joins_words)
{
	char *argv[] = { "sbxctl", "exec", "sb-1", "--timeout-ms", "0", "--",
			 "echo", "hello", "\"world\"" };
	struct ctl_request req;

	build(ARGC(argv), argv, "/", &req);
	cr_assert_str_eq(req.method, "POST");
	cr_assert_str_eq(req.path, "/v1/sandboxes/sb-1/exec");
	cr_assert_str_eq(req.body,
			 "{\"command\":\"echo hello \\\"world\\\"\","
			 "\"timeout_ms\":0}");
	request_free(&req);
}

Test(request, paths_and_methods)
{
	char *get[] = { "sbxctl", "get", "a/b c" };
	char *kill[] = { "sbxctl", "kill", "sb-9" };
	char *stop[] = { "sbxctl", "stop", "sb-9", "--grace-ms", "100" };
	char *stop_default[] = { "sbxctl", "stop", "sb-9" };
	char *node[] = { "sbxctl", "node" };
	char *force[] = { "sbxctl", "force-stop" };
	char *ls[] = { "sbxctl", "ls" };
	struct ctl_request req;

	build(ARGC(get), get, "/", &req);
	cr_assert_str_eq(req.method, "GET");
	cr_assert_str_eq(req.path, "/v1/sandboxes/a%2Fb%20c");
	cr_assert_null(req.body);
	request_free(&req);

	build(ARGC(kill), kill, "/", &req);
	cr_assert_str_eq(req.method, "DELETE");
	cr_assert_str_eq(req.path, "/v1/sandboxes/sb-9");
	request_free(&req);

	build(ARGC(stop), stop, "/", &req);
	cr_assert_str_eq(req.path, "/v1/sandboxes/sb-9/stop");
	cr_assert_str_eq(req.body, "{\"grace_ms\":100}");
	request_free(&req);

	build(ARGC(stop_default), stop_default, "/", &req);
	cr_assert_str_eq(req.body, "{}");
	request_free(&req);

	build(ARGC(node), node, "/", &req);
	cr_assert_str_eq(req.method, "GET");
	cr_assert_str_eq(req.path, "/v1/node");
	request_free(&req);

	build(ARGC(force), force, "/", &req);
	cr_assert_str_eq(req.method, "POST");
	cr_assert_str_eq(req.path, "/v1/node/force-stop");
	request_free(&req);

	build(ARGC(ls), ls, "/", &req);
	cr_assert_str_eq(req.path, "/v1/sandboxes");
	request_free(&req);
}

Test(request, invalid_utf8_rejected)
{
	char *argv[] = { "sbxctl", "exec", "sb-1", "echo", "\xff\xfe" };
	struct ctl_request req;
	struct cli cli;
	int ret;

	parse_ok(ARGC(argv), argv, &cli);
	ret = request_build(&cli, "/", &req, err, sizeof(err));
	cli_free(&cli);
	request_free(&req);
	cr_assert_eq(ret, -EINVAL);
	cr_assert(strstr(err, "UTF-8"), "message: %s", err);
}

Test(request, relative_guest_without_cwd)
{
	char *argv[] = { "sbxctl", "create", "--guest", "g.elf" };
	struct ctl_request req;
	struct cli cli;
	int ret;

	parse_ok(ARGC(argv), argv, &cli);
	ret = request_build(&cli, NULL, &req, err, sizeof(err));
	cli_free(&cli);
	request_free(&req);
	cr_assert_eq(ret, -EINVAL);
	cr_assert(strstr(err, "g.elf"), "message: %s", err);
}

static const struct addr_env no_env = { 0 };

Test(addr, order_of_sources)
{
	struct addr_env env = {
		.sbxd_socket = "/e/sock",
		.state_dir = "/state/",
		.runtime_dir = "/run/user/1000",
		.root = true,
	};
	struct ctl_addr addr;

	cr_assert_eq(addr_resolve("/f/sock", &env, &addr, err, sizeof(err)),
		     0);
	cr_assert_str_eq(addr.text, "unix:/f/sock");
	cr_assert_eq(addr.source, ADDR_FROM_FLAG);

	cr_assert_eq(addr_resolve(NULL, &env, &addr, err, sizeof(err)), 0);
	cr_assert_str_eq(addr.text, "unix:/e/sock");
	cr_assert_eq(addr.source, ADDR_FROM_ENV);

	env.sbxd_socket = "";
	cr_assert_eq(addr_resolve(NULL, &env, &addr, err, sizeof(err)), 0);
	cr_assert_str_eq(addr.text, "unix:/state/sbxd.sock");
	cr_assert_eq(addr.source, ADDR_FROM_STATE_DIR);

	env.state_dir = NULL;
	cr_assert_eq(addr_resolve(NULL, &env, &addr, err, sizeof(err)), 0);
	cr_assert_str_eq(addr.text, "unix:/run/sbxd/sbxd.sock");
	cr_assert_eq(addr.source, ADDR_FROM_ROOT_DEFAULT);

	env.root = false;
	cr_assert_eq(addr_resolve(NULL, &env, &addr, err, sizeof(err)), 0);
	cr_assert_str_eq(addr.text, "unix:/run/user/1000/sbxd/sbxd.sock");
	cr_assert_eq(addr.source, ADDR_FROM_USER_DEFAULT);
}

Test(addr, user_without_runtime_dir)
{
	struct ctl_addr addr;

	cr_assert_eq(addr_resolve(NULL, &no_env, &addr, err, sizeof(err)),
		     -ENOENT);
	cr_assert(strstr(err, "XDG_RUNTIME_DIR"), "message: %s", err);
	cr_assert(strstr(err, "--socket"), "message: %s", err);
}

Test(addr, tcp_forms)
{
	struct ctl_addr addr;

	cr_assert_eq(addr_parse("tcp:127.0.0.1:8080", &addr, err, sizeof(err)),
		     0);
	cr_assert_eq(addr.sa.ss_family, AF_INET);
	cr_assert_str_eq(addr.text, "tcp:127.0.0.1:8080");

	cr_assert_eq(addr_parse("tcp:[::1]:9", &addr, err, sizeof(err)), 0);
	cr_assert_eq(addr.sa.ss_family, AF_INET6);

	cr_assert_eq(addr_parse("unix:/x/y", &addr, err, sizeof(err)), 0);
	cr_assert_eq(addr.sa.ss_family, AF_UNIX);
	cr_assert_str_eq(addr.text, "unix:/x/y");
}

Test(addr, malformed)
{
	static const char *const bad[] = {
		"tcp:127.0.0.1",	"tcp:127.0.0.1:0",
		"tcp:127.0.0.1:65536",	"tcp:127.0.0.1:-1",
		"tcp:localhost:80",	"tcp:[::1]80",
		"tcp::80",		"unix:",
	};
	struct ctl_addr addr;
	char long_path[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(addr_parse(bad[i], &addr, err, sizeof(err)),
			     -EINVAL, "accepted '%s'", bad[i]);
		cr_assert_neq(err[0], '\0', "no message for '%s'", bad[i]);
	}

	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	cr_assert_eq(addr_parse(long_path, &addr, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "longer than"), "message: %s", err);
}

Test(addr, env_error_names_source)
{
	struct addr_env env = { .sbxd_socket = "tcp:nohost:1" };
	struct ctl_addr addr;

	cr_assert_eq(addr_resolve(NULL, &env, &addr, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "SBXD_SOCKET"), "message: %s", err);
}
