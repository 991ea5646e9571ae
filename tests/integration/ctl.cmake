# SPDX-License-Identifier: MIT
# sbxctl against a real sbxd: runs the sbxctl program and checks its
# output and exit status. Needs the harness library from integration.cmake.
sbx_criterion_test(itest_ctl
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_ctl.c
	LIBS sbx_itest_harness
	LABELS integration
	TIMEOUT 300)
add_dependencies(itest_ctl sbxctl)
