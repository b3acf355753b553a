# Guests we write ourselves, built freestanding into $(BUILD)/guests/:
# <name>.bin is the flat image the VMM loads, <name>.elf the same program
# with symbols, for objdump -d. Included by the top Makefile.
#
# A guest's mode is the list it is in. C guests link against the runtime in
# guests/rt/ (SMP start code, console, printf and snprintf, cpu_id, string
# functions), built once per width. Objects go to
# $(BUILD)/guests/obj/<width>/, so one pattern rule per width serves guests
# and runtime alike.
#
# 32-bit builds need no gcc-multilib: the guests never link libc or libgcc
# (we link with ld), and the runtime avoids the 64-bit division that would
# want libgcc's __udivdi3.

GUESTS_16 := hello16 portscript16
GUESTS_32 := hello32
GUESTS_64 := hello64 hypercall64 mmio64 smp64 spin64 virtio_blk64 virtio_rng64 \
             virtio_hostile64 virtio_console64 virtio_irq64
# 32-bit C guests booted by a Multiboot loader: the runtime plus
# rt/multiboot.S (the header, the entry that keeps eax and ebx) and their
# own linker script, rt/multiboot32.ld.
GUESTS_MB32 := multiboot32

GUEST_OUT := $(BUILD)/guests
GUEST_OBJ := $(GUEST_OUT)/obj
GUEST_RT := crt0 console format smp string virtio irq

GUEST_CC := gcc
GUEST_LD := ld
GUEST_OBJCOPY := objcopy

# -fno-tree-loop-distribute-patterns: else gcc turns the loop in memset
# into a call to memset. --param=min-pagesize=0: else gcc 12 takes an
# access to a constant address below 4 KiB for a null-pointer bug.
GUEST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding \
                -fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables \
                -fno-unwind-tables -fcf-protection=none -mgeneral-regs-only \
                -fno-tree-loop-distribute-patterns --param=min-pagesize=0 \
                -Iguests/include -MMD -MP
GUEST_CFLAGS_32 := $(GUEST_CFLAGS) -m32
GUEST_CFLAGS_64 := $(GUEST_CFLAGS) -m64 -mno-red-zone
GUEST_LDFLAGS := -static -nostdlib --no-warn-rwx-segments

GUEST_BINS := $(foreach g,$(GUESTS_16) $(GUESTS_32) $(GUESTS_64) $(GUESTS_MB32),\
                  $(GUEST_OUT)/$(g).bin)

guests: $(GUEST_BINS)

# Objects: compiled again when the flags here change.
$(GUEST_OBJ)/16/%.o: guests/%.S guests/guests.mk | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS_32) -c -o $@ $<

$(GUEST_OBJ)/32/%.o: guests/%.c guests/guests.mk | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS_32) -c -o $@ $<

$(GUEST_OBJ)/32/%.o: guests/%.S guests/guests.mk | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS_32) -c -o $@ $<

$(GUEST_OBJ)/64/%.o: guests/%.c guests/guests.mk | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS_64) -c -o $@ $<

$(GUEST_OBJ)/64/%.o: guests/%.S guests/guests.mk | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS_64) -c -o $@ $<

# Linking: each width with its linker script; C guests with the runtime.
GUEST_RT_32 := $(GUEST_RT:%=$(GUEST_OBJ)/32/rt/%.o)
GUEST_RT_64 := $(GUEST_RT:%=$(GUEST_OBJ)/64/rt/%.o)

$(GUESTS_16:%=$(GUEST_OUT)/%.elf): $(GUEST_OUT)/%.elf: $(GUEST_OBJ)/16/%.o guests/rt/real16.ld
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(GUEST_LD) -m elf_i386 $(GUEST_LDFLAGS) -T guests/rt/real16.ld -o $@ $<

$(GUESTS_32:%=$(GUEST_OUT)/%.elf): $(GUEST_OUT)/%.elf: $(GUEST_OBJ)/32/%.o $(GUEST_RT_32) \
                                                    guests/rt/guest32.ld
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(GUEST_LD) -m elf_i386 $(GUEST_LDFLAGS) -T guests/rt/guest32.ld -o $@ \
	  $(filter %.o,$^)

$(GUESTS_64:%=$(GUEST_OUT)/%.elf): $(GUEST_OUT)/%.elf: $(GUEST_OBJ)/64/%.o $(GUEST_RT_64) \
                                                    guests/rt/guest64.ld
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(GUEST_LD) -m elf_x86_64 $(GUEST_LDFLAGS) -T guests/rt/guest64.ld -o $@ \
	  $(filter %.o,$^)

$(GUESTS_MB32:%=$(GUEST_OUT)/%.elf): $(GUEST_OUT)/%.elf: $(GUEST_OBJ)/32/%.o \
                                   $(GUEST_OBJ)/32/rt/multiboot.o $(GUEST_RT_32) \
                                   guests/rt/multiboot32.ld
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(GUEST_LD) -m elf_i386 $(GUEST_LDFLAGS) -T guests/rt/multiboot32.ld -o $@ \
	  $(filter %.o,$^)

$(GUEST_OUT)/%.bin: $(GUEST_OUT)/%.elf
	@$(if $(Q),echo "  OBJCOPY $@")
	$(Q)$(GUEST_OBJCOPY) -O binary $< $@

# Objects that include the header depend on it (and anything else they
# include) through the .d files gcc writes next to them.
-include $(wildcard $(GUEST_OBJ)/*/*.d $(GUEST_OBJ)/*/rt/*.d)
