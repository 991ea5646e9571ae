// SPDX-License-Identifier: MIT
/* Command-line parsing and help text of sbxctl. */
#include "cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drainmap.h"

enum opt_kind {
	OPT_FLAG,	/* bool, no value */
	OPT_STRING,	/* const char * */
	OPT_INT,	/* long long, from min to INT32_MAX */
	OPT_META,	/* appended to cli->meta */
	OPT_DURATION,	/* long long ms, from min to INT32_MAX */
};

struct option_spec {
	const char *name;	/* long name without the leading "--" */
	char short_name;	/* 0 when there is none */
	enum opt_kind kind;
	size_t offset;		/* field in struct cli */
	long long min;		/* OPT_INT and OPT_DURATION only */
	/* OPT_INT and OPT_DURATION: what a valid value looks like. */
	const char *value_hint;
	long long max;		/* OPT_INT: 0 means INT32_MAX */
};

#define FIELD(name) offsetof(struct cli, name)

static const struct option_spec global_options[] = {
	{ "socket", 0, OPT_STRING, FIELD(socket), 0, NULL, 0 },
	{ "json", 0, OPT_FLAG, FIELD(json), 0, NULL, 0 },
	{ "help", 'h', OPT_FLAG, FIELD(help), 0, NULL, 0 },
};

static const struct option_spec create_options[] = {
	/* sbxd's range for memory_mib. */
	{ "memory-mib", 0, OPT_INT, FIELD(memory_mib), 4,
	  "a whole number of MiB from 4 to 4096, such as 64", 4096 },
	{ "snapshot", 0, OPT_STRING, FIELD(snapshot), 0, NULL, 0 },
	{ "guest", 0, OPT_STRING, FIELD(guest), 0, NULL, 0 },
	{ "args", 0, OPT_STRING, FIELD(args), 0, NULL, 0 },
	{ "boot-delay-ms", 0, OPT_INT, FIELD(boot_delay_ms), 0,
	  "a whole number of milliseconds, such as 500", 0 },
	{ "ignore-stop", 0, OPT_FLAG, FIELD(ignore_stop), 0, NULL, 0 },
	{ "meta", 0, OPT_META, FIELD(meta), 0, NULL, 0 },
	{ "quiet", 'q', OPT_FLAG, FIELD(quiet), 0, NULL, 0 },
};

static const struct option_spec exec_options[] = {
	{ "timeout-ms", 0, OPT_INT, FIELD(timeout_ms), 0,
	  "a whole number of milliseconds, such as 5000 (0 waits forever)", 0 },
};

static const struct option_spec stop_options[] = {
	{ "grace-ms", 0, OPT_INT, FIELD(grace_ms), 0,
	  "a whole number of milliseconds, such as 10000", 0 },
};

static const struct option_spec snapshot_options[] = {
	{ "overwrite", 0, OPT_FLAG, FIELD(overwrite), 0, NULL, 0 },
};

static const struct option_spec node_options[] = {
	{ "watch", 'w', OPT_FLAG, FIELD(watch), 0, NULL, 0 },
	{ "instance", 0, OPT_STRING, FIELD(instance), 0, NULL, 0 },
	{ "interval", 0, OPT_DURATION, FIELD(interval_ms), 1,
	  "a duration of at least 1ms, such as 200ms, 2s or 1m", 0 },
};

struct command_spec {
	const char *name;
	enum cli_command command;
	const struct option_spec *options;
	size_t option_count;
	bool takes_id;
	bool takes_path;	/* an optional PATH after the ID */
	const char *synopsis;	/* what follows "sbxctl NAME" */
	const char *summary;
	const char *details;	/* option list and notes, may be NULL */
};

#define OPTIONS(list) list, sizeof(list) / sizeof((list)[0])

