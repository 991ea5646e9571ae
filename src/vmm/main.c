/* SPDX-License-Identifier: MIT */
/* sbx-vmm: run one kernel-less guest in a KVM VM, standalone or for sbxd. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sbx/guest.h"
#include "vmm/confine.h"
#include "vmm/elf.h"
#include "vmm/filter.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

#define MIB (1024 * 1024)
#define MEMORY_MIB_MIN 4
#define MEMORY_MIB_MAX 4096 /* the page tables map 4 GiB */

static const char usage[] =
	"usage: sbx-vmm [flags] [-- COMMAND...]\n"
	"       sbx-vmm --restore PATH [--verify-ram] [--id ID] [--control-fd FD]\n"
	"               [--snapshot-to PATH] [-- COMMAND...]\n"
	"\n"
	"Run a kernel-less guest ELF in a KVM VM with one vCPU, or resume one\n"
	"from a snapshot file.\n"
	"\n"
	"  --guest PATH          guest ELF (default: sbx-agent next to sbx-vmm)\n"
	"  --memory-mib N        guest RAM in MiB, 4 to 4096 (default 16)\n"
	"  --id ID               sandbox id passed to the guest, at most 63 bytes\n"
	"                        (default: sbx)\n"
	"  --args STR            argument string passed to the guest, at most\n"
	"                        1023 bytes\n"
	"  --boot-delay-ms N     ask the guest to wait N ms before READY\n"
	"  --ignore-stop         ask the guest to ignore stop requests\n"
	"  --control-fd FD       serve sbxd over the SOCK_SEQPACKET socket FD\n"
	"                        instead of running COMMAND\n"
	"  --cpl0                enter the guest at CPL0 instead of CPL3, for\n"
	"                        test guests that need kernel mode (HLT); CPL0\n"
	"                        code is emulated and slow on PVM hosts\n"
	"  --restore PATH        resume the VM saved in snapshot PATH instead of\n"
	"                        booting a guest; the snapshot sets the guest,\n"
	"                        memory and boot flags, and the id unless --id\n"
	"                        is given\n"
	"  --verify-ram          with --restore: also check the RAM checksum; it\n"
	"                        reads the RAM the guest wrote, about 0.06 ms\n"
	"                        per MiB\n"
	"  --snapshot-to PATH    standalone: once the guest waits for its next\n"
	"                        command (after COMMAND, if any), save the VM to\n"
	"                        PATH and exit instead of stopping the guest\n"
	"  --snapshot-dir DIR    absolute directory that snapshots are written\n"
	"                        to; opened at start, and given to --vmm-user\n"
	"                        when sbx-vmm drops root, so that a confined\n"
	"                        VMM can still write snapshots there\n"
	"  --confine             confine sbx-vmm before the guest runs: the\n"
	"                        default with --control-fd. As root: new mount,\n"
	"                        network and IPC namespaces and --vmm-user; in\n"
	"                        any case: resource limits, no capabilities,\n"
	"                        no_new_privs and a seccomp allow-list\n"
	"  --no-confine          do not confine, even with --control-fd; for\n"
	"                        debugging (strace, gdb) only\n"
	"  --vmm-user NAME       unprivileged user that a confined sbx-vmm\n"
	"                        started as root becomes (default sbx-vmm)\n"
	"  --help                print this help and exit\n"
	"\n"
	"Standalone, COMMAND (e.g. \"echo hi\") is given to the guest after READY,\n"
	"its output is printed, the guest is asked to stop, and sbx-vmm exits\n"
	"with the command's exit code. Without COMMAND it runs until the guest\n"
	"exits; SIGINT or SIGTERM asks the guest to stop. A crashed guest exits\n"
	"70, a host-side failure 71; bad flags, an unusable ELF or a snapshot\n"
	"file that is corrupt, truncated, foreign or too new exit 2.\n";

enum {
	OPT_GUEST = 256,
	OPT_MEMORY_MIB,
	OPT_ID,
	OPT_ARGS,
	OPT_BOOT_DELAY_MS,
	OPT_IGNORE_STOP,
	OPT_CONTROL_FD,
	OPT_CPL0,
	OPT_RESTORE,
	OPT_VERIFY_RAM,
	OPT_SNAPSHOT_TO,
	OPT_SNAPSHOT_DIR,
	OPT_CONFINE,
	OPT_NO_CONFINE,
	OPT_VMM_USER,
	OPT_TEST_SYSCALL,
	OPT_HELP,
};

