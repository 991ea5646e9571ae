/* SPDX-License-Identifier: MIT */
/*
 * sbx-vmm in standalone mode, run as users run it: commands of sbx-agent,
 * every way a guest can end, the console cap and the flag checks. Needs
 * /dev/kvm; skips without it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sbxd/vmm_proto.h"
#include "test_vmm_util.h"

#define TIMEOUT_S 60

static struct vmm_result res;

static void run(const char *const *argv)
{
	vmm_run_standalone(argv, TIMEOUT_S, &res);
}

static void cleanup(void)
{
	vmm_result_free(&res);
}

/* Run the test guest in `mode`; extra flags may follow. */
static void run_test_guest(const char *mode, const char *flag)
{
	const char *argv[] = { "--guest", SBX_TEST_GUEST, "--args", mode,
			       flag, NULL };

	run(argv);
}

static void assert_crash(const char *reason)
{
	cr_assert_eq(res.status, SBX_VMM_STATUS_CRASH,
		     "status %d, expected %d; stderr: %s", res.status,
		     SBX_VMM_STATUS_CRASH, res.err);
	cr_assert_not_null(strstr(res.err, reason),
			   "stderr lacks \"%s\": %s", reason, res.err);
	cr_assert_not_null(strstr(res.err, "RIP 0x4"),
			   "stderr lacks a RIP inside the guest: %s", res.err);
}

TestSuite(vmm, .init = require_kvm, .fini = cleanup, .timeout = 120);

Test(vmm, echo_prints_output)
{
	const char *argv[] = { "--", "echo", "hi", NULL };

	run(argv);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "hi\n");
}

Test(vmm, echo_joins_words)
{
	const char *argv[] = { "--memory-mib", "32", "--id", "t1", "--",
			       "echo", "a", "b  c", NULL };

	run(argv);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "a b  c\n");
}

Test(vmm, exit_code_is_status)
{
	const char *argv[] = { "--", "exit", "7", NULL };

	run(argv);
	cr_assert_eq(res.status, 7, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "");
}

Test(vmm, counter_starts_at_one)
{
	const char *argv[] = { "--", "counter", NULL };

	run(argv);
	cr_assert_eq(res.status, 0);
	cr_assert_str_eq(res.out, "1\n");
}

Test(vmm, sleep_returns)
{
	const char *argv[] = { "--", "sleep", "50", NULL };

	run(argv);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "\n");
}

Test(vmm, spin_returns)
{
	const char *argv[] = { "--", "spin", "50", NULL };

	run(argv);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "\n");
}

Test(vmm, bad_number_exits_2)
{
	const char *argv[] = { "--", "sleep", "soon", NULL };

	run(argv);
	cr_assert_eq(res.status, 2);
	cr_assert_str_eq(res.out, "sleep: invalid number: soon\n");
}

Test(vmm, unknown_command_exits_127)
{
	const char *argv[] = { "--", "frobnicate", "x", NULL };

	run(argv);
	cr_assert_eq(res.status, 127);
	cr_assert_str_eq(res.out, "unknown command: frobnicate\n");
}

Test(vmm, touch_within_ram)
{
	const char *argv[] = { "--", "touch", "8", NULL };

	run(argv);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "8\n");
}

Test(vmm, touch_beyond_ram_ends_vm)
{
	const char *argv[] = { "--memory-mib", "16", "--", "touch", "64",
			       NULL };

	run(argv);
	assert_crash("bad access");
	cr_assert_not_null(strstr(res.err, "GPA 0x1000000"),
			   "stderr lacks the first GPA past RAM: %s", res.err);
}

Test(vmm, crash_is_triple_fault)
{
	const char *argv[] = { "--", "crash", NULL };

	run(argv);
	assert_crash("triple fault");
}

Test(vmm, boot_delay_still_runs)
{
	const char *argv[] = { "--boot-delay-ms", "100", "--", "echo", "late",
			       NULL };

	run(argv);
	cr_assert_eq(res.status, 0);
	cr_assert_str_eq(res.out, "late\n");
}

Test(vmm, ignore_stop_still_ends)
{
	const char *argv[] = { "--ignore-stop", "--", "exit", "4", NULL };
	const char *argv_echo[] = { "--ignore-stop", "--", "echo", "x", NULL };

	run(argv);
	cr_assert_eq(res.status, 4);
	vmm_result_free(&res);

	/* The guest ignores the stop after echo; sbx-vmm ends it anyway. */
	run(argv_echo);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_str_eq(res.out, "x\n");
}

