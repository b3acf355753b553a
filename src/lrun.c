/* Runs: vm:run, vm:start/wait/pause/resume/stop and cpu:step, and the
 * results they return.
 *
 * A VM with one vCPU runs on the calling thread: no thread switch, and the
 * Lua handlers run on that same thread. A VM with several vCPUs, or one
 * started with vm:start, runs one thread per vCPU (thread.c) while the
 * caller waits without the control-plane lock. */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fault.h"
#include "lvmm.h"
#include "run.h"
#include "sandbox.h"
#include "vcpu.h"

static const char *const reason_names[] = {
  [VCPU_RUNNING] = "running",
  [VCPU_HLT] = "hlt",
  [VCPU_STOPPED] = "stop",
  [VCPU_TIMEOUT] = "timeout",
  [VCPU_INTERRUPTED] = "interrupted",
  [VCPU_EXIT] = "exit",
  [VCPU_SYSTEM_EVENT] = "system_event",
  [VCPU_STEP] = "step",
  [VCPU_PAUSED] = "paused",
  [VCPU_PEER] = "peer",
  [VCPU_RESET] = "reset",
  [VCPU_QUIT] = "quit",
  [VCPU_FAULT_SHUTDOWN] = "shutdown",
  [VCPU_FAULT_FAIL_ENTRY] = "fail_entry",
  [VCPU_FAULT_INTERNAL] = "internal_error",
  [VCPU_FAULT_UNHANDLED] = "unhandled",
  [VCPU_FAULT_HANDLER] = "handler",
  [VCPU_FAULT_HYPERCALL] = "hypercall",
  [VCPU_FAULT_KVM] = "kvm",
  [VCPU_FAULT_EXIT] = "exit_reason",
};

const char *lvm_reason_name(int reason)
{
  if (reason < 0 || (size_t)reason >= sizeof reason_names / sizeof reason_names[0])
    return "unknown";
  return reason_names[reason];
}

/* The pending exit of a step, as a record: what the guest did, before any
 * handler saw it. */
static int push_exit(lua_State *L, struct vcpu *c)
{
  struct kvm_run *run = c->run;
  lua_createtable(L, 0, 10);
  switch (run->exit_reason) {
  case KVM_EXIT_IO: {
    bool write = run->io.direction == KVM_EXIT_IO_OUT;
    lua_pushliteral(L, "io");
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, write ? "out" : "in");
    lua_setfield(L, -2, "dir");
    lua_pushboolean(L, write);
    lua_setfield(L, -2, "write");
    lua_pushinteger(L, run->io.port);
    lua_setfield(L, -2, "port");
    lua_pushinteger(L, run->io.size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, run->io.count);
    lua_setfield(L, -2, "count");
    uint64_t bytes = (uint64_t)run->io.size * run->io.count;
    if (write && run->io.size <= 4 && run->io.data_offset <= (uint64_t)c->run_size &&
        bytes <= (uint64_t)c->run_size - run->io.data_offset) {
      const uint8_t *data = (const uint8_t *)run + run->io.data_offset;
      uint32_t value = 0;
      memcpy(&value, data, run->io.size);
      lua_pushinteger(L, value);
      lua_setfield(L, -2, "value");
      if (run->io.count > 1) {
        lua_pushlstring(L, (const char *)data, (size_t)bytes);
        lua_setfield(L, -2, "data");
      }
    }
    break;
  }
  case KVM_EXIT_MMIO: {
    lua_pushliteral(L, "mmio");
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, run->mmio.is_write ? "write" : "read");
    lua_setfield(L, -2, "dir");
    lua_pushboolean(L, run->mmio.is_write);
    lua_setfield(L, -2, "write");
    lua_pushinteger(L, (lua_Integer)run->mmio.phys_addr);
    lua_setfield(L, -2, "addr");
    lua_pushinteger(L, run->mmio.len);
    lua_setfield(L, -2, "size");
    if (run->mmio.is_write && run->mmio.len <= 8) {
      uint64_t value = 0;
      memcpy(&value, run->mmio.data, run->mmio.len);
      lua_pushinteger(L, (lua_Integer)value);
      lua_setfield(L, -2, "value");
    }
    break;
  }
  case KVM_EXIT_HLT:
    lua_pushliteral(L, "hlt");
    lua_setfield(L, -2, "reason");
    break;
  case KVM_EXIT_SHUTDOWN:
    lua_pushliteral(L, "shutdown");
    lua_setfield(L, -2, "reason");
    break;
  default: {
    /* The rest by KVM's name, lower case, without the prefix. */
    char name[48];
    const char *kvm_name = exit_reason_name(run->exit_reason);
    size_t i = 0;
    if (strncmp(kvm_name, "KVM_EXIT_", 9) == 0)
      kvm_name += 9;
    for (; kvm_name[i] && i < sizeof name - 1; i++)
      name[i] = (char)tolower((unsigned char)kvm_name[i]);
    name[i] = '\0';
    lua_pushstring(L, name);
    lua_setfield(L, -2, "reason");
    lua_pushinteger(L, run->exit_reason);
    lua_setfield(L, -2, "kvm_exit");
    break;
  }
  }
  lua_pushinteger(L, c->id);
  lua_setfield(L, -2, "cpu");
  lua_pushinteger(L, (lua_Integer)vcpu_regs(c)->rip);
  lua_setfield(L, -2, "rip");
  return 1;
}

