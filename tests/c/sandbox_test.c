/* The seccomp sandbox (src/sandbox.c) from the inside: a C device defined
 * here, on port 0x500 of a tiny real-mode guest, makes a system call of the
 * guest's choosing on its vCPU thread, as a C device with a bug a guest
 * found could. Run on a sandboxed thread, the calls off the allow-list
 * fail with EPERM and the run goes on to the guest's hlt; the same guest
 * run unsandboxed makes them succeed, so the refusals are the filter's
 * doing; and the thread that set the run up is not filtered. (The specs,
 * tests/sandbox_spec.lua, cover the Lua side: options, refusals, guests
 * with C devices.) The probe lives in this test, not in luavmm: nothing a
 * script can reach makes a forbidden call on purpose. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/bus.h"
#include "../../src/err.h"
#include "../../src/kvm.h"
#include "../../src/sandbox.h"
#include "../../src/vcpu.h"
#include "../../src/vm.h"
#include "tap.h"

#define PROBE_PORT 0x500
#define CODE_AT 0x1000

enum probe { P_OPEN, P_WRITE, P_SOCKET, P_MMAP_EXEC, P_KVM_IOCTL, P_MMAP, P_COUNT };

static const char *const probe_names[P_COUNT] = {
  "open(\"/dev/null\")", "write() to a pipe", "socket(AF_UNIX)", "mmap(PROT_EXEC)",
  "ioctl(/dev/kvm, KVM_GET_API_VERSION)", "mmap(anonymous, read/write)",
};

static struct kvm kvm;
static int pipe_fds[2];
static int result[P_COUNT]; /* 0 when the call worked, else its errno */
static int calls;

/* The probe: the guest writes which system call to make. */
static int probe(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data, uint32_t size,
                 bool is_write)
{
  (void)opaque;
  (void)c;
  (void)offset;
  (void)size;
  if (!is_write || data[0] >= P_COUNT)
    return 0;
  int rc = -1;
  switch (data[0]) {
  case P_OPEN:
    rc = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (rc >= 0)
      close(rc);
    break;
  case P_WRITE:
    rc = (int)write(pipe_fds[1], "x", 1);
    break;
  case P_SOCKET:
    rc = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rc >= 0)
      close(rc);
    break;
  case P_MMAP_EXEC:
  case P_MMAP: {
    int prot = PROT_READ | (data[0] == P_MMAP_EXEC ? PROT_EXEC : PROT_WRITE);
    void *p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    rc = p == MAP_FAILED ? -1 : 0;
    if (p != MAP_FAILED)
      munmap(p, 4096);
    break;
  }
  case P_KVM_IOCTL:
    rc = ioctl(kvm.fd, KVM_GET_API_VERSION, 0);
    break;
  }
  result[data[0]] = rc < 0 ? errno : 0;
  calls++;
  return 0;
}

/* Real mode at 0:CODE_AT: one `out` to the probe per system call, then hlt. */
static struct vm *new_vm(void)
{
  char err[ERR_LEN];
  struct vm *vm;
  struct vm_config cfg = { .ncpus = 1 };
  if (vm_create(&vm, &kvm, &cfg, err) < 0 || mem_map(&vm->mem, vm->fd, 0, 0x10000, 0, "ram", err) < 0 ||
      bus_add(&vm->pio, PROBE_PORT, 1, probe, NULL, "probe", 0, err) < 0) {
    printf("Bail out! %s\n", err);
    exit(1);
  }
  uint8_t code[64];
  size_t n = 0;
  code[n++] = 0xba; /* mov dx, PROBE_PORT */
  code[n++] = PROBE_PORT & 0xff;
  code[n++] = PROBE_PORT >> 8;
  for (int p = 0; p < P_COUNT; p++) {
    code[n++] = 0xb0; /* mov al, p */
    code[n++] = (uint8_t)p;
    code[n++] = 0xee; /* out dx, al */
  }
  code[n++] = 0xf4; /* hlt */
  mem_write(&vm->mem, CODE_AT, code, n);
  struct vcpu *c = vm->cpus[0];
  struct kvm_sregs s;
  if (vcpu_get_sregs(c, &s) < 0) {
    printf("Bail out! KVM_GET_SREGS: %s\n", strerror(errno));
    exit(1);
  }
  s.cs.selector = 0;
  s.cs.base = 0;
  if (vcpu_set_sregs(c, &s) < 0) {
    printf("Bail out! KVM_SET_SREGS: %s\n", strerror(errno));
    exit(1);
  }
  vcpu_regs(c)->rip = CODE_AT;
  vcpu_regs(c)->rflags = 2;
  vcpu_regs_changed(c);
  return vm;
}

