# SPDX-License-Identifier: MIT
# sbx-vmm tests: the ELF loader in-process, and the real sbx-vmm binary on
# real KVM for every guest end, the control channel, pause, resume,
# snapshots, restores and confinement.

sbx_criterion_test(test_elf
	SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_elf.c
	LIBS sbxvmm_core
	LABELS unit vmm
	TIMEOUT 60)
add_dependencies(test_elf sbx-agent)

foreach(name test_vmm test_vmm_control test_vmm_snapshot test_vmm_confine)
	sbx_criterion_test(${name}
		SOURCES ${CMAKE_CURRENT_LIST_DIR}/${name}.c
			${CMAKE_CURRENT_LIST_DIR}/test_vmm_util.c
		LABELS unit vmm kvm
		TIMEOUT 300)
	target_compile_definitions(${name} PRIVATE
		SBX_TEST_GUEST="${PROJECT_BINARY_DIR}/tests/guests/sbx-test-guest")
	add_dependencies(${name} sbx-vmm sbx-agent sbx-test-guest)
endforeach()

# The snapshot tests also check the file format and CRC-32C in-process.
target_link_libraries(test_vmm_snapshot PRIVATE sbxvmm_core)
# The confinement tests use the limits that confine.h and snapshot.h set.
target_link_libraries(test_vmm_confine PRIVATE sbxvmm_core)
