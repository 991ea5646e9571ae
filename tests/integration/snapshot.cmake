# SPDX-License-Identifier: MIT
# Pause, resume, snapshot, restore, checkpoint and the checkpoint drain
# against a real sbxd with real VMs. Needs the harness library from
# integration.cmake.
sbx_criterion_test(itest_snapshot
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_snapshot.c
	LIBS sbx_itest_harness
	LABELS integration
	TIMEOUT 300)
add_dependencies(itest_snapshot sbxd sbx-vmm sbx-agent sbxctl)
