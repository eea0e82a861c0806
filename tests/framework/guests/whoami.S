/* Real mode: print '0' + initial APIC ID (CPUID leaf 1, EBX[31:24]) to COM1, then halt. */
	.code16
	.globl start
start:
	mov $1, %eax
	cpuid
	shr $24, %ebx
	mov %bl, %al
	add $'0', %al
	mov $0x3f8, %dx
	out %al, %dx
	hlt
