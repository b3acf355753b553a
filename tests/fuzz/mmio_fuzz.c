/* libFuzzer harness for the virtio-mmio transport (src/dev/virtio_mmio.c)
 * and the C backends behind it: a driver's register accesses (any offset
 * in the window, any size, any value) and its stores to guest memory, run
 * against virtio-rng, virtio-blk (on a small in-memory image) or a backend
 * that takes the deferred path the Lua devices use. The VM is a struct vm
 * made by hand, with guest memory from the input (fuzz.h) and no KVM: no
 * irqchip, so interrupt lines are only recorded. A finding is a sanitizer
 * report, a hang, or a broken invariant: the device's interrupt line is
 * raised exactly while its interrupt status is not 0; deferred events name
 * a real queue or a config range inside the config space.
 *
 * Input:
 *   u8  device    % 3: 0 virtio-rng, 1 virtio-blk, 2 the deferred backend
 *   u8  nops, then nops × { u8 kind, u8 size, u16 offset, u32 value }
 *   the rest: guest memory
 *
 * Ops (kind % 4): read or write the register at offset (bits 0-8; with
 * bit 7 of size set, bits 0-11) with 1, 2, 4 or 8 bytes (2^(size % 4));
 * store value's low 16 or all 32 bits at guest address offset. A write to
 * QueueNotify (offset 0x50) with bit 6 of size set is a notification of
 * queue `value & 0xffff` through the fast path instead, as the device's
 * I/O thread hands it over from an ioeventfd (virtio_mmio_kicked): at any
 * moment, whatever the registers say, as KVM's eventfds do; for the
 * deferred backend it must do nothing but count. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/dev/virtio_devices.h"
#include "../../src/dev/virtio_mmio.h"
#include "../../src/err.h"
#include "../../src/vm.h"
#include "fuzz.h"

#define MMIO_BASE 0xd0000000ull
#define MMIO_IRQ 5
#define MMIO_DISK 8192

static int mmio_disk = -1;
static char mmio_disk_path[64];

/* The backend the Lua devices have, in C: its hooks run after the
 * transport released its lock, and take it themselves, as lvirtio.c's
 * dev:pop and dev:push do. It echoes each chain's readable bytes into its
 * writable part. */
static struct virtq_chain mmio_chain;
static uint8_t mmio_scratch[0x10000];
static unsigned long mmio_deferred_calls;

static int echo_deferred(struct virtio_mmio *t, struct vcpu *c, const struct virtio_event *ev)
{
  (void)c;
  mmio_deferred_calls++;
  char err[ERR_LEN];
  pthread_mutex_lock(&t->lock);
  switch (ev->kind) {
  case VIRTIO_EVENT_NOTIFY: {
    FUZZ_ASSERT(ev->queue < t->be.num_queues);
    struct virtq *vq = virtio_queue(t, ev->queue);
    int rc;
    while (vq != NULL && (rc = virtq_pop(vq, &mmio_chain, err)) != 0) {
      if (rc < 0) {
        virtio_fail(t, "echo: %s", err);
        break;
      }
      size_t n = mmio_chain.readable < sizeof mmio_scratch ? mmio_chain.readable
                                                           : sizeof mmio_scratch;
      n = virtq_read(&mmio_chain, 0, mmio_scratch, n);
      n = virtq_write(&mmio_chain, 0, mmio_scratch, n);
      virtq_push(vq, mmio_chain.head, (uint32_t)n);
    }
    virtio_notify_used(t, ev->queue);
    break;
  }
  case VIRTIO_EVENT_CONFIG_WRITE:
    FUZZ_ASSERT(ev->size > 0 && ev->offset < t->be.config_size &&
                ev->size <= t->be.config_size - ev->offset);
    virtio_config_changed(t);
    break;
  case VIRTIO_EVENT_RESET:
    FUZZ_ASSERT(t->status == 0 && t->isr == 0);
    break;
  default:
    FUZZ_ASSERT(!"an event of no kind");
  }
  pthread_mutex_unlock(&t->lock);
  return 0;
}

