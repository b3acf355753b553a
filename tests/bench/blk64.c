/* blk64: the guest of the virtio-blk benchmark (bench.lua, section 5), a
 * 64-bit C guest on the runtime's virtio driver (guests/rt/virtio.c).
 *
 * Why user mode: on an emulating hypervisor (KVM nested on PVM) guest
 * kernel-mode code runs at about a microsecond per instruction, while
 * user-mode code runs natively; a request loop in kernel mode would
 * measure the emulator (some 100 us of driver code per request), not the
 * VMM. So the kernel part (here, at CPL 0) brings the device up, builds
 * page tables, a GDT with user segments and a TSS (whose RSP0 is where
 * interrupts and faults from user mode land), routes the device's
 * interrupt through the IOAPIC (<irq.h>, the VM has the in-kernel
 * irqchip), and then drops to CPL 3, where the requests are made with the
 * same driver functions. A user-mode wait can go two ways (parameter 1):
 *
 *   irq   as a kernel's driver does: a request is complete when the
 *         device's interrupt has come (its handler reads and acknowledges
 *         InterruptStatus: two exits) and its used entry is there; until
 *         then the driver sleeps. User mode cannot
 *         halt, so it asks the kernel: PVM does not deliver `int n` from
 *         user mode, but it does deliver the #GP of a privileged
 *         instruction, so user mode executes `hlt` and the #GP handler
 *         sleeps for it (sti; hlt; cli) and returns past the instruction.
 *         A request costs the notification (an exit, or nothing with an
 *         ioeventfd) and the interrupt.
 *   poll  the driver spins on the used ring with interrupts off, and tells
 *         the device it wants none (VIRTQ_AVAIL_F_NO_INTERRUPT): the
 *         notification is the only cost the VMM adds.
 *
 * Each phase is N sequential requests of one size in one direction (reads
 * or writes), one in flight at a time: header, one data buffer, status;
 * the sector advances and wraps at the end of the disk. Writes send what
 * the buffer holds (zeroes, or what the last read put there).
 *
 * Host interface. Hypercall 0x40 (i), in kernel mode before the requests,
 * answers parameter i: 0 the device's base, 1 the wait (0 irq, 1 poll),
 * 2 the interrupt line, 3 the disk's size in sectors, 4 the number of
 * phases, then for phase k at 8 + 4k: the direction (0 read, 1 write), the
 * request size in bytes (a multiple of 512, at most 64 KiB), the count.
 * User mode reports through a 4-byte MMIO write to MARK (0xd0100000: user
 * mode has no port I/O here): 2k just before phase k's first request,
 * 2k + 1 just after its last completed, then 0xffff when all is done; the
 * host stops the VM at each, so that its clock and exit statistics cover
 * exactly a phase. A failure is reported as 0x10000 | (2 + k) (or 1 when
 * the device cannot be brought up), printed first from kernel mode when
 * it can be. */
#include <irq.h>
#include <luavmm.h>
#include <virtio.h>

#define HC_PARAM 0x40
#define MARK 0xd0100000ul
#define MARK_DONE 0xffff
#define MARK_FAILED 0x10000
#define P_BASE 0
#define P_WAIT 1
#define P_IRQ 2
#define P_SECTORS 3
#define P_PHASES 4
#define P_PHASE(k, i) (8 + 4 * (k) + (i))
#define MAX_PHASES 8
#define MAX_BYTES (64 * 1024)
#define QUEUE_SIZE 16
#define GP_VECTOR 13
#define AVAIL_F_NO_INTERRUPT 1

#define SEL_KERNEL_CODE 0x08
#define SEL_KERNEL_DATA 0x10
#define SEL_USER_DATA 0x18
#define SEL_USER_CODE 0x20
#define SEL_TSS 0x28

static struct virtio dev;
static struct vq q;
static struct virtio_blk_req hdr;
static volatile uint8_t status;
static uint8_t buf[MAX_BYTES] __attribute__((aligned(4096)));

static int poll_waits;
static unsigned long sectors, nphases;
static struct {
  uint32_t type, bytes;
  unsigned long count;
} phases[MAX_PHASES];

/* ---- kernel mode: set-up ---- */

struct __attribute__((packed)) tss {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap;
};

/* Page tables of our own for the first 4 GiB (2 MiB pages), user
 * accessible: user mode reaches the rings, its buffers and the device. */
