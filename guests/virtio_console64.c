/* virtio_console64: a virtio-console (one port, no multiport) driven with
 * the runtime's virtio driver (guests/rt/virtio.c), in 64-bit long mode.
 *
 * The host (tests/virtio_console_spec.lua) attaches vm:virtio_console at
 * 0xD0002000 (or tells another base) and answers hypercall 0x30 (vtest.h):
 *   0 the mode: 0 echo, 1 burst, 2 a hostile case
 *   1 the base (0: the default)      2 the features (1 indirect, 2 event index)
 *   3 the VM's memory size           4 a read-only page (ROM), if mapped
 *   5 the hostile case (1 to NCASES, the table at the end)
 *   6 the input to expect, in bytes (0: one KNOWN text)
 *   7 the receive buffers' size (0: 64; at most RX_SIZE_MAX)
 *   8 receive buffers offered at once (0: 4; at most RX_BUFS_MAX)
 *   9 the burst's bytes (0: 64 KiB)  10 bytes per transmit request (0: 4 KiB)
 *   11 nonzero: the echo takes any input, not only KNOWN
 * and hypercall 0x31 (the checkpoint) with 1 before it offers receive
 * buffers (the host may make it wait there: buffers come late), 2 and 3
 * around the burst, 4 at the end of a hostile case.
 *
 * Every mode first sets up both queues and sends the greeting through the
 * transmit queue in three requests: one buffer, a chain of two, and one of
 * three (indirect when negotiated):
 *   "virtio_console64: hello through the transmit queue\n"
 *   "split over two descriptors\n"
 *   "one more request, three buffers\n"
 *   echo   offers receive buffers and reads until it has the input it
 *          expects, sends it back through the transmit queue in requests of
 *          at most 4 KiB, and checks that byte i is KNOWN[i % its length]
 *          (unless parameter 11 says any input will do)
 *   burst  sends `burst` bytes of the burst pattern (byte i is byte i % 64
 *          KiB of pattern[]: 32-bit words w * 2654435761, little-endian), in
 *          requests of `chunk` bytes, up to BATCH of them per notification
 *   hostile breaks one of the console's rules (the table at the end), then
 *          resets the device, sets it up again and sends AFTER_RESET; the
 *          cases that need input then read the expected input whole
 *
 * Exits 0 when everything held, else with the number of the first failed
 * check (vtest.h); 254 for an unknown mode or case. */
#include "vtest.h"

#define CONSOLE_BASE 0xd0002000u
#define RECEIVEQ 0
#define TRANSMITQ 1
#define QSIZE 64
#define RX_SIZE_MAX 256
#define RX_BUFS_MAX 16
#define INPUT_MAX 16384
#define PATTERN_BYTES 65536
#define BATCH 8
#define BAD_ADDR 0xdead00000000ull  /* far outside any test VM's memory */
/* A wait for input polls up to this many rounds (a status read each, some
 * microseconds): the host's writer may take a while. */
#define RX_POLL_LIMIT 4000000

enum { ECHO = 0, BURST = 1, HOSTILE = 2 };
enum { P_CASE = 5, P_INPUT = 6, P_RX_SIZE = 7, P_RX_BUFS = 8, P_BURST = 9, P_CHUNK = 10,
       P_ANY = 11 };
enum { CP_BEFORE_RX = 1, CP_BURST_START = 2, CP_BURST_END = 3, CP_CASE_DONE = 4 };

static const char KNOWN[] = "luavmm virtio console input: the quick brown fox jumps over the "
                            "lazy dog 0123456789\n";
static const char AFTER_RESET[] = "after reset: ok\n";

static struct virtio dev;
static struct vq rq, tq;
static int flags;                  /* VQ_INDIRECT when negotiated */
static uint64_t features;
static uint64_t mem_end;

