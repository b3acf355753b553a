/* tiny16: the guest that luavmm and QEMU both run for the whole-process,
 * memory and serial benchmarks. A 64 KiB real-mode image in the shape of a
 * PC BIOS, so QEMU can take it as its firmware (-bios) and run nothing
 * else: the CPU starts at the reset vector, offset 0xfff0 of the image,
 * which jumps to the start. luavmm loads the same file at 0xf0000 and
 * enters at cs = 0xf000, ip = 0xfff0; the same instructions run in both.
 *
 * All addresses are offsets from cs (its base differs between the two:
 * 0xffff0000 under QEMU after reset, 0xf0000 under luavmm), so data is
 * read through cs and no segment register is loaded.
 *
 * What it does: writes its greeting to the debug console (port 0xE9),
 * then `count` more bytes there (the u32 at offset COUNT_OFFSET, 0 in the
 * built image; the bench patches it; a multiple of 64), in lines of 63 dots
 * and a newline, with one `out` instruction per byte so the guest's own
 * instructions (slow on this nested machine) cost little next to the
 * exits; then writes 0 to the isa-debug-exit port (0xF4) and halts. */

#define CONSOLE 0xe9
#define EXIT_PORT 0xf4
#define LINE 64

	.code16
	.section .text.start, "ax"
	.globl _start
_start:
	cld
	mov	$CONSOLE, %dx
	mov	$message, %si
1:	lodsb	%cs:(%si), %al
	test	%al, %al
	jz	2f
	out	%al, %dx
	jmp	1b

2:	mov	%cs:count, %ecx
	shr	$6, %ecx		/* in lines of LINE bytes */
	jz	5f
3:	mov	$'.', %al
	.rept	LINE - 1		/* unrolled: one instruction per byte */
	out	%al, %dx
	.endr
	mov	$'\n', %al
	out	%al, %dx
	dec	%ecx
	jnz	3b

5:	xor	%al, %al
	out	%al, $EXIT_PORT
6:	hlt
	jmp	6b

message:
	.asciz	"Hello from the bench guest\n"

	.org	0xffe0			/* COUNT_OFFSET in bench.lua */
count:
	.long	0

	.org	0xfff0			/* the reset vector */
	jmp	_start

	.org	0x10000

	.section .note.GNU-stack, "", @progbits
