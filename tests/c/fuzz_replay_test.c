/* The fuzz harnesses (tests/fuzz/) built without libFuzzer, replaying
 * every input kept in tests/fuzz/corpus/<harness>/: the hand-made seeds
 * and the regress-* inputs of past findings (virtq, mmio, bus, loader,
 * lmem; the last two embed Lua, load the Lua library from lua/ and make
 * VMs). A finding that comes back
 * aborts this test (or, under make test SANITIZE=address,undefined, is a
 * sanitizer report), which the runner counts as a failure. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define LLVMFuzzerTestOneInput virtq_fuzz_one
#include "../fuzz/virtq_fuzz.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput mmio_fuzz_one
#include "../fuzz/mmio_fuzz.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput bus_fuzz_one
#include "../fuzz/bus_fuzz.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput loader_fuzz_one
#define LLVMFuzzerInitialize loader_fuzz_init
#include "../fuzz/loader_fuzz.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize
#define LLVMFuzzerTestOneInput lmem_fuzz_one
#define LLVMFuzzerInitialize lmem_fuzz_init
#include "../fuzz/lmem_fuzz.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#include "tap.h"

#define REPLAY_MAX (1 << 20)

static int name_order(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs fn on every file in dir, in name order; returns how many. */
static int replay(const char *dir, int (*fn)(const uint8_t *, size_t))
{
  static uint8_t buf[REPLAY_MAX];
  char *names[512];
  int n = 0;
  DIR *d = opendir(dir);
  if (d == NULL) {
    printf("Bail out! cannot open %s (run from the repository root)\n", dir);
    exit(1);
  }
  for (struct dirent *e; (e = readdir(d)) != NULL && n < 512;)
    if (e->d_name[0] != '.')
      names[n++] = strdup(e->d_name);
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], name_order);
  for (int i = 0; i < n; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    FILE *f = fopen(path, "rb");
    size_t len = f != NULL ? fread(buf, 1, sizeof buf, f) : 0;
    if (f != NULL)
      fclose(f);
    fn(buf, len); /* a finding aborts here */
    CHECK(f != NULL, "%s replays without a finding (%zu bytes)", path, len);
    free(names[i]);
  }
  return n;
}

int main(void)
{
  CHECK(replay("tests/fuzz/corpus/virtq", virtq_fuzz_one) >= 5, "the virtqueue seeds are there");
  CHECK(replay("tests/fuzz/corpus/mmio", mmio_fuzz_one) >= 3, "the transport seeds are there");
  CHECK(replay("tests/fuzz/corpus/bus", bus_fuzz_one) >= 3, "the bus seeds are there");
  /* The Lua harnesses embed Lua with the vmm module and need /dev/kvm. */
  loader_fuzz_init(NULL, NULL);
  CHECK(replay("tests/fuzz/corpus/loader", loader_fuzz_one) >= 8, "the loader seeds are there");
  lmem_fuzz_init(NULL, NULL);
  CHECK(replay("tests/fuzz/corpus/lmem", lmem_fuzz_one) >= 5, "the memory API seeds are there");
  printf("1..%d\n", tap_count);
  return tap_failed != 0;
}
