/* The control-plane lock: whichever thread runs Lua holds it. It is a
 * ticket lock, so threads get it in the order they asked: a vCPU thread
 * waiting to call its handler is not overtaken forever by a handler that
 * gives the lock up and takes it straight back. */
#ifndef LUAVMM_CTL_H
#define LUAVMM_CTL_H

#include <pthread.h>
#include <stdatomic.h>

struct ctl {
  pthread_mutex_t mutex;
  pthread_cond_t turn;
  unsigned long next_ticket;
  unsigned long serving;
  _Atomic unsigned long waiting; /* threads blocked in ctl_lock */
};

void ctl_init(struct ctl *c);
void ctl_destroy(struct ctl *c);
void ctl_lock(struct ctl *c);
void ctl_unlock(struct ctl *c);

/* True when another thread waits for the lock: the holder should let it
 * run at the next safe point. */
static inline int ctl_contended(struct ctl *c)
{
  return atomic_load_explicit(&c->waiting, memory_order_relaxed) > 0;
}

#endif