/* Runs the guest on a vCPU thread, sandboxed or not; returns the stop. */
static int run(bool sandboxed)
{
  char err[ERR_LEN];
  struct vm *vm = new_vm();
  memset(result, -1, sizeof result);
  calls = 0;
  if (sandboxed && sandbox_prepare(vm, err) < 0) {
    printf("Bail out! %s\n", err);
    exit(1);
  }
  vm->sandbox_on = sandboxed;
  if (vm_start(vm, err) < 0) {
    printf("Bail out! %s\n", err);
    exit(1);
  }
  vm_wait(vm, 10);
  vm_join(vm);
  int reason = vm->cpus[0]->stop.reason;
  if (vm->cpus[0]->stop.message != NULL)
    printf("# %s\n", vm->cpus[0]->stop.message);
  vm_destroy(vm);
  return reason;
}

int main(void)
{
  char err[ERR_LEN];
  if (vcpu_signals_init() < 0 || kvm_open(&kvm, "/dev/kvm", err) < 0) {
    printf("Bail out! %s\n", err);
    return 1;
  }
  if (pipe(pipe_fds) < 0) {
    printf("Bail out! pipe: %s\n", strerror(errno));
    return 1;
  }

  CHECK(run(false) == VCPU_HLT && calls == P_COUNT, "unsandboxed, the guest runs to hlt");
  for (int p = 0; p < P_COUNT; p++)
    CHECK(result[p] == 0, "unsandboxed, the device's %s works (%s)", probe_names[p],
          result[p] ? strerror(result[p]) : "ok");

  CHECK(run(true) == VCPU_HLT && calls == P_COUNT,
        "sandboxed, the guest still runs to hlt past the refused calls");
  CHECK(result[P_OPEN] == EPERM, "sandboxed, the device's open() fails with EPERM (%s)",
        strerror(result[P_OPEN]));
  CHECK(result[P_SOCKET] == EPERM, "sandboxed, socket() fails with EPERM (%s)",
        strerror(result[P_SOCKET]));
  CHECK(result[P_MMAP_EXEC] == EPERM, "sandboxed, mapping executable memory fails with EPERM (%s)",
        strerror(result[P_MMAP_EXEC]));
  CHECK(result[P_KVM_IOCTL] == EPERM,
        "sandboxed, an ioctl on another fd than the VM's own fails with EPERM (%s)",
        strerror(result[P_KVM_IOCTL]));
  CHECK(result[P_WRITE] == 0, "sandboxed, write() to an fd opened before the run works");
  CHECK(result[P_MMAP] == 0, "sandboxed, anonymous read/write memory can be mapped (malloc)");

  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0, "the thread that set the run up is not filtered");
  if (fd >= 0)
    close(fd);

  /* A second sandboxed run of a fresh VM: new threads, new filters. */
  CHECK(run(true) == VCPU_HLT && result[P_OPEN] == EPERM, "a second sandboxed run is filtered too");

  close(pipe_fds[0]);
  close(pipe_fds[1]);
  kvm_close(&kvm);
  printf("1..%d\n", tap_count);
  return tap_failed != 0;
}
