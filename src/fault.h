/* Names and decodings of KVM exits, and the register dump that goes with every
 * guest problem. */
#ifndef LUAVMM_FAULT_H
#define LUAVMM_FAULT_H

#include <stddef.h>
#include <stdint.h>

struct vcpu;

const char *exit_reason_name(uint32_t reason);

/* One line explaining a KVM_EXIT_FAIL_ENTRY hardware reason. */
const char *fail_entry_reason(uint64_t hw);

/* One line naming a KVM_EXIT_INTERNAL_ERROR suberror. */
const char *internal_error_name(uint32_t suberror);

/* Appends registers, mode and the code bytes at rip to buf (NUL-terminated,
 * truncated at len). */
void describe_vcpu(struct vcpu *c, char *buf, size_t len);

#endif
