/* Set-up around a run on the calling thread: the kick signal unblocked, Ctrl-C
 * turned into a stop request, and a timer for the run's time limit. */
#ifndef LUAVMM_RUN_H
#define LUAVMM_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct vm;

struct run_guard {
  struct vm *old_target;
  struct sigaction old_int;
  struct sigaction old_term;
  bool caught_sigint;
  bool has_timer;
  timer_t timer;
};

/* timeout > 0 arms a timer that stops the VM's vCPU running on this
 * thread; catch_sigint makes Ctrl-C and SIGTERM stop vm until
 * run_guard_end. */
int run_guard_begin(struct run_guard *g, struct vm *vm, double timeout, bool catch_sigint);
void run_guard_end(struct run_guard *g);

const char *vcpu_system_event_name(int64_t type);

#endif
