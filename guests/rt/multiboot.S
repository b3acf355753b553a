/* multiboot.S: the Multiboot header and entry of 32-bit C guests that a
 * Multiboot loader boots (lua/vmm/multiboot.lua, or any other).
 * guests/rt/multiboot32.ld puts .multiboot first in the image, so the
 * header is well inside the first 8192 bytes the loader searches.
 *
 * The header uses the a.out kludge (flag 16): the loader needs no ELF
 * parser, it loads the flat .bin at load_addr as the addresses say.
 * bss_end_addr covers the runtime's stacks, so the loader places nothing
 * (modules, its info structure) where they will be.
 *
 * The loader enters at multiboot_entry in 32-bit protected mode, paging
 * off, with eax = 0x2BADB002 and ebx = the info structure's address, and
 * no stack. Both registers are stored in .data (not .bss, which crt0 is
 * about to zero) before crt0's _start runs, since its cpuid clobbers them;
 * C reads them as multiboot_magic and multiboot_info. */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010003	/* page-aligned modules, memory info, a.out kludge */

	.section .multiboot, "a"
	.balign 4
multiboot_header:
	.long	MB_MAGIC
	.long	MB_FLAGS
	.long	-(MB_MAGIC + MB_FLAGS)
	.long	multiboot_header	/* header_addr */
	.long	__image_start		/* load_addr */
	.long	__load_end		/* load_end_addr: the end of .data */
	.long	__image_end		/* bss_end_addr: the end of the stacks */
	.long	multiboot_entry		/* entry_addr */

	.section .text.multiboot, "ax"
	.globl multiboot_entry
	.type multiboot_entry, @function
multiboot_entry:
	mov	%eax, multiboot_magic
	mov	%ebx, multiboot_info
	jmp	_start
	.size multiboot_entry, . - multiboot_entry

	.data
	.balign 4
	.globl multiboot_magic, multiboot_info
multiboot_magic:
	.long	0
multiboot_info:
	.long	0

	.section .note.GNU-stack, "", @progbits
