/* The cpu userdata: registers by name, sregs, MSRs, FPU, CPUID, stepping. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "lvmm.h"
#include "vcpu.h"

struct vcpu *lcpu_check(lua_State *L, int idx, struct lcpu **out)
{
  struct lcpu *p = luaL_checkudata(L, idx, CPU_TYPE);
  if (p->owner->vm == NULL)
    lu_errorf(L, "the VM of this cpu is closed");
  if (out != NULL)
    *out = p;
  return p->owner->vm->cpus[p->id];
}

/* Register state may only be touched while the vCPU is not inside KVM_RUN:
 * from its own thread (a handler) or when it is not running at all. */
static struct vcpu *check_quiet(lua_State *L, int idx)
{
  struct lcpu *p;
  struct vcpu *c = lcpu_check(L, idx, &p);
  bool own_thread = vcpu_current() == c;
  /* A started VM counts as running from vm:start on, even before its
   * thread reaches KVM_RUN. */
  if (((p->owner->threaded && !p->owner->paused) || atomic_load(&c->running)) && !own_thread)
    lu_errorf(L, "cpu %d is running; stop or pause the VM before using its registers", c->id);
  return c;
}

void lcpu_push_new(lua_State *L, int vm_idx, int id)
{
  struct lcpu *p = lua_newuserdatauv(L, sizeof *p, 1);
  p->owner = lua_touserdata(L, vm_idx);
  p->id = id;
  lua_pushvalue(L, vm_idx);
  lua_setiuservalue(L, -2, 1); /* keeps the VM alive while the cpu is */
  luaL_setmetatable(L, CPU_TYPE);
}

/* ---- register names ---- */

#define GPR(name) { #name, offsetof(struct kvm_regs, name) }
static const struct { const char *name; size_t off; } gprs[] = {
  GPR(rax), GPR(rbx), GPR(rcx), GPR(rdx), GPR(rsi), GPR(rdi), GPR(rsp), GPR(rbp),
  GPR(r8), GPR(r9), GPR(r10), GPR(r11), GPR(r12), GPR(r13), GPR(r14), GPR(r15),
  GPR(rip), GPR(rflags),
};

#define SREG(name) { #name, offsetof(struct kvm_sregs, name) }
static const struct { const char *name; size_t off; } controls[] = {
  SREG(cr0), SREG(cr2), SREG(cr3), SREG(cr4), SREG(cr8), SREG(efer), SREG(apic_base),
};
static const struct { const char *name; size_t off; } segments[] = {
  SREG(cs), SREG(ds), SREG(es), SREG(fs), SREG(gs), SREG(ss), SREG(tr), SREG(ldt),
};
static const struct { const char *name; size_t off; } dtables[] = { SREG(gdt), SREG(idt) };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int find(const char *name, const void *table, size_t n, size_t stride)
{
  for (size_t i = 0; i < n; i++) {
    const char *entry = *(const char *const *)((const char *)table + i * stride);
    if (strcmp(entry, name) == 0)
      return (int)i;
  }
  return -1;
}
#define FIND(name, t) find(name, t, COUNT(t), sizeof((t)[0]))

static uint64_t *gpr_ptr(struct kvm_regs *r, int i)
{
  return (uint64_t *)((char *)r + gprs[i].off);
}

/* ---- segments and descriptor tables as Lua tables ---- */

static void push_segment(lua_State *L, const struct kvm_segment *s)
{
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, (lua_Integer)s->base);
  lua_setfield(L, -2, "base");
  lua_pushinteger(L, s->limit);
  lua_setfield(L, -2, "limit");
  lua_pushinteger(L, s->selector);
  lua_setfield(L, -2, "selector");
  lua_pushinteger(L, s->type);
  lua_setfield(L, -2, "type");
#define FLAG(f)                   \
  lua_pushinteger(L, s->f);       \
  lua_setfield(L, -2, #f);
  FLAG(present) FLAG(dpl) FLAG(db) FLAG(s) FLAG(l) FLAG(g) FLAG(avl) FLAG(unusable)
#undef FLAG
}