static const struct option options[] = {
	{ "guest", required_argument, NULL, OPT_GUEST },
	{ "memory-mib", required_argument, NULL, OPT_MEMORY_MIB },
	{ "id", required_argument, NULL, OPT_ID },
	{ "args", required_argument, NULL, OPT_ARGS },
	{ "boot-delay-ms", required_argument, NULL, OPT_BOOT_DELAY_MS },
	{ "ignore-stop", no_argument, NULL, OPT_IGNORE_STOP },
	{ "control-fd", required_argument, NULL, OPT_CONTROL_FD },
	{ "cpl0", no_argument, NULL, OPT_CPL0 },
	{ "restore", required_argument, NULL, OPT_RESTORE },
	{ "verify-ram", no_argument, NULL, OPT_VERIFY_RAM },
	{ "snapshot-to", required_argument, NULL, OPT_SNAPSHOT_TO },
	{ "snapshot-dir", required_argument, NULL, OPT_SNAPSHOT_DIR },
	{ "confine", no_argument, NULL, OPT_CONFINE },
	{ "no-confine", no_argument, NULL, OPT_NO_CONFINE },
	{ "vmm-user", required_argument, NULL, OPT_VMM_USER },
	/* Test aid, not in --help: see docs/vmm.md. */
	{ "test-forbidden-syscall", required_argument, NULL, OPT_TEST_SYSCALL },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

__attribute__((format(printf, 1, 2), noreturn)) static void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sbx-vmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("; see sbx-vmm --help\n", stderr);
	exit(SBX_VMM_STATUS_USAGE);
}

static uint64_t parse_number(const char *flag, const char *text,
			     uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || v < min ||
	    v > max)
		usage_error("invalid %s value '%s': expected an integer from %"
			    PRIu64 " to %" PRIu64, flag, text, min, max);
	return v;
}

/* Default guest: sbx-agent in the directory of this executable. */
static char *default_guest(void)
{
	char self[PATH_MAX], *slash, *path;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	if (asprintf(&path, "%s/sbx-agent", self) < 0)
		return NULL;
	return path;
}

/* Join argv words with single spaces into one command line. */
static char *join_words(char **words, int count)
{
	size_t len = 0;
	char *text;

	for (int i = 0; i < count; i++)
		len += strlen(words[i]) + 1;
	text = calloc(1, len + 1);
	if (!text)
		return NULL;
	for (int i = 0; i < count; i++) {
		if (i)
			strcat(text, " ");
		strcat(text, words[i]);
	}
	return text;
}

static void check_control_fd(int fd)
{
	int type;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len))
		usage_error("--control-fd %d is not an open socket: %s", fd,
			    strerror(errno));
	if (type != SOCK_SEQPACKET)
		usage_error("--control-fd %d is a socket of type %d, not "
			    "SOCK_SEQPACKET; pass one end of a seqpacket socketpair",
			    fd, type);
}

static void check_test_syscall(const char *name)
{
	char list[256] = "";
	size_t used = 0;

	for (const char *const *n = filter_test_names; *n; n++) {
		if (!strcmp(*n, name))
			return;
		used += (size_t)snprintf(list + used, sizeof(list) - used,
					 "%s%s", used ? ", " : "", *n);
		if (used >= sizeof(list))
			break;
	}
	usage_error("invalid --test-forbidden-syscall value '%s': expected "
		    "one of %s", name, list);
}

/*
 * Decide whether to confine: --confine or --no-confine if given, else
 * only when sbxd starts sbx-vmm (--control-fd).
 */
static void decide_confine(struct vmm_config *cfg, int confine_flag)
{
	cfg->confine = confine_flag >= 0 ? confine_flag : cfg->control_fd >= 0;
	if (cfg->test_syscall && !cfg->confine)
		usage_error("--test-forbidden-syscall needs confinement: add "
			    "--confine or drop --no-confine");
}

