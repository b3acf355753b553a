#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "err.h"

#define CPUID_MAX_ENTRIES 256

/* Turns the errno of a failed open into advice a user can act on. */
static int open_error(const char *path, int e, char *err)
{
  switch (e) {
  case ENOENT:
  case ENODEV:
  case ENXIO:
    return errf(err, "cannot open %s: %s. KVM is not available: load the module "
                "(modprobe kvm_intel or modprobe kvm_amd), enable virtualization "
                "in the firmware, or enable nested virtualization if this is a VM",
                path, strerror(e));
  case EACCES:
  case EPERM:
    return errf(err, "cannot open %s: %s. Add your user to the kvm group "
                "(sudo usermod -aG kvm $USER, then log in again) or run as root",
                path, strerror(e));
  default:
    return errf(err, "cannot open %s: %s", path, strerror(e));
  }
}

static int check(int fd, long cap)
{
  int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

static int fetch_cpuid(struct kvm *k, char *err)
{
  size_t bytes = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
  k->cpuid = calloc(1, bytes);
  if (k->cpuid == NULL)
    return errf(err, "out of memory");
  k->cpuid->nent = CPUID_MAX_ENTRIES;
  if (ioctl(k->fd, KVM_GET_SUPPORTED_CPUID, k->cpuid) < 0)
    return errf(err, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
  return 0;
}

int kvm_open(struct kvm *k, const char *path, char *err)
{
  memset(k, 0, sizeof *k);
  k->fd = open(path, O_RDWR | O_CLOEXEC);
  if (k->fd < 0)
    return open_error(path, errno, err);

  int version = ioctl(k->fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    errf(err, "%s: KVM API version %d, expected %d", path, version, KVM_API_VERSION);
    goto fail;
  }
  /* Capabilities the core cannot work without. */
  static const struct { long cap; const char *name; } needed[] = {
    { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
    { KVM_CAP_SYNC_REGS, "KVM_CAP_SYNC_REGS" },
    { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
    { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
  };
  for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
    if (!check(k->fd, needed[i].cap)) {
      errf(err, "%s: the kernel lacks %s, which luavmm needs", path, needed[i].name);
      goto fail;
    }
  }
  if (!(check(k->fd, KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS)) {
    errf(err, "%s: KVM_CAP_SYNC_REGS does not cover the general registers", path);
    goto fail;
  }
  k->run_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (k->run_size < (int)sizeof(struct kvm_run)) {
    errf(err, "%s: KVM_GET_VCPU_MMAP_SIZE: %s", path, strerror(errno));
    goto fail;
  }
  k->max_vcpus = check(k->fd, KVM_CAP_MAX_VCPUS);
  if (k->max_vcpus <= 0)
    k->max_vcpus = check(k->fd, KVM_CAP_NR_VCPUS);
  if (k->max_vcpus <= 0)
    k->max_vcpus = 4;
  k->max_slots = check(k->fd, KVM_CAP_NR_MEMSLOTS);
  if (k->max_slots <= 0)
    k->max_slots = 32;
  k->readonly_mem = check(k->fd, KVM_CAP_READONLY_MEM) > 0;
  k->coalesced_mmio = check(k->fd, KVM_CAP_COALESCED_MMIO);
  k->emulation_bytes = check(k->fd, KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0;
  if (fetch_cpuid(k, err) < 0)
    goto fail;
  return 0;
fail:
  kvm_close(k);
  return -1;
}

void kvm_close(struct kvm *k)
{
  if (k->fd >= 0)
    close(k->fd);
  k->fd = -1;
  free(k->cpuid);
  k->cpuid = NULL;
}
