# SPDX-License-Identifier: MIT
# Observability integration tests: BPF map, metrics, sd_notify, the
# unprivileged memfd fallback and the drain waiter's cost, against a real
# sbxd. Needs the harness library from integration.cmake.
sbx_criterion_test(itest_observe
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_observe.c
	LIBS sbx_itest_harness
	LABELS integration
	TIMEOUT 300)
add_dependencies(itest_observe sbxd sbx-vmm sbx-agent sbx-test-guest)
