/* Lua constructors and the device object for virtio devices:
 * vm:virtio_blk{...}, vm:virtio_rng{...}, and dev:status(). */
#include <string.h>

#include "dev/virtio_devices.h"
#include "dev/virtio_mmio.h"
#include "err.h"
#include "lvmm.h"

#define VIRTIO_TYPE "vmm.virtio"

/* The device object: the transport, kept valid by the VM it references. */
struct lvirtio {
  struct lvm *owner;
  struct virtio_mmio *t;
};

static struct virtio_mmio *check_dev(lua_State *L, int idx)
{
  struct lvirtio *d = luaL_checkudata(L, idx, VIRTIO_TYPE);
  if (d->owner->vm == NULL)
    luaL_error(L, "the VM of this virtio device is closed");
  return d->t;
}

static void push_dev(lua_State *L, int vm_idx, struct virtio_mmio *t)
{
  struct lvirtio *d = lua_newuserdatauv(L, sizeof *d, 1);
  d->owner = lua_touserdata(L, vm_idx);
  d->t = t;
  lua_pushvalue(L, vm_idx);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, VIRTIO_TYPE);
}

static lua_Integer field(lua_State *L, const char *name, lua_Integer lo, lua_Integer hi,
                         const char *who)
{
  lua_getfield(L, 2, name);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok || v < lo || v > hi)
    lu_errorf(L, "%s: %s must be an integer from 0x%llx to 0x%llx", who, name,
              (unsigned long long)lo, (unsigned long long)hi);
  lua_pop(L, 1);
  return v;
}

static struct lvm *check_setup(lua_State *L, const char *who)
{
  struct lvm *v = lvm_check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (v->running)
    lu_errorf(L, "%s: the VM is running; add devices before running it", who);
  return v;
}

/* vm:virtio_blk{ addr = 0xd0000000, irq = 5, path = "disk.img",
 *                readonly = false, id = "luavmm" } -> device */
static int vm_virtio_blk(lua_State *L)
{
  struct lvm *v = check_setup(L, "virtio_blk");
  uint64_t addr = (uint64_t)field(L, "addr", 0, (1ll << 52) - 1, "virtio_blk");
  uint32_t irq = (uint32_t)field(L, "irq", 0, VM_IRQ_LINES - 1, "virtio_blk");
  lua_getfield(L, 2, "path");
  const char *path = lua_tostring(L, -1);
  if (path == NULL)
    return lu_errorf(L, "virtio_blk: path (the image file) is required");
  lua_getfield(L, 2, "id");
  const char *id = luaL_optstring(L, -1, "luavmm");
  bool readonly = lu_optbool(L, 2, "readonly", false);
  char err[ERR_LEN];
  struct virtio_mmio *t;
  if (virtio_blk_attach(v->vm, addr, irq, path, readonly, id, &t, err) < 0)
    return lu_errorf(L, "virtio_blk: %s", err);
  push_dev(L, 1, t);
  return 1;
}

/* vm:virtio_rng{ addr = 0xd0001000, irq = 6 } -> device */
static int vm_virtio_rng(lua_State *L)
{
  struct lvm *v = check_setup(L, "virtio_rng");
  uint64_t addr = (uint64_t)field(L, "addr", 0, (1ll << 52) - 1, "virtio_rng");
  uint32_t irq = (uint32_t)field(L, "irq", 0, VM_IRQ_LINES - 1, "virtio_rng");
  char err[ERR_LEN];
  struct virtio_mmio *t;
  if (virtio_rng_attach(v->vm, addr, irq, &t, err) < 0)
    return lu_errorf(L, "virtio_rng: %s", err);
  push_dev(L, 1, t);
  return 1;
}

static void set_int(lua_State *L, const char *name, uint64_t v)
{
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, name);
}

/* dev:status() -> { device_id, status, features, needs_reset, failed,
 *   driver_ok, error, errors, notifies, interrupts, bad_accesses, ... } */
static int dev_status(lua_State *L)
{
  struct virtio_mmio *t = check_dev(L, 1);
  pthread_mutex_lock(&t->lock);
  struct virtio_mmio copy = *t; /* a snapshot; Lua allocates below */
  struct virtio_blk_stats blk = { 0 };
  if (t->be.device_id == 2)
    blk = *virtio_blk_stats(t);
  pthread_mutex_unlock(&t->lock);
  lua_createtable(L, 0, 16);
  set_int(L, "device_id", copy.be.device_id);
  set_int(L, "address", copy.base);
  set_int(L, "irq", copy.irq);
  set_int(L, "status", copy.status);
  set_int(L, "features", copy.driver_features);
  lua_pushboolean(L, copy.status & VIRTIO_STATUS_NEEDS_RESET);
  lua_setfield(L, -2, "needs_reset");
  lua_pushboolean(L, copy.status & VIRTIO_STATUS_FAILED);
  lua_setfield(L, -2, "failed");
  lua_pushboolean(L, copy.status & VIRTIO_STATUS_DRIVER_OK);
  lua_setfield(L, -2, "driver_ok");
  if (copy.error[0] != '\0') {
    lua_pushstring(L, copy.error);
    lua_setfield(L, -2, "error");
  }
  set_int(L, "errors", copy.errors);
  set_int(L, "notifies", copy.notifies);
  set_int(L, "interrupts", copy.interrupts);
  set_int(L, "bad_accesses", copy.bad_accesses);
  if (copy.be.device_id == 2) {
    set_int(L, "reads", blk.reads);
    set_int(L, "writes", blk.writes);
    set_int(L, "flushes", blk.flushes);
    set_int(L, "io_errors", blk.errors);
    set_int(L, "bytes_read", blk.bytes_read);
    set_int(L, "bytes_written", blk.bytes_written);
  }
  return 1;
}

/* The kernel command-line entry Linux's virtio_mmio driver takes:
 * "virtio_mmio.device=4K@0xd0000000:5" */
static int dev_cmdline(lua_State *L)
{
  struct virtio_mmio *t = check_dev(L, 1);
  char buf[80];
  snprintf(buf, sizeof buf, "virtio_mmio.device=4K@0x%llx:%u", (unsigned long long)t->base,
           t->irq);
  lua_pushstring(L, buf);
  return 1;
}

static int dev_tostring(lua_State *L)
{
  struct lvirtio *d = luaL_checkudata(L, 1, VIRTIO_TYPE);
  char buf[80];
  snprintf(buf, sizeof buf, "vmm.virtio (device %u at 0x%llx, irq %u)", d->t->be.device_id,
           (unsigned long long)d->t->base, d->t->irq);
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg dev_methods[] = {
  { "status", dev_status },
  { "cmdline", dev_cmdline },
  { NULL, NULL },
};

static const luaL_Reg vm_methods[] = {
  { "virtio_blk", vm_virtio_blk },
  { "virtio_rng", vm_virtio_rng },
  { NULL, NULL },
};

/* Adds the constructors to the vm method table at the top of the stack and
 * makes the device type. */
void lvirtio_add_methods(lua_State *L)
{
  luaL_setfuncs(L, vm_methods, 0);
  if (luaL_newmetatable(L, VIRTIO_TYPE)) {
    luaL_newlib(L, dev_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, dev_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}
