/* Device I/O threads take no signals: Ctrl-C and SIGTERM belong to the
 * main thread and the kick signal to vCPUs, and a thread created while
 * they are blocked inherits that mask. The caller's mask is put back. */
#include <signal.h>

#include "dev_thread.h"

int dev_thread_start(pthread_t *thread, size_t stack, void *(*fn)(void *), void *arg)
{
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (stack > 0)
    pthread_attr_setstacksize(&attr, stack);
  int rc = pthread_create(thread, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}