static lua_Integer field_int(lua_State *L, int t, const char *seg, const char *field,
                             lua_Integer lo, lua_Integer hi, lua_Integer cur)
{
  lua_getfield(L, t, field);
  lua_Integer v = cur;
  if (lua_isboolean(L, -1)) {
    v = lua_toboolean(L, -1);
  } else if (!lua_isnil(L, -1)) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok)
      lu_errorf(L, "%s.%s must be an integer, not %s", seg, field, luaL_typename(L, -1));
  }
  if (v < lo || v > hi)
    lu_errorf(L, "%s.%s = %lld is out of range [%lld, %lld]", seg, field, (long long)v,
              (long long)lo, (long long)hi);
  lua_pop(L, 1);
  return v;
}

static const char *const segment_fields[] = { "base", "limit", "selector", "type", "present",
                                              "dpl", "db", "s", "l", "g", "avl", "unusable",
                                              NULL };

/* A table merges into the segment field by field; an integer is real-mode
 * shorthand: selector = v, base = v * 16. */
static void apply_segment(lua_State *L, int idx, const char *name, struct kvm_segment *s)
{
  if (lua_type(L, idx) == LUA_TNUMBER) {
    int ok;
    lua_Integer sel = lua_tointegerx(L, idx, &ok);
    if (!ok || sel < 0 || sel > 0xffff)
      lu_errorf(L, "%s: a selector is an integer from 0 to 0xffff", name);
    s->selector = (uint16_t)sel;
    s->base = (uint64_t)sel << 4;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE)
    lu_errorf(L, "%s must be a selector or a table of segment fields, not %s", name,
               luaL_typename(L, idx));
  int t = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    bool known = false;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (int i = 0; segment_fields[i]; i++)
        known = known || strcmp(segment_fields[i], lua_tostring(L, -1)) == 0;
    if (!known)
      lu_errorf(L, "%s: unknown segment field '%s'", name, luaL_tolstring(L, -1, NULL));
  }
  s->base = (uint64_t)field_int(L, t, name, "base", LUA_MININTEGER, LUA_MAXINTEGER,
                                (lua_Integer)s->base);
  s->limit = (uint32_t)field_int(L, t, name, "limit", 0, 0xffffffffll, s->limit);
  s->selector = (uint16_t)field_int(L, t, name, "selector", 0, 0xffff, s->selector);
  s->type = (uint8_t)field_int(L, t, name, "type", 0, 15, s->type);
  s->present = (uint8_t)field_int(L, t, name, "present", 0, 1, s->present);
  s->dpl = (uint8_t)field_int(L, t, name, "dpl", 0, 3, s->dpl);
  s->db = (uint8_t)field_int(L, t, name, "db", 0, 1, s->db);
  s->s = (uint8_t)field_int(L, t, name, "s", 0, 1, s->s);
  s->l = (uint8_t)field_int(L, t, name, "l", 0, 1, s->l);
  s->g = (uint8_t)field_int(L, t, name, "g", 0, 1, s->g);
  s->avl = (uint8_t)field_int(L, t, name, "avl", 0, 1, s->avl);
  s->unusable = (uint8_t)field_int(L, t, name, "unusable", 0, 1, s->unusable);
}

static void push_dtable(lua_State *L, const struct kvm_dtable *d)
{
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)d->base);
  lua_setfield(L, -2, "base");
  lua_pushinteger(L, d->limit);
  lua_setfield(L, -2, "limit");
}

static void apply_dtable(lua_State *L, int idx, const char *name, struct kvm_dtable *d)
{
  if (lua_type(L, idx) != LUA_TTABLE)
    lu_errorf(L, "%s must be a table {base=, limit=}, not %s", name, luaL_typename(L, idx));
  int t = lua_absindex(L, idx);
  d->base = (uint64_t)field_int(L, t, name, "base", LUA_MININTEGER, LUA_MAXINTEGER,
                                (lua_Integer)d->base);
  d->limit = (uint16_t)field_int(L, t, name, "limit", 0, 0xffff, d->limit);
}

