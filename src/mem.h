/* Guest physical memory: regions backed by anonymous mappings, registered as
 * KVM memory slots, and overflow-checked translation from guest addresses. */
#ifndef LUAVMM_MEM_H
#define LUAVMM_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEM_READONLY 1u  /* guest writes become MMIO exits (ROM) */
#define MEM_NAME_LEN 32

struct mem_region {
  uint64_t gpa;
  uint64_t size;
  uint8_t *host;
  uint32_t slot;
  uint32_t flags;
  char name[MEM_NAME_LEN];
};

/* The region list only changes while no vCPU runs, so lookups take no lock. */
struct mem {
  struct mem_region *regions; /* sorted by gpa, never overlapping */
  size_t count;
  size_t cap;
  uint32_t next_slot;
  uint32_t max_slots;
};

void mem_init(struct mem *m, uint32_t max_slots);
void mem_free(struct mem *m);

/* Allocates size bytes (page multiple) at gpa and registers them with the VM.
 * Fails on misalignment, overlap with an existing region, or allocation. */
int mem_map(struct mem *m, int vm_fd, uint64_t gpa, uint64_t size, uint32_t flags,
            const char *name, char *err);

/* Host pointer for [gpa, gpa+len) when it lies wholly inside one region, else
 * NULL. len 0 is treated as 1 so a pointer is never returned past an end. */
void *mem_ptr(const struct mem *m, uint64_t gpa, uint64_t len);

/* The region holding gpa, or NULL. */
const struct mem_region *mem_find(const struct mem *m, uint64_t gpa);

/* Copies between guest memory and a host buffer; the range may span adjacent
 * regions but not a hole. Return 0, or -1 when any byte is unmapped. */
int mem_read(const struct mem *m, uint64_t gpa, void *buf, uint64_t len);
int mem_write(const struct mem *m, uint64_t gpa, const void *buf, uint64_t len);
int mem_fill(const struct mem *m, uint64_t gpa, int byte, uint64_t len);

/* True when [gpa, gpa+len) is covered by regions without a hole. */
bool mem_covers(const struct mem *m, uint64_t gpa, uint64_t len);

uint64_t mem_total(const struct mem *m);

#endif