Test(vmm, hlt_at_cpl0)
{
	run_test_guest("hlt", "--cpl0");
	assert_crash("hlt: guest halted");
}

Test(vmm, hlt_at_cpl3_faults)
{
	/* HLT is privileged: at CPL3 it raises #GP, and with no IDT that
	 * becomes a triple fault. */
	run_test_guest("hlt", NULL);
	assert_crash("triple fault");
}

Test(vmm, unknown_port)
{
	run_test_guest("port", NULL);
	assert_crash("bad port");
	cr_assert_not_null(strstr(res.err, "port 0x3f8"), "stderr: %s",
			   res.err);
}

Test(vmm, hypercall_outside_ram)
{
	run_test_guest("hypercall-outside-ram", NULL);
	assert_crash("bad hypercall");
	cr_assert_not_null(strstr(res.err, "GPA 0x1001000"), "stderr: %s",
			   res.err);
}

Test(vmm, hypercall_unknown_op)
{
	run_test_guest("hypercall-unknown-op", NULL);
	assert_crash("bad hypercall");
	cr_assert_not_null(strstr(res.err, "op 999"), "stderr: %s", res.err);
}

Test(vmm, buffer_length_wraps)
{
	run_test_guest("buffer-outside-ram", NULL);
	assert_crash("bad hypercall");
	cr_assert_not_null(strstr(res.err, "WRITE buffer"), "stderr: %s",
			   res.err);
}

Test(vmm, emulation_error)
{
	run_test_guest("emulation", NULL);
	assert_crash("emulation error");
}

Test(vmm, read_outside_ram)
{
	run_test_guest("read-outside-ram", NULL);
	assert_crash("bad access");
	cr_assert_not_null(strstr(res.err, "read 4 bytes at GPA 0x1002000"),
			   "stderr: %s", res.err);
}

Test(vmm, console_output_capped)
{
	/* The guest writes 2 MiB; only the first 1 MiB reaches stdout. */
	run_test_guest("flood", NULL);
	cr_assert_eq(res.status, 0, "status %d; stderr: %s", res.status,
		     res.err);
	cr_assert_eq(res.out_len, 1u << 20, "stdout got %zu bytes",
		     res.out_len);
	cr_assert_not_null(strstr(res.err, "capped at 1 MiB"), "stderr: %s",
			   res.err);
}

Test(vmm, unknown_flag_exits_2)
{
	const char *argv[] = { "--frob", NULL };

	run(argv);
	cr_assert_eq(res.status, SBX_VMM_STATUS_USAGE);
	cr_assert_not_null(strstr(res.err, "--frob"), "stderr: %s", res.err);
}

Test(vmm, bad_memory_exits_2)
{
	const char *argv[] = { "--memory-mib", "2", NULL };

	run(argv);
	cr_assert_eq(res.status, SBX_VMM_STATUS_USAGE);
	cr_assert_not_null(strstr(res.err, "--memory-mib"), "stderr: %s",
			   res.err);
}

Test(vmm, missing_value_exits_2)
{
	const char *argv[] = { "--guest", NULL };

	run(argv);
	cr_assert_eq(res.status, SBX_VMM_STATUS_USAGE);
	cr_assert_not_null(strstr(res.err, "--guest needs a value"),
			   "stderr: %s", res.err);
}

Test(vmm, non_elf_guest_exits_2)
{
	const char *argv[] = { "--guest", SBX_BIN_DIR "/CMakeCache.txt", "--",
			       "echo", NULL };

	run(argv);
	cr_assert_eq(res.status, SBX_VMM_STATUS_USAGE, "status %d",
		     res.status);
	cr_assert_not_null(strstr(res.err, "bad magic"), "stderr: %s",
			   res.err);
}

Test(vmm, help_lists_every_flag)
{
	static const char *const flags[] = {
		"--guest",	 "--memory-mib",  "--id",	  "--args",
		"--boot-delay-ms", "--ignore-stop", "--control-fd", "--cpl0",
		"--help",
	};
	const char *argv[] = { "--help", NULL };

	run(argv);
	cr_assert_eq(res.status, 0);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		cr_assert_not_null(strstr(res.out, flags[i]),
				   "--help lacks %s", flags[i]);
}