/* Reject flag combinations that cannot work together. */
static void check_combinations(const struct vmm_config *cfg,
			       const char *boot_flag)
{
	if (cfg->restore_path && boot_flag)
		usage_error("%s cannot be combined with --restore: the snapshot "
			    "sets it", boot_flag);
	if (cfg->verify_ram && !cfg->restore_path)
		usage_error("--verify-ram needs --restore PATH");
	if (cfg->snapshot_to && cfg->control_fd >= 0)
		usage_error("--snapshot-to is for standalone mode; with "
			    "--control-fd, send a SNAPSHOT message");
}

/*
 * Parse argv into `cfg`. Returns true when --id was given, which a restore
 * uses in place of the id stored in the snapshot.
 */
static bool parse_flags(int argc, char **argv, struct vmm_config *cfg)
{
	const char *boot_flag = NULL; /* a flag that --restore replaces */
	const char *confine_given = NULL;
	int confine_flag = -1; /* -1: default, 0: --no-confine, 1: --confine */
	bool id_given = false;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:", options, NULL)) != -1) {
		switch (opt) {
		case OPT_GUEST:
			cfg->guest_path = optarg;
			boot_flag = "--guest";
			break;
		case OPT_MEMORY_MIB:
			cfg->mem_size = parse_number("--memory-mib", optarg,
						     MEMORY_MIB_MIN,
						     MEMORY_MIB_MAX) * MIB;
			boot_flag = "--memory-mib";
			break;
		case OPT_ID:
			if (strlen(optarg) >= SBX_BOOT_ID_MAX)
				usage_error("--id '%s' is longer than %d bytes",
					    optarg, SBX_BOOT_ID_MAX - 1);
			cfg->id = optarg;
			id_given = true;
			break;
		case OPT_ARGS:
			boot_flag = "--args";
			if (strlen(optarg) >= SBX_BOOT_ARGS_MAX)
				usage_error("--args is %zu bytes, longer than %d",
					    strlen(optarg),
					    SBX_BOOT_ARGS_MAX - 1);
			cfg->args = optarg;
			break;
		case OPT_BOOT_DELAY_MS:
			cfg->boot_delay_ms = (uint32_t)parse_number(
				"--boot-delay-ms", optarg, 0, UINT32_MAX);
			boot_flag = "--boot-delay-ms";
			break;
		case OPT_IGNORE_STOP:
			cfg->ignore_stop = true;
			boot_flag = "--ignore-stop";
			break;
		case OPT_CONTROL_FD:
			cfg->control_fd = (int)parse_number("--control-fd",
							    optarg, 0, INT_MAX);
			check_control_fd(cfg->control_fd);
			break;
		case OPT_CPL0:
			cfg->cpl0 = true;
			boot_flag = "--cpl0";
			break;
		case OPT_RESTORE:
			cfg->restore_path = optarg;
			break;
		case OPT_VERIFY_RAM:
			cfg->verify_ram = true;
			break;
		case OPT_SNAPSHOT_TO:
			cfg->snapshot_to = optarg;
			break;
		case OPT_SNAPSHOT_DIR:
			if (optarg[0] != '/')
				usage_error("--snapshot-dir '%s' is not an "
					    "absolute path; pass one", optarg);
			cfg->snapshot_dir = optarg;
			break;
		case OPT_CONFINE:
		case OPT_NO_CONFINE:
			if (confine_given &&
			    confine_flag != (opt == OPT_CONFINE))
				usage_error("--confine and --no-confine cannot "
					    "be combined; pass one");
			confine_flag = opt == OPT_CONFINE;
			confine_given = argv[optind - 1];
			break;
		case OPT_VMM_USER:
			if (!optarg[0])
				usage_error("--vmm-user needs a user name");
			cfg->vmm_user = optarg;
			break;
		case OPT_TEST_SYSCALL:
			check_test_syscall(optarg);
			cfg->test_syscall = optarg;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			exit(0);
		case ':':
			usage_error("flag %s needs a value", argv[optind - 1]);
		default:
			usage_error("unknown flag %s", argv[optind - 1]);
		}
	}
	if (optind < argc) {
		if (cfg->control_fd >= 0)
			usage_error("a command (%s) cannot be combined with --control-fd",
				    argv[optind]);
		cfg->command = join_words(argv + optind, argc - optind);
		if (!cfg->command)
			usage_error("out of memory joining the command");
	}
	check_combinations(cfg, boot_flag);
	decide_confine(cfg, confine_flag);
	return id_given;
}