static void get_sregs(lua_State *L, struct vcpu *c, struct kvm_sregs *s)
{
  if (vcpu_get_sregs(c, s) < 0)
    lu_errorf(L, "cpu %d: KVM_GET_SREGS: %s", c->id, strerror(errno));
}

/* Pushes the named register; returns 0 if the name is not a register. */
static int push_register(lua_State *L, struct vcpu *c, const char *name)
{
  int i;
  if ((i = FIND(name, gprs)) >= 0) {
    lua_pushinteger(L, (lua_Integer)*gpr_ptr(vcpu_regs(c), i));
    return 1;
  }
  struct kvm_sregs s;
  if ((i = FIND(name, controls)) >= 0) {
    get_sregs(L, c, &s);
    lua_pushinteger(L, (lua_Integer) * (uint64_t *)((char *)&s + controls[i].off));
    return 1;
  }
  if ((i = FIND(name, segments)) >= 0) {
    get_sregs(L, c, &s);
    push_segment(L, (struct kvm_segment *)((char *)&s + segments[i].off));
    return 1;
  }
  if ((i = FIND(name, dtables)) >= 0) {
    get_sregs(L, c, &s);
    push_dtable(L, (struct kvm_dtable *)((char *)&s + dtables[i].off));
    return 1;
  }
  return 0;
}

/* The integer at the top of the stack; strings are not registers. */
static lua_Integer reg_value(lua_State *L, const char *name)
{
  int ok = 0;
  lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &ok) : 0;
  if (!ok)
    lu_errorf(L, "cpu:set: %s must be an integer, not %s", name,
              lua_type(L, -1) == LUA_TNUMBER ? "a float" : luaL_typename(L, -1));
  return v;
}

/* cpu:set{ rip = 0x1000, cr0 = 1, cs = {...}, gdt = {...} }: all or nothing. */
static int cpu_set(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  struct kvm_regs regs = *vcpu_regs(c);
  struct kvm_sregs s;
  bool need_sregs = false, have_sregs = false;

  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return lu_errorf(L, "cpu:set: register names are strings, got %s", luaL_typename(L, -2));
    const char *name = lua_tostring(L, -2);
    int i;
    if ((i = FIND(name, gprs)) >= 0) {
      *gpr_ptr(&regs, i) = (uint64_t)reg_value(L, name);
    } else if (FIND(name, controls) >= 0 || FIND(name, segments) >= 0 ||
               FIND(name, dtables) >= 0) {
      if (!have_sregs) {
        get_sregs(L, c, &s);
        have_sregs = true;
      }
      need_sregs = true;
      if ((i = FIND(name, controls)) >= 0) {
        *(uint64_t *)((char *)&s + controls[i].off) = (uint64_t)reg_value(L, name);
      } else if ((i = FIND(name, segments)) >= 0) {
        apply_segment(L, -1, name, (struct kvm_segment *)((char *)&s + segments[i].off));
      } else {
        i = FIND(name, dtables);
        apply_dtable(L, -1, name, (struct kvm_dtable *)((char *)&s + dtables[i].off));
      }
    } else {
      return lu_errorf(L, "cpu:set: unknown register '%s'", name);
    }
    lua_pop(L, 1);
  }
  if (need_sregs && vcpu_set_sregs(c, &s) < 0)
    return lu_errorf(L, "cpu:set: KVM rejected the segment and control registers (%s): "
                         "cr0=0x%llx cr4=0x%llx efer=0x%llx", strerror(errno),
                      (unsigned long long)s.cr0, (unsigned long long)s.cr4,
                      (unsigned long long)s.efer);
  *vcpu_regs(c) = regs;
  vcpu_regs_changed(c);
  return 0;
}

