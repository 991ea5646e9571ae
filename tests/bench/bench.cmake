# SPDX-License-Identifier: MIT
# Smoke test of the benchmark harness: scripts/bench.sh --quick against
# the programs of this build, writing to a temporary directory.
sbx_criterion_test(test_bench_quick
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bench_quick.c
	LIBS PkgConfig::JANSSON
	LABELS bench
	TIMEOUT 300)
add_dependencies(test_bench_quick sbx-bench sbx-bench-true floor-exec
	floor-kvm floor-rate floor-density sbxd sbx-vmm sbx-agent)