static uint32_t rx_size, rx_bufs;
static uint8_t rx[RX_BUFS_MAX][RX_SIZE_MAX] __attribute__((aligned(16)));
static int slot_of[QSIZE];         /* receive buffer at each descriptor head */
static uint8_t input[INPUT_MAX];
static uint32_t pattern[PATTERN_BYTES / 4] __attribute__((aligned(4096)));

/* ---- set-up and transmission ---- */

static int up(void)
{
  int rc = virtio_init(&dev, features);
  if (rc == 0)
    rc = virtio_queue_init(&dev, &rq, RECEIVEQ, QSIZE);
  if (rc == 0)
    rc = virtio_queue_init(&dev, &tq, TRANSMITQ, QSIZE);
  if (rc == 0)
    rc = virtio_driver_ok(&dev);
  check(rc == 0, "bringing the device up: %s", virtio_strerror(rc));
  flags = dev.features & VIRTIO_F(VIRTIO_F_INDIRECT_DESC) ? VQ_INDIRECT : 0;
  return rc == 0;
}

/* One transmit request: the device uses it whole and writes nothing. */
static int send(const struct vq_buf *bufs, int n, int how, const char *what)
{
  int64_t used = vq_transfer(&tq, bufs, n, how);
  check(used == 0, "%s: used length %lld (%s), expected 0", what, (long long)used,
        used < 0 ? virtio_strerror((int)used) : "written into");
  return used == 0;
}

static int send_text(const char *s, const char *what)
{
  struct vq_buf b = { (uintptr_t)s, strlen(s), 0 };
  return send(&b, 1, 0, what);
}

static void greet(void)
{
  static const char one[] = "virtio_console64: hello through the transmit queue\n";
  static const char two_a[] = "split over ", two_b[] = "two descriptors\n";
  static const char three_a[] = "one more request", three_b[] = ", three ",
                    three_c[] = "buffers\n";
  send_text(one, "the first request");
  struct vq_buf two[] = { { (uintptr_t)two_a, sizeof two_a - 1, 0 },
                          { (uintptr_t)two_b, sizeof two_b - 1, 0 } };
  send(two, 2, 0, "the request over two descriptors");
  struct vq_buf three[] = { { (uintptr_t)three_a, sizeof three_a - 1, 0 },
                            { (uintptr_t)three_b, sizeof three_b - 1, 0 },
                            { (uintptr_t)three_c, sizeof three_c - 1, 0 } };
  send(three, 3, flags, "the request of three buffers");
}

/* ---- reception ---- */

/* Offers receive buffer i; returns its head or an error. */
static int offer_rx(uint32_t i)
{
  struct vq_buf b = { (uintptr_t)rx[i], rx_size, 1 };
  uint16_t old = rq.avail_idx;
  int head = vq_submit(&rq, &b, 1, 0);
  if (head >= 0) {
    slot_of[head] = (int)i;
    vq_kick(&rq, old);
  }
  return head;
}

/* Offers the receive buffers, then takes what comes back until `want`
 * bytes are in input[], offering each buffer again once emptied. */
static int receive(uint32_t want)
{
  uint32_t got = 0;
  for (uint32_t i = 0; i < rx_bufs; i++)
    if (!check(offer_rx(i) >= 0, "offering receive buffer %u", i))
      return 0;
  dev.poll_limit = RX_POLL_LIMIT;
  while (got < want) {
    uint32_t len;
    int id = vq_wait(&rq, &len);
    if (!check(id >= 0, "waiting for input after %u of %u bytes: %s", got, want,
               virtio_strerror(id)))
      break;
    if (!check(id < QSIZE && len <= rx_size, "receive buffer %d came back with %u bytes", id,
               len))
      break;
    uint32_t i = (uint32_t)slot_of[id];
    uint32_t n = len < want - got ? len : want - got;
    memcpy(input + got, rx[i], n);
    got += n;
    if (!check(len == n, "%u bytes more than expected", len - n))
      break;
    if (got < want && !check(offer_rx(i) >= 0, "offering receive buffer %u again", i))
      break;
  }
  dev.poll_limit = 0;
  printf("received %u of %u bytes in buffers of %u\n", got, want, rx_size);
  return got == want;
}

