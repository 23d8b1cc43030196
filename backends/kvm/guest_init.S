/* vmbox-init (backends/guest/vmbox-init.c, static), linked into vmbox so the
 * kvm backend can build its initramfs with vmbox as the only file. */
	.section .rodata
	.global vmbox_guest_init
	.global vmbox_guest_init_end
	.balign 16
vmbox_guest_init:
	.incbin VMBOX_INIT
vmbox_guest_init_end:
	.section .note.GNU-stack,"",@progbits
