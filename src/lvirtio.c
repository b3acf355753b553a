/* Lua constructors and the device object for virtio devices:
 * vm:virtio_blk{...}, vm:virtio_rng{...}, vm:virtio_console{...},
 * vm:virtio{...} (a device whose backend is Lua), dev:status(), and for
 * Lua devices the queue methods and the chain object.
 *
 * Locks. A device has its transport's mutex (t->lock); Lua has the
 * control-plane lock. The order is control-plane lock, then device mutex:
 * a thread holding the control-plane lock (Lua code calling dev:pop,
 * dev:push, chain:write, ...) may take the mutex for a short critical
 * section, and nothing that can raise a Lua error happens while it holds
 * it (no allocation, no luaL_check*: arguments are checked before, results
 * pushed after). The other way round is forbidden: a vCPU thread handling
 * a register access holds the mutex, so it must not wait for the
 * control-plane lock there. That is why the transport never calls a Lua
 * backend under its mutex: it records the event (a notify, a config write,
 * a reset) and calls backend_event() once the mutex is released, which
 * then takes the control-plane lock like any Lua handler.
 *
 * A chain a Lua device popped holds host pointers into guest memory. It is
 * only used while its VM is open (guest memory is never unmapped before
 * that) and, under the device mutex, only while the queue it came from is
 * still the same set-up (its epoch): after a reset the buffers belong to
 * the driver again, and using the chain raises instead. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dev/virtio_devices.h"
#include "dev/virtio_mmio.h"
#include "err.h"
#include "lvmm.h"
#include "vcpu.h"

#define VIRTIO_TYPE "vmm.virtio"
#define CHAIN_TYPE "vmm.virtio.chain"
#define NAME_LEN 48
#define READ_MAX (1ull << 30) /* chain:read without a length: at most 1 GiB */

/* A Lua backend. Its callbacks are in the VM's handler table at `slot`, as
 * a sequence { device userdata, notify, config_write, reset }: integer
 * keys, so a vCPU thread fetches them without allocating. */
struct lbackend {
  struct lvm *owner;
  int slot;
  char name[NAME_LEN];
};

/* The slot table's keys: the device, then one callback per event kind. */
#define CB_DEV 1
#define CB_OF(kind) (1 + (int)(kind))

/* The device object: the transport, kept valid by the VM it references
 * (its uservalue). lb is NULL for a C device. */
struct lvirtio {
  struct lvm *owner;
  struct virtio_mmio *t;
  struct lbackend *lb;
};

/* A chain popped by a Lua device: a copy of the buffers' host pointers
 * (checked by virtq_pop), trimmed to its count. Its uservalue is the
 * device object, which keeps the VM alive. */
struct lchain {
  struct lvm *owner;
  struct virtio_mmio *t;
  struct lbackend *lb;
  uint64_t epoch;        /* the queue's epoch when popped */
  uint16_t queue;
  uint16_t head;
  bool pushed;
  uint64_t readable, writable;
  uint64_t written;      /* the furthest byte chain:write reached */
  unsigned count;
  struct virtq_buf bufs[];
};

static struct lvirtio *check_dev_ud(lua_State *L, int idx)
{
  struct lvirtio *d = luaL_checkudata(L, idx, VIRTIO_TYPE);
  if (d->owner->vm == NULL || d->t == NULL)
    luaL_error(L, "the VM of this virtio device is closed");
  return d;
}

static struct virtio_mmio *check_dev(lua_State *L, int idx)
{
  return check_dev_ud(L, idx)->t;
}

static struct lvirtio *check_lua_dev(lua_State *L, int idx, const char *who)
{
  struct lvirtio *d = check_dev_ud(L, idx);
  if (d->lb == NULL)
    lu_errorf(L, "dev:%s: this is a C virtio device (device %u); only devices made with "
                 "vm:virtio{} have a Lua backend", who, d->t->be.device_id);
  return d;
}

/* The options every virtio constructor shares, known to lu_checkoptions,
 * checked by check_setup before the device exists and applied by push_dev
 * (or vm:virtio) after: fastpath = true|false (default true: ioeventfd and
 * irqfd where they can be had; see virtio_mmio.h). */
static const char *const common_options[] = { "fastpath", NULL };

static bool opt_fastpath(lua_State *L, int opts)
{
  lua_getfield(L, opts, "fastpath");
  bool fastpath = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  return fastpath;
}

static void apply_common_options(lua_State *L, int opts, struct virtio_mmio *t)
{
  if (!opt_fastpath(L, opts))
    virtio_mmio_set_fastpath(t, false);
}

