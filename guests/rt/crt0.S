/* crt0.S: the start code of C guests, built once for 32-bit protected mode
 * and once for 64-bit long mode. The linker script puts .text.start first,
 * at 0x100000, where the VMM enters.
 *
 * Every vCPU of the VM enters here at once, with the same registers (there
 * is no interrupt controller to start them one by one). Each one:
 *   1. finds its index with CPUID leaf 1 (EBX[31:24], the initial APIC ID,
 *      which luavmm sets to the vCPU's index) and switches to its own
 *      stack in .stacks, so it does not depend on the rsp the VMM set;
 *   2. CPU 0 zeroes .bss, then sets bss_ready; the others spin until it
 *      is set, since main() may read .bss;
 *   3. calls main(). On CPU 0 main's return value goes to exit(), which
 *      writes it to the exit port (ending the run for every CPU) and
 *      halts; on the others returning from main halts that CPU alone.
 * A single-CPU guest sees exactly the old behaviour: stack, zeroed .bss,
 * exit(main()).
 *
 * Nothing touches the stack before step 1 has set it: a CPU's rsp from
 * the VMM is the same for all of them, and may point anywhere. The .stacks
 * section is NOLOAD and outside .bss, so CPU 0's zeroing never runs over
 * a stack another CPU is already using. Interrupts stay off: the VMM
 * enters with IF = 0 and there is no IDT. */
#include <luavmm.h>

	.section .text.start, "ax"
	.globl _start
	.type _start, @function
_start:
	cli
	cld
	mov	$1, %eax
	cpuid				/* clobbers eax, ebx, ecx, edx only */
	shr	$24, %ebx		/* ebx = this CPU's index, kept to the end */
	cmp	$LUAVMM_MAX_CPUS, %ebx
	jae	.Lno_stack
	mov	%ebx, %eax
	inc	%eax
	imul	$LUAVMM_STACK_SIZE, %eax, %eax	/* eax = (index + 1) * stack size */
#if defined(__x86_64__)
	lea	__stacks(%rip), %rsp
	add	%rax, %rsp		/* the top of this CPU's stack */
	xor	%ebp, %ebp
	test	%ebx, %ebx
	jnz	.Lwait
	lea	__bss_start(%rip), %rdi
	lea	__bss_end(%rip), %rcx
	sub	%rdi, %rcx
	xor	%eax, %eax
	rep stosb
	/* An xchg with memory is a locked instruction: no CPU can see the
	 * flag set before every zero above, whatever order the fast string
	 * stores were done in. */
	mov	$1, %eax
	xchg	%eax, bss_ready(%rip)
	jmp	.Lmain
.Lwait:
	pause
	cmpl	$0, bss_ready(%rip)
	je	.Lwait
.Lmain:
	call	main
	test	%ebx, %ebx		/* ebx is callee-saved: still the index */
	jnz	.Lhalt
	mov	%eax, %edi
	call	exit
#else
	mov	$__stacks, %esp
	add	%eax, %esp		/* the top of this CPU's stack */
	xor	%ebp, %ebp
	test	%ebx, %ebx
	jnz	.Lwait
	mov	$__bss_start, %edi
	mov	$__bss_end, %ecx
	sub	%edi, %ecx
	xor	%eax, %eax
	rep stosb
	/* See the 64-bit branch: the locked xchg publishes the zeroes. */
	mov	$1, %eax
	xchg	%eax, bss_ready
	jmp	.Lmain
.Lwait:
	pause
	cmpl	$0, bss_ready
	je	.Lwait
.Lmain:
	call	main
	test	%ebx, %ebx		/* ebx is callee-saved: still the index */
	jnz	.Lhalt
	push	%eax
	call	exit
#endif
	/* A CPU other than 0 after main, or exit() should it ever return. */
.Lhalt:
	cli
	hlt
	jmp	.Lhalt

	/* More CPUs than stacks: say so on the console, a byte at a time
	 * without a stack, and halt this CPU; the others go on. */
.Lno_stack:
#if defined(__x86_64__)
	lea	no_stack_msg(%rip), %rsi
#else
	mov	$no_stack_msg, %esi
#endif
	mov	$LUAVMM_CONSOLE_PORT, %dx
1:	lodsb
	test	%al, %al
	jz	.Lhalt
	out	%al, %dx
	jmp	1b
	.size _start, . - _start

	.section .rodata
no_stack_msg:
	.asciz	"crt0: a CPU with an index >= LUAVMM_MAX_CPUS has no stack; halting it\n"

	/* In .data, not .bss: it must read 0 before anything is zeroed. It
	 * is part of the image, so running the guest again from its entry
	 * needs the image loaded again (vm:load), which resets it. */
	.data
	.balign 4
bss_ready:
	.long	0

	/* The stacks, LUAVMM_STACK_SIZE each, CPU 0's lowest. NOLOAD: not in
	 * the image, and never zeroed. */
	.section .stacks, "aw", @nobits
	.balign 4096
	.globl __stacks
__stacks:
	.skip	LUAVMM_MAX_CPUS * LUAVMM_STACK_SIZE

	.section .note.GNU-stack, "", @progbits
