/* Starting a device's I/O thread. */
#ifndef LUAVMM_DEV_THREAD_H
#define LUAVMM_DEV_THREAD_H

#include <pthread.h>
#include <stddef.h>

/* Starts fn(arg) on a new thread that takes no signals (stack bytes of
 * stack, or the default with 0). Returns pthread_create's result. */
int dev_thread_start(pthread_t *thread, size_t stack, void *(*fn)(void *), void *arg);

#endif
