#include "vm.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "err.h"
#include "sandbox.h"
#include "trace.h"
#include "vcpu.h"

/* The in-kernel irqchip and PIT, before any vCPU exists. */
static int create_irqchip(struct vm *vm, const struct vm_config *cfg, char *err)
{
  uint64_t tss = cfg->tss_addr ? cfg->tss_addr : VM_TSS_ADDR;
  uint64_t idmap = cfg->identity_map_addr ? cfg->identity_map_addr : VM_IDENTITY_MAP_ADDR;
  if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)tss) < 0)
    return errf(err, "KVM_SET_TSS_ADDR 0x%llx: %s", (unsigned long long)tss, strerror(errno));
  if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
    return errf(err, "KVM_SET_IDENTITY_MAP_ADDR 0x%llx: %s", (unsigned long long)idmap,
                strerror(errno));
  if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
    return errf(err, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
  vm->irqchip = true;
  if (cfg->pit) {
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
      return errf(err, "KVM_CREATE_PIT2: %s", strerror(errno));
    vm->pit = true;
  }
  return 0;
}

void vm_irq_record(struct vm *vm, uint32_t irq, int level)
{
  if (irq >= VM_IRQ_LINES)
    return;
  if (level)
    atomic_fetch_or(&vm->irq_levels, 1u << irq);
  else
    atomic_fetch_and(&vm->irq_levels, ~(1u << irq));
}

int vm_irq_line(struct vm *vm, uint32_t irq, int level)
{
  if (irq >= VM_IRQ_LINES)
    return -1;
  vm_irq_record(vm, irq, level);
  if (!vm->irqchip)
    return 0;
  struct kvm_irq_level line = { .irq = irq, .level = level ? 1 : 0 };
  return ioctl(vm->fd, KVM_IRQ_LINE, &line) < 0 ? -1 : 0;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint64_t datamatch, int fd, bool assign)
{
  struct kvm_ioeventfd io = {
    .datamatch = datamatch,
    .addr = addr,
    .len = 4,
    .fd = fd,
    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
  };
  return ioctl(vm->fd, KVM_IOEVENTFD, &io) < 0 ? -1 : 0;
}

int vm_irqfd(struct vm *vm, uint32_t gsi, int fd, bool assign)
{
  struct kvm_irqfd irqfd = {
    .fd = (uint32_t)fd,
    .gsi = gsi,
    .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
  };
  return ioctl(vm->fd, KVM_IRQFD, &irqfd) < 0 ? -1 : 0;
}

int vm_create(struct vm **out, struct kvm *kvm, const struct vm_config *cfg, char *err)
{
  int ncpus = cfg->ncpus;
  *out = NULL;
  if (ncpus < 1 || ncpus > kvm->max_vcpus)
    return errf(err, "cpus must be between 1 and %d (KVM's limit here), got %d", kvm->max_vcpus,
                ncpus);
  struct vm *vm = calloc(1, sizeof *vm);
  if (vm == NULL)
    return errf(err, "out of memory");
  vm->kvm = kvm;
  vm->fd = -1;
  mem_init(&vm->mem, (uint32_t)kvm->max_slots);
  if (bus_init(&vm->pio, 0x10000, "port") < 0 || bus_init(&vm->mmio, 0, "MMIO")) {
    errf(err, "out of memory");
    goto fail;
  }
  atomic_init(&vm->stop_request, 0);
  atomic_init(&vm->stop_code, 0);
  atomic_init(&vm->stop_published, 0);
  atomic_init(&vm->unhandled, UNHANDLED_STOP);
  pthread_mutex_init(&vm->wait_lock, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* timeouts ignore clock changes */
  pthread_cond_init(&vm->wait_cond, &attr);
  pthread_condattr_destroy(&attr);
  vm->first_stop = -1;

  /* KVM_CREATE_VM fails with EINTR when a signal arrives during it (an
   * interval timer's, say: tests/c/signals_test.c); nothing was made, so
   * it is simply made again. */
  do
    vm->fd = ioctl(kvm->fd, KVM_CREATE_VM, 0);
  while (vm->fd < 0 && errno == EINTR);
  if (vm->fd < 0) {
    errf(err, "KVM_CREATE_VM: %s", strerror(errno));
    goto fail;
  }
  if (cfg->pit && !cfg->irqchip) {
    errf(err, "the in-kernel PIT needs the in-kernel irqchip (irqchip = true)");
    goto fail;
  }
  if (cfg->irqchip && create_irqchip(vm, cfg, err) < 0)
    goto fail;
  /* What the virtio fast path may use (src/dev/virtio_mmio.c). */
  vm->ioeventfd = ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) > 0;
  vm->irqfd = vm->irqchip && ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) > 0;
  vm->cpus = calloc((size_t)ncpus, sizeof *vm->cpus);
  if (vm->cpus == NULL) {
    errf(err, "out of memory");
    goto fail;
  }
  for (int i = 0; i < ncpus; i++) {
    if (vcpu_create(&vm->cpus[i], vm, i, err) < 0)
      goto fail;
    vm->ncpus = i + 1;
  }
  *out = vm;
  return 0;