static void on_stop_signal(int sig)
{
	vmm_signalled = 1;
}

/* SIGIO only has to interrupt KVM_RUN or ppoll(); ctl_poll() reads. */
static void on_control_signal(int sig)
{
}

/*
 * Block SIGINT, SIGTERM and SIGIO except inside KVM_RUN and ppoll(), where
 * they interrupt the wait, so none can slip in between a check and the
 * wait. The first SIGINT or SIGTERM requests a guest stop. The handler
 * then resets, so a second one ends sbx-vmm at once. SIGIO comes from the
 * control channel (ctl_enable_kick()).
 */
static int setup_signals(struct vmm *vmm)
{
	struct sigaction stop = { .sa_handler = on_stop_signal,
				  .sa_flags = SA_RESETHAND };
	struct sigaction control = { .sa_handler = on_control_signal };
	sigset_t blocked;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGIO);
	if (sigprocmask(SIG_BLOCK, &blocked, &vmm->run_mask))
		return -errno;
	sigdelset(&vmm->run_mask, SIGINT);
	sigdelset(&vmm->run_mask, SIGTERM);
	sigdelset(&vmm->run_mask, SIGIO);
	sigemptyset(&stop.sa_mask);
	sigemptyset(&control.sa_mask);
	if (sigaction(SIGINT, &stop, NULL) || sigaction(SIGTERM, &stop, NULL) ||
	    sigaction(SIGIO, &control, NULL))
		return -errno;
	return 0;
}

/* Map the guest file and load it. On failure, `err` names the problem. */
static int load_guest(struct vmm *vmm, struct elf_image *image, char *err,
		      size_t err_size)
{
	const char *path = vmm->cfg->guest_path;
	struct stat st;
	void *file;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "cannot open: %s; pass --guest PATH",
			 strerror(errno));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		snprintf(err, err_size, "cannot stat: %s", strerror(errno));
		goto err_close;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		ret = -ENOEXEC;
		snprintf(err, err_size, "not a regular, non-empty file");
		goto err_close;
	}
	file = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (file == MAP_FAILED) {
		ret = -errno;
		snprintf(err, err_size, "cannot map: %s", strerror(errno));
		goto err_close;
	}
	ret = elf_load(file, (size_t)st.st_size, vmm->vm.mem,
		       vmm->vm.mem_size, image, err, err_size);
	munmap(file, (size_t)st.st_size);
err_close:
	close(fd);
	return ret;
}

static void fill_boot_info(struct vmm *vmm, const struct elf_image *image)
{
	const struct vmm_config *cfg = vmm->cfg;
	struct sbx_boot_info bi = {
		.magic = SBX_BOOT_MAGIC,
		.mem_size = vmm->vm.mem_size,
		.heap_start = image->load_end,
		.heap_end = vmm->vm.mem_size - SBX_STACK_SIZE,
		.flags = cfg->ignore_stop ? SBX_BOOT_IGNORE_STOP : 0,
		.boot_delay_ms = cfg->boot_delay_ms,
	};

	snprintf(bi.sandbox_id, sizeof(bi.sandbox_id), "%s", cfg->id);
	snprintf(bi.args, sizeof(bi.args), "%s", cfg->args);
	memcpy(vmm->vm.mem + SBX_BOOT_INFO_GPA, &bi, sizeof(bi));
}

/* Create the VM and load the guest. On failure, vmm->exit records why. */
static int boot(struct vmm *vmm)
{
	struct elf_image image;
	const char *step = "";
	char err[256];
	int ret;

	ret = vm_create(&vmm->vm, vmm->cfg->mem_size, &step);
	if (ret) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0, "failed to %s: %s",
			step, strerror(-ret));
		return SBX_VMM_STATUS_ERROR;
	}
	ret = load_guest(vmm, &image, err, sizeof(err));
	if (ret) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0, "guest ELF %s: %s",
			vmm->cfg->guest_path, err);
		return SBX_VMM_STATUS_USAGE;
	}
	fill_boot_info(vmm, &image);
	ret = vm_setup_cpu(&vmm->vm, image.entry, SBX_BOOT_INFO_GPA,
			   vmm->cfg->cpl0, &step);
	if (!ret)
		ret = vm_set_signal_mask(&vmm->vm, &vmm->run_mask);
	if (ret) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0, "failed to %s: %s",
			step, strerror(-ret));
		return SBX_VMM_STATUS_ERROR;
	}
	return 0;
}

