/* raw_kvm: the floor of the benchmarks, a minimal KVM program that does
 * only what a VMM cannot avoid. bench.lua runs it side by side with luavmm.
 *
 *   raw_kvm exits io|mmio|hypercall GUEST PASSES [--sync]
 *       runs GUEST (exits64.bin) in long mode through one of its loops and
 *       prints "exits N ns T": N exits took T ns of KVM_RUN loop. The loop
 *       does nothing but re-enter, except for hypercalls, which it answers
 *       the way luavmm does: the arguments read from and the result written
 *       to kvm_run's synced registers (KVM_CAP_SYNC_REGS). --sync asks for
 *       the synced registers on every exit of the other loops too, as
 *       luavmm always does (a diagnostic: it shows what that costs).
 *   raw_kvm lifecycle GUEST COUNT MEMORY [--cpuid]
 *       COUNT times: creates a VM with MEMORY bytes of RAM and one vCPU,
 *       loads GUEST (halt16.bin) at 0x8000, runs it in real mode to its
 *       first exit, which must be a hlt, and destroys it all. Prints
 *       "vms N ns T" (after one more, untimed, to warm up). --cpuid also
 *       gives each vCPU KVM's supported CPUID, as luavmm does (a
 *       diagnostic again).
 *
 * Errors go to stderr with exit status 1. Nothing here is shared with
 * luavmm's sources: it must stay an independent floor. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Where exits64 lives and what its loops are given (bench.lua uses the
 * same numbers). */
#define GUEST64_AT 0x100000ull
#define EXIT_MEMORY (2ull << 20)
#define PML4_AT 0x1000ull
#define GDT_AT 0x500ull
#define IO_PORT 0x80
#define MMIO_ADDR 0x10000000ull
#define HYPERCALL_PORT 0xabba
#define HYPERCALL_NR 7
#define EXITS_PER_PASS 8

#define GUEST16_AT 0x8000ull

#define CPUID_MAX 256

