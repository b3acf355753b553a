/* The optional seccomp sandbox of a VM's vCPU threads (vm:run{ sandbox =
 * true }, vm:start{ sandbox = true }): once the guest runs, a vCPU thread
 * may make only the system calls a vCPU with C devices needs. sandbox.c
 * says which, and why the rest fail with EPERM. */
#ifndef LUAVMM_SANDBOX_H
#define LUAVMM_SANDBOX_H

struct vm;
struct vcpu;
struct sandbox;

/* Builds the filter of each of vm's vCPUs, once (kept in vm->sandbox until
 * vm_destroy). On the thread that sets the run up, so that a failure is an
 * error before any guest code runs. */
int sandbox_prepare(struct vm *vm, char *err);

/* Puts the calling thread under vCPU c's filter, for good (a filter is
 * never lifted: the thread must be one made for the run). No allocation,
 * two system calls. */
int sandbox_enter(struct vcpu *c, char *err);

void sandbox_free(struct sandbox *s);

#endif