/* The table a run of one vCPU returns, or the error it raises. */
static int push_result(lua_State *L, struct vcpu *c, bool raise)
{
  int reason = c->stop.reason;
  if (reason == VCPU_STEP)
    return push_exit(L, c);
  if (raise && reason >= VCPU_FAULT)
    return lu_errorf(L, "%s", c->stop.message ? c->stop.message : lvm_reason_name(reason));
  if (raise && reason == VCPU_INTERRUPTED)
    return lu_errorf(L, "%s", c->stop.code == SIGTERM ? "terminated" : "interrupted");
  lua_createtable(L, 0, 6);
  if (reason >= VCPU_FAULT) {
    lua_pushliteral(L, "fault");
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, lvm_reason_name(reason));
    lua_setfield(L, -2, "fault");
    lua_pushstring(L, c->stop.message ? c->stop.message : lvm_reason_name(reason));
    lua_setfield(L, -2, "message");
  } else {
    lua_pushstring(L, lvm_reason_name(reason));
    lua_setfield(L, -2, "reason");
  }
  if (reason == VCPU_STOPPED || reason == VCPU_EXIT) {
    lua_pushinteger(L, c->stop.code);
    lua_setfield(L, -2, "code");
  }
  if (reason == VCPU_SYSTEM_EVENT) {
    lua_pushstring(L, vcpu_system_event_name(c->stop.code));
    lua_setfield(L, -2, "event");
  }
  lua_pushinteger(L, c->id);
  lua_setfield(L, -2, "cpu");
  lua_pushinteger(L, (lua_Integer)vcpu_regs(c)->rip);
  lua_setfield(L, -2, "rip");
  lua_pushinteger(L, (lua_Integer)c->exits);
  lua_setfield(L, -2, "exits");
  return 1;
}


/* The vCPU whose stop describes the run: the one that ended it for all,
 * else the first that did not simply halt. */
static struct vcpu *deciding_cpu(struct vm *vm)
{
  if (vm->first_stop >= 0)
    return vm->cpus[vm->first_stop];
  for (int i = 0; i < vm->ncpus; i++)
    if (vm->cpus[i]->stop.reason != VCPU_HLT)
      return vm->cpus[i];
  return vm->cpus[0];
}

/* The result of a whole run; with several vCPUs, `cpus` lists each one. */
static int push_vm_result(lua_State *L, struct vm *vm, bool raise)
{
  push_result(L, deciding_cpu(vm), raise);
  if (vm->ncpus > 1) {
    lua_createtable(L, vm->ncpus, 0);
    for (int i = 0; i < vm->ncpus; i++) {
      struct vcpu *c = vm->cpus[i];
      push_result(L, c, false);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "cpus");
  }
  return 1;
}

static double opt_timeout(lua_State *L, int opts)
{
  if (lua_type(L, opts) != LUA_TTABLE)
    return 0;
  lua_getfield(L, opts, "timeout");
  double t = 0;
  if (!lua_isnil(L, -1)) {
    int ok;
    t = lua_tonumberx(L, -1, &ok);
    if (!ok || !(t > 0) || t > 1e9)
      lu_errorf(L, "timeout must be a positive number of seconds");
  }
  lua_pop(L, 1);
  return t;
}

