/* Device output that a stalled reader cannot turn into an unstoppable VM.
 *
 * A plain blocking write to a full pipe would sleep in the kernel until
 * the reader drains it: the kick signal that stops a vCPU has SA_RESTART
 * (exit.c), so the write restarts and vm:stop, the run's timeout and
 * Ctrl-C all wait for the reader, for ever if it never reads. poll is
 * never restarted after a signal handler, so a vCPU that waits there
 * sees the stop; and once poll reports room, a write of at most PIPE_BUF
 * bytes is taken whole by a pipe (POSIX: such writes are atomic, and
 * Linux reports POLLOUT with a free page), so it does not block either.
 * The fd itself stays as the user gave it (stdout keeps its flags: making
 * it non-blocking would change it for the shell too). Regular files never
 * wait for a reader and are written directly. */
#include "output.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../vcpu.h"
#include "../vm.h"

/* How often a waiting writer looks for a stop request that no signal
 * brought (a stop requested while the thread was between two polls). */
#define OUTPUT_POLL_MS 50

struct output output_of(int fd)
{
  struct output o = { .fd = fd, .may_block = false };
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0)
    o.may_block = !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
  return o;
}

static bool stop_pending(struct vm *vm)
{
  int req = atomic_load(&vm->stop_request);
  return req != VCPU_RUNNING && req != VCPU_PAUSED;
}

/* Waits until fd takes a write: 1, or 0 when vm is being stopped first,
 * or -1 on an error. */
static int wait_for_room(const struct output *o, struct vm *vm)
{
  for (;;) {
    struct pollfd p = { .fd = o->fd, .events = POLLOUT };
    int n = poll(&p, 1, OUTPUT_POLL_MS);
    if (n > 0)
      return 1; /* room, or an error that the write will report */
    if (n < 0 && errno != EINTR)
      return -1;
    if (stop_pending(vm))
      return 0;
  }
}

int output_writev(const struct output *o, struct vm *vm, struct iovec *iov, int n)
{
  if (o->fd < 0)
    return -1;
  while (n > 0) {
    if (iov->iov_len == 0) {
      iov++;
      n--;
      continue;
    }
    int cnt = n;
    size_t saved_len = 0;
    if (o->may_block) {
      if (wait_for_room(o, vm) <= 0)
        return -1;
      /* At most PIPE_BUF bytes: the iovecs that fit, and a cut of the
       * first one that does not (restored after the write). */
      size_t total = 0;
      cnt = 0;
      while (cnt < n && total + iov[cnt].iov_len <= PIPE_BUF)
        total += iov[cnt++].iov_len;
      if (cnt < n && total < PIPE_BUF) {
        saved_len = iov[cnt].iov_len;
        iov[cnt].iov_len = PIPE_BUF - total;
        cnt++;
      }
    }
    ssize_t r = writev(o->fd, iov, cnt);
    if (saved_len != 0)
      iov[cnt - 1].iov_len = saved_len;
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (r <= 0)
      return -1;
    while (n > 0 && (size_t)r >= iov->iov_len) {
      r -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + r;
      iov->iov_len -= (size_t)r;
    }
  }
  return 0;
}

int output_write(const struct output *o, struct vm *vm, const void *buf, size_t len)
{
  struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
  return output_writev(o, vm, &iov, 1);
}
