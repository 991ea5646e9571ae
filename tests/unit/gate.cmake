# SPDX-License-Identifier: MIT
# Admission gate tests, run against both the memfd and the BPF backend.

if(NOT SBX_BPFTOOL)
	set(SBX_BPFTOOL bpftool)
endif()

sbx_criterion_test(test_gate
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_gate.c
	LIBS sbxd_gate PkgConfig::JANSSON
	LABELS unit gate
	TIMEOUT 900)
target_compile_definitions(test_gate PRIVATE
	SBX_BPFTOOL="${SBX_BPFTOOL}")
