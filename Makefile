# luavmm: a KVM virtual machine monitor driven by Lua 5.4.
#
#   make          build build/luavmm, build/vmm.so and the guests
#   make run      build, then boot the hello guest
#   make test     build, then run every test; ends with "N passed, N failed"
#   make install  PREFIX=/usr/local: program, module and Lua library
#   make test SANITIZE=thread (or address,undefined): the same tests on a
#                 sanitizer build in build/san-<name>/
#   make valgrind a long scenario under valgrind's memcheck: zero reports
#
# Missing Debian packages are installed on the way (apt-get as root, sudo
# otherwise) by scripts/deps.sh.

PREFIX ?= /usr/local
V ?= 0
comma := ,
BUILD ?= $(if $(SANITIZE),build/san-$(subst $(comma),-,$(SANITIZE)),build)
Q := $(if $(filter 1,$(V)),,@)
CC := gcc

BUILD_DEPS := gcc make pkg-config binutils lua5.4 liblua5.4-dev libedit-dev libseccomp-dev
TEST_DEPS := lua-busted util-linux tmux
VALGRIND_DEPS := valgrind

# Recursive (=) so pkg-config runs after the deps target has installed it.
LUA_CFLAGS = $(shell pkg-config --cflags lua5.4)
LUA_LIBS = $(shell pkg-config --libs lua5.4)
EDIT_CFLAGS = $(shell pkg-config --cflags libedit)
EDIT_LIBS = $(shell pkg-config --libs libedit)
SECCOMP_CFLAGS = $(shell pkg-config --cflags libseccomp)
SECCOMP_LIBS = $(shell pkg-config --libs libseccomp)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS ?= -O2 -g
SAN := $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer,)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -pthread $(WARN) $(CFLAGS) $(SAN) \
             $(LUA_CFLAGS) $(SECCOMP_CFLAGS) -MMD -MP
ALL_LDFLAGS = -pthread $(SAN) $(LDFLAGS) $(SECCOMP_LIBS)

PROGRAM_SRC := src/main.c src/repl.c
CORE_SRC := $(filter-out $(PROGRAM_SRC),$(wildcard src/*.c src/dev/*.c))
CORE_OBJ := $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o)
PROGRAM_OBJ := $(PROGRAM_SRC:src/%.c=$(BUILD)/obj/%.o)
LUA_LIB := $(wildcard lua/vmm/*.lua)
LUA_DEVICES := $(wildcard lua/vmm/devices/*.lua)

.PHONY: all deps test-deps run test install clean guests valgrind
all: $(BUILD)/luavmm $(BUILD)/vmm.so guests

deps:
	@scripts/deps.sh $(BUILD_DEPS)

test-deps:
	@scripts/deps.sh $(TEST_DEPS)

$(BUILD)/obj/%.o: src/%.c | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(EDIT_CFLAGS) -c -o $@ $<

$(BUILD)/vmm.so: $(CORE_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -o $@ $^ $(ALL_LDFLAGS)

$(BUILD)/luavmm: $(PROGRAM_OBJ) $(CORE_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LUA_LIBS) $(EDIT_LIBS) -lm -ldl

C_TESTS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/*_test.c))

$(BUILD)/tests/%_test: tests/c/%_test.c tests/c/tap.h $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(CORE_OBJ) $(ALL_LDFLAGS) $(LUA_LIBS) -lm -ldl

include guests/guests.mk
include scripts/linux.mk
include tests/bench/bench.mk
include tests/fuzz/fuzz.mk

run: all
	$(BUILD)/luavmm scripts/hello.lua

# A sanitizer's runtime must be in the process before the module is: the
# specs run in stock lua5.4, so it is preloaded there.
SAN_LIB = $(if $(findstring thread,$(SANITIZE)),tsan,$(if $(findstring address,$(SANITIZE)),asan,$(if $(findstring undefined,$(SANITIZE)),ubsan)))
SAN_RUNTIME = $(if $(SAN_LIB),$(shell $(CC) -print-file-name=lib$(SAN_LIB).so))

# Any sanitizer report fails the test that triggered it.
# intercept_tls_get_addr=0: gcc 12's runtime takes a dynamic TLS block (vmm.so's
# __thread variables, when stock lua5.4 dlopens it) that malloc happened to put
# at 16 mod 4096 for a glibc <= 2.24 header, records the chunk header's words
# as a TLS range, and LeakSanitizer's tracer then dies scanning it ("Tracer
# caught signal 11") at exit: a CI flake that depends on allocation order.
# Without the interception, dynamic TLS is not scanned for roots; ours only
# holds the current vCPU, which its VM also points to.
SAN_ENV := TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
           ASAN_OPTIONS="detect_leaks=1 abort_on_error=0 intercept_tls_get_addr=0" \
           UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"

test: all test-deps $(C_TESTS)
	@BUILD=$(BUILD) LUAVMM_PRELOAD=$(SAN_RUNTIME) $(SAN_ENV) lua5.4 tests/run.lua

# tests/valgrind/run.sh: the plain build only (valgrind and the sanitizers
# do not mix).
valgrind: all
	@scripts/deps.sh $(VALGRIND_DEPS)
	@tests/valgrind/run.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/lua/5.4 \
	           $(DESTDIR)$(PREFIX)/share/lua/5.4/vmm/devices
	install -m 755 $(BUILD)/luavmm $(DESTDIR)$(PREFIX)/bin/luavmm
	install -m 644 $(BUILD)/vmm.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/vmm.so
	install -m 644 $(LUA_LIB) $(DESTDIR)$(PREFIX)/share/lua/5.4/vmm/
	install -m 644 $(LUA_DEVICES) $(DESTDIR)$(PREFIX)/share/lua/5.4/vmm/devices/

clean:
	rm -rf $(BUILD)

-include $(CORE_OBJ:.o=.d) $(PROGRAM_OBJ:.o=.d)