/* The device object for a C device just attached; its constructor's
 * options (index 2) are applied to it. */
static void push_dev(lua_State *L, int vm_idx, struct virtio_mmio *t)
{
  apply_common_options(L, 2, t);
  struct lvirtio *d = lua_newuserdatauv(L, sizeof *d, 1);
  d->owner = lua_touserdata(L, vm_idx);
  d->t = t;
  d->lb = NULL;
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
  lua_getfield(L, 2, "fastpath");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    lu_errorf(L, "%s: fastpath must be true or false, not %s", who, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

/* vm:virtio_blk{ addr = 0xd0000000, irq = 5, path = "disk.img",
 *                readonly = false, id = "luavmm", fastpath = true } -> device */
static const char *const blk_options[] = { "addr", "irq", "path", "readonly", "id", NULL };
static const char *const rng_options[] = { "addr", "irq", NULL };

static int vm_virtio_blk(lua_State *L)
{
  struct lvm *v = check_setup(L, "virtio_blk");
  lu_checkoptions(L, 2, blk_options, common_options, "virtio_blk");
  uint64_t addr = (uint64_t)field(L, "addr", 0, (1ll << 52) - 1, "virtio_blk");
  uint32_t irq = (uint32_t)field(L, "irq", 0, VM_IRQ_LINES - 1, "virtio_blk");
  lua_getfield(L, 2, "path");
  const char *path = lua_tostring(L, -1);
  if (path == NULL)
    return lu_errorf(L, "virtio_blk: path (the image file) is required");
  lua_getfield(L, 2, "id");
  const char *id = "luavmm";
  if (!lua_isnil(L, -1) && (id = lua_tostring(L, -1)) == NULL)
    return lu_errorf(L, "virtio_blk: id must be a string (got %s)", luaL_typename(L, -1));
  bool readonly = lu_optbool(L, 2, "readonly", false);
  char err[ERR_LEN];
  struct virtio_mmio *t;
  if (virtio_blk_attach(v->vm, addr, irq, path, readonly, id, &t, err) < 0)
    return lu_errorf(L, "virtio_blk: %s", err);
  push_dev(L, 1, t);
  return 1;
}

/* vm:virtio_rng{ addr = 0xd0001000, irq = 6, fastpath = true } -> device */
static int vm_virtio_rng(lua_State *L)
{
  struct lvm *v = check_setup(L, "virtio_rng");
  lu_checkoptions(L, 2, rng_options, common_options, "virtio_rng");
  uint64_t addr = (uint64_t)field(L, "addr", 0, (1ll << 52) - 1, "virtio_rng");
  uint32_t irq = (uint32_t)field(L, "irq", 0, VM_IRQ_LINES - 1, "virtio_rng");
  char err[ERR_LEN];
  struct virtio_mmio *t;
  if (virtio_rng_attach(v->vm, addr, irq, &t, err) < 0)
    return lu_errorf(L, "virtio_rng: %s", err);
  push_dev(L, 1, t);
  return 1;
}

static const char *const console_options[] = {
  "addr", "irq", "input", "output", "escape", NULL,
};

/* vm:virtio_console{ addr = 0xd0002000, irq = 7, output = "stdout",
 *                    input = "stdin", escape = true } -> device
 *   output: "stdout" (the default), "stderr", false, or a path to create.
 *   input:  "stdin"; false for none; or a path (a file or a FIFO) to read.
 *           The default is stdin when it is a terminal that no other
 *           console (a UART, another virtio console) reads already.
 *   escape: Ctrl-A x ends the run, Ctrl-A Ctrl-A sends one Ctrl-A. */
static int vm_virtio_console(lua_State *L)
{
  struct lvm *v = check_setup(L, "virtio_console");
  lu_checkoptions(L, 2, console_options, common_options, "virtio_console");
  uint64_t addr = (uint64_t)field(L, "addr", 0, (1ll << 52) - 1, "virtio_console");
  uint32_t irq = (uint32_t)field(L, "irq", 0, VM_IRQ_LINES - 1, "virtio_console");
  struct virtio_console_config cfg = {
    .in_fd = -1,
    .out_fd = -1,
    .escape = lu_optbool(L, 2, "escape", true),
  };

  /* Everything that can raise is checked before any file is opened; the
   * strings stay on the stack, so the pointers stay valid. */
  const char *in_path = NULL, *out_path = "stdout";
  bool in_default = false;
  lua_getfield(L, 2, "input");
  if (lua_type(L, -1) == LUA_TSTRING)
    in_path = lua_tostring(L, -1);
  else if (lua_isnil(L, -1))
    in_default = true;
  else if (!lua_isboolean(L, -1) || lua_toboolean(L, -1))
    return lu_errorf(L, "virtio_console: input must be \"stdin\", false or a path, not %s",
                     lua_isboolean(L, -1) ? "true" : luaL_typename(L, -1));
  lua_getfield(L, 2, "output");
  if (lua_type(L, -1) == LUA_TSTRING)
    out_path = lua_tostring(L, -1);
  else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
    out_path = NULL;
  else if (!lua_isnil(L, -1))
    return lu_errorf(L, "virtio_console: output must be \"stdout\", \"stderr\", false or a "
                     "path, not %s", lua_isboolean(L, -1) ? "true" : luaL_typename(L, -1));

  if (in_default && isatty(STDIN_FILENO)) {
    cfg.in_fd = STDIN_FILENO;
    cfg.stdin_optional = true;
  }
  bool in_stdin = in_path != NULL && strcmp(in_path, "stdin") == 0;
  if (in_stdin)
    cfg.in_fd = STDIN_FILENO;
  if (out_path != NULL && strcmp(out_path, "stdout") == 0) {
    cfg.out_fd = STDOUT_FILENO;
  } else if (out_path != NULL && strcmp(out_path, "stderr") == 0) {
    cfg.out_fd = STDERR_FILENO;
  } else if (out_path != NULL) {
    cfg.out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (cfg.out_fd < 0)
      return lu_errorf(L, "virtio_console: cannot open output %s: %s", out_path,
                       strerror(errno));
  }
  if (in_path != NULL && !in_stdin) {
    /* Non-blocking: opening a FIFO must not wait for its writer. */
    cfg.in_fd = open(in_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (cfg.in_fd < 0) {
      int e = errno;
      if (cfg.out_fd > STDERR_FILENO)
        close(cfg.out_fd);
      return lu_errorf(L, "virtio_console: cannot open input %s: %s", in_path, strerror(e));
    }
  }
  char err[ERR_LEN];
  struct virtio_mmio *t;
  if (virtio_console_attach(v->vm, addr, irq, &cfg, &t, err) < 0) /* closes the files */
    return lu_errorf(L, "virtio_console: %s", err);
  push_dev(L, 1, t);
  return 1;
}

/* ---- devices with a Lua backend ---- */

/* Runs on the thread of the vCPU whose register access caused ev, after
 * the transport dropped its mutex: takes the control-plane lock and calls
 * the device's callback on the vCPU's coroutine, as a handler is called. */
static int backend_event(struct virtio_mmio *t, struct vcpu *c, const struct virtio_event *ev)
{
  struct lbackend *lb = t->be.opaque;
  struct lcpu_state *cs = c->user;
  if (cs == NULL)
    return 0;
  if (!lhandler_enter(lb->owner, c))
    return -1;
  lua_State *co = cs->co;
  int rc = 0;
  lua_rawgeti(co, CO_HANDLERS, lb->slot); /* nil while slot is 0: nothing to call */
  if (!lua_istable(co, -1)) {
    lua_settop(co, CO_BASE);
    lhandler_leave(lb->owner, c);
    return 0;
  }
  lua_rawgeti(co, -1, CB_OF(ev->kind));
  if (lua_isfunction(co, -1)) {
    lua_rawgeti(co, -2, CB_DEV);
    int nargs = 1;
    if (ev->kind == VIRTIO_EVENT_NOTIFY) {
      lua_pushinteger(co, ev->queue);
      nargs = 2;
    } else if (ev->kind == VIRTIO_EVENT_CONFIG_WRITE) {
      lua_pushinteger(co, ev->offset);
      lua_pushinteger(co, ev->size);
      nargs = 3;
    }
    if (lhandler_pcall(c, nargs, 0) != LUA_OK) {
      char what[160];
      if (ev->kind == VIRTIO_EVENT_NOTIFY)
        snprintf(what, sizeof what, "%s at 0x%llx (notify, queue %u)", lb->name,
                 (unsigned long long)t->base, ev->queue);
      else if (ev->kind == VIRTIO_EVENT_CONFIG_WRITE)
        snprintf(what, sizeof what, "%s at 0x%llx (config_write, offset %u, %u byte%s)",
                 lb->name, (unsigned long long)t->base, ev->offset, ev->size,
                 ev->size == 1 ? "" : "s");
      else
        snprintf(what, sizeof what, "%s at 0x%llx (reset)", lb->name,
                 (unsigned long long)t->base);
      rc = lhandler_failed(c, what);
    }
  }
  lua_settop(co, CO_BASE);
  lhandler_leave(lb->owner, c);
  return rc;
}

static void backend_destroy(struct virtio_mmio *t)
{
  free(t->be.opaque);
}

static const char *const virtio_options[] = {
  "addr", "irq", "device_id", "features", "queues", "config", "notify", "config_write",
  "reset", "name", NULL,
};

/* Pushes opts[name], which must be a function (or nil when optional). */
static void callback_field(lua_State *L, const char *name, bool required)
{
  lua_getfield(L, 2, name);
  if (lua_isfunction(L, -1) || (!required && lua_isnil(L, -1)))
    return;
  lu_errorf(L, "virtio: %s must be a function%s, not %s", name, required ? "" : " or nil",
            luaL_typename(L, -1));
}

/* Feature bits 24 to 40 are the transport's (virtio 1.x, 6): it offers
 * VERSION_1, INDIRECT_DESC and EVENT_IDX itself and nothing else there. */
#define TRANSPORT_FEATURES (((1ull << 41) - 1) & ~((1ull << 24) - 1))

/* vm:virtio{ addr =, irq =, device_id =, features = 0, queues = { 64 },
 *            config = "", notify = fn, config_write = fn, reset = fn,
 *            name = "virtio device N", fastpath = true } -> device */
static int vm_virtio(lua_State *L)
{
  struct lvm *v = check_setup(L, "virtio");
  lu_checkoptions(L, 2, virtio_options, common_options, "virtio");
  struct virtio_backend be = { 0 };
  uint64_t addr = (uint64_t)field(L, "addr", 0, (1ll << 52) - 1, "virtio");
  uint32_t irq = (uint32_t)field(L, "irq", 0, VM_IRQ_LINES - 1, "virtio");
  be.device_id = (uint32_t)field(L, "device_id", 1, 0xffff, "virtio");

  lua_getfield(L, 2, "features");
  if (!lua_isnil(L, -1)) {
    int ok;
    be.features = (uint64_t)lua_tointegerx(L, -1, &ok);
    if (!ok)
      return lu_errorf(L, "virtio: features must be an integer (a bit mask)");
    if (be.features & TRANSPORT_FEATURES)
      return lu_errorf(L, "virtio: features 0x%llx include bits 24 to 40, which belong to the "
                          "transport (it offers VERSION_1, INDIRECT_DESC and EVENT_IDX itself)",
                       (unsigned long long)be.features);
  }
  lua_pop(L, 1);

  lua_getfield(L, 2, "queues");
  lua_Integer nq = lua_istable(L, -1) ? luaL_len(L, -1) : -1;
  if (nq < 1 || nq > VIRTIO_MAX_QUEUES)
    return lu_errorf(L, "virtio: queues must be a list of 1 to %d queue sizes, like { 64 }",
                     VIRTIO_MAX_QUEUES);
  be.num_queues = (uint16_t)nq;
  for (int i = 0; i < nq; i++) {
    lua_rawgeti(L, -1, i + 1);
    int ok;
    lua_Integer n = lua_tointegerx(L, -1, &ok);
    if (!ok || n < 1 || n > VIRTQ_MAX_SIZE || (n & (n - 1)) != 0)
      return lu_errorf(L, "virtio: queues[%d] must be a power of two from 1 to %d (the "
                          "queue's QueueNumMax)", i + 1, VIRTQ_MAX_SIZE);
    be.queue_max_each[i] = (uint16_t)n;
    lua_pop(L, 1);
  }
  be.queue_max = be.queue_max_each[0];
  lua_pop(L, 1);

  lua_getfield(L, 2, "config");
  if (!lua_isnil(L, -1)) {
    size_t len;
    const char *config = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (config == NULL || len > VIRTIO_CONFIG_MAX)
      return lu_errorf(L, "virtio: config must be a string of at most %d bytes",
                       VIRTIO_CONFIG_MAX);
    memcpy(be.config, config, len);
    be.config_size = (uint32_t)len;
  }
  lua_pop(L, 1);

  char name[NAME_LEN];
  lua_getfield(L, 2, "name");
  if (lua_isnil(L, -1)) {
    snprintf(name, sizeof name, "virtio device %u", be.device_id);
  } else {
    size_t len;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (s == NULL || len == 0 || len >= NAME_LEN)
      return lu_errorf(L, "virtio: name must be a string of 1 to %d bytes", NAME_LEN - 1);
    memcpy(name, s, len + 1);
  }
  lua_pop(L, 1);

  /* Everything Lua needs exists before the device does: after the attach
   * nothing below can fail but the table store. */
  struct lvirtio *d = lua_newuserdatauv(L, sizeof *d, 1);
  memset(d, 0, sizeof *d);
  d->owner = v;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, VIRTIO_TYPE);
  int dev_idx = lua_gettop(L);
  lua_createtable(L, 4, 0);
  lua_pushvalue(L, dev_idx);
  lua_rawseti(L, -2, CB_DEV);
  callback_field(L, "notify", true);
  lua_rawseti(L, -2, CB_OF(VIRTIO_EVENT_NOTIFY));
  callback_field(L, "config_write", false);
  lua_rawseti(L, -2, CB_OF(VIRTIO_EVENT_CONFIG_WRITE));
  callback_field(L, "reset", false);
  lua_rawseti(L, -2, CB_OF(VIRTIO_EVENT_RESET));
  int cb_idx = lua_gettop(L);
  lu_pushhandlers(L, 1);
  int handlers_idx = lua_gettop(L);

  bool fastpath = opt_fastpath(L, 2);
  struct lbackend *lb = calloc(1, sizeof *lb);
  if (lb == NULL)
    return lu_errorf(L, "virtio: out of memory");
  lb->owner = v;
  memcpy(lb->name, name, sizeof name);
  be.deferred = backend_event;
  be.destroy = backend_destroy;
  be.opaque = lb;
  char err[ERR_LEN];
  struct virtio_mmio *t;
  if (virtio_mmio_attach(v->vm, addr, irq, &be, &t, err) < 0) {
    free(lb);
    return lu_errorf(L, "virtio: %s", err);
  }
  d->t = t;
  d->lb = lb;
  if (!fastpath)
    virtio_mmio_set_fastpath(t, false); /* else an irqfd at most: Lua backends keep exits */
  int slot = ++v->next_slot;
  lua_pushvalue(L, cb_idx);
  lua_rawseti(L, handlers_idx, slot);
  lb->slot = slot; /* only now: backend_event finds the callbacks */
  lua_pushvalue(L, dev_idx);
  return 1;
}

/* A queue index argument: 0 to the device's queue count - 1. */
static uint16_t check_queue(lua_State *L, struct virtio_mmio *t, int arg)
{
  lua_Integer q = luaL_checkinteger(L, arg);
  if (q < 0 || q >= t->be.num_queues)
    luaL_argerror(L, arg, lua_pushfstring(L, "no queue %d (this device has queues 0 to %d)",
                                          (int)q, t->be.num_queues - 1));
  return (uint16_t)q;
}

/* With the device mutex held: whether the chain's queue is still the
 * set-up it was popped from. */
static bool chain_current(const struct lchain *ch)
{
  const struct virtio_queue *q = &ch->t->queues[ch->queue];
  return q->ready && q->epoch == ch->epoch;
}

static const char STALE[] = "the chain is stale: the driver reset the device (or set its "
                            "queue up again) after it was popped";

/* dev:pop(q) -> chain | nil (none available) | nil, message (the driver
 * broke the rules: the device now needs a reset, or already did) */
static int dev_pop(lua_State *L)
{
  struct lvirtio *d = check_lua_dev(L, 1, "pop");
  struct virtio_mmio *t = d->t;
  uint16_t q = check_queue(L, t, 2);
  /* On the C stack, not in the backend: allocating the userdata below may
   * run finalizers, which could pop too. */
  struct virtq_chain chain;
  char err[ERR_LEN];
  uint64_t epoch = 0;
  int rc = 0;

  pthread_mutex_lock(&t->lock);
  struct virtq *vq = virtio_queue(t, q);
  if (t->status & VIRTIO_STATUS_NEEDS_RESET) {
    /* It stays broken until the driver resets it. */
    snprintf(err, sizeof err, "the device needs a reset (%s)", t->error);
    rc = -1;
  } else if ((t->status & VIRTIO_STATUS_DRIVER_OK) && vq != NULL) {
    /* Before DRIVER_OK the device must not take buffers (virtio 1.x, 3.1). */
    rc = virtq_pop(vq, &chain, err);
    if (rc < 0) {
      virtio_fail(t, "%s: queue %u: %s", d->lb->name, q, err);
      snprintf(err, sizeof err, "%s", t->error);
    }
    epoch = t->queues[q].epoch;
  }
  pthread_mutex_unlock(&t->lock);

  if (rc == 0) {
    lua_pushnil(L);
    return 1;
  }
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  struct lchain *ch = lua_newuserdatauv(L, offsetof(struct lchain, bufs) +
                                             chain.count * sizeof(struct virtq_buf), 1);
  ch->owner = d->owner;
  ch->t = t;
  ch->lb = d->lb;
  ch->epoch = epoch;
  ch->queue = q;
  ch->head = chain.head;
  ch->pushed = false;
  ch->readable = chain.readable;
  ch->writable = chain.writable;
  ch->written = 0;
  ch->count = chain.count;
  memcpy(ch->bufs, chain.bufs, chain.count * sizeof(struct virtq_buf));
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, CHAIN_TYPE);
  return 1;
}

/* A chain that may still be used: its VM open and not pushed yet. */
static struct lchain *check_chain(lua_State *L, int idx, const char *who)
{
  struct lchain *ch = luaL_checkudata(L, idx, CHAIN_TYPE);
  if (ch->owner->vm == NULL)
    lu_errorf(L, "%s: the VM of this chain's virtio device is closed", who);
  if (ch->pushed)
    lu_errorf(L, "%s: chain %u was already pushed back to the driver", who, ch->head);
  return ch;
}

/* Takes the device mutex for a chain, or raises (without it) when the
 * chain is stale. */
static void lock_chain(lua_State *L, struct lchain *ch, const char *who)
{
  pthread_mutex_lock(&ch->t->lock);
  if (chain_current(ch))
    return;
  pthread_mutex_unlock(&ch->t->lock);
  lu_errorf(L, "%s: %s", who, STALE);
}

/* dev:push(q, chain [, written]): returns the chain to the driver with
 * the number of bytes written (default: as far as chain:write reached). */
static int dev_push(lua_State *L)
{
  struct lvirtio *d = check_lua_dev(L, 1, "push");
  uint16_t q = check_queue(L, d->t, 2);
  struct lchain *ch = check_chain(L, 3, "dev:push");
  if (ch->lb != d->lb)
    return lu_errorf(L, "dev:push: the chain was popped from another virtio device");
  if (ch->queue != q)
    return lu_errorf(L, "dev:push: the chain was popped from queue %u, not queue %u", ch->queue,
                     q);
  uint64_t written = ch->written;
  if (!lua_isnoneornil(L, 4)) {
    lua_Integer n = luaL_checkinteger(L, 4);
    if (n < 0 || (uint64_t)n > ch->writable || n > UINT32_MAX)
      return lu_errorf(L, "dev:push: written %lld is not 0 to the chain's %llu writable bytes",
                       (long long)n, (unsigned long long)ch->writable);
    written = (uint64_t)n;
  }
  lock_chain(L, ch, "dev:push");
  virtq_push(&ch->t->queues[q].vq, ch->head, (uint32_t)written);
  ch->pushed = true;
  pthread_mutex_unlock(&ch->t->lock);
  return 0;
}

/* dev:notify_used(q) -> whether the driver was interrupted */
static int dev_notify_used(lua_State *L)
{
  struct lvirtio *d = check_lua_dev(L, 1, "notify_used");
  struct virtio_mmio *t = d->t;
  uint16_t q = check_queue(L, t, 2);
  pthread_mutex_lock(&t->lock);
  uint64_t before = t->interrupts;
  virtio_notify_used(t, q);
  bool raised = t->interrupts != before;
  pthread_mutex_unlock(&t->lock);
  lua_pushboolean(L, raised);
  return 1;
}

/* dev:config() -> all config bytes; dev:config(offset [, len]) -> bytes
 * from offset; dev:config(offset, data) writes them (the driver sees a new
 * config generation and, once live, a configuration change interrupt). */
static int dev_config(lua_State *L)
{
  struct lvirtio *d = check_lua_dev(L, 1, "config");
  struct virtio_mmio *t = d->t;
  uint32_t size = t->be.config_size; /* fixed at creation */
  lua_Integer off = luaL_optinteger(L, 2, 0);
  if (off < 0 || off > size)
    return luaL_argerror(L, 2, lua_pushfstring(L, "offset %d is outside the %d config bytes",
                                               (int)off, (int)size));
  if (lua_type(L, 3) == LUA_TSTRING) {
    size_t len;
    const char *data = lua_tolstring(L, 3, &len);
    if (len > size - (uint64_t)off)
      return lu_errorf(L, "dev:config: %d bytes at offset %d run past the %d config bytes",
                       (int)len, (int)off, (int)size);
    pthread_mutex_lock(&t->lock);
    memcpy(t->be.config + off, data, len);
    virtio_config_changed(t);
    pthread_mutex_unlock(&t->lock);
    return 0;
  }
  uint64_t len = size - (uint64_t)off;
  if (!lua_isnoneornil(L, 3)) {
    lua_Integer n = luaL_checkinteger(L, 3);
    if (n < 0 || (uint64_t)n > len)
      return lu_errorf(L, "dev:config: %d bytes at offset %d run past the %d config bytes",
                       (int)n, (int)off, (int)size);
    len = (uint64_t)n;
  }
  uint8_t buf[VIRTIO_CONFIG_MAX];
  pthread_mutex_lock(&t->lock);
  memcpy(buf, t->be.config + off, len);
  pthread_mutex_unlock(&t->lock);
  lua_pushlstring(L, (const char *)buf, len);
  return 1;
}

/* dev:fail(message): DEVICE_NEEDS_RESET, with message as the reason
 * dev:status() reports. */
static int dev_fail(lua_State *L)
{
  struct lvirtio *d = check_lua_dev(L, 1, "fail");
  const char *msg = luaL_checkstring(L, 2);
  pthread_mutex_lock(&d->t->lock);
  virtio_fail(d->t, "%s", msg);
  pthread_mutex_unlock(&d->t->lock);
  return 0;
}

/* ---- chains ---- */

/* chain:read([offset [, len]]) -> bytes of the device-readable part */
static int chain_read(lua_State *L)
{
  struct lchain *ch = check_chain(L, 1, "chain:read");
  lua_Integer off = luaL_optinteger(L, 2, 0);
  if (off < 0 || (uint64_t)off > ch->readable)
    return luaL_argerror(L, 2, lua_pushfstring(L, "offset %I is outside the chain's %I "
                                               "readable bytes", off, (lua_Integer)ch->readable));
  uint64_t len = ch->readable - (uint64_t)off;
  if (!lua_isnoneornil(L, 3)) {
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0, 3, "length must not be negative");
    if ((uint64_t)n < len)
      len = (uint64_t)n;
  }
  if (len > READ_MAX)
    return lu_errorf(L, "chain:read: %llu bytes is more than 1 GiB at a time; read it in parts",
                     (unsigned long long)len);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)len);
  lock_chain(L, ch, "chain:read");
  size_t got = virtq_bufs_read(ch->bufs, ch->count, (uint64_t)off, p, (size_t)len);
  pthread_mutex_unlock(&ch->t->lock);
  luaL_pushresultsize(&b, got);
  return 1;
}