/*
 * Resume the VM saved in cfg->restore_path: RAM is the file's RAM section,
 * mapped privately. On failure, vmm->exit records why.
 */
static int restore(struct vmm *vmm, struct vmm_config *cfg, bool id_given,
		   char *id_buf)
{
	const char *path = cfg->restore_path;
	const char *step = "";
	struct snap_file snap;
	char err[512];
	int status = 0;
	int ret;

	ret = snap_open(&snap, path, err, sizeof(err));
	if (ret) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"failed to restore snapshot %s: %s", path, err);
		return SBX_VMM_STATUS_USAGE;
	}
	if (!id_given) {
		snprintf(id_buf, SBX_BOOT_ID_MAX, "%s",
			 snap.header->sandbox_id);
		cfg->id = id_buf;
	}
	cfg->mem_size = snap.header->mem_size;
	cfg->boot_delay_ms = snap.state->boot_delay_ms;
	cfg->ignore_stop = snap.state->flags & SNAP_VMM_IGNORE_STOP;
	cfg->cpl0 = snap.state->flags & SNAP_VMM_CPL0;

	ret = vm_create_from_file(&vmm->vm, snap.fd, snap.header->ram_offset,
				  snap.header->mem_size, &step);
	if (ret) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"failed to restore snapshot %s: failed to %s: %s", path,
			step, strerror(-ret));
		status = SBX_VMM_STATUS_ERROR;
		goto out;
	}
	if (cfg->verify_ram) {
		ret = snap_check_ram(&snap, vmm->vm.mem, err, sizeof(err));
		if (ret) {
			vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
				"failed to restore snapshot %s: %s", path, err);
			status = SBX_VMM_STATUS_USAGE;
			goto out;
		}
	}
	ret = snap_load(vmm, &snap, err, sizeof(err));
	if (!ret) {
		ret = vm_set_signal_mask(&vmm->vm, &vmm->run_mask);
		if (ret)
			snprintf(err, sizeof(err), "failed to set the signal "
				 "mask of KVM_RUN: %s", strerror(-ret));
	}
	if (ret) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"failed to restore snapshot %s: %s", path, err);
		status = SBX_VMM_STATUS_ERROR;
		goto out;
	}
	if (cfg->control_fd >= 0)
		vmm_log(vmm, "restored snapshot %s in %.2f ms", path,
			(double)(vmm_now_ns() - vmm->start_ns) / 1e6);
out:
	snap_close(&snap);
	return status;
}

/*
 * Open --snapshot-dir now: once confined, the VMM may not be able to
 * reach it by path.
 */
static int open_snapshot_dir(struct vmm *vmm)
{
	const char *dir = vmm->cfg->snapshot_dir;

	if (!dir)
		return 0;
	vmm->snapshot_dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (vmm->snapshot_dir_fd < 0) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"cannot open --snapshot-dir %s: %s; create the "
			"directory first", dir, strerror(errno));
		return SBX_VMM_STATUS_USAGE;
	}
	return 0;
}

/*
 * Open what snapshots need, then confine the VMM (when cfg->confine) and
 * make the --test-forbidden-syscall call. The filter kills the process
 * there unless the call is allowed.
 */
static int confine(struct vmm *vmm)
{
	const struct vmm_config *cfg = vmm->cfg;
	char err[512];
	long result;
	int ret;

	ret = snap_prepare(vmm, err, sizeof(err));
	if (ret) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0, "%s", err);
		return SBX_VMM_STATUS_ERROR;
	}
	if (!cfg->confine)
		return 0;
	ret = confine_apply(vmm, err, sizeof(err));
	if (ret) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"failed to confine sbx-vmm: %s", err);
		return SBX_VMM_STATUS_ERROR;
	}
	if (cfg->test_syscall) {
		filter_test_call(cfg->test_syscall, vmm->vm.kvm_fd,
				 vmm->vm.vcpu_fd, cfg->control_fd, &result);
		vmm_log(vmm, "--test-forbidden-syscall %s: the filter allowed "
			"it; it returned %ld", cfg->test_syscall, result);
	}
	return 0;
}

