#include "mem.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "err.h"

#define PAGE_SIZE 4096u

void mem_init(struct mem *m, uint32_t max_slots)
{
  memset(m, 0, sizeof *m);
  m->max_slots = max_slots;
}

void mem_free(struct mem *m)
{
  for (size_t i = 0; i < m->count; i++)
    munmap(m->regions[i].host, m->regions[i].size);
  free(m->regions);
  memset(m, 0, sizeof *m);
}

static void format_size(char *buf, size_t len, uint64_t size)
{
  if (size >= (1ull << 30) && size % (1ull << 30) == 0)
    snprintf(buf, len, "%llu GiB", (unsigned long long)(size >> 30));
  else if (size >= (1ull << 20) && size % (1ull << 20) == 0)
    snprintf(buf, len, "%llu MiB", (unsigned long long)(size >> 20));
  else
    snprintf(buf, len, "%llu bytes", (unsigned long long)size);
}

int mem_map(struct mem *m, int vm_fd, uint64_t gpa, uint64_t size, uint32_t flags,
            const char *name, char *err)
{
  uint64_t end;
  char human[32];

  if (size == 0)
    return errf(err, "memory region '%s' has size 0", name);
  if (gpa % PAGE_SIZE || size % PAGE_SIZE)
    return errf(err, "memory region '%s' at 0x%llx size 0x%llx: address and size must be "
                "multiples of 4096", name, (unsigned long long)gpa, (unsigned long long)size);
  if (__builtin_add_overflow(gpa, size, &end) || end > (1ull << 52))
    return errf(err, "memory region '%s' at 0x%llx size 0x%llx is beyond the guest "
                "physical address space", name, (unsigned long long)gpa,
                (unsigned long long)size);
  if (size > SIZE_MAX)
    return errf(err, "memory region '%s' is too large for this host", name);
  for (size_t i = 0; i < m->count; i++) {
    const struct mem_region *r = &m->regions[i];
    if (gpa < r->gpa + r->size && r->gpa < end)
      return errf(err, "memory region '%s' [0x%llx, 0x%llx) overlaps region '%s' [0x%llx, 0x%llx)",
                  name, (unsigned long long)gpa, (unsigned long long)end, r->name,
                  (unsigned long long)r->gpa, (unsigned long long)(r->gpa + r->size));
  }
  if (m->next_slot >= m->max_slots)
    return errf(err, "memory region '%s': KVM allows at most %u memory slots", name,
                m->max_slots);
  if (m->count == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 4;
    struct mem_region *grown = realloc(m->regions, cap * sizeof *grown);
    if (grown == NULL)
      return errf(err, "out of memory");
    m->regions = grown;
    m->cap = cap;
  }

  /* No MAP_NORESERVE: a size the host cannot back fails here, clearly,
   * instead of the guest being killed later by the OOM killer. */
  void *host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (host == MAP_FAILED) {
    format_size(human, sizeof human, size);
    return errf(err, "cannot allocate %s of guest memory for region '%s': %s", human, name,
                strerror(errno));
  }
  struct kvm_userspace_memory_region slot = {
    .slot = m->next_slot,
    .flags = (flags & MEM_READONLY) ? KVM_MEM_READONLY : 0,
    .guest_phys_addr = gpa,
    .memory_size = size,
    .userspace_addr = (uint64_t)(uintptr_t)host,
  };
  if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
    int e = errno;
    munmap(host, size);
    format_size(human, sizeof human, size);
    return errf(err, "KVM_SET_USER_MEMORY_REGION for region '%s' (%s at 0x%llx): %s", name,
                human, (unsigned long long)gpa, strerror(e));
  }

  size_t at = 0;
  while (at < m->count && m->regions[at].gpa < gpa)
    at++;
  memmove(&m->regions[at + 1], &m->regions[at], (m->count - at) * sizeof *m->regions);
  struct mem_region *r = &m->regions[at];
  r->gpa = gpa;
  r->size = size;
  r->host = host;
  r->slot = m->next_slot++;
  r->flags = flags;
  snprintf(r->name, sizeof r->name, "%s", name);
  m->count++;
  return 0;
}

const struct mem_region *mem_find(const struct mem *m, uint64_t gpa)
{
  size_t lo = 0, hi = m->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct mem_region *r = &m->regions[mid];
    if (gpa < r->gpa)
      hi = mid;
    else if (gpa - r->gpa >= r->size)
      lo = mid + 1;
    else
      return r;
  }
  return NULL;
}

void *mem_ptr(const struct mem *m, uint64_t gpa, uint64_t len)
{
  const struct mem_region *r = mem_find(m, gpa);
  if (r == NULL)
    return NULL;
  uint64_t off = gpa - r->gpa;
  if (len == 0)
    len = 1;
  /* off < size holds, so size - off cannot wrap. */
  if (len > r->size - off)
    return NULL;
  return r->host + off;
}

/* Walks [gpa, gpa+len) region by region, calling fn on each host piece. */
static int walk(const struct mem *m, uint64_t gpa, uint64_t len,
                void (*fn)(uint8_t *host, uint64_t n, void *ctx, uint64_t done), void *ctx)
{
  uint64_t end;
  if (__builtin_add_overflow(gpa, len, &end))
    return -1;
  /* Check the whole range first so a failed copy changes nothing. */
  if (!mem_covers(m, gpa, len))
    return -1;
  uint64_t done = 0;
  while (done < len) {
    const struct mem_region *r = mem_find(m, gpa + done);
    uint64_t off = gpa + done - r->gpa;
    uint64_t n = r->size - off;
    if (n > len - done)
      n = len - done;
    fn(r->host + off, n, ctx, done);
    done += n;
  }
  return 0;
}

bool mem_covers(const struct mem *m, uint64_t gpa, uint64_t len)
{
  uint64_t end;
  if (__builtin_add_overflow(gpa, len, &end))
    return false;
  while (gpa < end) {
    const struct mem_region *r = mem_find(m, gpa);
    if (r == NULL)
      return false;
    gpa = r->gpa + r->size;
  }
  return true;
}

static void copy_out(uint8_t *host, uint64_t n, void *ctx, uint64_t done)
{
  memcpy((uint8_t *)ctx + done, host, n);
}

static void copy_in(uint8_t *host, uint64_t n, void *ctx, uint64_t done)
{
  memcpy(host, (const uint8_t *)ctx + done, n);
}

static void fill(uint8_t *host, uint64_t n, void *ctx, uint64_t done)
{
  (void)done;
  memset(host, *(int *)ctx, n);
}

int mem_read(const struct mem *m, uint64_t gpa, void *buf, uint64_t len)
{
  return walk(m, gpa, len, copy_out, buf);
}

int mem_write(const struct mem *m, uint64_t gpa, const void *buf, uint64_t len)
{
  return walk(m, gpa, len, copy_in, (void *)(uintptr_t)buf);
}

int mem_fill(const struct mem *m, uint64_t gpa, int byte, uint64_t len)
{
  return walk(m, gpa, len, fill, &byte);
}

uint64_t mem_total(const struct mem *m)
{
  uint64_t total = 0;
  for (size_t i = 0; i < m->count; i++)
    total += m->regions[i].size;
  return total;
}
