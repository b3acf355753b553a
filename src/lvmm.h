/* Shared declarations of the Lua bindings (src/l*.c). */
#ifndef LUAVMM_LVMM_H
#define LUAVMM_LVMM_H

#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl.h"
#include "kvm.h"
#include "vm.h"

struct vcpu;

#define VM_TYPE "vmm.vm"
#define CPU_TYPE "vmm.cpu"
#define MEMORY_TYPE "vmm.memory"
#define STATE_KEY "luavmm.state"

/* Per-lua_State module state. `lock` is the control-plane lock: whichever
 * thread runs Lua holds it. The thread that loads the module takes it at
 * once and keeps it except while it blocks in a run, a wait or at a prompt. */
struct lstate {
  struct ctl lock;
  struct kvm kvm;
  bool kvm_open;
  bool stats_on_close; /* luavmm --stats: each VM prints its statistics */
};

void ctl_acquire(struct lstate *st);
void ctl_release(struct lstate *st);
struct lstate *lstate_get(lua_State *L);
int lstate_kvm(lua_State *L, struct lstate *st); /* opens /dev/kvm or raises */

/* A vCPU's Lua side: the coroutine its handlers run on. Its stack keeps the
 * message handler, the VM's handler table, the cpu userdata and the
 * hypercall table at fixed indices below every call. */
#define CO_MSGH 1
#define CO_HANDLERS 2
#define CO_CPU 3
#define CO_HYPERCALLS 4
#define CO_BASE 4

#define HYPERCALL_CONSTANTS 256

struct lcpu_state {
  struct lvm *owner;
  lua_State *co;
  uint64_t stop_seen;      /* when a running handler first saw a stop request */
  uint64_t call_start;     /* when the running handler was called */
  bool caller_holds_lock;  /* vm:dispatch calls handlers from Lua */
};

struct lhandler;

/* The vm userdata. vm is NULL once closed. Uservalue 1 is a table holding
 * the handlers (integer slots), "cpus", "threads", "hypercalls", "memory". */
struct lvm {
  struct vm *vm;
  struct lstate *st;
  bool running;            /* a run, step or background run is in progress */
  bool threaded;           /* its vCPUs run on their own threads */
  bool paused;
  _Atomic bool closing;    /* being closed: vCPU threads must not enter Lua */
  int anchor;              /* registry ref to the userdata while running */
  struct lhandler *handlers;
  struct lcpu_state *cpus;
  int next_slot;
  int unhandled_slot;      /* handler-table slot of the on_unhandled function */
  struct {                 /* vm:on_hypercall(nr, integer): answered in C */
    _Atomic bool set;
    _Atomic int64_t value;
  } hc_const[256];
};

struct lcpu {
  struct lvm *owner;
  int id;
};

struct lmem {
  struct lvm *owner;
};

/* lvm.c */
struct lvm *lvm_check(lua_State *L, int idx);       /* open VM or raises */
void lvm_open_type(lua_State *L);
int lvm_new(lua_State *L);
int lvm_step(lua_State *L, struct lvm *v, struct vcpu *c, int opts);
const char *lvm_reason_name(int reason);

/* lrun.c */
void lrun_add_methods(lua_State *L);
void lrun_shutdown(lua_State *L, struct lvm *v);
bool lrun_on_own_vcpu(struct lvm *v);

/* lvirtio.c */
void lvirtio_add_methods(lua_State *L);

/* ltrace.c */
void ltrace_add_methods(lua_State *L);

/* lstats.c */
void lstats_add_methods(lua_State *L);
void lstats_push(lua_State *L, struct vm *vm);

/* lcpu.c */
void lcpu_open_type(lua_State *L);
void lcpu_push_new(lua_State *L, int vm_idx, int id);
struct vcpu *lcpu_check(lua_State *L, int idx, struct lcpu **out);

/* lmem.c */
void lmem_open_type(lua_State *L);
void lmem_push_new(lua_State *L, int vm_idx);

/* lhandler.c */
int lhandler_set(lua_State *L, struct lvm *v, enum bus_space space, uint64_t base,
                 uint64_t len, int fn_idx, const char *who);
int lhandler_set_hypercall(lua_State *L, struct lvm *v, int vm_idx);
void lhandler_install(lua_State *L, struct lvm *v, int vm_idx);
void lhandler_free_all(struct lvm *v);
int lhandler_set_unhandled(lua_State *L, struct lvm *v, int vm_idx, int arg);
/* Whether a vCPU of the VM at vm_idx could call Lua: a bus handler, the
 * catch-all function, a hypercall function, a Lua device. If so, buf says
 * which (the first found). */
bool lhandler_uses_lua(lua_State *L, struct lvm *v, int vm_idx, char *buf, size_t len);
/* Calling Lua from a C device on a vCPU's thread, as a handler is called:
 * lhandler_enter takes the control-plane lock (false when the VM is being
 * closed: the vCPU is stopped and nothing may be called); the caller then
 * pushes a function and its arguments on the vCPU's coroutine (above
 * CO_BASE), lhandler_pcall runs it with the handler hook and the traceback
 * handler, and after a failure lhandler_failed stops the vCPU with "Lua
 * handler for <what> failed:" and the error. The caller resets the
 * coroutine's stack to CO_BASE before lhandler_leave drops the lock. */
bool lhandler_enter(struct lvm *v, struct vcpu *c);
void lhandler_leave(struct lvm *v, struct vcpu *c);
int lhandler_pcall(struct vcpu *c, int nargs, int nresults);
int lhandler_failed(struct vcpu *c, const char *what);

/* ldev.c */
void ldev_add_methods(lua_State *L);

/* lutil.c */
uint64_t lu_checkaddr(lua_State *L, int arg, const char *what);
uint64_t lu_checksize(lua_State *L, int arg);
int lu_parse_size(const char *s, uint64_t *out);
void lu_pushhandlers(lua_State *L, int vm_idx); /* the uservalue table */
int lu_traceback(lua_State *L);
bool lu_optbool(lua_State *L, int t, const char *field, bool def);
/* Raises "who: unknown option 'k' (known: ...)" for a key of the options
 * table at t that is in neither names nor more (NULL-terminated lists;
 * more may be NULL): a misspelt option is a mistake worth a message.
 * Nothing for a nil or absent t; a t of another type is an argument error. */
void lu_checkoptions(lua_State *L, int t, const char *const *names, const char *const *more,
                     const char *who);
int lu_errorf(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
