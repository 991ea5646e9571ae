/* SPDX-License-Identifier: MIT */
/*
 * Entry point of sbx-agent. sbx-vmm enters `_start` at CPL3 in 64-bit mode
 * with RDI = boot-info GPA and RSP = top of RAM minus 8, as after a call.
 * It is written as top-level asm so that the guest needs no ASM language
 * support in the build.
 */
__asm__(".section .text.start, \"ax\"\n"
	".globl _start\n"
	".type _start, @function\n"
	"_start:\n"
	"	xorl	%ebp, %ebp\n"
	"	andq	$-16, %rsp\n"
	"	call	agent_main\n"
	/* agent_main never returns. If it did, ud2 would end the VM. */
	"	ud2\n"
	".size _start, . - _start\n"
	".text\n");
