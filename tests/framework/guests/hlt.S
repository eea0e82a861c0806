/* Real mode: halt at once. */
	.code16
	.globl start
start:
	hlt