fail:
  vm_destroy(vm);
  return -1;
}

void vm_destroy(struct vm *vm)
{
  if (vm == NULL)
    return;
  vm_join(vm);
  vm_flush_devices(vm);
  trace_close(atomic_load(&vm->trace), NULL);
  for (int i = 0; i < vm->ncpus; i++)
    vcpu_destroy(vm->cpus[i]);
  free(vm->cpus);
  while (vm->devices != NULL) {
    struct device *next = vm->devices->next;
    if (vm->devices->destroy != NULL)
      vm->devices->destroy(vm->devices);
    vm->devices = next;
  }
  if (vm->fd >= 0)
    close(vm->fd);
  /* Unmap only after the VM fd is gone: KVM no longer refers to the pages. */
  mem_free(&vm->mem);
  if (atomic_load(&vm->pio.table) != NULL)
    bus_destroy(&vm->pio);
  if (atomic_load(&vm->mmio.table) != NULL)
    bus_destroy(&vm->mmio);
  sandbox_free(vm->sandbox);
  pthread_cond_destroy(&vm->wait_cond);
  pthread_mutex_destroy(&vm->wait_lock);
  free(vm);
}

void vm_add_device(struct vm *vm, struct device *dev)
{
  dev->next = vm->devices;
  vm->devices = dev;
}

void vm_start_devices(struct vm *vm)
{
  for (struct device *d = vm->devices; d != NULL; d = d->next)
    if (d->start != NULL)
      d->start(d);
}

void vm_flush_devices(struct vm *vm)
{
  for (struct device *d = vm->devices; d != NULL; d = d->next)
    if (d->quiesce != NULL)
      d->quiesce(d);
  for (struct device *d = vm->devices; d != NULL; d = d->next)
    if (d->flush != NULL)
      d->flush(d);
}

int64_t vm_stop_code(struct vm *vm, int req)
{
  if (req == VCPU_RUNNING || req == VCPU_PAUSED)
    return 0;
  while (atomic_load(&vm->stop_published) != req)
    sched_yield();
  return atomic_load(&vm->stop_code);
}

void vm_clear_stop_request(struct vm *vm)
{
  atomic_store(&vm->stop_published, VCPU_RUNNING);
  atomic_store(&vm->stop_code, 0);
  atomic_store(&vm->stop_request, VCPU_RUNNING);
}

void vm_request_stop(struct vm *vm, int reason, int64_t code)
{
  int cur = atomic_load(&vm->stop_request);
  for (;;) {
    bool replaceable = cur == VCPU_RUNNING || (cur == VCPU_PAUSED && reason != VCPU_PAUSED);
    if (!replaceable)
      break;
    if (atomic_compare_exchange_weak(&vm->stop_request, &cur, reason)) {
      /* A pause has no code, and may give way to a stop: only the stop,
       * the one request of a run that is final, publishes one. */
      if (reason != VCPU_PAUSED) {
        atomic_store(&vm->stop_code, code);
        atomic_store(&vm->stop_published, reason);
      }
      break;
    }
  }
  /* A vCPU sets `running` before it first reads stop_request, and this
   * reads `running` after writing it (both sequentially consistent): either
   * the vCPU sees the request, or it is kicked here. */
  pthread_t self = pthread_self();
  for (int i = 0; i < vm->ncpus; i++) {
    struct vcpu *c = vm->cpus[i];
    if (!atomic_load(&c->running))
      continue;
    __atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_RELEASE);
    /* The caller's own vCPU checks the request after the current exit; a
     * signal would only arm the handler-interrupting hook. */
    if (!pthread_equal(c->thread, self))
      pthread_kill(c->thread, vcpu_kick_signal());
  }
}