/* cpu:regs() -> { rax = ..., ..., rip = ..., rflags = ... } */
static int cpu_regs(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  lua_createtable(L, 0, (int)COUNT(gprs));
  for (size_t i = 0; i < COUNT(gprs); i++) {
    lua_pushinteger(L, (lua_Integer)*gpr_ptr(vcpu_regs(c), (int)i));
    lua_setfield(L, -2, gprs[i].name);
  }
  return 1;
}

/* cpu:sregs() -> { cs = {...}, ..., gdt = {...}, cr0 = ..., efer = ... } */
static int cpu_sregs(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  struct kvm_sregs s;
  get_sregs(L, c, &s);
  lua_createtable(L, 0, 20);
  for (size_t i = 0; i < COUNT(controls); i++) {
    lua_pushinteger(L, (lua_Integer) * (uint64_t *)((char *)&s + controls[i].off));
    lua_setfield(L, -2, controls[i].name);
  }
  for (size_t i = 0; i < COUNT(segments); i++) {
    push_segment(L, (struct kvm_segment *)((char *)&s + segments[i].off));
    lua_setfield(L, -2, segments[i].name);
  }
  for (size_t i = 0; i < COUNT(dtables); i++) {
    push_dtable(L, (struct kvm_dtable *)((char *)&s + dtables[i].off));
    lua_setfield(L, -2, dtables[i].name);
  }
  return 1;
}

/* cpu:msr(index) -> value; cpu:msr(index, value) */
static int cpu_msr(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  lua_Integer index = luaL_checkinteger(L, 2);
  luaL_argcheck(L, index >= 0 && index <= 0xffffffffll, 2, "MSR index is a 32-bit number");
  if (lua_isnoneornil(L, 3)) {
    uint64_t value;
    if (vcpu_get_msr(c, (uint32_t)index, &value) < 0)
      return lu_errorf(L, "cpu:msr: cannot read MSR 0x%x: KVM does not support it",
                        (unsigned)index);
    lua_pushinteger(L, (lua_Integer)value);
    return 1;
  }
  lua_Integer value = luaL_checkinteger(L, 3);
  if (vcpu_set_msr(c, (uint32_t)index, (uint64_t)value) < 0)
    return lu_errorf(L, "cpu:msr: KVM refused to write 0x%llx to MSR 0x%x",
                     (unsigned long long)value,
                      (unsigned)index);
  return 0;
}

/* cpu:fpu() -> { fcw, fsw, ftwx, last_opcode, last_ip, last_dp, mxcsr,
 *                st = {8 x 16-byte strings}, xmm = {16 x 16-byte strings} } */
