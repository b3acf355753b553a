/* exits64: the guest of the exit round-trip benchmark, run unchanged by
 * raw_kvm.c and by luavmm (bench.lua). Linked at 0x100000 and entered in
 * 64-bit long mode with an identity map of the first GiB at least.
 *
 * Three loops, each at a fixed offset so both VMMs enter the same code:
 *   0x000  port I/O    out %al, %dx            (dx = the port)
 *   0x100  MMIO        mov %eax, (%rbx)        (rbx = an address with no slot)
 *   0x200  hypercall   mov %r8d, %eax; out %eax, %dx  (dx = 0xABBA,
 *                      nr in r8d, arguments in rdi and rsi)
 * Each pass of a loop makes EXITS_PER_PASS exits, then counts rcx down;
 * the unrolling keeps the guest's own instructions (slow on an emulating
 * hypervisor) small next to the exits being measured. rcx = passes. When
 * rcx reaches 0 the guest halts: the run ends with KVM_EXIT_HLT. */

#define EXITS_PER_PASS 8

	.code64
	.section .text.start, "ax"
	.globl _start
_start:
io_loop:
	.rept EXITS_PER_PASS
	out	%al, %dx
	.endr
	dec	%rcx
	jnz	io_loop
	jmp	done

	.org 0x100
mmio_loop:
	.rept EXITS_PER_PASS
	mov	%eax, (%rbx)
	.endr
	dec	%rcx
	jnz	mmio_loop
	jmp	done

	.org 0x200
hypercall_loop:
	.rept EXITS_PER_PASS
	mov	%r8d, %eax		/* the result came back in rax */
	out	%eax, %dx
	.endr
	dec	%rcx
	jnz	hypercall_loop
	jmp	done

	.org 0x300
done:
	hlt
	jmp	done

	.section .note.GNU-stack, "", @progbits
