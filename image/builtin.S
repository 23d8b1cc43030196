/* The busybox OCI archive built by scripts/mkbusybox.sh, linked into vmbox so
 * `vmbox run busybox` works with no network and no prior import. */
	.section .rodata
	.global vmbox_builtin_busybox
	.global vmbox_builtin_busybox_end
	.balign 16
vmbox_builtin_busybox:
	.incbin BUSYBOX_TAR
vmbox_builtin_busybox_end:
	.section .note.GNU-stack,"",@progbits