static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[4][512] __attribute__((aligned(4096)));
static uint64_t gdt[7];
static struct tss tss;
static uint8_t kernel_stack[16384] __attribute__((aligned(16)));
static uint8_t user_stack[16384] __attribute__((aligned(16)));

#define PTE_PRESENT_RW_USER 0x7
#define PDE_2M 0x80

static void user_page_tables(void)
{
  for (uint64_t g = 0; g < 4; g++) {
    for (uint64_t i = 0; i < 512; i++)
      pd[g][i] = (g << 30 | i << 21) | PTE_PRESENT_RW_USER | PDE_2M;
    pdpt[g] = (uintptr_t)pd[g] | PTE_PRESENT_RW_USER;
  }
  pml4[0] = (uintptr_t)pdpt | PTE_PRESENT_RW_USER;
  __asm__ volatile("mov %0, %%cr3" : : "r"((uintptr_t)pml4) : "memory");
}

/* Flat 64-bit code and data for kernel and user, and the TSS, whose RSP0
 * is where interrupts and faults from user mode land. */
static void segments(void)
{
  gdt[1] = 0x00209a0000000000ull;          /* kernel code: present, 64-bit */
  gdt[2] = 0x0000920000000000ull;          /* kernel data */
  gdt[3] = 0x0000f20000000000ull;          /* user data: DPL 3 */
  gdt[4] = 0x0020fa0000000000ull;          /* user code: DPL 3, 64-bit */
  uint64_t base = (uintptr_t)&tss, limit = sizeof tss - 1;
  tss.rsp[0] = (uintptr_t)kernel_stack + sizeof kernel_stack;
  tss.iomap = sizeof tss;                  /* no I/O bitmap */
  gdt[5] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 |
           ((limit >> 16) & 0xf) << 48 | (base >> 24 & 0xff) << 56;
  gdt[6] = base >> 32;
  struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
  } gdtr = { sizeof gdt - 1, (uintptr_t)gdt };
  __asm__ volatile("lgdt %0\n"
                   "pushq %1\n"
                   "leaq 1f(%%rip), %%rax\n"
                   "pushq %%rax\n"
                   "lretq\n"
                   "1: mov %2, %%eax\n"
                   "mov %%eax, %%ds\n"
                   "mov %%eax, %%es\n"
                   "mov %%eax, %%ss\n"
                   "ltr %w3\n"
                   :
                   : "m"(gdtr), "i"(SEL_KERNEL_CODE), "i"(SEL_KERNEL_DATA), "r"(SEL_TSS)
                   : "rax", "memory");
}

/* The kernel's half of a user-mode wait, the #GP handler: when the fault
 * is a user-mode hlt, sleep until an interrupt and return past it. Any
 * other #GP is a bug: it is reported (MARK_FAILED | 0xffff) and the CPU
 * stops there. */
void gp_gate(void);
__asm__(".pushsection .text\n"
        "gp_gate:\n"
        "  push %rax\n"
        "  mov 16(%rsp), %rax\n"          /* the faulting rip, past rax and the error code */
        "  cmpb $0xf4, (%rax)\n"
        "  jne 1f\n"
        "  addq $1, 16(%rsp)\n"
        "  pop %rax\n"
        "  add $8, %rsp\n"
        "  sti\n"
        "  hlt\n"
        "  cli\n"
        "  iretq\n"
        "1:\n"
        "  mov $0xd0100000, %eax\n"
        "  movl $0x1ffff, (%rax)\n"
        "2:\n"
        "  cli\n"
        "  hlt\n"
        "  jmp 2b\n"
        ".popsection\n");

static void on_interrupt(void *arg)
{
  virtio_interrupt(arg);
}

static unsigned long param(unsigned long i)
{
  return hypercall1(HC_PARAM, i);
}

/* ---- user mode: the requests ---- */

static void mark(uint32_t v)
{
  mmio_write32(MARK, v);
}

/* Waits for the request in flight: its used entry and, unless polling,
 * an interrupt since `irqs` (the count before the notification). */
static int take(uint32_t *len, unsigned long irqs)
{
  for (;;) {
    int used = *(volatile uint16_t *)&q.used.idx != q.last_used;
    if (used && (poll_waits || dev.interrupts != irqs))
      return vq_wait(&q, len); /* it is there: vq_wait does not poll the device */
    if (poll_waits)
      __asm__ volatile("pause");
    else
      __asm__ volatile("hlt" : : : "memory"); /* the kernel sleeps for us: gp_gate */
  }
}

