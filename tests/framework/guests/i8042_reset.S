/* Real mode: pulse the CPU reset line through the i8042 controller (command 0xfe). */
	.code16
	.globl start
start:
	mov $0xfe, %al
	out %al, $0x64
	hlt
