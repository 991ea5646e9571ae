# SPDX-License-Identifier: MIT
# Confinement under a real sbxd, with hostile guests and a hostile VMM
# beside normal sandboxes.

add_executable(sbx-hostile-vmm ${CMAKE_CURRENT_LIST_DIR}/hostile_vmm.c)
sbx_host_target(sbx-hostile-vmm)
target_include_directories(sbx-hostile-vmm PRIVATE
	${PROJECT_SOURCE_DIR}/include)
target_compile_definitions(sbx-hostile-vmm PRIVATE
	SBX_BIN_DIR="${SBX_BIN_DIR}")
set_target_properties(sbx-hostile-vmm PROPERTIES
	RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)

sbx_criterion_test(itest_confine
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_confine.c
	LIBS sbx_itest_harness
	LABELS integration
	TIMEOUT 600)
target_compile_definitions(itest_confine PRIVATE
	SBX_TEST_GUEST="${PROJECT_BINARY_DIR}/tests/guests/sbx-test-guest"
	SBX_HOSTILE_VMM="${PROJECT_BINARY_DIR}/tests/sbx-hostile-vmm")
add_dependencies(itest_confine sbxd sbx-vmm sbx-agent sbx-test-guest
	sbx-hostile-vmm)
