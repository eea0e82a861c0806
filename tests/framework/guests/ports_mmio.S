/* Real mode: reads and writes an unknown port and an unbacked MMIO address just above
 * 1 MiB of RAM (segment 0xffff reaches 0x10fff0; KVM has no A20 gate),
 * echoing what the reads returned to port 0x10 so the host can check the data path. */
	.code16
	.globl start
start:
	in $0x99, %al            /* unknown port, 1-byte read */
	out %al, $0x10
	mov $0x1234, %ax
	out %ax, $0x99           /* unknown port, 2-byte write */
	mov $0xffff, %bx
	mov %bx, %es
	mov %es:0x18, %eax       /* 4-byte MMIO read at 0x100008 */
	out %eax, $0x10
	movl $0xcafef00d, %es:0x14  /* 4-byte MMIO write at 0x100004 */
	hlt
