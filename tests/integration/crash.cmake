# SPDX-License-Identifier: MIT
# Soak and crash tests against a real sbxd: itest_soak runs the sbx-soak
# program for 300 cycles, and itest_crash SIGKILLs sbxd mid-start,
# mid-drain and mid-snapshot. Needs the harness library from
# integration.cmake.
sbx_criterion_test(itest_soak
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_soak.c
	LIBS sbx_itest_harness
	LABELS integration
	TIMEOUT 300)
add_dependencies(itest_soak sbx-soak sbxd sbx-vmm sbx-agent)

sbx_criterion_test(itest_crash
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_crash.c
	LIBS sbx_itest_harness PkgConfig::LIBBPF
	LABELS integration
	TIMEOUT 300)
add_dependencies(itest_crash sbxd sbx-vmm sbx-agent)