static int cpu_fpu(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  struct kvm_fpu f;
  if (vcpu_get_fpu(c, &f) < 0)
    return lu_errorf(L, "cpu:fpu: KVM_GET_FPU: %s", strerror(errno));
  lua_createtable(L, 0, 9);
#define F(name)                               \
  lua_pushinteger(L, (lua_Integer)f.name);    \
  lua_setfield(L, -2, #name);
  F(fcw) F(fsw) F(ftwx) F(last_opcode) F(last_ip) F(last_dp) F(mxcsr)
#undef F
  lua_createtable(L, 8, 0);
  for (int i = 0; i < 8; i++) {
    lua_pushlstring(L, (const char *)f.fpr[i], 16);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "st");
  lua_createtable(L, 16, 0);
  for (int i = 0; i < 16; i++) {
    lua_pushlstring(L, (const char *)f.xmm[i], 16);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "xmm");
  return 1;
}

static void bytes_field(lua_State *L, int t, const char *name, int count, uint8_t (*dst)[16])
{
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1)) {
    luaL_checktype(L, -1, LUA_TTABLE);
    for (int i = 0; i < count; i++) {
      lua_rawgeti(L, -1, i + 1);
      if (!lua_isnil(L, -1)) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (s == NULL || len != 16)
          lu_errorf(L, "cpu:set_fpu: %s[%d] must be a 16-byte string", name, i + 1);
        memcpy(dst[i], s, 16);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* cpu:set_fpu{ fcw = 0x37f, mxcsr = 0x1f80, xmm = { [1] = string.rep("\0", 16) } } */
static int cpu_set_fpu(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  struct kvm_fpu f;
  if (vcpu_get_fpu(c, &f) < 0)
    return lu_errorf(L, "cpu:set_fpu: KVM_GET_FPU: %s", strerror(errno));
  f.fcw = (uint16_t)field_int(L, 2, "fpu", "fcw", 0, 0xffff, f.fcw);
  f.fsw = (uint16_t)field_int(L, 2, "fpu", "fsw", 0, 0xffff, f.fsw);
  f.ftwx = (uint8_t)field_int(L, 2, "fpu", "ftwx", 0, 0xff, f.ftwx);
  f.last_opcode = (uint16_t)field_int(L, 2, "fpu", "last_opcode", 0, 0xffff, f.last_opcode);
  f.last_ip = (uint64_t)field_int(L, 2, "fpu", "last_ip", LUA_MININTEGER, LUA_MAXINTEGER,
                                  (lua_Integer)f.last_ip);
  f.last_dp = (uint64_t)field_int(L, 2, "fpu", "last_dp", LUA_MININTEGER, LUA_MAXINTEGER,
                                  (lua_Integer)f.last_dp);
  f.mxcsr = (uint32_t)field_int(L, 2, "fpu", "mxcsr", 0, 0xffffffffll, f.mxcsr);
  bytes_field(L, 2, "st", 8, f.fpr);
  bytes_field(L, 2, "xmm", 16, f.xmm);
  if (vcpu_set_fpu(c, &f) < 0)
    return lu_errorf(L, "cpu:set_fpu: KVM_SET_FPU: %s", strerror(errno));
  return 0;
}

#define CPUID_MAX 256

static void push_cpuid(lua_State *L, const struct kvm_cpuid_entry2 *e)
{
  lua_createtable(L, 0, 7);
#define F(key, v)                           \
  lua_pushinteger(L, (lua_Integer)(v));     \
  lua_setfield(L, -2, key);
  F("leaf", e->function) F("subleaf", e->index) F("flags", e->flags)
  F("eax", e->eax) F("ebx", e->ebx) F("ecx", e->ecx) F("edx", e->edx)
#undef F
}

/* cpu:cpuid() -> list of entries; cpu:cpuid(leaf [, subleaf]) -> entry or nil */
static int cpu_cpuid(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  lua_settop(L, 3); /* the buffer goes above the arguments */
  /* A userdata, not malloc: the tables built below can raise. */
  struct kvm_cpuid_entry2 *e = lua_newuserdatauv(L, CPUID_MAX * sizeof *e, 0);
  int n = vcpu_get_cpuid(c, e, CPUID_MAX);
  if (n < 0)
    return lu_errorf(L, "cpu:cpuid: KVM_GET_CPUID2: %s", strerror(errno));
  if (lua_isnoneornil(L, 2)) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
      push_cpuid(L, &e[i]);
      lua_rawseti(L, -2, i + 1);
    }
    return 1;
  }
  lua_Integer leaf = lua_tointeger(L, 2), subleaf = luaL_optinteger(L, 3, 0);
  lua_pushnil(L);
  for (int i = 0; i < n; i++) {
    bool indexed = e[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    if (e[i].function == (uint32_t)leaf && (!indexed || e[i].index == (uint32_t)subleaf)) {
      lua_pop(L, 1);
      push_cpuid(L, &e[i]);
      break;
    }
  }
  return 1;
}

static uint32_t entry_field(lua_State *L, int t, const char *name, int i)
{
  lua_getfield(L, t, name);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (lua_isnil(L, -1))
    v = 0, ok = 1;
  if (!ok || v < 0 || v > 0xffffffffll)
    lu_errorf(L, "cpu:set_cpuid: entry %d: %s must be a 32-bit integer", i, name);
  lua_pop(L, 1);
  return (uint32_t)v;
}

/* cpu:set_cpuid(list): replaces the whole CPUID table. */
static int cpu_set_cpuid(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 2);
  luaL_argcheck(L, n >= 0 && n <= CPUID_MAX, 2, "at most 256 CPUID entries");
  struct kvm_cpuid_entry2 *e = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *e, 0);
  memset(e, 0, (size_t)(n ? n : 1) * sizeof *e);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    luaL_argcheck(L, lua_istable(L, -1), 2, "each CPUID entry is a table");
    int t = lua_gettop(L);
    struct kvm_cpuid_entry2 *x = &e[i - 1];
    x->function = entry_field(L, t, "leaf", (int)i);
    x->index = entry_field(L, t, "subleaf", (int)i);
    x->flags = entry_field(L, t, "flags", (int)i);
    x->eax = entry_field(L, t, "eax", (int)i);
    x->ebx = entry_field(L, t, "ebx", (int)i);
    x->ecx = entry_field(L, t, "ecx", (int)i);
    x->edx = entry_field(L, t, "edx", (int)i);
    lua_pop(L, 1);
  }
  if (vcpu_set_cpuid(c, e, (int)n) < 0)
    return lu_errorf(L, "cpu:set_cpuid: KVM_SET_CPUID2: %s%s", strerror(errno),
                      errno == EINVAL ? " (KVM refuses CPUID changes once a vCPU has run)" : "");
  return 0;
}

