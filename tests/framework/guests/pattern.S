/* Real mode: fill 64 bytes at 0x5000 with 0x5a, 0x5b, ... then halt. */
	.code16
	.globl start
start:
	xor %ax, %ax
	mov %ax, %es
	mov $0x5000, %di
	mov $64, %cx
	mov $0x5a, %al
	cld
1:	stosb
	inc %al
	loop 1b
	hlt