/* chain:write(data [, offset]) -> bytes written into the device-writable
 * part; offset defaults to where the previous write ended, so writes
 * append. */
static int chain_write(lua_State *L)
{
  struct lchain *ch = check_chain(L, 1, "chain:write");
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Integer off = luaL_optinteger(L, 3, (lua_Integer)ch->written);
  if (off < 0 || (uint64_t)off > ch->writable)
    return luaL_argerror(L, 3, lua_pushfstring(L, "offset %I is outside the chain's %I "
                                               "writable bytes", off, (lua_Integer)ch->writable));
  lock_chain(L, ch, "chain:write");
  size_t done = virtq_bufs_write(ch->bufs, ch->count, (uint64_t)off, data, len);
  pthread_mutex_unlock(&ch->t->lock);
  if ((uint64_t)off + done > ch->written)
    ch->written = (uint64_t)off + done;
  lua_pushinteger(L, (lua_Integer)done);
  return 1;
}

/* Fields: chain.head, .queue, .readable, .writable, .written, .count,
 * .pushed; else methods. */
static int chain_index(lua_State *L)
{
  struct lchain *ch = luaL_checkudata(L, 1, CHAIN_TYPE);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1))
    return 1;
  const char *key = lua_tostring(L, 2);
  static const char *const names[] = { "head", "queue", "readable", "writable", "written",
                                       "count", NULL };
  const uint64_t values[] = { ch->head, ch->queue, ch->readable, ch->writable, ch->written,
                              ch->count };
  for (int i = 0; key != NULL && names[i] != NULL; i++)
    if (strcmp(key, names[i]) == 0) {
      lua_pushinteger(L, (lua_Integer)values[i]);
      return 1;
    }
  if (key != NULL && strcmp(key, "pushed") == 0) {
    lua_pushboolean(L, ch->pushed);
    return 1;
  }
  return lu_errorf(L, "chain has no field or method '%s'", key ? key : luaL_typename(L, 2));
}

