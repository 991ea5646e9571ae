# SPDX-License-Identifier: MIT
# libFuzzer harnesses. They build only in a clang tree configured with
# -DSBX_FUZZ=ON -DSBX_SANITIZE=ON, which scripts/fuzz.sh sets up; every
# other tree registers the fuzz_smoke test, which runs that script.

option(SBX_FUZZ "Build the libFuzzer harnesses in tests/fuzz (needs clang)"
	OFF)

if(NOT SBX_FUZZ)
	add_test(NAME fuzz_smoke
		COMMAND ${PROJECT_SOURCE_DIR}/scripts/fuzz.sh --seconds 5
			--build-dir ${PROJECT_BINARY_DIR}/fuzz)
	# The script exits 77 when clang is missing.
	set_tests_properties(fuzz_smoke PROPERTIES TIMEOUT 1800
		LABELS "fuzz" SKIP_RETURN_CODE 77)
	return()
endif()

if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
	message(FATAL_ERROR "SBX_FUZZ=ON needs clang for libFuzzer, but the "
		"C compiler is ${CMAKE_C_COMPILER_ID}; configure with CC=clang")
endif()
if(NOT SBX_SANITIZE)
	message(FATAL_ERROR "SBX_FUZZ=ON needs SBX_SANITIZE=ON, so that the "
		"harnesses and the code they call run under ASan and UBSan")
endif()

# Coverage feedback for the code under test, not only for the harnesses.
foreach(lib sbxd_core sbxvmm_core)
	target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link)
endforeach()

set(SBX_FUZZ_GUEST ${CMAKE_CURRENT_LIST_DIR}/corpus/elf/tiny.elf)

# sbx_fuzz_target(NAME LIBS lib...): fuzz_NAME from fuzz_NAME.c, in the
# fuzz/ directory of the build tree.
function(sbx_fuzz_target name)
	cmake_parse_arguments(F "" "" "LIBS" ${ARGN})
	add_executable(fuzz_${name}
		${CMAKE_CURRENT_LIST_DIR}/fuzz_${name}.c
		${CMAKE_CURRENT_LIST_DIR}/fuzz_util.c)
	sbx_host_target(fuzz_${name})
	target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
	target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
	target_link_libraries(fuzz_${name} PRIVATE ${F_LIBS})
	target_compile_definitions(fuzz_${name} PRIVATE
		SBX_FUZZ_GUEST="${SBX_FUZZ_GUEST}")
	set_target_properties(fuzz_${name} PROPERTIES
		RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/fuzz)
endfunction()

sbx_fuzz_target(http LIBS sbxd_core)
sbx_fuzz_target(json LIBS sbxd_core)
sbx_fuzz_target(elf LIBS sbxvmm_core sbxd_core)
sbx_fuzz_target(control LIBS sbxvmm_core)
sbx_fuzz_target(snapshot LIBS sbxvmm_core)
