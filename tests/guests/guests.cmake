# SPDX-License-Identifier: MIT
# Misbehaving guests for the sbx-vmm tests, built like sbx-agent.

sbx_guest(sbx-test-guest SOURCES
	${PROJECT_SOURCE_DIR}/tests/guests/misbehave.c
	${PROJECT_SOURCE_DIR}/guest/lib.c)
set_target_properties(sbx-test-guest PROPERTIES
	RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests/guests)