/* cpu:translate(linear) -> guest physical address, or nil */
static int cpu_translate(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  uint64_t linear = (uint64_t)luaL_checkinteger(L, 2);
  uint64_t gpa;
  if (vcpu_translate(c, linear, &gpa) < 0) {
    lua_pushnil(L);
    char msg[64];
    snprintf(msg, sizeof msg, "linear address 0x%llx is not mapped", (unsigned long long)linear);
    lua_pushstring(L, msg);
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)gpa);
  return 1;
}

static const char *const mp_states[] = { "runnable", "uninitialized", "init_received", "halted",
                                         "sipi_received", "stopped", "check_stop", "operating",
                                         "load", "ap_reset_hold", "suspended" };

/* cpu:mp_state() -> "runnable", "uninitialized" (waiting for INIT/SIPI),
 * "init_received", "halted", ...; cpu:mp_state(name) sets it. */
static int cpu_mp_state(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  struct kvm_mp_state mp;
  if (!lua_isnoneornil(L, 2)) {
    const char *name = luaL_checkstring(L, 2);
    size_t i = 0;
    while (i < COUNT(mp_states) && strcmp(mp_states[i], name) != 0)
      i++;
    if (i == COUNT(mp_states))
      return lu_errorf(L, "cpu:mp_state: unknown state '%s'", name);
    mp.mp_state = (uint32_t)i;
    if (ioctl(c->fd, KVM_SET_MP_STATE, &mp) < 0)
      return lu_errorf(L, "cpu:mp_state: KVM_SET_MP_STATE %s: %s", name, strerror(errno));
    return 0;
  }
  if (ioctl(c->fd, KVM_GET_MP_STATE, &mp) < 0)
    return lu_errorf(L, "cpu:mp_state: KVM_GET_MP_STATE: %s", strerror(errno));
  if (mp.mp_state < COUNT(mp_states))
    lua_pushstring(L, mp_states[mp.mp_state]);
  else
    lua_pushinteger(L, mp.mp_state);
  return 1;
}

