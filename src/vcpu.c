#include "vcpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "vm.h"

/* CPUID as KVM supports it (long mode, for one, needs the LM bit), with
 * this vCPU's APIC ID, so a guest can tell its processors apart. */
static int set_default_cpuid(struct vcpu *c)
{
  const struct kvm_cpuid2 *supported = c->vm->kvm->cpuid;
  size_t bytes = supported->nent * sizeof supported->entries[0];
  struct kvm_cpuid_entry2 *e = malloc(bytes ? bytes : 1);
  if (e == NULL)
    return -1;
  memcpy(e, supported->entries, bytes);
  for (uint32_t i = 0; i < supported->nent; i++) {
    if (e[i].function == 1)
      e[i].ebx = (e[i].ebx & 0x00ffffffu) | ((uint32_t)c->id << 24);
    else if (e[i].function == 0xb || e[i].function == 0x1f)
      e[i].edx = (uint32_t)c->id; /* the x2APIC ID */
  }
  int r = vcpu_set_cpuid(c, e, (int)supported->nent);
  free(e);
  return r;
}

int vcpu_create(struct vcpu **out, struct vm *vm, int id, char *err)
{
  struct vcpu *c = calloc(1, sizeof *c);
  if (c == NULL)
    return errf(err, "out of memory");
  c->vm = vm;
  c->id = id;
  c->run_size = vm->kvm->run_size;
  atomic_init(&c->running, false);
  c->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
  if (c->fd < 0) {
    errf(err, "KVM_CREATE_VCPU %d: %s", id, strerror(errno));
    free(c);
    return -1;
  }
  c->run = mmap(NULL, (size_t)c->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
  if (c->run == MAP_FAILED) {
    errf(err, "mmap of vCPU %d's kvm_run: %s", id, strerror(errno));
    c->run = NULL;
    goto fail;
  }
  if (set_default_cpuid(c) < 0) {
    errf(err, "KVM_SET_CPUID2 on vCPU %d: %s", id, strerror(errno));
    goto fail;
  }
  /* Seed the synced register copy; from here on kvm_run holds them. */
  if (ioctl(c->fd, KVM_GET_REGS, vcpu_regs(c)) < 0) {
    errf(err, "KVM_GET_REGS on vCPU %d: %s", id, strerror(errno));
    goto fail;
  }
  c->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
  *out = c;
  return 0;
fail:
  vcpu_destroy(c);
  return -1;
}

void vcpu_destroy(struct vcpu *c)
{
  if (c == NULL)
    return;
  if (c->run != NULL)
    munmap(c->run, (size_t)c->run_size);
  if (c->fd >= 0)
    close(c->fd);
  free(c->stop.message);
  stats_free(&c->stats);
  free(c);
}

int vcpu_get_sregs(struct vcpu *c, struct kvm_sregs *s)
{
  return ioctl(c->fd, KVM_GET_SREGS, s) < 0 ? -1 : 0;
}

int vcpu_set_sregs(struct vcpu *c, const struct kvm_sregs *s)
{
  return ioctl(c->fd, KVM_SET_SREGS, s) < 0 ? -1 : 0;
}

int vcpu_get_fpu(struct vcpu *c, struct kvm_fpu *f)
{
  return ioctl(c->fd, KVM_GET_FPU, f) < 0 ? -1 : 0;
}

int vcpu_set_fpu(struct vcpu *c, const struct kvm_fpu *f)
{
  return ioctl(c->fd, KVM_SET_FPU, f) < 0 ? -1 : 0;
}

struct one_msr {
  struct kvm_msrs head;
  struct kvm_msr_entry entry;
};

int vcpu_get_msr(struct vcpu *c, uint32_t index, uint64_t *value)
{
  struct one_msr m = { .head.nmsrs = 1, .entry.index = index };
  /* KVM_GET_MSRS returns how many it read: 0 means the MSR is unknown. */
  if (ioctl(c->fd, KVM_GET_MSRS, &m) != 1) {
    if (errno == 0)
      errno = EINVAL;
    return -1;
  }
  *value = m.entry.data;
  return 0;
}

int vcpu_set_msr(struct vcpu *c, uint32_t index, uint64_t value)
{
  struct one_msr m = { .head.nmsrs = 1, .entry.index = index, .entry.data = value };
  errno = 0;
  if (ioctl(c->fd, KVM_SET_MSRS, &m) != 1) {
    if (errno == 0)
      errno = EINVAL;
    return -1;
  }
  return 0;
}

int vcpu_get_cpuid(struct vcpu *c, struct kvm_cpuid_entry2 *out, int max)
{
  size_t bytes = sizeof(struct kvm_cpuid2) + (size_t)max * sizeof(struct kvm_cpuid_entry2);
  struct kvm_cpuid2 *cpuid = calloc(1, bytes);
  if (cpuid == NULL)
    return -1;
  cpuid->nent = (uint32_t)max;
  if (ioctl(c->fd, KVM_GET_CPUID2, cpuid) < 0) {
    free(cpuid);
    return -1;
  }
  int n = (int)cpuid->nent;
  memcpy(out, cpuid->entries, (size_t)n * sizeof *out);
  free(cpuid);
  return n;
}

int vcpu_set_cpuid(struct vcpu *c, const struct kvm_cpuid_entry2 *entries, int n)
{
  size_t bytes = sizeof(struct kvm_cpuid2) + (size_t)n * sizeof(struct kvm_cpuid_entry2);
  struct kvm_cpuid2 *cpuid = calloc(1, bytes);
  if (cpuid == NULL)
    return -1;
  cpuid->nent = (uint32_t)n;
  memcpy(cpuid->entries, entries, (size_t)n * sizeof *entries);
  int r = ioctl(c->fd, KVM_SET_CPUID2, cpuid);
  free(cpuid);
  return r < 0 ? -1 : 0;
}

int vcpu_translate(struct vcpu *c, uint64_t linear, uint64_t *gpa)
{
  struct kvm_translation t = { .linear_address = linear };
  if (ioctl(c->fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
    return -1;
  *gpa = t.physical_address;
  return 0;
}

void vcpu_clear_stop(struct vcpu *c)
{
  free(c->stop.message);
  c->stop.message = NULL;
  c->stop.reason = VCPU_RUNNING;
  c->stop.code = 0;
}

int vcpu_stop(struct vcpu *c, int reason, int64_t code)
{
  if (c->stop.reason == VCPU_RUNNING) {
    c->stop.reason = reason;
    c->stop.code = code;
  }
  return -1;
}