/* True when the calling thread is one of vm's vCPUs (inside a handler). */
static bool on_own_vcpu(struct vm *vm)
{
  struct vcpu *c = vcpu_current();
  return c != NULL && c->vm == vm;
}

/* Marks the VM running and anchors it, so the collector cannot free it
 * while a vCPU uses its memory. */
static void begin_run(lua_State *L, struct lvm *v, int vm_idx)
{
  lua_pushvalue(L, vm_idx);
  v->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  v->running = true;
  vm_start_devices(v->vm);
}

static void end_run(lua_State *L, struct lvm *v)
{
  v->vm->sandbox_on = false;
  v->running = false;
  v->threaded = false;
  v->paused = false;
  luaL_unref(L, LUA_REGISTRYINDEX, v->anchor);
  v->anchor = LUA_NOREF;
  vm_flush_devices(v->vm);
}

static void check_startable(lua_State *L, struct lvm *v, const char *who)
{
  if (v->running)
    lu_errorf(L, "%s: the VM is already running", who);
}

/* Runs vCPU c on the calling thread until it stops. Pushes the result. */
static int run_here(lua_State *L, struct lvm *v, struct vcpu *c, int opts, bool step)
{
  double timeout = opt_timeout(L, opts);
  bool raise = lu_optbool(L, opts, "raise", true);
  struct vm *vm = v->vm;

  check_startable(L, v, step ? "cpu:step" : "vm:run");
  vcpu_clear_stop(c);
  c->exits = 0;
  vm_clear_stop_request(vm);
  vm->first_stop = -1;
  begin_run(L, v, 1);

  struct run_guard guard;
  if (run_guard_begin(&guard, vm, timeout, true) < 0) {
    run_guard_end(&guard);
    end_run(L, v);
    return lu_errorf(L, "cannot arm the run's timer: %s", strerror(errno));
  }
  ctl_release(v->st);
  vcpu_run(c, step);
  ctl_acquire(v->st);
  run_guard_end(&guard);
  end_run(L, v);
  return push_result(L, c, raise);
}

/* sandbox = true (sandbox.c) for a run's threads. Lua code on a vCPU's
 * exit path is the user's own and would need everything the filter
 * refuses, so a VM with any is refused; otherwise the filters are built
 * (once per VM) before anything starts. */
static void prepare_sandbox(lua_State *L, struct lvm *v, const char *who)
{
  char why[128];
  if (lhandler_uses_lua(L, v, 1, why, sizeof why))
    lu_errorf(L, "%s: sandbox = true needs every device of the VM in C, and %s; Lua code "
                 "would need far more than the sandbox allows", who, why);
  char err[ERR_LEN];
  if (sandbox_prepare(v->vm, err) < 0)
    lu_errorf(L, "%s: sandbox: %s", who, err);
}

static void start_threads(lua_State *L, struct lvm *v, bool sandbox)
{
  char err[ERR_LEN];
  begin_run(L, v, 1);
  v->threaded = true;
  v->vm->sandbox_on = sandbox;
  if (vm_start(v->vm, err) < 0) {
    end_run(L, v);
    lu_errorf(L, "%s", err);
  }
}

/* Waits for the vCPU threads without the control-plane lock; Ctrl-C stops
 * the VM. Returns 0, or -1 when timeout passed first. */
static int wait_threads(lua_State *L, struct lvm *v, double timeout)
{
  struct run_guard guard;
  run_guard_begin(&guard, v->vm, 0, true);
  ctl_release(v->st);
  int rc = vm_wait(v->vm, timeout);
  ctl_acquire(v->st);
  run_guard_end(&guard);
  (void)L;
  return rc;
}

/* Collects a finished threaded run: joins, unanchors, pushes the result. */
static int finish_threads(lua_State *L, struct lvm *v, bool raise)
{
  ctl_release(v->st);
  vm_join(v->vm);
  ctl_acquire(v->st);
  end_run(L, v);
  return push_vm_result(L, v->vm, raise);
}

