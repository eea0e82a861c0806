/* Real mode: announce start on port 0x10, then spin forever (only a kick ends KVM_RUN). */
	.code16
	.globl start
start:
	out %al, $0x10
1:	jmp 1b
