# SPDX-License-Identifier: MIT
# Unit tests of sbxd's pure logic: configuration, HTTP parsing, JSON
# bodies, the sandbox state table, log lines, guest sizing, metrics text
# and systemd notifications. They need no KVM, root or bpffs.
foreach(suite config http api sandbox log guest metrics notify)
	sbx_criterion_test(test_sbxd_${suite}
		SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sbxd_${suite}.c
		LIBS sbxd_core
		LABELS unit
		TIMEOUT 60)
endforeach()
# These two size the built sbx-agent.
add_dependencies(test_sbxd_api sbx-agent)
add_dependencies(test_sbxd_guest sbx-agent)
