/* hello16: a real-mode guest. Loaded at 0x8000 and entered with cs = 0,
 * ip = 0x8000 (segment 0, so labels are usable as offsets). It writes its
 * greeting to port 0xE9 a byte at a time and halts. */
	.code16
	.section .text.start, "ax"
	.globl _start
_start:
	cld
	xor	%ax, %ax
	mov	%ax, %ds		/* lodsb reads ds:si */
	mov	$message, %si
	mov	$0xe9, %dx
1:	lodsb
	test	%al, %al
	jz	2f
	out	%al, %dx
	jmp	1b
2:	hlt
	jmp	2b

	.section .rodata
message:
	.asciz	"Hello from real mode!\n"

	.section .note.GNU-stack, "", @progbits
