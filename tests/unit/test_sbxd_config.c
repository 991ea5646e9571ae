// SPDX-License-Identifier: MIT
/*
 * Unit tests of sbxd's configuration: durations, listen addresses, flags
 * over environment variables, and the default --max-sandboxes formula.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbxd/config.h"

static const char *const config_env[] = {
	"SBXD_STATE_DIR", "SBXD_LISTEN", "SBXD_INSTANCE", "SBXD_GATE",
	"SHUTDOWN_DRAIN_TIMEOUT", "SHUTDOWN_FORCE_TIMEOUT", "FORCE_STOP",
	"SBXD_DRAIN_POLL", "SBXD_STOP_GRACE", "SBXD_MAX_SANDBOXES", "SBXD_VMM",
	"SBXD_GUEST", "SBXD_MAX_CONNECTIONS", "SBXD_REQUEST_TIMEOUT",
	"SBXD_IDLE_TIMEOUT", "SBXD_MAX_REQUESTS", "SBXD_LOG_LEVEL",
	"SHUTDOWN_DRAIN_POLICY", "SBXD_RESTORE_DRAINED",
};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof(config_env) / sizeof(*config_env); i++)
		unsetenv(config_env[i]);
}

TestSuite(config, .init = clear_env, .fini = clear_env);

static int parse(struct config *cfg, char *err, size_t errlen, int argc,
		 char **argv)
{
	config_init(cfg);
	return config_parse(cfg, argc, argv, err, errlen);
}

Test(config, duration_units)
{
	static const struct {
		const char *text;
		uint64_t ms;
	} good[] = {
		{ "0", 0 }, { "0s", 0 }, { "1ms", 1 }, { "500ms", 500 },
		{ "30s", 30000 }, { "5m", 300000 }, { "1h", 3600000 },
		{ "25h", 90000000 },
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		uint64_t ms = 12345;

		cr_assert_eq(config_parse_duration(good[i].text, &ms), 0,
			     "\"%s\" rejected", good[i].text);
		cr_assert_eq(ms, good[i].ms, "\"%s\" gave %llu ms",
			     good[i].text, (unsigned long long)ms);
	}
}

Test(config, duration_rejects_bad)
{
	static const char *const bad[] = {
		"", "5", "abc", "ms", "-1s", "1.5s", "10x", "1 s", " 1s",
		"1sec", "1S", "99999999999999999999h", "5124095576030432h",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		uint64_t ms = 777;

		cr_assert_eq(config_parse_duration(bad[i], &ms), -EINVAL,
			     "\"%s\" accepted", bad[i]);
		cr_assert_eq(ms, 777, "\"%s\" changed the output", bad[i]);
	}
}

Test(config, defaults)
{
	struct config cfg;
	char err[256];
	char *argv[] = { "sbxd", NULL };

	cr_assert_eq(parse(&cfg, err, sizeof(err), 1, argv), CONFIG_RUN);
	cr_assert_str_eq(cfg.instance, "default");
	cr_assert_not(cfg.drain_timeout_set);
	cr_assert_eq(cfg.force_timeout_ms, 30000);
	cr_assert_eq(cfg.drain_poll_ms, 10);
	cr_assert_eq(cfg.stop_grace_ms, 10000);
	cr_assert_eq(cfg.max_connections, 256);
	cr_assert_eq(cfg.request_timeout_ms, 10000);
	cr_assert_eq(cfg.idle_timeout_ms, 60000);
	cr_assert_eq(cfg.gate, GATE_BACKEND_AUTO);
	cr_assert_not(cfg.force_stop);
	cr_assert_eq(cfg.nlisten, 0);
	cr_assert_eq(cfg.max_sandboxes, 0, "resolved later from MemTotal");
}

Test(config, flags_and_forms)
{
	struct config cfg;
	char err[256];
	char *argv[] = {
		"sbxd", "--drain-timeout", "0", "--force-timeout=5s",
		"--force-stop", "--gate", "memfd", "--max-sandboxes", "7",
		"--instance", "test-1", "--state-dir", "/tmp/x",
		"--listen", "tcp:127.0.0.1:8080", "--log-level=debug", NULL,
	};

	cr_assert_eq(parse(&cfg, err, sizeof(err), 16, argv), CONFIG_RUN,
		     "%s", err);
	cr_assert(cfg.drain_timeout_set);
	cr_assert_eq(cfg.drain_timeout_ms, 0);
	cr_assert_eq(cfg.force_timeout_ms, 5000);
	cr_assert(cfg.force_stop);
	cr_assert_eq(cfg.gate, GATE_BACKEND_MEMFD);
	cr_assert_eq(cfg.max_sandboxes, 7);
	cr_assert_str_eq(cfg.instance, "test-1");
	cr_assert_str_eq(cfg.state_dir, "/tmp/x");
	cr_assert_eq(cfg.nlisten, 1);
	cr_assert_eq(cfg.listen[0].family, AF_INET);
	cr_assert_eq(cfg.log_level, LOG_LEVEL_DEBUG);
}

Test(config, env_then_flags_win)
{
	struct config cfg;
	char err[256];
	char *argv[] = { "sbxd", "--stop-grace", "2s", NULL };

	setenv("SBXD_STOP_GRACE", "7s", 1);
	setenv("SHUTDOWN_DRAIN_TIMEOUT", "1m", 1);
	setenv("FORCE_STOP", "1", 1);
	setenv("SBXD_LISTEN", "tcp:127.0.0.1:1,unix:/tmp/a.sock", 1);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 3, argv), CONFIG_RUN,
		     "%s", err);
	cr_assert_eq(cfg.stop_grace_ms, 2000, "the flag must override");
	cr_assert(cfg.drain_timeout_set);
	cr_assert_eq(cfg.drain_timeout_ms, 60000);
	cr_assert(cfg.force_stop);
	cr_assert_eq(cfg.nlisten, 2);
	cr_assert_eq(cfg.listen[1].family, AF_UNIX);
	cr_assert_str_eq(cfg.listen[1].addr.un.sun_path, "/tmp/a.sock");
}

Test(config, force_stop_env_zero)
{
	struct config cfg;
	char err[256];
	char *argv[] = { "sbxd", NULL };

	setenv("FORCE_STOP", "0", 1);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 1, argv), CONFIG_RUN);
	cr_assert_not(cfg.force_stop);
	setenv("FORCE_STOP", "maybe", 1);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 1, argv), -EINVAL);
	cr_assert(strstr(err, "FORCE_STOP"), "message: %s", err);
	cr_assert(strstr(err, "maybe"), "message: %s", err);
}

Test(config, bad_values_name_flag_and_value)
{
	static const struct {
		const char *flag;
		const char *value;
	} bad[] = {
		{ "--drain-timeout", "abc" }, { "--drain-timeout", "5" },
		{ "--force-timeout", "10x" }, { "--stop-grace", "-1s" },
		{ "--drain-poll", "0" }, { "--request-timeout", "ms" },
		{ "--max-sandboxes", "many" }, { "--max-sandboxes", "0" },
		{ "--max-connections", "-1" }, { "--gate", "quantum" },
		{ "--log-level", "loud" }, { "--instance", "a/b" },
		{ "--listen", "tcp:0.0.0.0:80" }, { "--listen", "udp:1" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct config cfg;
		char err[512] = "";
		char *argv[] = { "sbxd", (char *)bad[i].flag,
				 (char *)bad[i].value, NULL };

		cr_assert_eq(parse(&cfg, err, sizeof(err), 3, argv), -EINVAL,
			     "%s %s accepted", bad[i].flag, bad[i].value);
		cr_assert(strstr(err, bad[i].value),
			  "%s %s: message lacks the value: %s", bad[i].flag,
			  bad[i].value, err);
		cr_assert(strstr(err, bad[i].flag),
			  "%s %s: message lacks the flag: %s", bad[i].flag,
			  bad[i].value, err);
	}
}

Test(config, env_error_names_variable)
{
	struct config cfg;
	char err[512];
	char *argv[] = { "sbxd", NULL };

	setenv("SHUTDOWN_FORCE_TIMEOUT", "1y", 1);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 1, argv), -EINVAL);
	cr_assert(strstr(err, "SHUTDOWN_FORCE_TIMEOUT"), "message: %s", err);
	cr_assert(strstr(err, "--force-timeout"), "message: %s", err);
	cr_assert(strstr(err, "1y"), "message: %s", err);
}

Test(config, unknown_and_missing)
{
	struct config cfg;
	char err[512];
	char *unknown[] = { "sbxd", "--no-such-flag", NULL };
	char *positional[] = { "sbxd", "serve", NULL };
	char *missing[] = { "sbxd", "--stop-grace", NULL };

	cr_assert_eq(parse(&cfg, err, sizeof(err), 2, unknown), -EINVAL);
	cr_assert(strstr(err, "--no-such-flag"), "message: %s", err);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 2, positional), -EINVAL);
	cr_assert(strstr(err, "serve"), "message: %s", err);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 2, missing), -EINVAL);
	cr_assert(strstr(err, "--stop-grace"), "message: %s", err);
}

Test(config, listen_loopback_only)
{
	static const char *const good[] = {
		"tcp:127.0.0.1:8080", "tcp:127.1.2.3:1", "tcp:localhost:65535",
		"tcp:[::1]:9000", "unix:/run/x.sock",
	};
	static const char *const bad[] = {
		"tcp:0.0.0.0:8080", "tcp:10.0.0.1:80", "tcp:[::]:80",
		"tcp:127.0.0.1:0", "tcp:127.0.0.1:65536", "tcp:127.0.0.1",
		"tcp:example.com:80", "unix:relative.sock", "http:x", "",
	};
	struct listen_addr addr;
	char err[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		cr_assert_eq(config_parse_listen(good[i], &addr, err,
						 sizeof(err)), 0,
			     "%s rejected: %s", good[i], err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		cr_assert_eq(config_parse_listen(bad[i], &addr, err,
						 sizeof(err)), -EINVAL,
			     "%s accepted", bad[i]);
	config_parse_listen("tcp:0.0.0.0:8080", &addr, err, sizeof(err));
	cr_assert(strstr(err, "loopback"), "message: %s", err);
}

Test(config, max_sandboxes_formula)
{
	/* 24 GiB: (24576 - 1024) / 17 MiB. */
	cr_assert_eq(config_default_max_sandboxes(24ull * 1024 * 1024), 1385);
	/* 1 GiB keeps half: 512 / 17. */
	cr_assert_eq(config_default_max_sandboxes(1024 * 1024), 30);
	cr_assert_eq(config_default_max_sandboxes(0), 1, "at least one");
	cr_assert_eq(config_default_max_sandboxes(1ull << 40), 4096,
		     "capped at 4096");
}

