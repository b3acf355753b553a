/* The /dev/kvm system fd: opened once, API version and capabilities checked. */
#ifndef LUAVMM_KVM_H
#define LUAVMM_KVM_H

#include <linux/kvm.h>
#include <stdbool.h>

struct kvm {
  int fd;
  int run_size;           /* size of a vCPU's kvm_run mapping */
  int max_vcpus;
  int max_slots;
  bool readonly_mem;      /* KVM_CAP_READONLY_MEM: ROM regions */
  int coalesced_mmio;     /* page offset of the coalesced ring, 0 if none */
  bool emulation_bytes;   /* KVM_CAP_EXIT_ON_EMULATION_FAILURE */
  struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, fetched at open */
};

/* Opens path (normally /dev/kvm) and checks what we rely on. On failure the
 * message names the device and says how to fix it. */
int kvm_open(struct kvm *k, const char *path, char *err);
void kvm_close(struct kvm *k);

#endif