/* Whether input[0, n) is KNOWN repeated. */
static int input_is_known(uint32_t n)
{
  size_t k = sizeof KNOWN - 1;
  for (uint32_t i = 0; i < n; i++)
    if (input[i] != (uint8_t)KNOWN[i % k]) {
      printf("input byte %u is 0x%02x, expected 0x%02x\n", i, input[i], (uint8_t)KNOWN[i % k]);
      return 0;
    }
  return 1;
}

static uint32_t expected_input(void)
{
  uint32_t n = (uint32_t)vtest_param(P_INPUT);
  return n != 0 ? n : (uint32_t)(sizeof KNOWN - 1);
}

/* Receives the expected input whole and checks it. */
static int receive_known(void)
{
  uint32_t want = expected_input();
  return receive(want) && check(input_is_known(want), "the input is not the known text");
}

/* ---- modes ---- */

static void echo(void)
{
  uint32_t want = expected_input();
  if (!check(want <= INPUT_MAX, "input of %u bytes: at most %u", want, INPUT_MAX))
    return;
  hypercall1(VTEST_HC_CHECKPOINT, CP_BEFORE_RX);
  if (!receive(want))
    return;
  for (uint32_t off = 0; off < want; off += 4096) {
    struct vq_buf b = { (uintptr_t)input + off, want - off < 4096 ? want - off : 4096, 0 };
    if (!send(&b, 1, 0, "the echo"))
      return;
  }
  if (vtest_param(P_ANY) == 0)
    check(input_is_known(want), "the input is not the known text");
}

static void burst(void)
{
  uint64_t total = vtest_param(P_BURST), chunk = vtest_param(P_CHUNK);
  if (total == 0)
    total = PATTERN_BYTES;
  if (chunk == 0)
    chunk = 4096;
  if (!check(chunk <= PATTERN_BYTES && PATTERN_BYTES % chunk == 0,
             "chunk %llu does not divide %u", (unsigned long long)chunk, PATTERN_BYTES))
    return;
  for (uint32_t w = 0; w < PATTERN_BYTES / 4; w++)
    pattern[w] = w * 2654435761u;
  hypercall1(VTEST_HC_CHECKPOINT, CP_BURST_START);
  uint64_t sent = 0;
  while (sent < total) {
    /* Up to BATCH requests, one notification, then all of them back. */
    uint16_t old = tq.avail_idx;
    int n = 0;
    for (; n < BATCH && sent < total; n++) {
      uint64_t len = total - sent < chunk ? total - sent : chunk;
      struct vq_buf b = { (uintptr_t)pattern + sent % PATTERN_BYTES, (uint32_t)len, 0 };
      if (!check(vq_submit(&tq, &b, 1, 0) >= 0, "submitting burst request"))
        return;
      sent += len;
    }
    vq_kick(&tq, old);
    for (int i = 0; i < n; i++) {
      uint32_t len;
      int id = vq_wait(&tq, &len);
      if (!check(id >= 0 && len == 0, "burst request: %d (%s), used length %u", id,
                 virtio_strerror(id), len))
        return;
    }
  }
  hypercall1(VTEST_HC_CHECKPOINT, CP_BURST_END);
  printf("burst: %llu bytes in requests of %llu\n", (unsigned long long)sent,
         (unsigned long long)chunk);
}

/* ---- hostile cases ---- */

static uint8_t scratch[64] __attribute__((aligned(16)));

