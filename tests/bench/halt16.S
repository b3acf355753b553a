/* halt16: the guest of the VM lifecycle benchmark, one `hlt`. Loaded at
 * 0x8000 and entered in real mode with cs = 0, ip = 0x8000: its first exit
 * is KVM_EXIT_HLT, which ends the run. */
	.code16
	.section .text.start, "ax"
	.globl _start
_start:
	hlt

	.section .note.GNU-stack, "", @progbits
