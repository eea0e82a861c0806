/* 64-bit mode: results that only 64-bit code can produce, written to port 0x10:
 * the high half of a 64-bit immediate, then a REX-only register (r15d). */
	.code64
	.globl start
start:
	movabs $0x1122334455667788, %rax
	shr $32, %rax
	out %eax, $0x10
	mov $0xabcd0123, %r15d
	mov %r15d, %eax
	out %eax, $0x10
	hlt
