"""A tiny VM for the demo and the tests: Debian's cloud kernel and a busybox initramfs
(built once, cached), its disk image and its domain definition, all in one directory --
what a vm module replicates. Not used by the agent itself."""
