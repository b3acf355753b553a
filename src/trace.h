/* Exit traces: every userspace-visible exit of a run and what the device
 * answered, appended to a file for replay without the guest
 * (lua/vmm/trace.lua reads and replays them).
 *
 * Format, little-endian: a 16-byte header, "LVMTRACE", u32 version (1),
 * u32 0; then records. Each record has a 32-byte head
 *   u8 kind     1 I/O, 2 MMIO, 3 hypercall, 4 another exit
 *   u8 flags    bit 0: a write (I/O, MMIO)
 *   u8 size     access size in bytes (0 for kinds 3 and 4)
 *   u8 cpu      vCPU index
 *   u32 extra   hypercall number (3), KVM exit reason (4), 0 otherwise
 *   u64 addr    port or guest physical address (1, 2), 0 otherwise
 *   u64 value   the value written, or the value the guest read (1, 2);
 *               the result returned in rax (3); 0 (4)
 *   u64 rip
 * and a hypercall record is followed by its six arguments (rdi, rsi, rcx,
 * r10, r8, r9) as u64: 80 bytes in all. String I/O gives one record per
 * item. */
#ifndef LUAVMM_TRACE_H
#define LUAVMM_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#define TRACE_IO 1
#define TRACE_MMIO 2
#define TRACE_HYPERCALL 3
#define TRACE_EXIT 4

struct trace;
struct vcpu;

int trace_open(struct trace **out, const char *path, char *err);
/* Flushes and closes; returns -1 if any write failed, with the reason. */
int trace_close(struct trace *t, char *err);
uint64_t trace_count(const struct trace *t);

void trace_access(struct trace *t, struct vcpu *c, int kind, bool write, uint32_t size,
                  uint64_t addr, uint64_t value);
void trace_hypercall(struct trace *t, struct vcpu *c, uint32_t nr, const uint64_t args[6],
                     uint64_t result);
void trace_exit(struct trace *t, struct vcpu *c, uint32_t reason);

#endif
