# Fuzzing with libFuzzer (clang), included by the top Makefile.
#
#   make fuzz                  build the harnesses, run each FUZZ_SECONDS (60)
#   make fuzz FUZZ_SECONDS=20  shorter; CI runs this
#   make fuzz-build            build only
#
# The harnesses (tests/fuzz/*_fuzz.c) and the core they drive are built
# with clang under AddressSanitizer and UndefinedBehaviorSanitizer, the
# core with coverage instrumentation, into $(BUILD)/fuzz/:
#   virtq_fuzz   the split-virtqueue walker over arbitrary guest memory
#   mmio_fuzz    the virtio-mmio registers over the C and deferred backends
#   bus_fuzz     the port/MMIO bus against a reference model
#   loader_fuzz  the Lua loaders (vmm.elf, vmm.multiboot, vmm.linux) on
#                untrusted kernel files
#   lmem_fuzz    the Lua guest-memory API's argument checks against a model
# The last two embed Lua with the vmm module (tests/fuzz/fuzz_lua.h: their
# Lua halves are tests/fuzz/*_fuzz.lua, the Lua library comes from lua/, so
# they run from the repository root) and make VMs, so they need /dev/kvm;
# a line hook feeds the lines of lua/vmm/ they reach to libFuzzer as
# coverage. Each run starts
# from its seeds (tests/fuzz/corpus/<harness>/, read only) and the corpus
# earlier runs grew ($(BUILD)/fuzz/corpus/<harness>/). tests/fuzz/run.sh
# prints executions, speed and coverage per harness and ends with
# "N passed, N failed": a finding (crash, sanitizer report, broken
# invariant, an input running over 10 s) fails `make fuzz`, its input kept
# in $(BUILD)/fuzz/findings/. Keep a finding's input as
# tests/fuzz/corpus/<harness>/regress-<what>: the C test fuzz_replay_test
# runs every corpus file through the harness in `make test`.

FUZZ_SECONDS ?= 60
FUZZ_DEPS := clang libclang-rt-14-dev
FUZZ_CC := clang
FUZZ_OUT := $(BUILD)/fuzz
FUZZERS := virtq_fuzz mmio_fuzz bus_fuzz loader_fuzz lmem_fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# Warnings as usual, but not as errors: clang warns about things gcc does
# not, and the gcc build is the one that holds the line.
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -pthread -g -O1 $(filter-out -Werror,$(WARN)) \
              -Wno-gnu-variable-sized-type-not-at-end $(FUZZ_SAN) $(LUA_CFLAGS) -MMD -MP
FUZZ_CORE_OBJ := $(CORE_SRC:src/%.c=$(FUZZ_OUT)/obj/%.o)

# Built only through a pattern rule, the objects would count as
# intermediate and be deleted after each link.
.SECONDARY: $(FUZZ_CORE_OBJ)

.PHONY: fuzz fuzz-build fuzz-deps
fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_OUT) $(FUZZ_SECONDS) $(FUZZERS)

fuzz-build: $(FUZZERS:%=$(FUZZ_OUT)/%)

fuzz-deps:
	@scripts/deps.sh $(FUZZ_DEPS)

$(FUZZ_OUT)/obj/%.o: src/%.c | deps fuzz-deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_OUT)/%_fuzz: tests/fuzz/%_fuzz.c $(FUZZ_CORE_OBJ) | fuzz-deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_CORE_OBJ) \
	  $(LUA_LIBS) $(SECCOMP_LIBS) -lm -ldl

# The replay test includes the harnesses.
$(BUILD)/tests/fuzz_replay_test: $(FUZZERS:%=tests/fuzz/%.c) tests/fuzz/fuzz.h

-include $(FUZZ_CORE_OBJ:.o=.d) $(FUZZERS:%=$(FUZZ_OUT)/%.d)
