/* The seccomp sandbox of a VM's vCPU threads, opt-in per run (lrun.c).
 *
 * Once a guest runs, its vCPU thread does little: KVM_RUN on its own vCPU,
 * the C devices' work on file descriptors they opened at set-up, locks,
 * clocks, malloc, and the signal that stops it. A guest that finds a bug in
 * the exit path or a C device gets that thread; the filter keeps it from
 * everything else: open, socket, execve, clone, ptrace, mapping executable
 * memory, KVM calls on other fds. Allowed, and nothing more:
 *
 *   ioctl        KVM_RUN, KVM_GET_SREGS and KVM_TRANSLATE (a fault's
 *                register dump) on this vCPU's own fd; KVM_IRQ_LINE and
 *                KVM_IRQ_LINE_STATUS on the VM's fd (device interrupts)
 *   read write readv writev preadv pwritev fsync fdatasync
 *                the C devices' I/O (debugcon, the UART, virtio-blk) and
 *                eventfds, on fds opened before the run
 *   getrandom    virtio-rng
 *   futex clock_gettime
 *                locks, condition variables, statistics and timeouts
 *   mmap mprotect (anonymous, never PROT_EXEC), munmap madvise brk
 *                malloc (a new thread's first malloc maps its own arena)
 *   tgkill (to this process, with the kick signal only) getpid
 *                a vCPU that ends the run kicks its peers (pthread_kill)
 *   rt_sigreturn rt_sigprocmask restart_syscall exit exit_group
 *                the kick signal's handler, and the thread's end
 *   sigaltstack  the sanitizers' runtimes drop a thread's signal stack as
 *                it ends (make test SANITIZE=...); it concerns only the
 *                calling thread
 *
 * The list came from strace -f of the test guests (debugcon, the exit
 * port, constant hypercalls, virtio-blk, virtio-rng, SMP, faults) and from
 * reading the exit path. KVM_IOEVENTFD is left out on purpose: a virtio
 * transport that is refused it keeps its notifications on the exit path,
 * so the device's requests are parsed on the sandboxed vCPU thread instead
 * of on a device I/O thread, which no filter covers.
 *
 * Everything else fails with EPERM rather than killing the thread or the
 * process. The protection is the same (nothing outside the list runs); the
 * difference is what follows: a C device that strays gets an error on its
 * usual error path (virtio-blk answers IOERR, a fault is reported), the VM
 * stops with a result, and the process, its Lua state and its terminal go
 * on. A killed vCPU thread would leave the run waiting forever for it, and
 * a killed process would take the user's session with it. Another
 * architecture's system calls (int 0x80) kill the thread: libseccomp's
 * default, and nothing legitimate makes them.
 *
 * The filters are built with libseccomp on the thread that sets the run
 * up and exported as BPF, one per vCPU (each names its own vCPU's fd);
 * a vCPU thread then only installs its program: no allocation, no library
 * state shared between threads. */
#include "sandbox.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"
#include "vcpu.h"
#include "vm.h"

struct sandbox {
  int ncpus;
  struct sock_fprog progs[]; /* one per vCPU, by id */
};

/* System calls allowed whatever their arguments. */
static const int plain_calls[] = {
  SCMP_SYS(read),         SCMP_SYS(write),         SCMP_SYS(readv),
  SCMP_SYS(writev),       SCMP_SYS(preadv),        SCMP_SYS(pwritev),
  SCMP_SYS(fsync),        SCMP_SYS(fdatasync),     SCMP_SYS(getrandom),
  SCMP_SYS(futex),        SCMP_SYS(clock_gettime), SCMP_SYS(munmap),
  SCMP_SYS(madvise),      SCMP_SYS(brk),           SCMP_SYS(getpid),
  SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(restart_syscall),
  SCMP_SYS(exit),         SCMP_SYS(exit_group),    SCMP_SYS(sigaltstack),
};

/* The kernel reads an ioctl's fd and request as 32-bit: compare those. */
#define LOW32 0xffffffffull

