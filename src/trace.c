#include "trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "vcpu.h"

struct trace {
  FILE *f;
  pthread_mutex_t lock; /* vCPUs of one VM record into one file */
  uint64_t count;
  int error;            /* the first write's errno, 0 if none */
};

static void put_u64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

int trace_open(struct trace **out, const char *path, char *err)
{
  struct trace *t = calloc(1, sizeof *t);
  if (t == NULL)
    return errf(err, "out of memory");
  t->f = fopen(path, "wbe");
  if (t->f == NULL) {
    int e = errno;
    free(t);
    return errf(err, "cannot record a trace to %s: %s", path, strerror(e));
  }
  pthread_mutex_init(&t->lock, NULL);
  uint8_t header[16] = "LVMTRACE";
  put_u32(header + 8, 1);
  put_u32(header + 12, 0);
  if (fwrite(header, sizeof header, 1, t->f) != 1)
    t->error = errno ? errno : EIO;
  *out = t;
  return 0;
}

int trace_close(struct trace *t, char *err)
{
  if (t == NULL)
    return 0;
  if (fclose(t->f) != 0 && t->error == 0)
    t->error = errno ? errno : EIO;
  int e = t->error;
  pthread_mutex_destroy(&t->lock);
  free(t);
  return e ? errf(err, "the trace could not be written: %s", strerror(e)) : 0;
}

uint64_t trace_count(const struct trace *t)
{
  return t->count;
}

static void emit(struct trace *t, const uint8_t *rec, size_t len)
{
  pthread_mutex_lock(&t->lock);
  if (fwrite(rec, len, 1, t->f) != 1 && t->error == 0)
    t->error = errno ? errno : EIO;
  t->count++;
  pthread_mutex_unlock(&t->lock);
}

static void head(uint8_t *rec, struct vcpu *c, int kind, uint8_t flags, uint32_t size,
                 uint32_t extra, uint64_t addr, uint64_t value)
{
  rec[0] = (uint8_t)kind;
  rec[1] = flags;
  rec[2] = (uint8_t)size;
  rec[3] = (uint8_t)c->id;
  put_u32(rec + 4, extra);
  put_u64(rec + 8, addr);
  put_u64(rec + 16, value);
  put_u64(rec + 24, vcpu_regs(c)->rip);
}

void trace_access(struct trace *t, struct vcpu *c, int kind, bool write, uint32_t size,
                  uint64_t addr, uint64_t value)
{
  uint8_t rec[32];
  head(rec, c, kind, write ? 1 : 0, size, 0, addr, value);
  emit(t, rec, sizeof rec);
}

void trace_hypercall(struct trace *t, struct vcpu *c, uint32_t nr, const uint64_t args[6],
                     uint64_t result)
{
  uint8_t rec[80];
  head(rec, c, TRACE_HYPERCALL, 0, 0, nr, 0, result);
  for (int i = 0; i < 6; i++)
    put_u64(rec + 32 + 8 * i, args[i]);
  emit(t, rec, sizeof rec);
}

void trace_exit(struct trace *t, struct vcpu *c, uint32_t reason)
{
  uint8_t rec[32];
  head(rec, c, TRACE_EXIT, 0, 0, reason, 0, 0);
  emit(t, rec, sizeof rec);
}