/* The device must have given up: the wait saw NEEDS_RESET. */
static void expect_needs_reset(struct vq *q, const char *what)
{
  uint32_t len;
  dev.poll_limit = RX_POLL_LIMIT;
  int r = vq_wait(q, &len);
  dev.poll_limit = 0;
  check(r == VQ_ENEEDS_RESET, "%s: the wait returned %d (%s), expected NEEDS_RESET", what, r,
        virtio_strerror(r));
  check(virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET, "%s: status 0x%x lacks NEEDS_RESET",
        what, virtio_status(&dev));
  printf("  %s: the device needs a reset (status 0x%x)\n", what, virtio_status(&dev));
}

static void offer_and_kick(struct vq *q, const struct vq_buf *bufs, int n)
{
  vq_submit(q, bufs, n, 0);
  vq_notify(q);
}

/* A transmit chain with a device-writable buffer after its text. */
static void tx_writable(void)
{
  static const char bad[] = "must not appear\n";
  struct vq_buf b[] = { { (uintptr_t)bad, sizeof bad - 1, 0 }, { (uintptr_t)scratch, 16, 1 } };
  offer_and_kick(&tq, b, 2);
  expect_needs_reset(&tq, "a transmit chain with a writable buffer");
}

/* A transmit chain that is nothing but a device-writable buffer. */
static void tx_only_writable(void)
{
  struct vq_buf b = { (uintptr_t)scratch, sizeof scratch, 1 };
  offer_and_kick(&tq, &b, 1);
  expect_needs_reset(&tq, "a transmit chain of a writable buffer");
}

/* A device-readable receive buffer, while input is pending. */
static void rx_readable(void)
{
  struct vq_buf b = { (uintptr_t)scratch, 16, 0 };
  offer_and_kick(&rq, &b, 1);
  expect_needs_reset(&rq, "a device-readable receive buffer");
}

/* A receive chain of a readable buffer, then a writable one. */
static void rx_readable_then_writable(void)
{
  struct vq_buf b[] = { { (uintptr_t)scratch, 16, 0 }, { (uintptr_t)scratch + 16, 16, 1 } };
  offer_and_kick(&rq, b, 2);
  expect_needs_reset(&rq, "a receive chain with a readable buffer first");
}

/* Zero-length buffers: skipped inside a chain, and a chain of nothing
 * comes back used and empty, in both queues; no reset, nothing lost. */
static void zero_length(void)
{
  static const char a[] = "zero", c[] = "-length\n";
  struct vq_buf three[] = { { (uintptr_t)a, 4, 0 }, { (uintptr_t)scratch, 0, 0 },
                            { (uintptr_t)c, sizeof c - 1, 0 } };
  send(three, 3, 0, "a transmit chain with a zero-length buffer");
  struct vq_buf empty = { (uintptr_t)scratch, 0, 0 };
  send(&empty, 1, 0, "a transmit chain of one zero-length buffer");
  /* Receive: an empty buffer first, then real ones; the empty one comes
   * back with nothing in it. */
  struct vq_buf none = { (uintptr_t)scratch, 0, 1 };
  uint16_t old = rq.avail_idx;
  int head = vq_submit(&rq, &none, 1, 0);
  vq_kick(&rq, old);
  uint32_t len = 99;
  dev.poll_limit = RX_POLL_LIMIT;
  int id = vq_wait(&rq, &len);
  dev.poll_limit = 0;
  check(id == head && len == 0, "the empty receive buffer: id %d (%s), length %u", id,
        virtio_strerror(id), len);
  check(!(virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET), "zero-length buffers: a reset");
  receive_known();
}

/* Notifications of queues the device does not have, and a look at them. */
static void notify_queue_2(void)
{
  virtio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, 2);
  virtio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, 3);
  virtio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffff);
  virtio_write(&dev, VIRTIO_MMIO_QUEUE_SEL, 2);
  check(virtio_read(&dev, VIRTIO_MMIO_QUEUE_NUM_MAX) == 0, "queue 2 has a size");
  check(!(virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET), "notify of queue 2: a reset");
  send_text("still here\n", "a request after the notifications");
}

