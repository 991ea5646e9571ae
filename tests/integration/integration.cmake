# SPDX-License-Identifier: MIT
# Integration tests: a real sbxd with real VMs per test. The harness is a
# static library so that other integration test programs can link it.
add_library(sbx_itest_harness STATIC
	${CMAKE_CURRENT_LIST_DIR}/harness.c)
sbx_host_target(sbx_itest_harness)
target_include_directories(sbx_itest_harness PUBLIC
	${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(sbx_itest_harness PRIVATE
	SBX_BIN_DIR="${SBX_BIN_DIR}")
find_package(Threads REQUIRED)
target_link_libraries(sbx_itest_harness PUBLIC
	PkgConfig::CRITERION PkgConfig::JANSSON ${HTTP_PARSER_LIB}
	Threads::Threads)

foreach(suite api drain lock)
	set(src ${CMAKE_CURRENT_LIST_DIR}/test_${suite}.c)
	if(EXISTS ${src})
		sbx_criterion_test(itest_${suite}
			SOURCES ${src}
			LIBS sbx_itest_harness
			LABELS integration
			TIMEOUT 300)
	endif()
endforeach()