Test(config, drain_policy)
{
	char *flag[] = { "sbxd", "--drain-policy", "checkpoint",
			 "--restore-drained" };
	char *bad[] = { "sbxd", "--drain-policy", "save" };
	char *none[] = { "sbxd" };
	struct config cfg;
	char err[512];

	cr_assert_eq(parse(&cfg, err, sizeof(err), 1, none), CONFIG_RUN);
	cr_assert_eq(cfg.drain_policy, DRAIN_POLICY_WAIT);
	cr_assert_not(cfg.restore_drained);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 4, flag), CONFIG_RUN, "%s",
		     err);
	cr_assert_eq(cfg.drain_policy, DRAIN_POLICY_CHECKPOINT);
	cr_assert(cfg.restore_drained);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 3, bad), -EINVAL);
	cr_assert(strstr(err, "--drain-policy") && strstr(err, "\"save\""),
		  "message: %s", err);

	setenv("SHUTDOWN_DRAIN_POLICY", "kill", 1);
	setenv("SBXD_RESTORE_DRAINED", "1", 1);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 1, none), CONFIG_RUN, "%s",
		     err);
	cr_assert_eq(cfg.drain_policy, DRAIN_POLICY_KILL);
	cr_assert(cfg.restore_drained);
	cr_assert_not(cfg.force_stop, "the flag set another field");
	setenv("SHUTDOWN_DRAIN_POLICY", "later", 1);
	cr_assert_eq(parse(&cfg, err, sizeof(err), 1, none), -EINVAL);
	cr_assert(strstr(err, "SHUTDOWN_DRAIN_POLICY"), "message: %s", err);
	cr_assert_str_eq(config_drain_policy_name(DRAIN_POLICY_CHECKPOINT),
			 "checkpoint");
}

Test(config, help_fits_80_columns)
{
	char line[512];
	int lines = 0, force_stop = 0, fd, saved;
	FILE *f = tmpfile();

	cr_assert_not_null(f);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = fileno(f);
	cr_assert_geq(dup2(fd, STDOUT_FILENO), 0);
	config_print_help();
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		lines++;
		line[strcspn(line, "\n")] = '\0';
		cr_assert_leq(strlen(line), 80, "help line over 80 columns: "
			      "\"%s\"", line);
		force_stop += strstr(line, "FORCE_STOP") != NULL;
	}
	fclose(f);
	cr_assert_gt(lines, 20);
	cr_assert_eq(force_stop, 1, "FORCE_STOP is named on %d lines",
		     force_stop);
}