/* A transmit buffer that runs past the end of memory. */
static void tx_outside_memory(void)
{
  struct vq_buf b = { mem_end - 16, 64, 0 };
  offer_and_kick(&tq, &b, 1);
  expect_needs_reset(&tq, "a transmit buffer past the end of memory");
}

/* A receive buffer far outside memory, while input is pending. */
static void rx_outside_memory(void)
{
  struct vq_buf b = { BAD_ADDR, 64, 1 };
  offer_and_kick(&rq, &b, 1);
  expect_needs_reset(&rq, "a receive buffer outside memory");
}

/* A receive buffer in read-only memory, while input is pending. */
static void rx_in_rom(void)
{
  struct vq_buf b = { vtest_param(VTEST_P_ROM), 64, 1 };
  offer_and_kick(&rq, &b, 1);
  expect_needs_reset(&rq, "a receive buffer in ROM");
}

static const struct {
  const char *name;
  void (*run)(void);
  int reads_input;        /* after the reset: the expected input, whole */
} cases[] = {
  { "tx_writable", tx_writable, 0 },                             /* 1 */
  { "tx_only_writable", tx_only_writable, 0 },
  { "rx_readable", rx_readable, 1 },
  { "rx_readable_then_writable", rx_readable_then_writable, 1 },
  { "zero_length", zero_length, 0 },                             /* 5 */
  { "notify_queue_2", notify_queue_2, 0 },
  { "tx_outside_memory", tx_outside_memory, 0 },
  { "rx_outside_memory", rx_outside_memory, 1 },
  { "rx_in_rom", rx_in_rom, 1 },
};

#define NCASES (sizeof cases / sizeof cases[0])

static void hostile(void)
{
  unsigned long n = vtest_param(P_CASE);
  if (n == 0 || n > NCASES) {
    printf("virtio_console64: no case %lu (1 to %u)\n", n, (unsigned)NCASES);
    exit(254);
  }
  printf("virtio_console64: case %lu: %s\n", n, cases[n - 1].name);
  cases[n - 1].run();
  hypercall1(VTEST_HC_CHECKPOINT, CP_CASE_DONE);
  /* Whatever the case did, a reset brings the device back. */
  virtio_reset(&dev);
  if (!up())
    return;
  send_text(AFTER_RESET, "a request after the reset");
  if (cases[n - 1].reads_input)
    receive_known();
}

int main(void)
{
  unsigned long mode = vtest_param(VTEST_P_MODE);
  uintptr_t base = vtest_param(VTEST_P_BASE);
  features = vtest_features();
  mem_end = vtest_param(VTEST_P_MEMORY);
  rx_size = (uint32_t)vtest_param(P_RX_SIZE);
  rx_bufs = (uint32_t)vtest_param(P_RX_BUFS);
  if (base == 0)
    base = CONSOLE_BASE;
  if (rx_size == 0)
    rx_size = 64;
  if (rx_bufs == 0)
    rx_bufs = 4;
  if (mode > HOSTILE || rx_size > RX_SIZE_MAX || rx_bufs > RX_BUFS_MAX) {
    printf("virtio_console64: no mode %lu, or receive buffers %u x %u (at most %u x %u)\n",
           mode, rx_bufs, rx_size, RX_BUFS_MAX, RX_SIZE_MAX);
    return 254;
  }
  printf("virtio_console64: device at 0x%lx\n", (unsigned long)base);
  if (!check(virtio_probe(&dev, base, VIRTIO_ID_CONSOLE) == 0, "no virtio-console at 0x%lx",
             (unsigned long)base))
    return vtest_result("virtio_console64");
  if (!up())
    return vtest_result("virtio_console64");
  check((dev.features & features) == features, "the device did not take the features asked for");
  greet();
  if (mode == ECHO)
    echo();
  else if (mode == BURST)
    burst();
  else
    hostile();
  return vtest_result("virtio_console64");
}