static int kvm_fd = -1;
/* The hypercall arguments nobody checks go here, so they are really read. */
static volatile uint64_t unchecked_args;
static int run_size;
static struct kvm_cpuid2 *supported_cpuid;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("raw_kvm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void kvm_open(void)
{
  kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm_fd < 0)
    die("cannot open /dev/kvm: %s", strerror(errno));
  if (ioctl(kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
    die("unexpected KVM API version");
  run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < (int)sizeof(struct kvm_run))
    die("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
}

/* Once per process, as luavmm does when it opens /dev/kvm. */
static void fetch_cpuid(void)
{
  supported_cpuid =
      calloc(1, sizeof *supported_cpuid + CPUID_MAX * sizeof(struct kvm_cpuid_entry2));
  if (supported_cpuid == NULL)
    die("out of memory");
  supported_cpuid->nent = CPUID_MAX;
  if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, supported_cpuid) < 0)
    die("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
}

struct machine {
  int vm;
  int cpu;
  uint8_t *mem;
  uint64_t mem_size;
  struct kvm_run *run;
};

static void machine_create(struct machine *m, uint64_t mem_size)
{
  m->vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
  if (m->vm < 0)
    die("KVM_CREATE_VM: %s", strerror(errno));
  m->mem_size = mem_size;
  m->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m->mem == MAP_FAILED)
    die("mmap of guest memory: %s", strerror(errno));
  struct kvm_userspace_memory_region region = {
    .slot = 0,
    .guest_phys_addr = 0,
    .memory_size = mem_size,
    .userspace_addr = (uintptr_t)m->mem,
  };
  if (ioctl(m->vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
    die("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
  m->cpu = ioctl(m->vm, KVM_CREATE_VCPU, 0);
  if (m->cpu < 0)
    die("KVM_CREATE_VCPU: %s", strerror(errno));
  m->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, m->cpu, 0);
  if (m->run == MAP_FAILED)
    die("mmap of kvm_run: %s", strerror(errno));
}

static void machine_destroy(struct machine *m)
{
  munmap(m->run, (size_t)run_size);
  close(m->cpu);
  close(m->vm);
  munmap(m->mem, m->mem_size);
}

static void set_cpuid(struct machine *m)
{
  if (ioctl(m->cpu, KVM_SET_CPUID2, supported_cpuid) < 0)
    die("KVM_SET_CPUID2: %s", strerror(errno));
}

/* Reads the whole file into guest memory at gpa. */
static void load(struct machine *m, const char *path, uint64_t gpa)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    die("cannot open %s: %s", path, strerror(errno));
  uint64_t at = gpa;
  for (;;) {
    if (at >= m->mem_size)
      die("%s does not fit in guest memory at 0x%llx", path, (unsigned long long)gpa);
    ssize_t n = read(fd, m->mem + at, m->mem_size - at);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      die("cannot read %s: %s", path, strerror(errno));
    if (n == 0)
      break;
    at += (uint64_t)n;
  }
  close(fd);
}

/* ---- exits ---- */

/* Identity page tables for the first GiB (2 MiB pages) and a flat GDT. */
static void build_long_mode(struct machine *m)
{
  uint64_t *pml4 = (uint64_t *)(m->mem + PML4_AT);
  uint64_t *pdpt = (uint64_t *)(m->mem + PML4_AT + 0x1000);
  uint64_t *pd = (uint64_t *)(m->mem + PML4_AT + 0x2000);
  pml4[0] = (PML4_AT + 0x1000) | 3;
  pdpt[0] = (PML4_AT + 0x2000) | 3;
  for (uint64_t i = 0; i < 512; i++)
    pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
  uint64_t *gdt = (uint64_t *)(m->mem + GDT_AT);
  gdt[0] = 0;
  gdt[1] = 0x00af9b000000ffffull; /* 64-bit code, selector 0x08 */
  gdt[2] = 0x00cf93000000ffffull; /* data, selector 0x10 */

  struct kvm_sregs s;
  if (ioctl(m->cpu, KVM_GET_SREGS, &s) < 0)
    die("KVM_GET_SREGS: %s", strerror(errno));
  struct kvm_segment code = {
    .base = 0, .limit = 0xffffffff, .selector = 0x08, .type = 0xb, .present = 1,
    .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
  };
  struct kvm_segment data = code;
  data.selector = 0x10;
  data.type = 0x3;
  data.l = 0;
  data.db = 1;
  s.cs = code;
  s.ds = s.es = s.fs = s.gs = s.ss = data;
  s.tr = (struct kvm_segment){ .limit = 0x67, .type = 0xb, .present = 1 };
  s.gdt.base = GDT_AT;
  s.gdt.limit = 3 * 8 - 1;
  s.cr3 = PML4_AT;
  s.cr4 = 0x20 | 0x200 | 0x400;                   /* PAE, OSFXSR, OSXMMEXCPT */
  s.cr0 = 0x1 | 0x2 | 0x10 | 0x20 | 0x10000 | 0x80000000u; /* PE MP ET NE WP PG */
  s.efer = 0x100 | 0x400;                          /* LME, LMA */
  if (ioctl(m->cpu, KVM_SET_SREGS, &s) < 0)
    die("KVM_SET_SREGS (long mode): %s", strerror(errno));
}

enum loop { LOOP_IO, LOOP_MMIO, LOOP_HYPERCALL };

/* What luavmm's hypercall path does: check the port, read the number and
 * the six arguments from the synced registers, write the result to rax and
 * mark the registers dirty so KVM loads them on the next entry. */
static uint64_t answer_hypercall(struct kvm_run *run)
{
  struct kvm_regs *r = &run->s.regs.regs;
  if (run->io.port != HYPERCALL_PORT || run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4)
    die("unexpected I/O exit at port 0x%x", run->io.port);
  uint32_t nr;
  memcpy(&nr, (uint8_t *)run + run->io.data_offset, sizeof nr);
  if (nr != HYPERCALL_NR)
    die("unexpected hypercall %u", nr);
  /* rcx is also the guest's loop counter: only rdi, rsi and r8 (the
   * number) stay the same on every call. */
  unchecked_args = r->rcx ^ r->r10 ^ r->r9;
  uint64_t args = r->rdi + r->rsi + r->r8;
  r->rax = 0;
  run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
  return args;
}

static int cmd_exits(const char *kind, const char *path, uint64_t passes, int sync)
{
  static const uint64_t entry[] = { [LOOP_IO] = 0x000, [LOOP_MMIO] = 0x100,
                                    [LOOP_HYPERCALL] = 0x200 };
  enum loop loop;
  if (strcmp(kind, "io") == 0)
    loop = LOOP_IO;
  else if (strcmp(kind, "mmio") == 0)
    loop = LOOP_MMIO;
  else if (strcmp(kind, "hypercall") == 0)
    loop = LOOP_HYPERCALL;
  else
    die("unknown exit kind '%s' (io, mmio or hypercall)", kind);

  kvm_open();
  fetch_cpuid();
  struct machine m;
  machine_create(&m, EXIT_MEMORY);
  set_cpuid(&m); /* long mode needs the LM bit in the guest's CPUID */
  load(&m, path, GUEST64_AT);
  build_long_mode(&m);
  struct kvm_regs regs = {
    .rip = GUEST64_AT + entry[loop],
    .rflags = 2,
    .rsp = 0x80000,
    .rcx = passes,
    .rdx = loop == LOOP_HYPERCALL ? HYPERCALL_PORT : IO_PORT,
    .rbx = MMIO_ADDR,
    .r8 = HYPERCALL_NR,
    .rdi = 1,
    .rsi = 2,
  };
  if (ioctl(m.cpu, KVM_SET_REGS, &regs) < 0)
    die("KVM_SET_REGS: %s", strerror(errno));
  if (loop == LOOP_HYPERCALL || sync)
    m.run->kvm_valid_regs = KVM_SYNC_X86_REGS;

  struct kvm_run *run = m.run;
  uint64_t exits = 0, sink = 0;
  uint64_t t0 = now_ns();
  for (;;) {
    if (ioctl(m.cpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      die("KVM_RUN: %s", strerror(errno));
    }
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
      exits++;
      if (loop == LOOP_HYPERCALL)
        sink += answer_hypercall(run);
      continue;
    case KVM_EXIT_MMIO:
      exits++;
      continue;
    case KVM_EXIT_HLT:
      break;
    default:
      die("unexpected exit reason %u", run->exit_reason);
    }
    break;
  }
  uint64_t ns = now_ns() - t0;
  if (exits != passes * EXITS_PER_PASS)
    die("%llu exits, expected %llu", (unsigned long long)exits,
        (unsigned long long)(passes * EXITS_PER_PASS));
  if (loop == LOOP_HYPERCALL && sink != exits * (1 + 2 + HYPERCALL_NR))
    die("hypercall arguments were not what the guest was given");
  machine_destroy(&m);
  printf("exits %llu ns %llu\n", (unsigned long long)exits, (unsigned long long)ns);
  return 0;
}

/* ---- lifecycle ---- */

static void run_to_hlt(const char *path, uint64_t mem_size, int cpuid)
{
  struct machine m;
  machine_create(&m, mem_size);
  if (cpuid)
    set_cpuid(&m);
  load(&m, path, GUEST16_AT);
  struct kvm_sregs s;
  if (ioctl(m.cpu, KVM_GET_SREGS, &s) < 0)
    die("KVM_GET_SREGS: %s", strerror(errno));
  s.cs.selector = 0;
  s.cs.base = 0;
  if (ioctl(m.cpu, KVM_SET_SREGS, &s) < 0)
    die("KVM_SET_SREGS: %s", strerror(errno));
  struct kvm_regs regs = { .rip = GUEST16_AT, .rflags = 2 };
  if (ioctl(m.cpu, KVM_SET_REGS, &regs) < 0)
    die("KVM_SET_REGS: %s", strerror(errno));
  while (ioctl(m.cpu, KVM_RUN, 0) < 0)
    if (errno != EINTR && errno != EAGAIN)
      die("KVM_RUN: %s", strerror(errno));
  if (m.run->exit_reason != KVM_EXIT_HLT)
    die("the first exit is %u, not KVM_EXIT_HLT", m.run->exit_reason);
  machine_destroy(&m);
}

static int cmd_lifecycle(const char *path, uint64_t count, uint64_t mem_size, int cpuid)
{
  kvm_open();
  if (cpuid)
    fetch_cpuid();
  /* One untimed VM first: a process's first VM pays for set-up that
   * luavmm, measured in a process that has made VMs already, does not. */
  run_to_hlt(path, mem_size, cpuid);
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < count; i++)
    run_to_hlt(path, mem_size, cpuid);
  uint64_t ns = now_ns() - t0;
  printf("vms %llu ns %llu\n", (unsigned long long)count, (unsigned long long)ns);
  return 0;
}

static uint64_t number(const char *s, const char *what)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno != 0 || end == s || *end != '\0' || v == 0)
    die("%s must be a positive integer, got '%s'", what, s);
  return v;
}

static void usage(void)
{
  fputs("usage: raw_kvm exits io|mmio|hypercall GUEST PASSES [--sync]\n"
        "       raw_kvm lifecycle GUEST COUNT MEMORY [--cpuid]\n", stderr);
  exit(2);
}

int main(int argc, char **argv)
{
  if (argc >= 5 && strcmp(argv[1], "exits") == 0) {
    int sync = argc == 6 && strcmp(argv[5], "--sync") == 0;
    if (argc > 6 || (argc == 6 && !sync))
      usage();
    return cmd_exits(argv[2], argv[3], number(argv[4], "PASSES"), sync);
  }
  if (argc >= 5 && strcmp(argv[1], "lifecycle") == 0) {
    int cpuid = argc == 6 && strcmp(argv[5], "--cpuid") == 0;
    if (argc > 6 || (argc == 6 && !cpuid))
      usage();
    return cmd_lifecycle(argv[2], number(argv[3], "COUNT"), number(argv[4], "MEMORY"), cpuid);
  }
  usage();
}
