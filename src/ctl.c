#include "ctl.h"

void ctl_init(struct ctl *c)
{
  pthread_mutex_init(&c->mutex, NULL);
  pthread_cond_init(&c->turn, NULL);
  c->next_ticket = 0;
  c->serving = 0;
  atomic_init(&c->waiting, 0);
}

void ctl_destroy(struct ctl *c)
{
  pthread_cond_destroy(&c->turn);
  pthread_mutex_destroy(&c->mutex);
}

void ctl_lock(struct ctl *c)
{
  pthread_mutex_lock(&c->mutex);
  unsigned long ticket = c->next_ticket++;
  if (ticket != c->serving) {
    atomic_fetch_add(&c->waiting, 1);
    while (ticket != c->serving)
      pthread_cond_wait(&c->turn, &c->mutex);
    atomic_fetch_sub(&c->waiting, 1);
  }
  pthread_mutex_unlock(&c->mutex);
}

void ctl_unlock(struct ctl *c)
{
  pthread_mutex_lock(&c->mutex);
  c->serving++;
  /* Broadcast: only the thread holding the next ticket proceeds. */
  if (atomic_load(&c->waiting) > 0)
    pthread_cond_broadcast(&c->turn);
  pthread_mutex_unlock(&c->mutex);
}
