/* SPDX-License-Identifier: MIT */
/*
 * sbx-agent: the default kernel-less guest. It reports READY, then serves
 * commands from the VMM one at a time until it is asked to stop.
 */
#include "hc.h"

#define CMD_MAX 65536 /* maximum command bytes, the exec payload cap */
#define OUT_MAX 65536 /* maximum reply bytes, the exec payload cap */
#define PAGE_SIZE 4096
#define MIB (1024 * 1024)

static const struct sbx_boot_info *boot;
static char cmd_buf[CMD_MAX + 1];
static char out_buf[OUT_MAX];
static size_t out_len;
static uint64_t counter;

/* Append to the reply output; text past OUT_MAX is dropped. */
static void out_append(const char *s, size_t n)
{
	size_t room = OUT_MAX - out_len;

	if (n > room)
		n = room;
	memcpy(out_buf + out_len, s, n);
	out_len += n;
}

static void out_str(const char *s)
{
	out_append(s, strlen(s));
}

static void out_u64(uint64_t v)
{
	char digits[20];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n--)
		out_append(&digits[n], 1);
}

/* Parse a decimal number with an optional leading '-'. Returns 0 or -EINVAL. */
static int parse_i64(const char *s, int64_t *value)
{
	int negative = 0;
	uint64_t v = 0;

	if (*s == '-') {
		negative = 1;
		s++;
	}
	if (!*s)
		return -22;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -22;
		if (v > (UINT64_C(1) << 62) / 10)
			return -22;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*value = negative ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* Parse a count argument. On error, write a message to the output and
 * return -EINVAL. */
static int parse_count(const char *verb, const char *arg, uint64_t *count)
{
	int64_t v;

	if (parse_i64(arg, &v) < 0 || v < 0) {
		out_str(verb);
		out_str(": invalid number: ");
		out_str(arg);
		return -22;
	}
	*count = (uint64_t)v;
	return 0;
}

static int cmd_echo(const char *args)
{
	out_str(args);
	return 0;
}

static int cmd_sleep(const char *args)
{
	uint64_t ms;

	if (parse_count("sleep", args, &ms) < 0)
		return 2;
	/* A stop request cuts the sleep short (SLEEP_NS returns 1), and the
	 * next WAIT_COMMAND delivers the stop. The command then fails, so a
	 * caller never mistakes a cut-short sleep for a finished one. */
	if (hc_op(SBX_HC_SLEEP_NS, ms * 1000000, 0, 0) == 1) {
		out_str("sleep: interrupted by a stop request");
		return 130;
	}
	return 0;
}

static int cmd_spin(const char *args)
{
	uint64_t ms, deadline, sink = 0;

	if (parse_count("spin", args, &ms) < 0)
		return 2;
	deadline = hc_clock_ns() + ms * 1000000;
	/* Burn CPU at CPL3 and read the clock (a hypercall) every 50k adds. */
	while (hc_clock_ns() < deadline) {
		for (int i = 0; i < 50000; i++) {
			sink += (uint64_t)i;
			/* The empty asm keeps the loop from being folded. */
			__asm__ volatile("" : "+r"(sink));
		}
	}
	return 0;
}

/*
 * Write one byte into each 4 KiB page of the heap. Past the heap the walk
 * skips the stack and goes on above the end of RAM, where the VMM ends the
 * VM with a bad-access reason instead of letting the guest hang.
 */
static int cmd_touch(const char *args)
{
	uint64_t mib, pages, addr;

	if (parse_count("touch", args, &mib) < 0)
		return 2;
	if (mib > 4096) {
		out_str("touch: at most 4096 MiB: ");
		out_str(args);
		return 2;
	}
	pages = mib * (MIB / PAGE_SIZE);
	addr = boot->heap_start;
	for (uint64_t i = 0; i < pages; i++, addr += PAGE_SIZE) {
		if (addr >= boot->heap_end && addr < boot->mem_size)
			addr = boot->mem_size;
		*(volatile uint8_t *)(uintptr_t)addr = 0xa5;
	}
	out_u64(mib);
	return 0;
}

static int cmd_counter(const char *args)
{
	counter++;
	out_u64(counter);
	return 0;
}

static int cmd_exit(const char *args)
{
	int64_t code;

	if (parse_i64(args, &code) < 0) {
		out_str("exit: invalid exit code: ");
		out_str(args);
		return 2;
	}
	hc_exit((int)code);
}

/* Fault with no IDT loaded: #UD escalates to a triple fault. */
static int cmd_crash(const char *args)
{
	__asm__ volatile("ud2");
	return 1;
}

struct command {
	const char *verb;
	int (*run)(const char *args);
};

static const struct command commands[] = {
	{ "echo", cmd_echo },	{ "sleep", cmd_sleep }, { "spin", cmd_spin },
	{ "touch", cmd_touch }, { "counter", cmd_counter },
	{ "exit", cmd_exit },	{ "crash", cmd_crash },
};

/* Run one command line "verb args" and return its exit code. */
static int run_command(char *line)
{
	char *args = line;
	size_t verb_len;

	while (*args && *args != ' ')
		args++;
	verb_len = (size_t)(args - line);
	while (*args == ' ')
		args++;

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];

		if (strlen(c->verb) == verb_len &&
		    !memcmp(c->verb, line, verb_len))
			return c->run(args);
	}
	out_str("unknown command: ");
	out_append(line, verb_len);
	return 127;
}

static void serve(void)
{
	struct sbx_hypercall hc;
	int64_t len;
	int code;

	for (;;) {
		hc = (struct sbx_hypercall){ .op = SBX_HC_WAIT_COMMAND };
		hc.arg[0] = (uint64_t)(uintptr_t)cmd_buf;
		hc.arg[1] = sizeof(cmd_buf);
		len = hc_call(&hc);
		if (hc.flags == SBX_CMD_STOP) {
			if (boot->flags & SBX_BOOT_IGNORE_STOP)
				continue;
			hc_exit(0);
		}
		if (len < 0)
			hc_exit(1);

		out_len = 0;
		if ((uint64_t)len >= sizeof(cmd_buf)) {
			out_str("command too long");
			code = 2;
		} else {
			cmd_buf[len] = '\0';
			code = run_command(cmd_buf);
		}
		hc_op(SBX_HC_REPLY, (uint64_t)(int64_t)code,
		      (uint64_t)(uintptr_t)out_buf, out_len);
	}
}

__attribute__((noreturn)) void agent_main(const struct sbx_boot_info *info);

__attribute__((noreturn)) void agent_main(const struct sbx_boot_info *info)
{
	static const char bad_magic[] = "sbx-agent: bad boot-info magic\n";

	boot = info;
	if (boot->magic != SBX_BOOT_MAGIC) {
		hc_write(2, bad_magic, sizeof(bad_magic) - 1);
		hc_exit(1);
	}
	if (boot->boot_delay_ms)
		hc_op(SBX_HC_SLEEP_NS, (uint64_t)boot->boot_delay_ms * 1000000,
		      0, 0);
	hc_op(SBX_HC_READY, 0, 0, 0);
	serve();
	hc_exit(0);
}
