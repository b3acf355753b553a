/* mmio64: drives the Lua device of scripts/mmio-device.lua at MMIO
 * 0xD0000000 and checks what it sees. Exits 0 when everything matched,
 * otherwise with the number of the first check that failed.
 *
 * Registers, 32 bits each:
 *   0x00 ID       read-only, 0x4C554131 ("LUA1")
 *   0x04 CTRL     write 1: reset (COUNT = 0, CRC restarts)
 *   0x08 COUNT    read-only: bytes pushed since the reset
 *   0x0C DATA     write-only: push one byte
 *   0x10 CRC      read-only: CRC-32 (IEEE, as zlib's crc32) of those bytes
 *   0x14 SCRATCH  read/write
 * Writes to read-only registers are ignored; reads of write-only ones and
 * of unknown offsets return 0.
 */
#include <luavmm.h>

#define DEV 0xD0000000u
enum { ID = 0x00, CTRL = 0x04, COUNT = 0x08, DATA = 0x0C, CRC = 0x10, SCRATCH = 0x14 };

#define DEV_ID 0x4C554131u
#define FOX_CRC 0x414FA339u /* crc32 of the sentence, as zlib computes it */

static const char fox[] = "The quick brown fox jumps over the lazy dog";

static uint32_t reg_read(unsigned reg)
{
  return mmio_read32(DEV + reg);
}

static void reg_write(unsigned reg, uint32_t v)
{
  mmio_write32(DEV + reg, v);
}

/* CRC-32, reflected polynomial 0xEDB88320, bit by bit: no table to build. */
static uint32_t crc32(const void *data, size_t len)
{
  const unsigned char *p = data;
  uint32_t crc = 0xffffffff;
  while (len--) {
    crc ^= *p++;
    for (int i = 0; i < 8; i++)
      crc = crc & 1 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

static int first_failure;

/* Check number n: the first one to fail becomes the exit code. */
static void check(int n, int ok, const char *what)
{
  if (!ok) {
    printf("  check %d failed: %s\n", n, what);
    if (first_failure == 0)
      first_failure = n;
  }
}

int main(void)
{
  uint32_t id = reg_read(ID);
  printf("id      = 0x%08x \"%c%c%c%c\"\n", id, (int)(id >> 24 & 0xff), (int)(id >> 16 & 0xff),
         (int)(id >> 8 & 0xff), (int)(id & 0xff));
  check(1, id == DEV_ID, "ID should read 0x4C554131");
  reg_write(ID, 0x12345678);
  check(2, reg_read(ID) == DEV_ID, "ID is read-only");

  reg_write(SCRATCH, 0xDEADBEEF);
  uint32_t scratch = reg_read(SCRATCH);
  printf("scratch = 0x%08x\n", scratch);
  check(3, scratch == 0xDEADBEEF, "SCRATCH should read back 0xDEADBEEF");
  check(4, reg_read(DATA) == 0, "DATA is write-only and reads 0");

  /* Some bytes first, so that the reset has something to clear. */
  reg_write(DATA, 'x');
  reg_write(DATA, 'y');
  check(5, reg_read(COUNT) == 2, "COUNT should be 2 after two bytes");
  reg_write(CTRL, 1);
  check(6, reg_read(COUNT) == 0 && reg_read(CRC) == 0, "COUNT and CRC should be 0 after a reset");

  size_t len = strlen(fox);
  for (size_t i = 0; i < len; i++)
    reg_write(DATA, (unsigned char)fox[i]);
  uint32_t count = reg_read(COUNT);
  uint32_t dev_crc = reg_read(CRC);
  uint32_t our_crc = crc32(fox, len);
  printf("count   = %u\n", count);
  printf("crc     = 0x%08x (device), 0x%08x (guest)\n", dev_crc, our_crc);
  check(7, count == len, "COUNT should be the number of bytes pushed");
  check(8, our_crc == FOX_CRC, "the guest's own CRC-32 is wrong");
  check(9, dev_crc == our_crc, "the device's CRC differs from the guest's");

  if (first_failure)
    printf("mmio64: FAILED (first failed check: %d)\n", first_failure);
  else
    puts("mmio64: everything matched");
  return first_failure;
}