static int allow_ioctl(scmp_filter_ctx ctx, int fd, unsigned long request)
{
  return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, (uint64_t)(unsigned)fd),
                          SCMP_A1(SCMP_CMP_MASKED_EQ, LOW32, (uint64_t)request));
}

static int add_rules(scmp_filter_ctx ctx, const struct vcpu *c)
{
  int rc = 0;
  for (size_t i = 0; i < sizeof plain_calls / sizeof plain_calls[0] && rc == 0; i++)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, plain_calls[i], 0);
  if (rc == 0)
    rc = allow_ioctl(ctx, c->fd, KVM_RUN);
  if (rc == 0)
    rc = allow_ioctl(ctx, c->fd, KVM_GET_SREGS);
  if (rc == 0)
    rc = allow_ioctl(ctx, c->fd, KVM_TRANSLATE);
  if (rc == 0)
    rc = allow_ioctl(ctx, c->vm->fd, KVM_IRQ_LINE);
  if (rc == 0)
    rc = allow_ioctl(ctx, c->vm->fd, KVM_IRQ_LINE_STATUS);
  /* Anonymous memory only, never executable. */
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 2,
                          SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0),
                          SCMP_A3(SCMP_CMP_MASKED_EQ, MAP_ANONYMOUS, MAP_ANONYMOUS));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                          SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 2,
                          SCMP_A0(SCMP_CMP_EQ, (uint64_t)getpid(), 0),
                          SCMP_A2(SCMP_CMP_EQ, (uint64_t)vcpu_kick_signal(), 0));
  return rc;
}

/* c's filter as a BPF program: libseccomp writes it to an fd, read back. */
static int build(const struct vcpu *c, struct sock_fprog *out, char *err)
{
  int rc = -1;
  int fd = -1;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (ctx == NULL)
    return errf(err, "seccomp_init failed");
  int e = add_rules(ctx, c);
  if (e < 0) {
    errf(err, "seccomp_rule_add: %s", strerror(-e));
    goto done;
  }
  fd = memfd_create("luavmm-seccomp", MFD_CLOEXEC);
  struct stat st;
  if (fd < 0 || (e = seccomp_export_bpf(ctx, fd)) < 0 || fstat(fd, &st) < 0 ||
      st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
      st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    errf(err, "cannot export the seccomp filter: %s", strerror(e < 0 ? -e : errno));
    goto done;
  }
  struct sock_filter *insns = malloc((size_t)st.st_size);
  if (insns == NULL || pread(fd, insns, (size_t)st.st_size, 0) != st.st_size) {
    free(insns);
    errf(err, "cannot read the seccomp filter back");
    goto done;
  }
  out->filter = insns;
  out->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
  rc = 0;
done:
  if (fd >= 0)
    close(fd);
  seccomp_release(ctx);
  return rc;
}

int sandbox_prepare(struct vm *vm, char *err)
{
  if (vm->sandbox != NULL)
    return 0;
  struct sandbox *s = calloc(1, sizeof *s + (size_t)vm->ncpus * sizeof s->progs[0]);
  if (s == NULL)
    return errf(err, "out of memory");
  for (int i = 0; i < vm->ncpus; i++) {
    if (build(vm->cpus[i], &s->progs[i], err) < 0) {
      sandbox_free(s);
      return -1;
    }
    s->ncpus = i + 1;
  }
  vm->sandbox = s;
  return 0;
}

int sandbox_enter(struct vcpu *c, char *err)
{
  const struct sandbox *s = c->vm->sandbox;
  if (s == NULL || c->id >= s->ncpus)
    return errf(err, "no seccomp filter was prepared for vCPU %d", c->id);
  /* Without no_new_privs, only CAP_SYS_ADMIN may install a filter; with
   * it, this thread could never gain privileges through execve anyway. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return errf(err, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &s->progs[c->id]) < 0)
    return errf(err, "seccomp(SECCOMP_SET_MODE_FILTER): %s", strerror(errno));
  return 0;
}

void sandbox_free(struct sandbox *s)
{
  if (s == NULL)
    return;
  for (int i = 0; i < s->ncpus; i++)
    free(s->progs[i].filter);
  free(s);
}
