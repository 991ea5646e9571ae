# SPDX-License-Identifier: MIT
# The tree must build warning-free with clang as well as with gcc. This test
# configures and builds a second tree with clang; it fails on any warning
# because SBX_WERROR is on.
find_program(SBX_CLANG clang)
if(SBX_CLANG AND NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
	add_test(NAME build_with_clang
		COMMAND ${CMAKE_COMMAND} -E env CC=${SBX_CLANG}
			sh -c "${CMAKE_COMMAND} -S ${PROJECT_SOURCE_DIR} -B ${PROJECT_BINARY_DIR}/build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && ${CMAKE_COMMAND} --build ${PROJECT_BINARY_DIR}/build-clang -j2")
	set_tests_properties(build_with_clang PROPERTIES TIMEOUT 600
		LABELS build)
endif()