static int phase(unsigned long k)
{
  uint32_t type = phases[k].type, bytes = phases[k].bytes;
  uint32_t step = bytes / VIRTIO_BLK_SECTOR;
  struct vq_buf bufs[3] = {
    { (uintptr_t)&hdr, sizeof hdr, 0 },
    { (uintptr_t)buf, bytes, type == VIRTIO_BLK_T_IN },
    { (uintptr_t)&status, 1, 1 },
  };
  uint64_t sector = 0;
  mark((uint32_t)(2 * k));
  for (unsigned long i = 0; i < phases[k].count; i++) {
    if (sector + step > sectors)
      sector = 0;
    hdr = (struct virtio_blk_req){ type, 0, sector };
    status = 0xee;
    uint16_t old = q.avail_idx;
    unsigned long irqs = dev.interrupts;
    int head = vq_submit(&q, bufs, 3, 0);
    if (head < 0)
      return -1;
    vq_kick(&q, old);
    uint32_t len;
    int id = take(&len, irqs);
    if (id != head || len != (type == VIRTIO_BLK_T_IN ? bytes + 1 : 1) ||
        status != VIRTIO_BLK_S_OK)
      return -1;
    sector += step;
  }
  mark((uint32_t)(2 * k + 1));
  return 0;
}

static void user_main(void)
{
  for (unsigned long k = 0; k < nphases; k++)
    if (phase(k) < 0) {
      mark(MARK_FAILED | (uint32_t)(2 + k));
      for (;;)
        ;
    }
  mark(MARK_DONE);
  for (;;)
    ;
}

/* ---- kernel mode: main ---- */

int main(void)
{
  uintptr_t base = param(P_BASE);
  poll_waits = param(P_WAIT) != 0;
  unsigned long line = param(P_IRQ);
  sectors = param(P_SECTORS);
  nphases = param(P_PHASES);
  if (nphases > MAX_PHASES)
    nphases = MAX_PHASES;
  for (unsigned long k = 0; k < nphases; k++) {
    phases[k].type = param(P_PHASE(k, 0)) ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
    phases[k].bytes = (uint32_t)param(P_PHASE(k, 1));
    phases[k].count = param(P_PHASE(k, 2));
    uint32_t bytes = phases[k].bytes;
    if (bytes == 0 || bytes > MAX_BYTES || bytes % VIRTIO_BLK_SECTOR ||
        bytes / VIRTIO_BLK_SECTOR > sectors) {
      printf("blk64: phase %lu: a request of %u bytes does not fit\n", k, bytes);
      mark(MARK_FAILED | (uint32_t)(2 + k));
      return 2 + (int)k;
    }
  }

  user_page_tables();
  segments();
  irq_init();
  irq_set_gate(GP_VECTOR, gp_gate, 0);
  int rc = virtio_probe(&dev, base, VIRTIO_ID_BLOCK);
  if (rc == 0)
    rc = virtio_init(&dev, 0);
  if (rc == 0)
    rc = virtio_queue_init(&dev, &q, 0, QUEUE_SIZE);
  if (rc == 0 && !poll_waits)
    rc = irq_route((unsigned)line, on_interrupt, &dev) == 0 ? 0 : VIRTIO_EINVAL;
  /* A polling driver tells the device it wants no interrupts
   * (VIRTQ_AVAIL_F_NO_INTERRUPT), as such drivers do. */
  if (poll_waits)
    *(volatile uint16_t *)&q.avail.flags = AVAIL_F_NO_INTERRUPT;
  if (rc == 0)
    rc = virtio_driver_ok(&dev);
  if (rc != 0) {
    printf("blk64: no virtio-blk device at 0x%lx with line %lu: %s\n", (unsigned long)base, line,
           virtio_strerror(rc));
    mark(MARK_FAILED | 1);
    return 1;
  }

  /* To user mode, interrupts off (they come only inside gp_gate). */
  uint64_t rsp = (uintptr_t)user_stack + sizeof user_stack - 8;
  __asm__ volatile("pushq %0\n"
                   "pushq %1\n"
                   "pushq $2\n"
                   "pushq %2\n"
                   "pushq %3\n"
                   "iretq\n"
                   :
                   : "i"(SEL_USER_DATA | 3), "r"(rsp), "i"(SEL_USER_CODE | 3),
                     "r"((uintptr_t)user_main)
                   : "memory");
  return 0; /* not reached */
}
