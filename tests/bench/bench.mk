# make bench: luavmm measured against a minimal raw KVM program and against
# QEMU, side by side in one run; see tests/bench/bench.lua for what each row
# is. Prints a table, writes $(BUILD)/bench/results.json and, with gnuplot,
# $(BUILD)/bench/ratios.png. Never part of `make test` (a quick smoke run
# is: tests/bench_spec.lua, which writes to $(BUILD)/bench/quick/).
# Included by the top Makefile.
#
#   make bench                  the real thing: about 40 seconds
#   make bench BENCH_QUICK=1    tiny counts, one repetition, no package
#                               installs: checks that the bench works
#   make bench BENCH_ARGS=...   more options for bench.lua (--help)
#
# The tools are plain C and the guests use guests.mk's flags and linker
# scripts; all of it goes to $(BUILD)/bench/.

BENCH_OUT := $(BUILD)/bench
BENCH_OBJ := $(BENCH_OUT)/obj
BENCH_QUICK ?=
BENCH_ARGS ?=

# The tools are measuring instruments, never sanitized: -O2 and warnings only.
BENCH_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN)

BENCH_TOOLS := $(BENCH_OUT)/raw_kvm $(BENCH_OUT)/runproc $(BENCH_OUT)/blkref
BENCH_GUESTS := $(BENCH_OUT)/exits64.bin $(BENCH_OUT)/halt16.bin $(BENCH_OUT)/tiny16.bin \
                $(BENCH_OUT)/blk64.bin

# QEMU and gnuplot are installed for the real run only; the quick run uses
# them when present and says so when not.
BENCH_DEPS := $(if $(BENCH_QUICK),,qemu-system-x86 gnuplot-nox)

.PHONY: bench bench-deps bench-build
bench: bench-build bench-deps
	@LUA_PATH='lua/?.lua;lua/?/init.lua;;' $(BUILD)/luavmm tests/bench/bench.lua \
	  --build $(BUILD) $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)

bench-build: all $(BENCH_TOOLS) $(BENCH_GUESTS)

bench-deps:
	@$(if $(BENCH_DEPS),scripts/deps.sh $(BENCH_DEPS),true)

$(BENCH_TOOLS): $(BENCH_OUT)/%: tests/bench/%.c tests/bench/bench.mk | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BENCH_CFLAGS) -o $@ $<

$(BENCH_OBJ)/%16.o: tests/bench/%16.S tests/bench/bench.mk | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS_32) -c -o $@ $<

$(BENCH_OBJ)/%64.o: tests/bench/%64.S tests/bench/bench.mk | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS_64) -c -o $@ $<

# C guests (blk64): guests.mk's flags and its 64-bit runtime.
$(BENCH_OBJ)/%64.o: tests/bench/%64.c tests/bench/bench.mk | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS_64) -c -o $@ $<

$(BENCH_OUT)/blk64.elf: $(BENCH_OBJ)/blk64.o $(GUEST_RT_64) guests/rt/guest64.ld
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(GUEST_LD) -m elf_x86_64 $(GUEST_LDFLAGS) -T guests/rt/guest64.ld -o $@ \
	  $(filter %.o,$^)

# exits64 at 0x100000 and halt16 at 0x8000 use the guests' own linker
# scripts; tiny16 is a 64 KiB image at offset 0 (tests/bench/bios16.ld).
$(BENCH_OUT)/exits64.elf: $(BENCH_OBJ)/exits64.o guests/rt/guest64.ld
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(GUEST_LD) -m elf_x86_64 $(GUEST_LDFLAGS) -T guests/rt/guest64.ld -o $@ $<

$(BENCH_OUT)/halt16.elf: $(BENCH_OBJ)/halt16.o guests/rt/real16.ld
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(GUEST_LD) -m elf_i386 $(GUEST_LDFLAGS) -T guests/rt/real16.ld -o $@ $<

$(BENCH_OUT)/tiny16.elf: $(BENCH_OBJ)/tiny16.o tests/bench/bios16.ld
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(GUEST_LD) -m elf_i386 $(GUEST_LDFLAGS) -T tests/bench/bios16.ld -o $@ $<

$(BENCH_OUT)/%.bin: $(BENCH_OUT)/%.elf
	@$(if $(Q),echo "  OBJCOPY $@")
	$(Q)$(GUEST_OBJCOPY) -O binary $< $@

-include $(wildcard $(BENCH_OBJ)/*.d)