static const struct command_spec commands[] = {
	{ "create", CLI_CREATE, OPTIONS(create_options), false, false,
	  "[--memory-mib N] [--guest PATH] [--args S] [--boot-delay-ms N]\n"
	  "              [--ignore-stop] [--snapshot PATH] [--meta KEY=VALUE]...\n"
	  "              [--quiet]",
	  "Start a sandbox and wait until its guest is ready.",
	  "  --memory-mib N     guest RAM in MiB (server default: 16)\n"
	  "  --guest PATH       guest ELF to run (server default: sbx-agent);\n"
	  "                     a relative PATH is taken from the current\n"
	  "                     directory\n"
	  "  --args S           argument string handed to the guest\n"
	  "  --boot-delay-ms N  make the guest wait N ms before it reports\n"
	  "                     ready, to test slow starts\n"
	  "  --ignore-stop      make the guest ignore graceful stop requests,\n"
	  "                     to test forced stops\n"
	  "  --snapshot PATH    restore a snapshot file instead of booting; the\n"
	  "                     file sets the guest, its memory and arguments,\n"
	  "                     so only --meta and --quiet go with it\n"
	  "  --meta KEY=VALUE   attach metadata; repeat for more keys\n"
	  "  -q, --quiet        print only the new sandbox's ID\n" },
	{ "ls", CLI_LS, NULL, 0, false, false, "",
	  "List sandboxes: ID STATE PID MEM READY_MS AGE.", NULL },
	{ "get", CLI_GET, NULL, 0, true, false, "ID", "Show one sandbox.", NULL },
	{ "exec", CLI_EXEC, OPTIONS(exec_options), true, false,
	  "ID [--timeout-ms N] [--] CMD [ARG...]",
	  "Run a command in a sandbox; exit with its exit code.",
	  "  --timeout-ms N  give up on the command after N ms\n"
	  "\n"
	  "CMD and its ARGs are joined with spaces. Options end at \"--\" or at\n"
	  "CMD, whichever comes first. sbx-agent runs: echo ARGS, sleep MS,\n"
	  "spin MS, touch MIB, counter, exit CODE, crash.\n" },
	{ "stop", CLI_STOP, OPTIONS(stop_options), true, false, "ID [--grace-ms N]",
	  "Ask the guest to stop; kill it if it has not stopped in time.",
	  "  --grace-ms N  how long to wait before the kill\n"
	  "                (server default: 10000)\n" },
	{ "kill", CLI_KILL, NULL, 0, true, false, "ID",
	  "Kill a sandbox now (HTTP DELETE).", NULL },
	{ "pause", CLI_PAUSE, NULL, 0, true, false, "ID",
	  "Stop a sandbox's vCPU; it keeps its memory and uses no CPU.",
	  NULL },
	{ "resume", CLI_RESUME, NULL, 0, true, false, "ID",
	  "Let a paused sandbox run again.", NULL },
	{ "snapshot", CLI_SNAPSHOT, OPTIONS(snapshot_options), true, true,
	  "ID [PATH] [--overwrite]",
	  "Save a sandbox to a snapshot file; a running one runs on.",
	  "  --overwrite  replace an existing file at PATH\n"
	  "\n"
	  "PATH must be in an existing directory on the file system of sbxd's\n"
	  "state directory; a relative PATH is taken from the current\n"
	  "directory. Without PATH, sbxd saves to the sandbox's directory,\n"
	  "which is removed with the sandbox. Restore with\n"
	  "'sbxctl create --snapshot PATH'.\n" },
	{ "checkpoint", CLI_CHECKPOINT, NULL, 0, true, false, "ID",
	  "Move a sandbox into a new VMM process; it keeps its ID and memory.",
	  NULL },
	{ "node", CLI_NODE, OPTIONS(node_options), false, false,
	  "[--watch [--instance NAME] [--interval DUR]]",
	  "Show the node's state and counters.",
	  "  -w, --watch      show one status line, redrawn in place on a\n"
	  "                   terminal, until sbxd exits or Ctrl-C. Reads\n"
	  "                   sbxd's pinned BPF map of the drain state where\n"
	  "                   it can (as root), else polls GET /v1/node\n"
	  "  --instance NAME  sbxd instance whose map to read (default:\n"
	  "                   $SBXD_INSTANCE, else \"default\")\n"
	  "  --interval DUR   time between reads: 500ms, 2s, 1m or 1h\n"
	  "                   (default: 500ms)\n" },
	{ "force-stop", CLI_FORCE_STOP, NULL, 0, false, false, "",
	  "Force-stop every live sandbox; safe to repeat.", NULL },
	{ "restore-drained", CLI_RESTORE_DRAINED, NULL, 0, false, false, "",
	  "Restore the sandboxes that a checkpoint drain saved.",
	  "sbxd restores every sandbox listed in STATE_DIR/drained.json under\n"
	  "its old ID, and prints those restored and those that failed.\n" },
	{ "help", CLI_HELP, NULL, 0, false, false, "[COMMAND]",
	  "Show help for a command.", NULL },
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static const struct command_spec *find_command(const char *name)
{
	for (size_t i = 0; i < COMMAND_COUNT; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static const struct command_spec *command_spec_of(enum cli_command command)
{
	for (size_t i = 0; i < COMMAND_COUNT; i++)
		if (commands[i].command == command)
			return &commands[i];
	return NULL;
}

const char *cli_command_name(enum cli_command command)
{
	const struct command_spec *spec = command_spec_of(command);

	return spec ? spec->name : "";
}

static const struct option_spec *
find_in(const struct option_spec *list, size_t count, const char *name,
	size_t name_len, char short_name)
{
	for (size_t i = 0; i < count; i++) {
		if (short_name) {
			if (list[i].short_name == short_name)
				return &list[i];
		} else if (strlen(list[i].name) == name_len &&
			   strncmp(list[i].name, name, name_len) == 0) {
			return &list[i];
		}
	}
	return NULL;
}

static const struct option_spec *find_option(const struct command_spec *cmd,
					     const char *name,
					     size_t name_len, char short_name)
{
	const struct option_spec *opt = NULL;

	if (cmd)
		opt = find_in(cmd->options, cmd->option_count, name, name_len,
			      short_name);
	if (!opt)
		opt = find_in(global_options,
			      sizeof(global_options) / sizeof(global_options[0]),
			      name, name_len, short_name);
	return opt;
}

static int parse_int(const struct option_spec *opt, const char *text,
		     long long *out, char *err, size_t err_len)
{
	char *end;
	long long value;

	errno = 0;
	value = strtoll(text, &end, 10);
	if (*text < '0' || *text > '9' || *end || errno ||
	    value < opt->min || value > (opt->max ? opt->max : INT32_MAX)) {
		snprintf(err, err_len, "invalid value '%s' for --%s: use %s",
			 text, opt->name, opt->value_hint);
		return -EINVAL;
	}
	*out = value;
	return 0;
}

/* Parse DIGITS followed by ms, s, m or h, the duration form of sbxd. */
static int parse_duration(const struct option_spec *opt, const char *text,
			  long long *out, char *err, size_t err_len)
{
	long long value = 0, scale;
	const char *p = text;

	while (*p >= '0' && *p <= '9' && value <= INT32_MAX) {
		value = value * 10 + (*p - '0');
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
	else
		scale = 0;

	/* value stops growing past INT32_MAX, so the product cannot overflow. */
	if (p == text || !scale || value * scale < opt->min ||
	    value * scale > INT32_MAX) {
		snprintf(err, err_len, "invalid value '%s' for --%s: use %s",
			 text, opt->name, opt->value_hint);
		return -EINVAL;
	}
	*out = value * scale;
	return 0;
}

static int add_meta(struct cli *cli, const char *text, char *err,
		    size_t err_len)
{
	const char *eq = strchr(text, '=');
	const char **grown;
	size_t key_len;

	if (!eq || eq == text) {
		snprintf(err, err_len,
			 "invalid value '%s' for --meta: use KEY=VALUE with a non-empty KEY",
			 text);
		return -EINVAL;
	}
	key_len = (size_t)(eq - text);
	for (size_t i = 0; i < cli->meta_count; i++) {
		if (strncmp(cli->meta[i], text, key_len + 1) == 0) {
			snprintf(err, err_len,
				 "metadata key '%.*s' is given twice; give each key once",
				 (int)key_len, text);
			return -EINVAL;
		}
	}

	grown = realloc(cli->meta, (cli->meta_count + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	cli->meta = grown;
	cli->meta[cli->meta_count++] = text;
	return 0;
}

/*
 * Apply the option in argv[*i]; an option that takes a value consumes
 * argv[*i + 1] unless the value was given as --name=value.
 */
static int apply_option(struct cli *cli, const struct command_spec *cmd,
			int argc, char **argv, int *i, char *err,
			size_t err_len)
{
	const char *arg = argv[*i];
	const struct option_spec *opt;
	const char *name, *value = NULL;
	size_t name_len;
	char short_name = 0;
	char *field;

	if (arg[1] == '-') {
		const char *eq;

		name = arg + 2;
		eq = strchr(name, '=');
		name_len = eq ? (size_t)(eq - name) : strlen(name);
		if (eq)
			value = eq + 1;
	} else {
		name = arg + 1;
		name_len = strlen(name);
		short_name = name[0];
	}

	/* A single dash takes exactly one letter: "-q", never "-quiet". */
	if (name_len == 0 || (short_name && name_len != 1))
		opt = NULL;
	else
		opt = find_option(cmd, name, name_len, short_name);
	if (!opt) {
		if (cmd)
			snprintf(err, err_len,
				 "unknown option '%s' for '%s'; see 'sbxctl %s --help'",
				 arg, cmd->name, cmd->name);
		else
			snprintf(err, err_len,
				 "unknown option '%s'; options of a command go after its name, see 'sbxctl --help'",
				 arg);
		return -EINVAL;
	}

	field = (char *)cli + opt->offset;
	if (opt->kind == OPT_FLAG) {
		if (value) {
			snprintf(err, err_len, "option --%s takes no value",
				 opt->name);
			return -EINVAL;
		}
		*(bool *)field = true;
		return 0;
	}

	if (!value) {
		if (*i + 1 >= argc) {
			snprintf(err, err_len, "option --%s needs a value",
				 opt->name);
			return -EINVAL;
		}
		value = argv[++*i];
	}

	switch (opt->kind) {
	case OPT_STRING:
		*(const char **)field = value;
		return 0;
	case OPT_INT:
		return parse_int(opt, value, (long long *)field, err, err_len);
	case OPT_META:
		return add_meta(cli, value, err, err_len);
	case OPT_DURATION:
		return parse_duration(opt, value, (long long *)field, err,
				      err_len);
	case OPT_FLAG:
		break;
	}
	return -EINVAL;
}

static bool is_option(const char *arg)
{
	return arg[0] == '-' && arg[1] != '\0';
}

static int parse_globals(int argc, char **argv, struct cli *cli, int *i,
			 char *err, size_t err_len)
{
	int ret;

	for (; *i < argc && is_option(argv[*i]); (*i)++) {
		if (strcmp(argv[*i], "--version") == 0) {
			cli->command = CLI_VERSION;
			continue;
		}
		if (strcmp(argv[*i], "--") == 0) {
			snprintf(err, err_len,
				 "'--' before the command; write 'sbxctl COMMAND ... -- ARGS'");
			return -EINVAL;
		}
		ret = apply_option(cli, NULL, argc, argv, i, err, err_len);
		if (ret)
			return ret;
	}
	return 0;
}

static int take_positional(struct cli *cli, const struct command_spec *cmd,
			   char *arg, char *err, size_t err_len)
{
	if (cmd->command == CLI_HELP && cli->help_topic == CLI_NONE) {
		const struct command_spec *topic = find_command(arg);

		if (!topic || topic->command == CLI_HELP) {
			snprintf(err, err_len,
				 "unknown command '%s'; run 'sbxctl --help' for the list",
				 arg);
			return -EINVAL;
		}
		cli->help_topic = topic->command;
		return 0;
	}
	if (cmd->takes_id && !cli->id) {
		if (!*arg) {
			snprintf(err, err_len,
				 "empty sandbox ID; 'sbxctl ls' lists the IDs");
			return -EINVAL;
		}
		cli->id = arg;
		return 0;
	}
	if (cmd->takes_path && !cli->path) {
		if (!*arg) {
			snprintf(err, err_len, "empty PATH for '%s'",
				 cmd->name);
			return -EINVAL;
		}
		cli->path = arg;
		return 0;
	}
	snprintf(err, err_len, "unexpected argument '%s' for '%s'", arg,
		 cmd->name);
	return -EINVAL;
}

static int parse_command_args(int argc, char **argv, struct cli *cli,
			      const struct command_spec *cmd, int i,
			      char *err, size_t err_len)
{
	bool options_done = false;
	int ret;

	for (; i < argc; i++) {
		char *arg = argv[i];

		if (!options_done && strcmp(arg, "--") == 0) {
			options_done = true;
			continue;
		}
		if (!options_done && is_option(arg)) {
			ret = apply_option(cli, cmd, argc, argv, &i, err,
					   err_len);
			if (ret)
				return ret;
			continue;
		}
		/* exec: the command and its arguments are everything left. */
		if (cmd->command == CLI_EXEC && cli->id) {
			cli->exec_argv = argv + i;
			cli->exec_argc = argc - i;
			return 0;
		}
		ret = take_positional(cli, cmd, arg, err, err_len);
		if (ret)
			return ret;
	}
	return 0;
}

static int check_complete(struct cli *cli, const struct command_spec *cmd,
			  char *err, size_t err_len)
{
	if (cli->help)
		return 0;
	if (cmd->takes_id && !cli->id) {
		snprintf(err, err_len,
			 "'%s' needs a sandbox ID; 'sbxctl ls' lists them",
			 cmd->name);
		return -EINVAL;
	}
	if (cmd->command == CLI_NODE && !cli->watch &&
	    (cli->instance || cli->interval_ms != CLI_UNSET)) {
		snprintf(err, err_len, "option --%s needs --watch",
			 cli->instance ? "instance" : "interval");
		return -EINVAL;
	}
	if (cli->instance && !drainmap_instance_valid(cli->instance)) {
		snprintf(err, err_len,
			 "invalid value '%s' for --instance: use the name "
			 "given to sbxd --instance (%s)",
			 cli->instance, DRAINMAP_INSTANCE_RULE);
		return -EINVAL;
	}
	if (cli->snapshot && (cli->memory_mib != CLI_UNSET || cli->guest ||
			      cli->args || cli->boot_delay_ms != CLI_UNSET ||
			      cli->ignore_stop)) {
		snprintf(err, err_len,
			 "--snapshot cannot be combined with --memory-mib, "
			 "--guest, --args, --boot-delay-ms or --ignore-stop: "
			 "the snapshot file sets them");
		return -EINVAL;
	}
	if (cli->snapshot && !*cli->snapshot) {
		snprintf(err, err_len, "empty PATH for --snapshot");
		return -EINVAL;
	}
	if (cli->socket && !*cli->socket) {
		snprintf(err, err_len,
			 "--socket needs an address: PATH, unix:PATH or "
			 "tcp:127.0.0.1:PORT");
		return -EINVAL;
	}
	if (cmd->command == CLI_EXEC && cli->exec_argc == 0) {
		snprintf(err, err_len,
			 "'exec' needs a command after the ID, such as 'sbxctl exec %s -- echo hi'",
			 cli->id);
		return -EINVAL;
	}
	return 0;
}

int cli_parse(int argc, char **argv, struct cli *cli, char *err,
	      size_t err_len)
{
	const struct command_spec *cmd;
	int i = 1;
	int ret;

	memset(cli, 0, sizeof(*cli));
	cli->memory_mib = CLI_UNSET;
	cli->boot_delay_ms = CLI_UNSET;
	cli->timeout_ms = CLI_UNSET;
	cli->grace_ms = CLI_UNSET;
	cli->interval_ms = CLI_UNSET;
	err[0] = '\0';

	ret = parse_globals(argc, argv, cli, &i, err, err_len);
	if (ret)
		return ret;
	if (i >= argc) {
		if (cli->help || cli->command == CLI_VERSION)
			return 0;
		snprintf(err, err_len, "missing command");
		return -EINVAL;
	}

	cmd = find_command(argv[i]);
	if (!cmd) {
		snprintf(err, err_len,
			 "unknown command '%s'; run 'sbxctl --help' for the list",
			 argv[i]);
		return -EINVAL;
	}
	cli->command = cmd->command;

	ret = parse_command_args(argc, argv, cli, cmd, i + 1, err, err_len);
	if (ret)
		return ret;
	if (cli->help && cli->command != CLI_HELP)
		cli->help_topic = cli->command;
	return check_complete(cli, cmd, err, err_len);
}

void cli_free(struct cli *cli)
{
	free(cli->meta);
	cli->meta = NULL;
	cli->meta_count = 0;
}

static void print_overview(FILE *out)
{
	fputs("Usage: sbxctl [--socket ADDR] [--json] COMMAND [OPTIONS] [ARGS]\n"
	      "\n"
	      "Command-line client of the sbxd HTTP API.\n"
	      "\n"
	      "Commands:\n",
	      out);
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		const struct command_spec *cmd = &commands[i];

		fprintf(out, "  %-15s %s\n", cmd->name, cmd->summary);
	}
	fputs("\n", out);
}

static void print_global_options(FILE *out)
{
	fputs("Options of every command:\n"
	      "  --socket ADDR  sbxd's address: PATH or unix:PATH of its unix\n"
	      "                 socket, or tcp:127.0.0.1:PORT. Default:\n"
	      "                 $SBXD_SOCKET, else $SBXD_STATE_DIR/sbxd.sock, else\n"
	      "                 /run/sbxd/sbxd.sock as root and\n"
	      "                 $XDG_RUNTIME_DIR/sbxd/sbxd.sock for other users\n"
	      "  --json         print the server's JSON response, indented\n"
	      "  -h, --help     show this help\n"
	      "\n"
	      "Exit status: 0 on success, 1 when the request failed (the reason\n"
	      "is printed on stderr), 2 for a usage error. exec exits with the\n"
	      "command's exit code instead, also when the command ended the\n"
	      "guest with it (such as 'exit 3').\n",
	      out);
}

void cli_usage(FILE *out, enum cli_command command)
{
	const struct command_spec *cmd = command_spec_of(command);

	if (!cmd || command == CLI_HELP) {
		print_overview(out);
		print_global_options(out);
		fputs("\nRun 'sbxctl COMMAND --help' for the options of a command.\n",
		      out);
		return;
	}

	fprintf(out, "Usage: sbxctl %s%s%s\n\n%s\n", cmd->name,
		*cmd->synopsis ? " " : "", cmd->synopsis, cmd->summary);
	if (cmd->details)
		fprintf(out, "\n%s", cmd->details);
	fputs("\n", out);
	print_global_options(out);
}

void cli_usage_short(FILE *out, enum cli_command command)
{
	const struct command_spec *cmd = command_spec_of(command);

	if (!cmd || command == CLI_HELP) {
		fputs("Usage: sbxctl [--socket ADDR] [--json] COMMAND [OPTIONS] [ARGS]\n"
		      "Run 'sbxctl --help' for the list of commands.\n",
		      out);
		return;
	}
	fprintf(out, "Usage: sbxctl %s%s%s\nRun 'sbxctl %s --help' for details.\n",
		cmd->name, *cmd->synopsis ? " " : "", cmd->synopsis,
		cmd->name);
}