/* Tell sbxd and the console how the guest ended. */
static void report_end(struct vmm *vmm)
{
	const struct sbx_exit_info *e = &vmm->exit;
	bool quiet = vmm->cfg->control_fd < 0 &&
		     (e->reason == SBX_EXIT_GUEST ||
		      e->reason == SBX_EXIT_STOPPED);

	if (!quiet)
		vmm_log(vmm, "guest ended: %s: %s (exit code %" PRId32
			", RIP 0x%" PRIx64 ")",
			vmm_reason_name(e->reason), e->message, e->exit_code,
			e->rip);
	ctl_send(vmm, SBX_MSG_EXITED, 0, 0, e, sizeof(*e));
}

int main(int argc, char **argv)
{
	struct vmm_config cfg = {
		.mem_size = 16 * MIB,
		.id = "sbx",
		.args = "",
		.control_fd = -1,
		.vmm_user = CONFINE_DEFAULT_USER,
	};
	struct vmm vmm = { .cfg = &cfg, .snapshot_dir_fd = -1,
			   .pagemap_fd = -1 };
	char err[512];
	char id_buf[SBX_BOOT_ID_MAX];
	char *guest_path = NULL;
	bool id_given;
	int status, ret;

	vmm.start_ns = vmm_now_ns();
	vmm.vm = (struct vm){ .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1,
			      .mem_fd = -1 };
	id_given = parse_flags(argc, argv, &cfg);
	if (!cfg.guest_path && !cfg.restore_path) {
		guest_path = default_guest();
		if (!guest_path)
			usage_error("cannot find sbx-agent next to sbx-vmm; pass --guest PATH");
		cfg.guest_path = guest_path;
	}
	if (cfg.confine && confine_begin(&vmm, err, sizeof(err))) {
		vmm_end(&vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"failed to confine sbx-vmm: %s", err);
		status = SBX_VMM_STATUS_ERROR;
		goto out_report;
	}
	status = open_snapshot_dir(&vmm);
	if (status)
		goto out_report;
	if (setup_signals(&vmm)) {
		vmm_end(&vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"failed to set up signal handling: %s", strerror(errno));
		status = SBX_VMM_STATUS_ERROR;
		goto out_report;
	}

	if (cfg.restore_path)
		status = restore(&vmm, &cfg, id_given, id_buf);
	else
		status = boot(&vmm);
	if (status)
		goto out_report;
	ret = ctl_enable_kick(&vmm);
	if (ret) {
		vmm_end(&vmm, SBX_EXIT_VMM_ERROR, -1, 0,
			"failed to enable SIGIO on control fd %d: %s",
			cfg.control_fd, strerror(-ret));
		status = SBX_VMM_STATUS_ERROR;
		goto out_report;
	}
	status = confine(&vmm);
	if (status)
		goto out_report;
	/* A restored guest that had sent READY before its snapshot does not
	 * send it again, so tell sbxd now, once the VMM is confined. A guest
	 * saved before its READY sends it itself when it gets there. */
	if (cfg.restore_path && vmm.ready)
		ctl_send(&vmm, SBX_MSG_READY, 0,
			 (int64_t)(vmm_now_ns() - vmm.start_ns), NULL, 0);
	/* Messages that arrived before SIGIO was enabled raised no signal. */
	ctl_poll(&vmm, 0);
	vmm_run(&vmm);
	status = vmm_exit_status(&vmm);

out_report:
	report_end(&vmm);
	ctl_free_queue(&vmm);
	vm_destroy(&vmm.vm);
	if (vmm.pagemap_fd >= 0)
		close(vmm.pagemap_fd);
	if (vmm.snapshot_dir_fd >= 0)
		close(vmm.snapshot_dir_fd);
	free((char *)cfg.command);
	free(guest_path);
	return status;
}
