// SPDX-License-Identifier: MIT
/* Integration test harness: a real sbxd per test and an HTTP/1.1 client. */
#define _GNU_SOURCE
#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <http_parser.h>

#define REGISTRY_MAX 16
#define READ_CHUNK 65536
#define BPFFS_SBXD "/sys/fs/bpf/sbxd"

extern char **environ;

/* Every proc spawned and not yet cleaned up, in spawn order. */
static struct sbxd_proc *registry[REGISTRY_MAX];
static size_t registry_len;

int64_t harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

bool harness_path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

void harness_init(void)
{
	/* Orphaned VMMs come here instead of init, so they can be reaped. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	/* Writes to a closed socket return EPIPE instead of killing us. */
	signal(SIGPIPE, SIG_IGN);
}

void harness_fini(void)
{
	while (registry_len > 0)
		sbxd_cleanup(registry[registry_len - 1]);
}

void harness_require_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		cr_skip_test("skipped: /dev/kvm not available (%s)",
			     strerror(errno));
	close(fd);
}

void harness_require_root(const char *why)
{
	if (geteuid() != 0)
		cr_skip_test("skipped: needs root (%s)", why);
}

void harness_require_bins(void)
{
	static const char *const names[] = { "sbxd", "sbx-vmm", "sbx-agent" };
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", SBX_BIN_DIR, names[i]);
		cr_assert(access(path, X_OK) == 0,
			  "%s is missing or not executable (%s): the build is "
			  "broken, rebuild the tree", path, strerror(errno));
	}
}

static void registry_add(struct sbxd_proc *p)
{
	cr_assert(registry_len < REGISTRY_MAX,
		  "more than %d sbxd processes in one test", REGISTRY_MAX);
	registry[registry_len++] = p;
}

static void registry_remove(struct sbxd_proc *p)
{
	for (size_t i = 0; i < registry_len; i++) {
		if (registry[i] != p)
			continue;
		memmove(&registry[i], &registry[i + 1],
			(registry_len - i - 1) * sizeof(registry[0]));
		registry_len--;
		return;
	}
}

/* Variables that configure sbxd, dropped so the test's own cannot leak in. */
static bool env_is_sbxd_config(const char *entry)
{
	return strncmp(entry, "SBXD_", 5) == 0 ||
	       strncmp(entry, "SHUTDOWN_", 9) == 0 ||
	       strncmp(entry, "FORCE_STOP=", 11) == 0;
}

static size_t array_len(const char *const a[])
{
	size_t n = 0;

	while (a && a[n])
		n++;
	return n;
}

static char **build_env(const char *const extra_env[])
{
	size_t n = 0, k = 0;
	char **envp;

	while (environ[n])
		n++;
	envp = calloc(n + array_len(extra_env) + 1, sizeof(*envp));
	if (!envp)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!env_is_sbxd_config(environ[i]))
			envp[k++] = environ[i];
	for (size_t i = 0; i < array_len(extra_env); i++)
		envp[k++] = (char *)extra_env[i];
	return envp;
}

static bool args_have(const char *const a[], const char *flag)
{
	size_t len = strlen(flag);

	for (size_t i = 0; i < array_len(a); i++)
		if (strncmp(a[i], flag, len) == 0 &&
		    (a[i][len] == '\0' || a[i][len] == '='))
			return true;
	return false;
}

static char **build_argv(const struct sbxd_proc *p,
			 const char *const extra_args[])
{
	static char bin[PATH_MAX];
	size_t k = 0;
	char **argv;

	snprintf(bin, sizeof(bin), "%s/sbxd", SBX_BIN_DIR);
	argv = calloc(array_len(extra_args) + 6, sizeof(*argv));
	if (!argv)
		return NULL;
	argv[k++] = bin;
	if (!args_have(extra_args, "--state-dir")) {
		argv[k++] = "--state-dir";
		argv[k++] = (char *)p->state_dir;
	}
	if (!args_have(extra_args, "--instance")) {
		argv[k++] = "--instance";
		argv[k++] = (char *)p->instance;
	}
	for (size_t i = 0; i < array_len(extra_args); i++)
		argv[k++] = (char *)extra_args[i];
	return argv;
}

