// SPDX-License-Identifier: MIT
/*
 * Runs scripts/bench.sh --quick into a temporary directory and checks that
 * every scenario produced measurements. Timings are not checked: the quick
 * mode asserts no targets, and tests carry no timing targets.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char out_dir[] = "/tmp/sbx-bench-test-XXXXXX";

static void require_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		cr_skip_test("skipped: /dev/kvm not available");
	close(fd);
}

/* Run bench.sh and return its wait status; its output goes to out_dir. */
static int run_bench(void)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "%s/scripts/bench.sh %s --quick --out %s >%s/bench.log 2>&1",
		 SBX_SOURCE_DIR, SBX_BIN_DIR, out_dir, out_dir);
	return system(cmd);
}

static json_t *scenario(json_t *root, const char *name)
{
	json_t *s = json_object_get(json_object_get(root, "scenarios"), name);

	cr_assert_not_null(s, "scenario %s missing from quick.json", name);
	return s;
}

static json_int_t count_of(json_t *s, const char *key)
{
	json_t *summary = json_object_get(s, key);

	cr_assert_not_null(summary, "summary %s missing", key);
	return json_integer_value(json_object_get(summary, "n"));
}

static void check_file(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", out_dir, name);
	cr_expect_eq(access(path, R_OK), 0, "%s was not written", path);
}

/* Remove what bench.sh wrote; it removes its own temporary directory. */
static void remove_out_dir(void)
{
	char cmd[256];

	if (strcmp(out_dir + strlen(out_dir) - 6, "XXXXXX") == 0)
		return; /* mkdtemp never ran */
	snprintf(cmd, sizeof(cmd), "rm -rf %s", out_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "failed to remove %s\n", out_dir);
}

Test(bench, quick_run_covers_every_scenario, .fini = remove_out_dir,
     .timeout = 280)
{
	static const char *const names[] = { "floor", "start", "peer", "rate",
					     "density", "exec", "restore",
					     "drain", "force", "api" };
	char path[256];
	json_error_t err;
	json_t *root;
	json_t *s;
	int status;

	require_kvm();
	cr_assert_not_null(mkdtemp(out_dir));
	status = run_bench();
	if (status != 0) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "tail -n 30 %s/bench.log >&2",
			 out_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "no bench.log in %s\n", out_dir);
	}
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "bench.sh --quick failed with status 0x%x; its log is above",
		  status);

	snprintf(path, sizeof(path), "%s/quick.json", out_dir);
	root = json_load_file(path, 0, &err);
	cr_assert_not_null(root, "%s: %s", path, err.text);
	cr_expect_str_eq(json_string_value(json_object_get(root, "mode")),
			 "quick");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		s = scenario(root, names[i]);
		cr_expect(json_is_null(json_object_get(s, "met")),
			  "quick mode asserted a target for %s", names[i]);
	}

	cr_expect_eq(count_of(scenario(root, "start"), "samples_us"), 20);
	cr_expect_eq(count_of(scenario(root, "exec"), "samples_us"), 200);
	cr_expect_eq(count_of(scenario(root, "floor"), "exec_us"), 100);
	cr_expect_eq(count_of(scenario(root, "floor"), "kvm_us"), 100);
	cr_expect_eq(count_of(scenario(root, "peer"), "qemu_wall_us"), 3);
	cr_expect_eq(count_of(scenario(root, "peer"), "sbx_vmm_wall_us"), 3);
	cr_expect_gt(json_integer_value(json_object_get(scenario(root, "rate"),
							"cycles")), 0);
	cr_expect_eq(json_integer_value(json_object_get(
			     scenario(root, "density"), "held")), 50);
	s = scenario(root, "drain");
	cr_expect_eq(json_integer_value(json_object_get(s, "sbxd_exit_status")),
		     0, "the drained sbxd did not exit 0");
	s = scenario(root, "force");
	cr_expect_eq(json_integer_value(json_object_get(s, "vmms_exited")), 20);
	s = scenario(root, "api");
	cr_expect_gt(json_real_value(json_object_get(json_object_get(s, "sbxd"),
						     "requests_per_s")), 0);
	cr_expect_gt(json_real_value(json_object_get(json_object_get(s, "nginx"),
						     "requests_per_s")), 0);
	json_decref(root);

	check_file("bench-start.svg");
	check_file("bench-drain.svg");
	check_file("bench-force.svg");
}