static int echo_attach(struct vm *vm, struct virtio_mmio **out, char *err)
{
  struct virtio_backend be = {
    .device_id = 0x7e,
    .features = 1,
    .num_queues = 2,
    .queue_max = 16,
    .queue_max_each = { 16, 4 },
    .config_size = 12,
    .config = "echo config",
    .deferred = echo_deferred,
  };
  return virtio_mmio_attach(vm, MMIO_BASE, MMIO_IRQ, &be, out, err);
}

/* The disk: a memfd reopened by path (virtio-blk opens a path), emptied
 * for every input so that runs do not depend on each other. */
static void mmio_disk_reset(void)
{
  if (mmio_disk < 0) {
    mmio_disk = memfd_create("mmio_fuzz_disk", MFD_CLOEXEC);
    FUZZ_ASSERT(mmio_disk >= 0);
    snprintf(mmio_disk_path, sizeof mmio_disk_path, "/proc/self/fd/%d", mmio_disk);
  }
  FUZZ_ASSERT(ftruncate(mmio_disk, 0) == 0 && ftruncate(mmio_disk, MMIO_DISK) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct fuzz_in in = { data, size };
  uint8_t device = fuzz_u8(&in) % 3;
  uint8_t nops = fuzz_u8(&in);
  struct fuzz_in ops = { in.p, in.n < (size_t)nops * 8 ? in.n : (size_t)nops * 8 };
  in.p += ops.n;
  in.n -= ops.n;

  static struct vm vm;
  struct fuzz_mem fm;
  fuzz_mem_init(&fm, &in);
  memset(&vm, 0, sizeof vm);
  vm.fd = -1;
  vm.mem = fm.mem;
  FUZZ_ASSERT(bus_init(&vm.mmio, 0, "MMIO") == 0);
  char err[ERR_LEN];
  struct virtio_mmio *t = NULL;
  int rc;
  if (device == 0) {
    rc = virtio_rng_attach(&vm, MMIO_BASE, MMIO_IRQ, &t, err);
  } else if (device == 1) {
    mmio_disk_reset();
    rc = virtio_blk_attach(&vm, MMIO_BASE, MMIO_IRQ, mmio_disk_path, false, "fuzz", &t, err);
  } else {
    rc = echo_attach(&vm, &t, err);
  }
  if (rc < 0) {
    fprintf(stderr, "mmio_fuzz: %s\n", err);
    abort();
  }

  while (ops.n > 0) {
    uint8_t kind = fuzz_u8(&ops), sz = fuzz_u8(&ops);
    uint16_t offset = fuzz_u16(&ops);
    uint32_t value = fuzz_u32(&ops);
    uint32_t len = 1u << (sz % 4);
    if (kind % 4 >= 2) {
      fuzz_poke(&fm, offset, value, kind % 4 == 2 ? 2 : 4);
      continue;
    }
    uint64_t at = MMIO_BASE + (offset & (sz & 0x80 ? 0xfff : 0x1ff));
    bool write = kind % 4 == 1;
    if (write && (sz & 0x40) && at == MMIO_BASE + 0x50) {
      unsigned long calls = mmio_deferred_calls;
      uint64_t notifies = t->notifies;
      pthread_mutex_lock(&t->lock);
      virtio_mmio_kicked(t, (uint16_t)value, 1);
      bool line = (atomic_load(&vm.irq_levels) >> MMIO_IRQ) & 1;
      FUZZ_ASSERT(line == (t->isr != 0));
      pthread_mutex_unlock(&t->lock);
      FUZZ_ASSERT(t->notifies == notifies + 1 && mmio_deferred_calls == calls);
      continue;
    }
    uint8_t buf[8] = { 0 };
    if (write)
      memcpy(buf, &value, 4);
    const struct bus_range *r = bus_find(&vm.mmio, at, len);
    if (r == NULL)
      continue; /* past the window's end */
    FUZZ_ASSERT(r->fn(r->opaque, NULL, at - r->base, buf, len, write) == 0);
    pthread_mutex_lock(&t->lock);
    bool line = (atomic_load(&vm.irq_levels) >> MMIO_IRQ) & 1;
    FUZZ_ASSERT(line == (t->isr != 0));
    pthread_mutex_unlock(&t->lock);
  }

  while (vm.devices != NULL) {
    struct device *next = vm.devices->next;
    vm.devices->destroy(vm.devices);
    vm.devices = next;
  }
  bus_destroy(&vm.mmio);
  fuzz_mem_free(&fm);
  return 0;
}
