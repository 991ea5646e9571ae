# SPDX-License-Identifier: MIT
# Unit tests of sbxctl: argument parsing, request bodies, address choice,
# HTTP response parsing and text output. They need no server.
foreach(name cli format http)
	sbx_criterion_test(test_ctl_${name}
		SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_ctl_${name}.c
		LIBS sbxctl_core
		LABELS unit
		TIMEOUT 60)
	target_compile_definitions(test_ctl_${name} PRIVATE _GNU_SOURCE)
endforeach()

# The drain-state map reader, against maps pinned by sbxd's own gate.
sbx_criterion_test(test_ctl_drainmap
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_ctl_drainmap.c
	LIBS sbxctl_core sbxd_gate
	LABELS unit
	TIMEOUT 60)
target_compile_definitions(test_ctl_drainmap PRIVATE _GNU_SOURCE)
