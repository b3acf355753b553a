# Debian's kernel and a busybox initramfs, for scripts/linux.lua and
# tests/linux_spec.lua: fetched into build/linux/ (shared by the sanitizer
# builds) by scripts/fetch-linux.sh, which skips what is already there.
# Included by the top Makefile.
#
#   make linux-guest    fetch (about 28 MB from Debian's mirrors) and build
#
# `make test` fetches them too, once: later runs find them in place. A
# failed fetch only warns, and the Linux boot tests then say why they were
# skipped; LUAVMM_LINUX=0 skips the fetch, LUAVMM_LINUX=1 makes the tests
# fail rather than skip without the kernel.

LINUX_DIR := build/linux

.PHONY: linux-guest linux-guest-for-test
linux-guest:
	@scripts/fetch-linux.sh $(LINUX_DIR)

test: linux-guest-for-test

linux-guest-for-test:
	@if [ "$(LUAVMM_LINUX)" != 0 ]; then \
	  scripts/fetch-linux.sh $(LINUX_DIR) || \
	    echo "linux-guest: the fetch failed; the Linux boot tests will be skipped" >&2; \
	fi