/* snprintf that reports truncation as -ENAMETOOLONG. */
static int path_format(char *out, size_t len, const char *dir,
		       const char *name)
{
	int n = snprintf(out, len, "%s%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int setup_dirs(struct sbxd_proc *p, const struct sbxd_proc *owner)
{
	int ret;

	snprintf(p->dir, sizeof(p->dir), "/tmp/sbxd-itest-XXXXXX");
	if (!mkdtemp(p->dir))
		return -errno;
	ret = path_format(p->log_path, sizeof(p->log_path), p->dir,
			  "/sbxd.log");
	if (ret)
		return ret;
	if (owner) {
		snprintf(p->state_dir, sizeof(p->state_dir), "%s",
			 owner->state_dir);
		snprintf(p->instance, sizeof(p->instance), "%s",
			 owner->instance);
		p->owns_state_dir = false;
	} else {
		ret = path_format(p->state_dir, sizeof(p->state_dir), p->dir,
				  "/state");
		if (ret)
			return ret;
		if (mkdir(p->state_dir, 0700) < 0)
			return -errno;
		/* mkdtemp's suffix makes the BPF pin dir name unique. */
		snprintf(p->instance, sizeof(p->instance), "itest-%s",
			 p->dir + strlen("/tmp/sbxd-itest-"));
		p->owns_state_dir = true;
	}
	ret = path_format(p->sock_path, sizeof(p->sock_path), p->state_dir,
			  "/sbxd.sock");
	if (ret)
		return ret;
	return path_format(p->lock_path, sizeof(p->lock_path), p->state_dir,
			   "/sbxd.lock");
}

/* Runs between fork and exec: async-signal-safe calls only. */
static void exec_child(pid_t parent, int log_fd, int null_fd, char **argv,
		       char **envp)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	/* sbxd (and through its own PDEATHSIG, its VMMs) dies with the test. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
	    getppid() != parent)
		_exit(127);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
		_exit(127);
	execve(argv[0], argv, envp);
	_exit(127);
}

int sbxd_spawn(struct sbxd_proc *p, const struct sbxd_proc *owner,
	       const char *const extra_args[], const char *const extra_env[])
{
	char **argv = NULL, **envp = NULL;
	int log_fd = -1, null_fd = -1;
	pid_t parent = getpid();
	int ret;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->vmm_lock, NULL);
	p->http_timeout_ms = HARNESS_HTTP_TIMEOUT_MS;
	ret = setup_dirs(p, owner);
	if (ret)
		goto err_dirs;
	registry_add(p);

	ret = -ENOMEM;
	argv = build_argv(p, extra_args);
	envp = build_env(extra_env);
	if (!argv || !envp)
		goto free_arrays;
	log_fd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		      0600);
	if (log_fd < 0) {
		ret = -errno;
		goto free_arrays;
	}
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0) {
		ret = -errno;
		goto close_log;
	}

	p->pid = fork();
	if (p->pid < 0) {
		ret = -errno;
		p->pid = 0;
		goto close_null;
	}
	if (p->pid == 0)
		exec_child(parent, log_fd, null_fd, argv, envp);
	ret = 0;

close_null:
	close(null_fd);
close_log:
	close(log_fd);
free_arrays:
	free(argv);
	free(envp);
	return ret;

err_dirs:
	if (p->dir[0])
		rmdir(p->dir);
	p->dir[0] = '\0';
	return ret;
}

static int unix_connect(const char *path, int *fd_out)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

int sbxd_wait_ready(struct sbxd_proc *p, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	char ready_line[sizeof(p->sock_path) + 32];
	int fd;

	/*
	 * The socket may accept before sbxd finishes its setup, so wait for
	 * the line sbxd prints once it serves as well.
	 */
	snprintf(ready_line, sizeof(ready_line), "serving on unix:%s",
		 p->sock_path);
	for (;;) {
		if (!sbxd_running(p))
			return -ECHILD;
		if (sbxd_log_contains(p, ready_line) &&
		    unix_connect(p->sock_path, &fd) == 0) {
			close(fd);
			return 0;
		}
		if (harness_now_ms() >= deadline)
			return -ETIMEDOUT;
		harness_sleep_ms(10);
	}
}

int sbxd_start(struct sbxd_proc *p, const char *const extra_args[],
	       const char *const extra_env[])
{
	int ret = sbxd_spawn(p, NULL, extra_args, extra_env);

	if (ret)
		return ret;
	return sbxd_wait_ready(p, HARNESS_READY_TIMEOUT_MS);
}

int sbxd_start_shared(struct sbxd_proc *p, const struct sbxd_proc *owner,
		      const char *const extra_args[],
		      const char *const extra_env[])
{
	int ret = sbxd_spawn(p, owner, extra_args, extra_env);

	if (ret)
		return ret;
	return sbxd_wait_ready(p, HARNESS_READY_TIMEOUT_MS);
}

void sbxd_start_checked(struct sbxd_proc *p, const char *const extra_args[],
			const char *const extra_env[])
{
	static char msg[4096];
	char *tail;
	int ret;

	harness_require_bins();
	harness_require_kvm();
	ret = sbxd_start(p, extra_args, extra_env);
	if (ret == 0)
		return;
	tail = sbxd_log_tail(p, 2048);
	snprintf(msg, sizeof(msg), "%s", tail ? tail : "");
	free(tail);
	cr_assert_fail("sbxd did not become ready: %s; log:\n%s",
		       ret == -ECHILD ? "it exited" : strerror(-ret), msg);
}

int sbxd_signal(struct sbxd_proc *p, int sig)
{
	if (p->pid <= 0 || p->reaped)
		return -ESRCH;
	return kill(p->pid, sig) < 0 ? -errno : 0;
}

bool sbxd_running(struct sbxd_proc *p)
{
	int status;
	pid_t r;

	if (p->pid <= 0 || p->reaped)
		return false;
	r = waitpid(p->pid, &status, WNOHANG);
	if (r == p->pid) {
		p->reaped = true;
		p->status = status;
		return false;
	}
	return true;
}

int sbxd_wait_exit(struct sbxd_proc *p, int timeout_ms, int *status)
{
	int64_t deadline = harness_now_ms() + timeout_ms;

	if (p->pid <= 0)
		return -ESRCH;
	while (sbxd_running(p)) {
		if (harness_now_ms() >= deadline)
			return -ETIMEDOUT;
		harness_sleep_ms(5);
	}
	if (status)
		*status = p->status;
	return 0;
}

int sbxd_stop(struct sbxd_proc *p, int timeout_ms, int *status)
{
	int ret = sbxd_signal(p, SIGTERM);

	if (ret && ret != -ESRCH)
		return ret;
	return sbxd_wait_exit(p, timeout_ms, status);
}

static char *read_file(const char *path, size_t *len_out)
{
	char *data = NULL;
	size_t len = 0, cap = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return NULL;
	for (;;) {
		if (cap - len < 4097) {
			char *grown = realloc(data, cap * 2 + 8192);

			if (!grown) {
				free(data);
				close(fd);
				return NULL;
			}
			data = grown;
			cap = cap * 2 + 8192;
		}
		n = read(fd, data + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	data[len] = '\0';
	if (len_out)
		*len_out = len;
	return data;
}

char *sbxd_log_read(const struct sbxd_proc *p)
{
	char *log = read_file(p->log_path, NULL);

	return log ? log : strdup("");
}

bool sbxd_log_contains(const struct sbxd_proc *p, const char *text)
{
	char *log = sbxd_log_read(p);
	bool found = log && strstr(log, text);

	free(log);
	return found;
}

bool sbxd_log_line_contains(const struct sbxd_proc *p, const char *a,
			    const char *b)
{
	char *log = sbxd_log_read(p);
	char *line, *save = NULL;
	bool found = false;

	if (!log)
		return false;
	for (line = strtok_r(log, "\n", &save); line && !found;
	     line = strtok_r(NULL, "\n", &save))
		found = strcasestr(line, a) && strcasestr(line, b);
	free(log);
	return found;
}

char *sbxd_log_last_line(const struct sbxd_proc *p)
{
	char *log = sbxd_log_read(p);
	char *end, *start, *line;

	if (!log)
		return NULL;
	end = log + strlen(log);
	while (end > log && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	start = strrchr(log, '\n');
	line = strdup(start ? start + 1 : log);
	free(log);
	return line;
}

char *sbxd_log_tail(const struct sbxd_proc *p, size_t max)
{
	char *log = sbxd_log_read(p);
	size_t len;

	if (!log)
		return NULL;
	len = strlen(log);
	if (len > max)
		memmove(log, log + len - max, max + 1);
	return log;
}

/* Fields of /proc/PID/stat that the VMM checks need. */
struct proc_stat {
	char comm[32];
	char state;
	pid_t ppid;
	unsigned long long start_time;
};

static int proc_stat_read(pid_t pid, struct proc_stat *st)
{
	char path[64], *data, *close_paren, *field;
	int ret = -EINVAL;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	data = read_file(path, NULL);
	if (!data)
		return -ESRCH;
	/* comm may contain spaces and ')': it ends at the last ')'. */
	close_paren = strrchr(data, ')');
	field = strchr(data, '(');
	if (!close_paren || !field)
		goto free_data;
	snprintf(st->comm, sizeof(st->comm), "%.*s",
		 (int)(close_paren - field - 1), field + 1);
	/* After ") ": state(3) ppid(4) ... starttime(22). */
	field = close_paren + 2;
	st->state = field[0];
	for (int i = 3; i < 22 && field; i++) {
		if (i == 4)
			st->ppid = (pid_t)strtol(field, NULL, 10);
		field = strchr(field, ' ');
		if (field)
			field++;
	}
	if (!field)
		goto free_data;
	st->start_time = strtoull(field, NULL, 10);
	ret = 0;
free_data:
	free(data);
	return ret;
}

static bool cmdline_contains(pid_t pid, const char *text)
{
	char path[64], *data;
	size_t len;
	bool found;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	data = read_file(path, &len);
	if (!data)
		return false;
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\0')
			data[i] = ' ';
	found = strstr(data, text) != NULL;
	free(data);
	return found;
}

static bool recorded_vmm(struct sbxd_proc *p, pid_t pid,
			 unsigned long long start_time)
{
	bool found = false;

	pthread_mutex_lock(&p->vmm_lock);
	for (size_t i = 0; i < p->n_vmms && !found; i++)
		found = p->vmms[i].pid == pid &&
			p->vmms[i].start_time == start_time;
	pthread_mutex_unlock(&p->vmm_lock);
	return found;
}

/* True when the process is a VMM that this harness's sbxd started. */
static bool vmm_is_ours(struct sbxd_proc *p, pid_t pid,
			const struct proc_stat *st)
{
	bool is_vmm = strcmp(st->comm, "sbx-vmm") == 0;

	if (recorded_vmm(p, pid, st->start_time))
		return true;
	if (!is_vmm)
		return false;
	if (!p->reaped && st->ppid == p->pid)
		return true;
	if (st->ppid == getpid())
		return true;
	return cmdline_contains(pid, p->state_dir);
}

static void desc_append(char *desc, size_t desc_len, pid_t pid,
			const struct proc_stat *st)
{
	size_t used;

	if (!desc || desc_len == 0)
		return;
	used = strlen(desc);
	snprintf(desc + used, desc_len - used, "%s%d(%s,ppid %d)",
		 used ? " " : "", pid, st->comm, st->ppid);
}

/* Call fn for each live VMM of p, and reap our zombie VMM children. */
static int for_each_vmm(struct sbxd_proc *p,
			void (*fn)(struct sbxd_proc *, pid_t,
				   const struct proc_stat *, void *),
			void *arg)
{
	DIR *dir = opendir("/proc");
	struct dirent *de;
	int count = 0;

	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		struct proc_stat st;
		pid_t pid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)strtol(de->d_name, NULL, 10);
		if (pid == getpid() || pid == p->pid)
			continue;
		if (proc_stat_read(pid, &st) < 0)
			continue;
		if (!vmm_is_ours(p, pid, &st))
			continue;
		if (st.state == 'Z' || st.state == 'X') {
			if (st.ppid == getpid())
				waitpid(pid, NULL, WNOHANG);
			continue;
		}
		count++;
		if (fn)
			fn(p, pid, &st, arg);
	}
	closedir(dir);
	return count;
}

struct desc_buf {
	char *text;
	size_t len;
};

static void describe_vmm(struct sbxd_proc *p, pid_t pid,
			 const struct proc_stat *st, void *arg)
{
	struct desc_buf *d = arg;

	desc_append(d->text, d->len, pid, st);
}

int sbxd_count_vmms(struct sbxd_proc *p, char *desc, size_t desc_len)
{
	struct desc_buf d = { desc, desc_len };

	if (desc && desc_len)
		desc[0] = '\0';
	return for_each_vmm(p, describe_vmm, &d);
}

int sbxd_wait_no_vmms(struct sbxd_proc *p, int timeout_ms, char *desc,
		      size_t desc_len)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	int count;

	for (;;) {
		count = sbxd_count_vmms(p, desc, desc_len);
		if (count <= 0 || harness_now_ms() >= deadline)
			return count;
		harness_sleep_ms(20);
	}
}

/* Kill a leftover VMM only when this process started it (by pid). */
static void kill_vmm(struct sbxd_proc *p, pid_t pid,
		     const struct proc_stat *st, void *arg)
{
	if (!recorded_vmm(p, pid, st->start_time) && st->ppid != getpid())
		return;
	kill(pid, SIGKILL);
	if (st->ppid == getpid())
		waitpid(pid, NULL, 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void harness_remove_tree(const char *path)
{
	if (path[0] && harness_path_exists(path))
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int sbxd_cleanup(struct sbxd_proc *p)
{
	char pin_dir[PATH_MAX];
	int leftover;

	if (p->dir[0] == '\0')
		return 0;
	if (p->pid > 0 && !p->reaped) {
		kill(p->pid, SIGKILL);
		if (waitpid(p->pid, &p->status, 0) == p->pid)
			p->reaped = true;
	}
	/* VMMs die with sbxd through PDEATHSIG, which takes a moment. */
	leftover = sbxd_wait_no_vmms(p, 3000, NULL, 0);
	if (leftover > 0)
		for_each_vmm(p, kill_vmm, NULL);

	if (p->owns_state_dir && !getenv("SBX_ITEST_KEEP")) {
		snprintf(pin_dir, sizeof(pin_dir), "%s/%s", BPFFS_SBXD,
			 p->instance);
		harness_remove_tree(pin_dir);
	}
	if (getenv("SBX_ITEST_KEEP"))
		fprintf(stderr, "harness: kept %s\n", p->dir);
	else
		harness_remove_tree(p->dir);
	p->dir[0] = '\0';
	registry_remove(p);
	return leftover;
}

void http_resp_free(struct http_resp *resp)
{
	free(resp->body);
	if (resp->json)
		json_decref(resp->json);
	memset(resp, 0, sizeof(*resp));
}

int http_connect(struct sbxd_proc *p, struct http_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->proc = p;
	c->timeout_ms = p->http_timeout_ms ? p->http_timeout_ms :
					     HARNESS_HTTP_TIMEOUT_MS;
	return unix_connect(p->sock_path, &c->fd);
}

static int loopback_socket(int port, struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_port = htons((uint16_t)port);
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return fd < 0 ? -errno : fd;
}

int http_connect_tcp(struct sbxd_proc *p, int port, struct http_conn *c)
{
	struct sockaddr_in addr;
	int fd, ret;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->proc = p;
	c->timeout_ms = p->http_timeout_ms ? p->http_timeout_ms :
					     HARNESS_HTTP_TIMEOUT_MS;
	fd = loopback_socket(port, &addr);
	if (fd < 0)
		return fd;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	c->fd = fd;
	return 0;
}

int harness_free_port(void)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);
	int fd, ret;

	fd = loopback_socket(0, &addr);
	if (fd < 0)
		return fd;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
		ret = -errno;
	else
		ret = ntohs(addr.sin_port);
	close(fd);
	return ret;
}

void http_close(struct http_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->buf_len = 0;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - harness_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 0;
	}
}

int http_send_raw(struct http_conn *c, const void *data, size_t len)
{
	int64_t deadline = harness_now_ms() + c->timeout_ms;
	const char *pos = data;
	ssize_t n;
	int ret;

	while (len > 0) {
		ret = wait_fd(c->fd, POLLOUT, deadline);
		if (ret)
			return ret;
		n = send(c->fd, pos, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		pos += n;
		len -= (size_t)n;
	}
	return 0;
}

enum header_slot { SLOT_NONE, SLOT_RETRY, SLOT_ALLOW, SLOT_CONN, SLOT_CTYPE };

struct parse_ctx {
	struct http_resp *resp;
	char field[64];
	size_t field_len;
	bool in_value;
	enum header_slot slot;
	size_t body_cap;
	bool complete;
	int error;
};

static int on_header_field(http_parser *parser, const char *at, size_t len)
{
	struct parse_ctx *ctx = parser->data;

	if (ctx->in_value) {
		ctx->field_len = 0;
		ctx->in_value = false;
	}
	if (ctx->field_len + len < sizeof(ctx->field)) {
		memcpy(ctx->field + ctx->field_len, at, len);
		ctx->field_len += len;
	}
	ctx->field[ctx->field_len] = '\0';
	return 0;
}

static char *slot_buffer(struct http_resp *resp, enum header_slot slot,
			 size_t *cap)
{
	switch (slot) {
	case SLOT_RETRY:
		*cap = sizeof(resp->retry_after);
		return resp->retry_after;
	case SLOT_ALLOW:
		*cap = sizeof(resp->allow);
		return resp->allow;
	case SLOT_CONN:
		*cap = sizeof(resp->connection);
		return resp->connection;
	case SLOT_CTYPE:
		*cap = sizeof(resp->content_type);
		return resp->content_type;
	default:
		return NULL;
	}
}

static int on_header_value(http_parser *parser, const char *at, size_t len)
{
	struct parse_ctx *ctx = parser->data;
	size_t cap, used;
	char *buf;

	if (!ctx->in_value) {
		ctx->in_value = true;
		if (strcasecmp(ctx->field, "Retry-After") == 0)
			ctx->slot = SLOT_RETRY;
		else if (strcasecmp(ctx->field, "Allow") == 0)
			ctx->slot = SLOT_ALLOW;
		else if (strcasecmp(ctx->field, "Connection") == 0)
			ctx->slot = SLOT_CONN;
		else if (strcasecmp(ctx->field, "Content-Type") == 0)
			ctx->slot = SLOT_CTYPE;
		else
			ctx->slot = SLOT_NONE;
	}
	buf = slot_buffer(ctx->resp, ctx->slot, &cap);
	if (!buf)
		return 0;
	used = strlen(buf);
	snprintf(buf + used, cap - used, "%.*s", (int)len, at);
	return 0;
}

static int on_body(http_parser *parser, const char *at, size_t len)
{
	struct parse_ctx *ctx = parser->data;
	struct http_resp *resp = ctx->resp;

	if (resp->body_len + len + 1 > ctx->body_cap) {
		size_t cap = (resp->body_len + len + 1) * 2;
		char *grown = realloc(resp->body, cap);

		if (!grown) {
			ctx->error = -ENOMEM;
			return -1;
		}
		resp->body = grown;
		ctx->body_cap = cap;
	}
	memcpy(resp->body + resp->body_len, at, len);
	resp->body_len += len;
	resp->body[resp->body_len] = '\0';
	return 0;
}

static int on_message_complete(http_parser *parser)
{
	struct parse_ctx *ctx = parser->data;

	ctx->complete = true;
	ctx->resp->keep_alive = http_should_keep_alive(parser);
	/* Stop here: bytes after this response belong to the next one. */
	http_parser_pause(parser, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* Feed bytes to the parser and keep what follows a complete response. */
static int parse_feed(struct http_conn *c, http_parser *parser,
		      struct parse_ctx *ctx, const char *data, size_t len)
{
	size_t used = http_parser_execute(parser, &parser_settings, data, len);
	enum http_errno err = HTTP_PARSER_ERRNO(parser);

	if (ctx->error)
		return ctx->error;
	if (err != HPE_OK && err != HPE_PAUSED)
		return -EPROTO;
	if (ctx->complete && used < len) {
		char *rest = malloc(len - used);

		if (!rest)
			return -ENOMEM;
		memcpy(rest, data + used, len - used);
		free(c->buf);
		c->buf = rest;
		c->buf_len = len - used;
	}
	return 0;
}

static void record_sandbox(struct sbxd_proc *p, json_t *obj)
{
	json_t *id = json_object_get(obj, "id");
	json_t *pid = json_object_get(obj, "pid");
	struct proc_stat st;
	struct harness_vmm *v;
	pid_t n;

	if (!json_is_string(id) || !json_is_integer(pid))
		return;
	n = (pid_t)json_integer_value(pid);
	if (n <= 0 || proc_stat_read(n, &st) < 0)
		return;
	pthread_mutex_lock(&p->vmm_lock);
	for (size_t i = 0; i < p->n_vmms; i++) {
		if (p->vmms[i].pid == n &&
		    p->vmms[i].start_time == st.start_time)
			goto unlock;
	}
	if (p->n_vmms < HARNESS_MAX_VMMS) {
		v = &p->vmms[p->n_vmms++];
		v->pid = n;
		v->start_time = st.start_time;
		snprintf(v->id, sizeof(v->id), "%s", json_string_value(id));
	}
unlock:
	pthread_mutex_unlock(&p->vmm_lock);
}

/* Record every VMM pid a response shows, for the leftover checks. */
static void record_vmms(struct sbxd_proc *p, json_t *json)
{
	json_t *list = json_object_get(json, "sandboxes");
	json_t *item;
	size_t i;

	if (!p || !json_is_object(json))
		return;
	if (json_is_array(list)) {
		json_array_foreach(list, i, item)
			record_sandbox(p, item);
		return;
	}
	record_sandbox(p, json);
}

static void trace_response(const struct http_resp *resp)
{
	if (!getenv("SBX_ITEST_TRACE"))
		return;
	fprintf(stderr, "harness: <- %d %.*s\n", resp->status,
		(int)(resp->body_len > 600 ? 600 : resp->body_len),
		resp->body ? resp->body : "");
}

int http_read_response(struct http_conn *c, struct http_resp *resp)
{
	int64_t deadline = harness_now_ms() + c->timeout_ms;
	struct parse_ctx ctx = { .resp = resp };
	http_parser parser;
	char *chunk;
	ssize_t n;
	int ret = 0;

	memset(resp, 0, sizeof(*resp));
	http_parser_init(&parser, HTTP_RESPONSE);
	parser.data = &ctx;
	chunk = malloc(READ_CHUNK);
	if (!chunk)
		return -ENOMEM;
	if (c->buf_len) {
		char *pending = c->buf;
		size_t pending_len = c->buf_len;

		c->buf = NULL;
		c->buf_len = 0;
		ret = parse_feed(c, &parser, &ctx, pending, pending_len);
		free(pending);
	}
	while (!ret && !ctx.complete) {
		ret = wait_fd(c->fd, POLLIN, deadline);
		if (ret)
			break;
		n = recv(c->fd, chunk, READ_CHUNK, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			ret = errno == ECONNRESET ? -ECONNRESET : -errno;
			break;
		}
		if (n == 0) {
			/* EOF ends a body without a length, but cuts any other. */
			http_parser_execute(&parser, &parser_settings, NULL, 0);
			if (!ctx.complete)
				ret = -ECONNRESET;
			break;
		}
		ret = parse_feed(c, &parser, &ctx, chunk, (size_t)n);
	}
	free(chunk);
	if (ret) {
		http_resp_free(resp);
		return ret;
	}
	resp->status = parser.status_code;
	if (resp->body_len)
		resp->json = json_loadb(resp->body, resp->body_len, 0, NULL);
	record_vmms(c->proc, resp->json);
	trace_response(resp);
	return resp->status;
}

int http_wait_closed(struct http_conn *c, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	char chunk[4096];
	ssize_t n;
	int ret;

	for (;;) {
		ret = wait_fd(c->fd, POLLIN, deadline);
		if (ret == -ETIMEDOUT)
			return 0;
		if (ret)
			return ret;
		n = recv(c->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno == ECONNRESET ? 1 : -errno;
		if (n == 0)
			return 1;
		/* Keep a response sent before the close (a 408, say). */
		char *grown = realloc(c->buf, c->buf_len + (size_t)n);

		if (!grown)
			return -ENOMEM;
		memcpy(grown + c->buf_len, chunk, (size_t)n);
		c->buf = grown;
		c->buf_len += (size_t)n;
	}
}

int http_conn_request(struct http_conn *c, const char *method,
		      const char *path, const char *body,
		      struct http_resp *resp)
{
	size_t body_len = body ? strlen(body) : 0;
	char head[1024];
	char *req;
	int head_len, ret;

	if (body)
		head_len = snprintf(head, sizeof(head),
				    "%s %s HTTP/1.1\r\nHost: sbxd\r\n"
				    "Content-Type: application/json\r\n"
				    "Content-Length: %zu\r\n\r\n",
				    method, path, body_len);
	else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
		head_len = snprintf(head, sizeof(head),
				    "%s %s HTTP/1.1\r\nHost: sbxd\r\n"
				    "Content-Length: 0\r\n\r\n",
				    method, path);
	else
		head_len = snprintf(head, sizeof(head),
				    "%s %s HTTP/1.1\r\nHost: sbxd\r\n\r\n",
				    method, path);
	if (head_len < 0 || (size_t)head_len >= sizeof(head))
		return -ENAMETOOLONG;
	if (getenv("SBX_ITEST_TRACE"))
		fprintf(stderr, "harness: -> %s %s %.*s\n", method, path,
			(int)(body_len > 300 ? 300 : body_len),
			body ? body : "");
	req = malloc((size_t)head_len + body_len);
	if (!req)
		return -ENOMEM;
	memcpy(req, head, (size_t)head_len);
	if (body_len)
		memcpy(req + head_len, body, body_len);
	ret = http_send_raw(c, req, (size_t)head_len + body_len);
	free(req);
	if (ret)
		return ret;
	return http_read_response(c, resp);
}

int http_request(struct sbxd_proc *p, const char *method, const char *path,
		 const char *body, struct http_resp *resp)
{
	struct http_conn c;
	int ret;

	memset(resp, 0, sizeof(*resp));
	ret = http_connect(p, &c);
	if (ret)
		return ret;
	ret = http_conn_request(&c, method, path, body, resp);
	http_close(&c);
	return ret;
}

static void *async_main(void *arg)
{
	struct http_async *a = arg;

	a->rc = http_request(a->proc, a->method, a->path, a->body, &a->resp);
	return NULL;
}

int http_request_start(struct http_async *a, struct sbxd_proc *p,
		       const char *method, const char *path,
		       const char *body)
{
	int ret;

	memset(a, 0, sizeof(*a));
	a->proc = p;
	a->method = strdup(method);
	a->path = strdup(path);
	a->body = body ? strdup(body) : NULL;
	if (!a->method || !a->path || (body && !a->body)) {
		ret = -ENOMEM;
		goto free_strings;
	}
	ret = -pthread_create(&a->thread, NULL, async_main, a);
	if (ret)
		goto free_strings;
	a->started = true;
	return 0;

free_strings:
	free(a->method);
	free(a->path);
	free(a->body);
	return ret;
}

int http_request_join(struct http_async *a, struct http_resp *resp)
{
	if (!a->started)
		return -EINVAL;
	pthread_join(a->thread, NULL);
	a->started = false;
	free(a->method);
	free(a->path);
	free(a->body);
	*resp = a->resp;
	memset(&a->resp, 0, sizeof(a->resp));
	return a->rc;
}

int sbx_create(struct sbxd_proc *p, const char *body, char *id, size_t len)
{
	struct http_resp resp;
	json_t *jid;
	int status;

	status = http_request(p, "POST", "/v1/sandboxes", body, &resp);
	cr_assert(status > 0, "POST /v1/sandboxes %s: no response: %s", body,
		  strerror(-status));
	jid = json_object_get(resp.json, "id");
	if (id && len)
		snprintf(id, len, "%s",
			 json_is_string(jid) ? json_string_value(jid) : "");
	if (status == 201)
		cr_assert(json_is_string(jid),
			  "201 create without a string id: %s", resp.body);
	http_resp_free(&resp);
	return status;
}

json_t *sbx_get(struct sbxd_proc *p, const char *id)
{
	struct http_resp resp;
	char path[256];
	json_t *json;
	int status;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	status = http_request(p, "GET", path, NULL, &resp);
	cr_assert(status == 200, "GET %s: expected 200, got %d: %s", path,
		  status, status > 0 ? resp.body : strerror(-status));
	json = json_incref(resp.json);
	http_resp_free(&resp);
	cr_assert(json_is_object(json), "GET %s: body is not an object",
		  path);
	return json;
}

json_t *sbx_node(struct sbxd_proc *p)
{
	struct http_resp resp;
	json_t *json;
	int status;

	status = http_request(p, "GET", "/v1/node", NULL, &resp);
	cr_assert(status == 200, "GET /v1/node: expected 200, got %d: %s",
		  status, status > 0 ? resp.body : strerror(-status));
	json = json_incref(resp.json);
	http_resp_free(&resp);
	cr_assert(json_is_object(json), "GET /v1/node: body is not an object");
	return json;
}

void sbx_node_state(struct sbxd_proc *p, char *out, size_t len)
{
	struct http_resp resp;
	json_t *state;

	snprintf(out, len, "%s", "");
	if (http_request(p, "GET", "/v1/node", NULL, &resp) != 200) {
		http_resp_free(&resp);
		return;
	}
	state = json_object_get(resp.json, "state");
	if (json_is_string(state))
		snprintf(out, len, "%s", json_string_value(state));
	http_resp_free(&resp);
}

int sbx_wait_node_state(struct sbxd_proc *p, const char *want,
			int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	char state[32];

	for (;;) {
		sbx_node_state(p, state, sizeof(state));
		if (strcmp(state, want) == 0)
			return 0;
		if (harness_now_ms() >= deadline)
			return -ETIMEDOUT;
		harness_sleep_ms(10);
	}
}

int sbx_wait_inflight(struct sbxd_proc *p, json_int_t want, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	json_int_t inflight;
	json_t *node;

	for (;;) {
		node = sbx_node(p);
		inflight = json_integer_value(json_object_get(node,
							      "inflight_starts"));
		json_decref(node);
		if (inflight == want)
			return 0;
		if (harness_now_ms() >= deadline)
			return -ETIMEDOUT;
		harness_sleep_ms(10);
	}
}

int sbx_wait_sandbox_state(struct sbxd_proc *p, const char *id,
			   const char *want, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	struct http_resp resp;
	char path[256];
	json_t *state;
	bool match;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	for (;;) {
		http_request(p, "GET", path, NULL, &resp);
		state = json_object_get(resp.json, "state");
		match = json_is_string(state) &&
			strcmp(json_string_value(state), want) == 0;
		http_resp_free(&resp);
		if (match)
			return 0;
		if (harness_now_ms() >= deadline)
			return -ETIMEDOUT;
		harness_sleep_ms(10);
	}
}

int sbx_exec(struct sbxd_proc *p, const char *id, const char *command,
	     char **output, json_int_t *exit_code)
{
	struct http_resp resp;
	json_t *req, *out, *code;
	char path[256], *body;
	int status;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	req = json_pack("{s:s, s:i}", "command", command, "timeout_ms", 10000);
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	status = http_request(p, "POST", path, body, &resp);
	free(body);
	cr_assert(status > 0, "POST %s: no response: %s", path,
		  strerror(-status));
	out = json_object_get(resp.json, "output");
	code = json_object_get(resp.json, "exit_code");
	if (output)
		*output = json_is_string(out) ?
				  strdup(json_string_value(out)) : NULL;
	if (exit_code)
		*exit_code = json_is_integer(code) ? json_integer_value(code) :
						     -1000;
	http_resp_free(&resp);
	return status;
}

void sbx_assert_error(const struct http_resp *resp, int status,
		      const char *field, const char *ctx)
{
	json_t *err = json_object_get(resp->json, "error");
	json_t *code = json_object_get(err, "code");
	json_t *msg = json_object_get(err, "message");

	cr_assert_eq(resp->status, status, "%s: expected %d, got %d: %s", ctx,
		     status, resp->status, resp->body ? resp->body : "");
	cr_assert(json_is_object(err),
		  "%s: body has no \"error\" object: %s", ctx,
		  resp->body ? resp->body : "");
	cr_assert(json_is_string(code) && json_string_length(code) > 0,
		  "%s: error.code is not a non-empty string: %s", ctx,
		  resp->body);
	cr_assert(json_is_string(msg) && json_string_length(msg) > 0,
		  "%s: error.message is not a non-empty string: %s", ctx,
		  resp->body);
	if (field)
		cr_assert(strstr(json_string_value(msg), field),
			  "%s: error.message does not name the field \"%s\": "
			  "%s", ctx, field, json_string_value(msg));
}

void sbxd_assert_exit(struct sbxd_proc *p, int timeout_ms, int code)
{
	static char tail[4096];
	char *log;
	int ret, status = 0;

	ret = sbxd_wait_exit(p, timeout_ms, &status);
	log = sbxd_log_tail(p, sizeof(tail) - 1);
	snprintf(tail, sizeof(tail), "%s", log ? log : "");
	free(log);
	cr_assert(ret == 0, "sbxd still running %d ms later (%s); log:\n%s",
		  timeout_ms, strerror(-ret), tail);
	cr_assert(WIFEXITED(status),
		  "sbxd did not exit normally (wait status 0x%x, signal %d); "
		  "log:\n%s", status, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
		  tail);
	cr_assert_eq(WEXITSTATUS(status), code,
		     "sbxd exit status: expected %d, got %d; log:\n%s", code,
		     WEXITSTATUS(status), tail);
}
