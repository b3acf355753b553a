/* crt0.S: the start code of C guests, built once for 32-bit protected mode
 * and once for 64-bit long mode. The linker script puts .text.start first,
 * at 0x100000, where the VMM enters.
 *
 * It switches to the runtime's own stack (so a guest does not depend on the
 * rsp the VMM set), zeroes .bss, calls main() and hands main's return value
 * to exit(), which writes it to the exit port and halts. Interrupts stay
 * off: the VMM enters with IF = 0 and there is no IDT. */

	.section .text.start, "ax"
	.globl _start
	.type _start, @function
_start:
	cli
	cld
#if defined(__x86_64__)
	lea	__stack_top(%rip), %rsp
	xor	%ebp, %ebp
	lea	__bss_start(%rip), %rdi
	lea	__bss_end(%rip), %rcx
	sub	%rdi, %rcx
	xor	%eax, %eax
	rep stosb
	call	main
	mov	%eax, %edi
	call	exit
#else
	mov	$__stack_top, %esp
	xor	%ebp, %ebp
	mov	$__bss_start, %edi
	mov	$__bss_end, %ecx
	sub	%edi, %ecx
	xor	%eax, %eax
	rep stosb
	call	main
	push	%eax
	call	exit
#endif
	/* exit() does not return; halt here too should it ever. */
1:	cli
	hlt
	jmp	1b
	.size _start, . - _start

	.section .note.GNU-stack, "", @progbits
