/* portscript16: a real-mode guest that does the port I/O a script in its
 * memory says, so a spec can drive a device register by register and read
 * back what the guest saw (tests/devices_spec.lua builds the scripts).
 *
 * Loaded at 0x8000, entered with cs = 0, ip = 0x8000. The script is a list
 * of 8-byte operations at 0xA000: { u8 op, u8 size, u16 port, u32 value }.
 * Values the guest reads are appended as u32s to the results at 0xC000;
 * the word at 0x9FF0 points past the last one.
 *
 *   0 END     write 0 to port 0xF4 (debug-exit), then halt
 *   1 OUT     out value to port, size 1, 2 or 4 bytes
 *   2 IN      in size bytes from port; store the value
 *   3 POLL    read port (1 byte) until (byte & value[7:0]) == value[15:8]
 *   4 OUTS    rep outs of value[15:0] items of size bytes from
 *             segment value[31:16], offset 0, to port
 *   5 WAIT    sti; hlt; cli: wait for one interrupt
 *   6 PIC     program the master PIC (vectors 0x20-0x27), unmask IRQ
 *             value, and install the UART interrupt handler below for
 *             the UART at port
 *   7 DELAY   spin value times
 *   8 ECHO    UART at port: read each byte received and send it back,
 *             until the byte value[7:0] has been echoed
 *   9 READN   UART at port: wait for and read value bytes; store each
 *
 * The interrupt handler does what Linux's 8250 driver does: read IIR until
 * it says "no interrupt", and serve each cause. It stores IIR as
 * 0x100 | iir, each byte it reads from RBR as 0x200 | byte, LSR as
 * 0x300 | lsr and MSR as 0x400 | msr, then sends the PIC an EOI. */
	.code16
	.set	NEXT_RESULT, 0x9ff0
	.set	ISR_PORT, 0x9ff2
	.set	SCRIPT, 0xa000
	.set	RESULTS, 0xc000

	.section .text.start, "ax"
	.globl _start
_start:
	cli
	cld
	xor	%ax, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$0x7c00, %sp
	movw	$RESULTS, NEXT_RESULT
	mov	$SCRIPT, %si

next:
	movzbw	(%si), %bx		/* op */
	movzbw	1(%si), %cx		/* size, kept in cx for the ops that want it */
	mov	2(%si), %dx		/* port */
	mov	4(%si), %eax		/* value */
	add	$8, %si
	cmp	$9, %bx
	ja	op_end
	shl	$1, %bx
	jmp	*ops(%bx)

op_end:
	xor	%al, %al
	out	%al, $0xf4
1:	cli
	hlt
	jmp	1b

op_out:
	cmp	$1, %cl
	je	1f
	cmp	$2, %cl
	je	2f
	out	%eax, %dx
	jmp	next
1:	out	%al, %dx
	jmp	next
2:	out	%ax, %dx
	jmp	next

op_in:
	xor	%eax, %eax
	cmp	$1, %cl
	je	1f
	cmp	$2, %cl
	je	2f
	in	%dx, %eax
	jmp	3f
1:	in	%dx, %al
	jmp	3f
2:	in	%dx, %ax
3:	call	store
	jmp	next

op_poll:
	mov	%ax, %bx		/* bl = mask, bh = expected */
1:	in	%dx, %al
	and	%bl, %al
	cmp	%bh, %al
	jne	1b
	jmp	next

op_outs:
	push	%si
	push	%ds
	mov	%cx, %bx		/* item size */
	mov	%ax, %cx		/* count */
	shr	$16, %eax
	mov	%ax, %ds
	xor	%si, %si
	cmp	$1, %bl
	je	1f
	cmp	$2, %bl
	je	2f
	rep outsl
	jmp	3f
1:	rep outsb
	jmp	3f
2:	rep outsw
3:	pop	%ds
	pop	%si
	jmp	next

op_wait:
	sti
	hlt
	cli
	jmp	next

op_pic:
	mov	%dx, ISR_PORT
	mov	%al, %cl		/* the IRQ */
	mov	$0x11, %al		/* ICW1: edge, cascade, ICW4 follows */
	out	%al, $0x20
	mov	$0x20, %al		/* ICW2: vectors 0x20-0x27 */
	out	%al, $0x21
	mov	$0x04, %al		/* ICW3: the slave on IRQ 2 */
	out	%al, $0x21
	mov	$0x01, %al		/* ICW4: 8086 mode */
	out	%al, $0x21
	mov	$1, %al
	shl	%cl, %al
	not	%al
	out	%al, $0x21		/* OCW1: only that IRQ unmasked */
	movzbw	%cl, %bx
	add	$0x20, %bx
	shl	$2, %bx
	movw	$isr, (%bx)
	movw	$0, 2(%bx)
	jmp	next

op_delay:
1:	dec	%eax
	jnz	1b
	jmp	next

op_echo:
	mov	%al, %bl		/* the last byte */
	mov	%dx, %di		/* the base */
1:	lea	5(%di), %dx
2:	in	%dx, %al		/* LSR, until DR */
	test	$1, %al
	jz	2b
	mov	%di, %dx
	in	%dx, %al
	out	%al, %dx
	cmp	%bl, %al
	jne	1b
	jmp	next

op_readn:
	mov	%eax, %ecx
	mov	%dx, %di
	jecxz	3f
1:	lea	5(%di), %dx
2:	in	%dx, %al
	test	$1, %al
	jz	2b
	mov	%di, %dx
	xor	%eax, %eax
	in	%dx, %al
	call	store
	dec	%ecx
	jnz	1b
3:	jmp	next

/* Appends eax to the results. */
store:
	push	%bx
	mov	NEXT_RESULT, %bx
	mov	%eax, (%bx)
	add	$4, %bx
	mov	%bx, NEXT_RESULT
	pop	%bx
	ret

isr:
	pushal
	mov	ISR_PORT, %di
1:	lea	2(%di), %dx
	xor	%eax, %eax
	in	%dx, %al		/* IIR */
	mov	%al, %bl
	or	$0x100, %ax
	call	store
	test	$1, %bl
	jnz	9f
	and	$0x0e, %bl
	cmp	$0x06, %bl
	je	2f
	cmp	$0x04, %bl
	je	3f
	cmp	$0x0c, %bl
	je	3f
	cmp	$0x00, %bl
	je	4f
	jmp	1b			/* THR empty: reading IIR acknowledged it */
2:	lea	5(%di), %dx		/* line status */
	xor	%eax, %eax
	in	%dx, %al
	or	$0x300, %ax
	call	store
	jmp	1b
3:	lea	5(%di), %dx		/* data: read RBR while LSR.DR */
	in	%dx, %al
	test	$1, %al
	jz	1b
	mov	%di, %dx
	xor	%eax, %eax
	in	%dx, %al
	or	$0x200, %ax
	call	store
	jmp	3b
4:	lea	6(%di), %dx		/* modem status */
	xor	%eax, %eax
	in	%dx, %al
	or	$0x400, %ax
	call	store
	jmp	1b
9:	mov	$0x20, %al		/* EOI */
	out	%al, $0x20
	popal
	iret

	.section .rodata
	.balign 2
ops:
	.word	op_end, op_out, op_in, op_poll, op_outs, op_wait, op_pic, op_delay
	.word	op_echo, op_readn

	.section .note.GNU-stack, "", @progbits