/* cpu:dump() -> the register dump faults print */
static int cpu_dump(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  char buf[4096];
  snprintf(buf, sizeof buf, "cpu %d:\n", c->id);
  describe_vcpu(c, buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

/* cpu:step{ timeout = s } -> the next exit, not yet handled */
static int cpu_step(lua_State *L)
{
  struct lcpu *p;
  struct vcpu *c = lcpu_check(L, 1, &p);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  lua_getiuservalue(L, 1, 1); /* the vm userdata: vm_run's index 1 */
  lua_replace(L, 1);
  return lvm_step(L, p->owner, c, 2);
}

/* cpu:reply([value]): answers the pending exit instead of its handler. */
static int cpu_reply(lua_State *L)
{
  struct vcpu *c = check_quiet(L, 1);
  struct kvm_run *run = c->run;
  if (!c->exit_pending ||
      (run->exit_reason != KVM_EXIT_IO && run->exit_reason != KVM_EXIT_MMIO))
    return lu_errorf(L, "cpu:reply: no I/O or MMIO exit is pending on cpu %d", c->id);
  bool read = run->exit_reason == KVM_EXIT_IO ? run->io.direction == KVM_EXIT_IO_IN
                                              : !run->mmio.is_write;
  if (read) {
    uint64_t v = (uint64_t)luaL_optinteger(L, 2, 0);
    if (run->exit_reason == KVM_EXIT_MMIO) {
      memcpy(run->mmio.data, &v, run->mmio.len);
    } else {
      uint64_t bytes = (uint64_t)run->io.size * run->io.count;
      if (run->io.data_offset > (uint64_t)c->run_size ||
          bytes > (uint64_t)c->run_size - run->io.data_offset)
        return lu_errorf(L, "cpu:reply: malformed I/O exit");
      uint8_t *data = (uint8_t *)run + run->io.data_offset;
      for (uint32_t i = 0; i < run->io.count; i++)
        memcpy(data + (size_t)i * run->io.size, &v, run->io.size);
    }
  }
  c->exit_pending = false;
  c->needs_completion = true;
  return 0;
}

static int cpu_tostring(lua_State *L)
{
  struct lcpu *p = luaL_checkudata(L, 1, CPU_TYPE);
  lua_pushfstring(L, "vmm.cpu %d%s", p->id, p->owner->vm == NULL ? " (closed)" : "");
  return 1;
}

/* cpu.rax, cpu.cs, cpu.id, cpu.vm, and methods */
static int cpu_index(lua_State *L)
{
  struct lcpu *p = luaL_checkudata(L, 1, CPU_TYPE);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1))
    return 1;
  const char *key = lua_tostring(L, 2);
  if (key == NULL)
    return lu_errorf(L, "cpu fields are named by strings");
  if (strcmp(key, "id") == 0) {
    lua_pushinteger(L, p->id);
    return 1;
  }
  if (strcmp(key, "vm") == 0) {
    lua_getiuservalue(L, 1, 1);
    return 1;
  }
  struct vcpu *c = check_quiet(L, 1);
  if (push_register(L, c, key))
    return 1;
  return lu_errorf(L, "cpu has no register or method '%s'", key);
}

/* cpu.rax = v is cpu:set{ rax = v } */
static int cpu_newindex(lua_State *L)
{
  lua_settop(L, 3);
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_settable(L, -3);
  lua_replace(L, 2);
  lua_settop(L, 2);
  return cpu_set(L);
}

static const luaL_Reg cpu_methods[] = {
  { "set", cpu_set },
  { "regs", cpu_regs },
  { "sregs", cpu_sregs },
  { "msr", cpu_msr },
  { "fpu", cpu_fpu },
  { "set_fpu", cpu_set_fpu },
  { "cpuid", cpu_cpuid },
  { "set_cpuid", cpu_set_cpuid },
  { "translate", cpu_translate },
  { "dump", cpu_dump },
  { "mp_state", cpu_mp_state },
  { "step", cpu_step },
  { "reply", cpu_reply },
  { NULL, NULL },
};

void lcpu_open_type(lua_State *L)
{
  if (!luaL_newmetatable(L, CPU_TYPE)) {
    lua_pop(L, 1);
    return;
  }
  luaL_newlib(L, cpu_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_pushcclosure(L, cpu_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, cpu_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, cpu_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
