/* Raw mode for the terminal and its restoration (term.h).
 *
 * The saved settings are written before raw_fd is published and never
 * change while it is set, so the signal handler can read them without a
 * lock: tcsetattr is async-signal-safe. */
#include "term.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static pthread_mutex_t term_lock = PTHREAD_MUTEX_INITIALIZER;
static struct termios saved;
static volatile sig_atomic_t raw_fd = -1;
static bool hooks_installed;

static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
#define NFATAL (sizeof fatal_signals / sizeof fatal_signals[0])
static struct sigaction old_actions[NFATAL];

/* Lock-free: for the signal handler and for callers holding term_lock. */
static void restore_now(void)
{
  int fd = raw_fd;
  if (fd < 0)
    return;
  tcsetattr(fd, TCSANOW, &saved);
  raw_fd = -1;
}

/* Puts the terminal back, then lets the signal do what it would have done
 * without us: the previous action is reinstalled (a sanitizer's handler,
 * or the default: a core dump). A fault the kernel raised (si_code > 0)
 * happens again when we return, now to that action, with its true address;
 * anything else is raised again, and arrives once we return. */
static void on_fatal(int sig, siginfo_t *info, void *ctx)
{
  (void)ctx;
  int saved_errno = errno;
  restore_now();
  for (size_t i = 0; i < NFATAL; i++) {
    if (fatal_signals[i] != sig)
      continue;
    struct sigaction old = old_actions[i];
    /* An ignored fault would come back forever: let it kill us instead. */
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN) {
      memset(&old, 0, sizeof old);
      old.sa_handler = SIG_DFL;
    }
    sigaction(sig, &old, NULL);
  }
  if (info == NULL || info->si_code <= 0 || sig == SIGABRT)
    raise(sig);
  errno = saved_errno;
}

static void at_exit(void)
{
  term_restore();
}

/* Once per process, before the first change to the terminal. */
static void install_hooks(void)
{
  if (hooks_installed)
    return;
  hooks_installed = true;
  atexit(at_exit);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fatal;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < NFATAL; i++)
    sigaction(fatal_signals[i], &sa, &old_actions[i]);
}

int term_raw(int fd, bool signals)
{
  if (!isatty(fd))
    return 0;
  pthread_mutex_lock(&term_lock);
  int rc = 0;
  if (raw_fd >= 0)
    goto out;
  struct termios t;
  if (tcgetattr(fd, &t) < 0) {
    rc = -1;
    goto out;
  }
  install_hooks();
  saved = t;
  t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | IEXTEN);
  if (!signals)
    t.c_lflag &= ~(tcflag_t)ISIG;
  t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
  t.c_cflag |= CS8;
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  /* Published first: a signal between the change and the store still
   * finds something to restore. */
  raw_fd = fd;
  if (tcsetattr(fd, TCSANOW, &t) < 0) {
    int e = errno;
    raw_fd = -1;
    errno = e;
    rc = -1;
    goto out;
  }
  rc = 1;
out:
  pthread_mutex_unlock(&term_lock);
  return rc;
}

void term_restore(void)
{
  pthread_mutex_lock(&term_lock);
  restore_now();
  pthread_mutex_unlock(&term_lock);
}

bool term_is_raw(void)
{
  return raw_fd >= 0;
}

/* ---- console devices ---- */

/* Who reads stdin: the process has one, and so do we. */
static pthread_mutex_t stdin_lock = PTHREAD_MUTEX_INITIALIZER;
static const void *stdin_owner;
static char stdin_owner_name[64];

bool term_claim_stdin(const void *owner, const char *what, char *holder, size_t n)
{
  pthread_mutex_lock(&stdin_lock);
  bool ok = stdin_owner == NULL || stdin_owner == owner;
  if (stdin_owner == NULL) {
    stdin_owner = owner;
    snprintf(stdin_owner_name, sizeof stdin_owner_name, "%s", what);
  } else if (!ok && n > 0) {
    snprintf(holder, n, "%s", stdin_owner_name);
  }
  pthread_mutex_unlock(&stdin_lock);
  return ok;
}

void term_release_stdin(const void *owner)
{
  pthread_mutex_lock(&stdin_lock);
  if (stdin_owner == owner)
    stdin_owner = NULL;
  pthread_mutex_unlock(&stdin_lock);
}

bool term_console_begin(int fd, bool escape, bool *hinted)
{
  if (!isatty(fd))
    return false;
  if (escape && !*hinted) {
    static const char hint[] = "(Ctrl-A x quits)\n";
    ssize_t n = write(STDERR_FILENO, hint, sizeof hint - 1);
    (void)n;
    *hinted = true;
  }
  /* Without the escape, Ctrl-C must still stop the VM. */
  return term_raw(fd, !escape) == 1;
}

size_t term_escape_filter(struct term_escape *e, const uint8_t *in, size_t n, uint8_t *out,
                          bool *quit)
{
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = in[i];
    if (e->pending) {
      e->pending = false;
      if (b == 'x' || b == 'X') {
        *quit = true;
        break;
      }
      if (b != TERM_ESCAPE_CHAR)
        out[len++] = TERM_ESCAPE_CHAR;
      out[len++] = b;
      continue;
    }
    if (b == TERM_ESCAPE_CHAR) {
      e->pending = true;
      continue;
    }
    out[len++] = b;
  }
  return len;
}