static int chain_tostring(lua_State *L)
{
  struct lchain *ch = luaL_checkudata(L, 1, CHAIN_TYPE);
  lua_pushfstring(L, "vmm.virtio.chain (queue %d, head %d, %I readable, %I writable%s)",
                  (int)ch->queue, (int)ch->head, (lua_Integer)ch->readable,
                  (lua_Integer)ch->writable, ch->pushed ? ", pushed" : "");
  return 1;
}

static const luaL_Reg chain_methods[] = {
  { "read", chain_read },
  { "write", chain_write },
  { NULL, NULL },
};

static void set_int(lua_State *L, const char *name, uint64_t v)
{
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, name);
}

/* dev:status() -> { device_id, status, features, needs_reset, failed,
 *   driver_ok, error, errors, notifies, interrupts, bad_accesses,
 *   fastpath, ioeventfd, irqfd, notifies_ioeventfd, notifies_mmio,
 *   interrupts_irqfd, interrupts_line, fastpath_error, ... } */
static int dev_status(lua_State *L)
{
  struct lvirtio *d = check_dev_ud(L, 1);
  struct virtio_mmio *t = d->t;
  /* Device 2 is the C virtio-blk, unless a Lua backend calls itself that. */
  bool c_blk = d->lb == NULL && t->be.device_id == 2;
  bool c_console = d->lb == NULL && t->be.device_id == 3;
  pthread_mutex_lock(&t->lock);
  struct virtio_mmio copy = *t; /* a snapshot; Lua allocates below */
  struct virtio_blk_stats blk = { 0 };
  struct virtio_console_stats console = { 0 };
  if (c_blk)
    blk = *virtio_blk_stats(t);
  if (c_console)
    virtio_console_stats(t, &console);
  pthread_mutex_unlock(&t->lock);
  lua_createtable(L, 0, 24);
  if (d->lb != NULL) {
    lua_pushstring(L, d->lb->name);
    lua_setfield(L, -2, "name");
  }
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
  /* The fast path: asked for, what of it is in use, and each path's share. */
  bool kicks = false;
  for (int q = 0; q < VIRTIO_MAX_QUEUES; q++)
    kicks = kicks || copy.fp.kick_fd[q] >= 0;
  lua_pushboolean(L, copy.fp.on);
  lua_setfield(L, -2, "fastpath");
  lua_pushboolean(L, kicks);
  lua_setfield(L, -2, "ioeventfd");
  lua_pushboolean(L, copy.fp.irq_fd >= 0);
  lua_setfield(L, -2, "irqfd");
  set_int(L, "notifies_ioeventfd", copy.fp.notifies);
  set_int(L, "notifies_mmio", copy.notifies - copy.fp.notifies);
  set_int(L, "interrupts_irqfd", copy.fp.interrupts);
  set_int(L, "interrupts_line", copy.interrupts - copy.fp.interrupts);
  if (copy.fp.error[0] != '\0') {
    lua_pushstring(L, copy.fp.error);
    lua_setfield(L, -2, "fastpath_error");
  }
  if (c_blk) {
    set_int(L, "reads", blk.reads);
    set_int(L, "writes", blk.writes);
    set_int(L, "flushes", blk.flushes);
    set_int(L, "io_errors", blk.errors);
    set_int(L, "bytes_read", blk.bytes_read);
    set_int(L, "bytes_written", blk.bytes_written);
  }
  if (c_console) {
    set_int(L, "output_bytes", console.output_bytes);
    set_int(L, "output_errors", console.output_errors);
    set_int(L, "input_bytes", console.input_bytes);
    set_int(L, "input_pending", console.input_pending);
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
  /* The transport is freed with its VM: only the closed state is left. */
  if (d->owner->vm == NULL || d->t == NULL) {
    lua_pushliteral(L, "vmm.virtio (closed)");
    return 1;
  }
  char buf[128], name[NAME_LEN + 8] = "";
  if (d->lb != NULL)
    snprintf(name, sizeof name, " '%s'", d->lb->name);
  snprintf(buf, sizeof buf, "vmm.virtio (%sdevice %u%s at 0x%llx, irq %u)",
           d->lb != NULL ? "Lua " : "", d->t->be.device_id, name,
           (unsigned long long)d->t->base, d->t->irq);
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg dev_methods[] = {
  { "status", dev_status },
  { "cmdline", dev_cmdline },
  { "pop", dev_pop },
  { "push", dev_push },
  { "notify_used", dev_notify_used },
  { "config", dev_config },
  { "fail", dev_fail },
  { NULL, NULL },
};

static const luaL_Reg vm_methods[] = {
  { "virtio_blk", vm_virtio_blk },
  { "virtio_rng", vm_virtio_rng },
  { "virtio_console", vm_virtio_console },
  { "virtio", vm_virtio },
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
  if (luaL_newmetatable(L, CHAIN_TYPE)) {
    luaL_newlib(L, chain_methods);
    lua_pushcclosure(L, chain_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, chain_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}