/* vm:run{ timeout = seconds, raise = true, sandbox = false } -> result.
 * Sandboxed, a single vCPU runs on a thread of its own too: a seccomp
 * filter is never lifted, and the calling thread runs Lua. */
static int vm_run(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  bool sandbox = lu_optbool(L, 2, "sandbox", false);
  if (v->vm->ncpus == 1 && !sandbox)
    return run_here(L, v, v->vm->cpus[0], 2, false);
  double timeout = opt_timeout(L, 2);
  bool raise = lu_optbool(L, 2, "raise", true);
  check_startable(L, v, "vm:run");
  if (sandbox)
    prepare_sandbox(L, v, "vm:run");
  start_threads(L, v, sandbox);
  if (wait_threads(L, v, timeout) < 0) {
    vm_request_stop(v->vm, VCPU_TIMEOUT, 0);
    wait_threads(L, v, 0);
  }
  return finish_threads(L, v, raise);
}

int lvm_step(lua_State *L, struct lvm *v, struct vcpu *c, int opts)
{
  return run_here(L, v, c, opts, true);
}

/* vm:start{ sandbox = false }: runs every vCPU on its own thread and
 * returns at once. */
static int vm_start_l(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  bool sandbox = lu_optbool(L, 2, "sandbox", false);
  check_startable(L, v, "vm:start");
  if (sandbox)
    prepare_sandbox(L, v, "vm:start");
  start_threads(L, v, sandbox);
  lua_settop(L, 1);
  return 1;
}

/* vm:wait{ timeout = s, raise = true } -> result, or nil, "timeout" while
 * the VM still runs. */
static int vm_wait_l(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  double timeout = opt_timeout(L, 2);
  bool raise = lu_optbool(L, 2, "raise", true);
  if (!v->threaded)
    return lu_errorf(L, "vm:wait: the VM is not running in the background (see vm:start)");
  if (on_own_vcpu(v->vm))
    return lu_errorf(L, "vm:wait: a handler cannot wait for its own VM");
  if (wait_threads(L, v, timeout) < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return finish_threads(L, v, raise);
}

/* vm:pause(): returns once no vCPU runs; registers can then be read. */
static int vm_pause_l(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  if (!v->threaded)
    return lu_errorf(L, "vm:pause: only a VM started with vm:start can be paused");
  if (on_own_vcpu(v->vm))
    return lu_errorf(L, "vm:pause: a handler cannot pause its own VM; use vm:stop");
  ctl_release(v->st);
  vm_pause(v->vm);
  ctl_acquire(v->st);
  v->paused = atomic_load(&v->vm->stop_request) == VCPU_PAUSED;
  lua_pushboolean(L, v->paused);
  return 1;
}

/* vm:resume(): continues a paused VM. */
static int vm_resume_l(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  if (!v->paused)
    return lu_errorf(L, "vm:resume: the VM is not paused");
  v->paused = false;
  vm_resume(v->vm);
  return 0;
}

/* vm:stop([code]): ends a run after the current exit. true if it ran. */
static int vm_stop_l(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  lua_Integer code = luaL_optinteger(L, 2, 0);
  if (v->running)
    vm_request_stop(v->vm, VCPU_STOPPED, code);
  v->paused = false;
  lua_pushboolean(L, v->running);
  return 1;
}

/* Stops and joins a VM's threads before it is closed. A vCPU thread that
 * wakes up holding the control-plane lock sees `closing` and leaves Lua
 * alone. */
void lrun_shutdown(lua_State *L, struct lvm *v)
{
  if (!v->threaded)
    return;
  atomic_store(&v->closing, true);
  vm_request_stop(v->vm, VCPU_STOPPED, 0);
  ctl_release(v->st);
  vm_join(v->vm);
  ctl_acquire(v->st);
  end_run(L, v);
}

bool lrun_on_own_vcpu(struct lvm *v)
{
  return v->vm != NULL && on_own_vcpu(v->vm);
}

static const luaL_Reg run_methods[] = {
  { "run", vm_run },
  { "start", vm_start_l },
  { "wait", vm_wait_l },
  { "pause", vm_pause_l },
  { "resume", vm_resume_l },
  { "stop", vm_stop_l },
  { NULL, NULL },
};

void lrun_add_methods(lua_State *L)
{
  luaL_setfuncs(L, run_methods, 0);
}
