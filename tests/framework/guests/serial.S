/* Real mode: print a string to the COM1 data port, then halt. */
	.code16
	.globl start
start:
	mov $0x3f8, %dx
	mov $msg, %si
	mov $(msg_end - msg), %cx
	cld
1:	lodsb
	out %al, %dx
	loop 1b
	hlt
msg:	.ascii "hello from a micro-guest\n"
msg_end:
