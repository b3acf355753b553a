/* blkref: the floor of the virtio-blk benchmark (bench.lua, section 5): the
 * same requests as the guest blk64 makes, as plain pread/pwrite calls on
 * the same image file, from a process that does nothing else.
 *
 *   blkref FILE read|write BYTES COUNT
 *       COUNT sequential requests of BYTES each, from offset 0, wrapping
 *       at the end of the file (as the guest's sector does), one system
 *       call each; writes send zeroes. Prints "requests N ns T". One
 *       request first, untimed, to warm up.
 *
 * Errors go to stderr with exit status 1. Nothing here is shared with
 * luavmm's sources. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BYTES (64 * 1024)

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
  static char buf[MAX_BYTES] __attribute__((aligned(4096)));
  if (argc != 5) {
    fprintf(stderr, "usage: blkref FILE read|write BYTES COUNT\n");
    return 1;
  }
  int write_op = strcmp(argv[2], "write") == 0;
  long bytes = strtol(argv[3], NULL, 0);
  long count = strtol(argv[4], NULL, 0);
  if ((!write_op && strcmp(argv[2], "read") != 0) || bytes <= 0 || bytes > MAX_BYTES ||
      count <= 0) {
    fprintf(stderr, "blkref: bad arguments\n");
    return 1;
  }
  int fd = open(argv[1], O_RDWR | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) < 0) {
    fprintf(stderr, "blkref: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  if (sb.st_size < bytes) {
    fprintf(stderr, "blkref: %s is smaller than one request\n", argv[1]);
    return 1;
  }
  uint64_t t0 = 0;
  off_t at = 0;
  for (long i = 0; i <= count; i++) {
    if (i == 1)
      t0 = now_ns();
    if (at + bytes > sb.st_size)
      at = 0;
    ssize_t n = write_op ? pwrite(fd, buf, (size_t)bytes, at) : pread(fd, buf, (size_t)bytes, at);
    if (n != bytes) {
      fprintf(stderr, "blkref: %s at %lld: %s\n", write_op ? "pwrite" : "pread", (long long)at,
              n < 0 ? strerror(errno) : "short transfer");
      return 1;
    }
    at += bytes;
  }
  uint64_t t1 = now_ns();
  close(fd);
  printf("requests %ld ns %llu\n", count, (unsigned long long)(t1 - t0));
  return 0;
}
