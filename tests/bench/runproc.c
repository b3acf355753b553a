/* runproc: runs one command and measures it from fork to reaping, the way
 * the whole-process benchmarks need: no shell in between, the child's own
 * peak resident set size from wait4, and a time limit.
 *
 *   runproc [-o OUT] [-e ERR] [-t SECONDS] -- COMMAND [ARGS...]
 *
 * stdin is /dev/null; stdout goes to OUT and stderr to ERR (both default
 * to /dev/null). Prints one line:
 *   wall_ns N maxrss_kib M status S
 * where S is the exit status, or 128 + the signal that ended it. A child
 * still running after SECONDS (default 60) is killed with SIGKILL and
 * reported with status 137 and "timeout" added to the line. runproc
 * itself exits 0 unless it could not run the command (then 1). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int open_or_die(const char *path, int flags)
{
  int fd = open(path, flags | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "runproc: cannot open %s: %s\n", path, strerror(errno));
    exit(1);
  }
  return fd;
}

static void usage(void)
{
  fputs("usage: runproc [-o OUT] [-e ERR] [-t SECONDS] -- COMMAND [ARGS...]\n", stderr);
  exit(1);
}

int main(int argc, char **argv)
{
  const char *out = "/dev/null", *err = "/dev/null";
  double limit = 60;
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (i + 1 >= argc)
      usage();
    if (strcmp(argv[i], "-o") == 0)
      out = argv[++i];
    else if (strcmp(argv[i], "-e") == 0)
      err = argv[++i];
    else if (strcmp(argv[i], "-t") == 0)
      limit = atof(argv[++i]);
    else
      usage();
  }
  if (i + 1 >= argc || limit <= 0)
    usage();
  char **cmd = argv + i + 1;

  int in_fd = open_or_die("/dev/null", O_RDONLY);
  int out_fd = open_or_die(out, O_WRONLY | O_CREAT | O_TRUNC);
  int err_fd = open_or_die(err, O_WRONLY | O_CREAT | O_TRUNC);

  /* SIGCHLD blocked and waited for with a timeout: the wall time ends when
   * the child does, with no polling interval added to it. */
  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);

  uint64_t t0 = now_ns();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "runproc: fork: %s\n", strerror(errno));
    return 1;
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    dup2(in_fd, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    execvp(cmd[0], cmd);
    dprintf(STDERR_FILENO, "runproc: cannot run %s: %s\n", cmd[0], strerror(errno));
    _exit(127);
  }

  struct timespec left = { (time_t)limit, (long)((limit - (double)(time_t)limit) * 1e9) };
  uint64_t deadline = t0 + (uint64_t)(limit * 1e9);
  int timed_out = 0;
  int status;
  struct rusage ru;
  for (;;) {
    pid_t r = wait4(pid, &status, WNOHANG, &ru);
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR) {
      fprintf(stderr, "runproc: wait4: %s\n", strerror(errno));
      return 1;
    }
    uint64_t now = now_ns();
    if (now >= deadline) {
      kill(pid, SIGKILL);
      timed_out = 1;
      if (wait4(pid, &status, 0, &ru) < 0) {
        fprintf(stderr, "runproc: wait4: %s\n", strerror(errno));
        return 1;
      }
      break;
    }
    left.tv_sec = (time_t)((deadline - now) / 1000000000ull);
    left.tv_nsec = (long)((deadline - now) % 1000000000ull);
    sigtimedwait(&chld, NULL, &left);
  }
  uint64_t wall = now_ns() - t0;

  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  printf("wall_ns %llu maxrss_kib %ld status %d%s\n", (unsigned long long)wall, ru.ru_maxrss,
         code, timed_out ? " timeout" : "");
  return 0;
}
