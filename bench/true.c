// SPDX-License-Identifier: MIT
/*
 * The smallest static program: _start calls exit_group(0). No libc, no
 * dynamic loader, one page of text, so fork+exec of it is the floor of
 * starting any process.
 */
void _start(void);

void _start(void)
{
	__asm__ volatile("mov $231, %%eax\n\t" /* SYS_exit_group */
			 "xor %%edi, %%edi\n\t"
			 "syscall"
			 :
			 :
			 : "rax", "rdi", "memory");
	__builtin_unreachable();
}
