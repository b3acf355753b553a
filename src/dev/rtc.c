/* CMOS memory and the MC146818 real-time clock at ports 0x70 (index, with
 * the NMI mask in bit 7) and 0x71 (data): 128 bytes, of which the clock's
 * registers read the time of day, in BCD or binary and in 24- or 12-hour
 * form as register B says.
 *
 * The clock is the host's (or a fixed time, for tests) plus an offset that
 * a guest's writes to the time registers set, so `hwclock --systohc` works
 * without touching the host. Register A never shows an update in progress,
 * register D always reports valid RAM and battery. Periodic, alarm and
 * update-ended interrupts are not emulated: register B's enable bits are
 * stored and do nothing, register C reads 0, IRQ 8 stays low. The alarm
 * registers and every other byte are plain storage; the weekday is
 * computed from the date. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dev.h"
#include "../err.h"
#include "../vm.h"

#define RTC_INDEX 0x70

#define REG_SEC 0x00
#define REG_MIN 0x02
#define REG_HOUR 0x04
#define REG_WDAY 0x06
#define REG_MDAY 0x07
#define REG_MONTH 0x08
#define REG_YEAR 0x09
#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_D 0x0d
#define REG_CENTURY 0x32

#define A_UIP 0x80
#define B_24H 0x02
#define B_BINARY 0x04 /* DM: binary, not BCD */
#define D_VRT 0x80
#define HOUR_PM 0x80

/* 9999-12-31 23:59:59 UTC: beyond it the century register cannot say. */
#define RTC_MAX_TIME 253402300799LL

struct rtc {
  struct device dev;
  pthread_mutex_t lock;
  uint8_t index;
  bool nmi_masked;       /* remembered, and nothing else: no NMIs here */
  uint8_t cmos[128];
  bool fixed;
  int64_t epoch;
  bool utc;
  int64_t offset;        /* guest clock minus the base clock, in seconds */
};

static int64_t base_time(const struct rtc *r)
{
  return r->fixed ? r->epoch : (int64_t)time(NULL);
}

/* The guest's time of day, broken down. */
static void now_tm(const struct rtc *r, struct tm *tm)
{
  time_t t = (time_t)(base_time(r) + r->offset);
  if ((r->utc ? gmtime_r(&t, tm) : localtime_r(&t, tm)) == NULL)
    memset(tm, 0, sizeof *tm);
}

static uint8_t encode(const struct rtc *r, int v)
{
  if (v < 0)
    v = 0;
  v %= 100;
  if (r->cmos[REG_B] & B_BINARY)
    return (uint8_t)v;
  return (uint8_t)((v / 10) << 4 | (v % 10));
}

/* A value the guest wrote, or -1 when it is not a number in the current
 * format (a BCD digit above 9). */
static int decode(const struct rtc *r, uint8_t v)
{
  if (r->cmos[REG_B] & B_BINARY)
    return v;
  if ((v >> 4) > 9 || (v & 0x0f) > 9)
    return -1;
  return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t encode_hour(const struct rtc *r, int hour)
{
  if (r->cmos[REG_B] & B_24H)
    return encode(r, hour);
  int h12 = hour % 12 == 0 ? 12 : hour % 12;
  return (uint8_t)(encode(r, h12) | (hour >= 12 ? HOUR_PM : 0));
}

/* The hour in 0-23, or -1. In 12-hour form 12 AM is midnight. */
static int decode_hour(const struct rtc *r, uint8_t v)
{
  if (r->cmos[REG_B] & B_24H) {
    int h = decode(r, v);
    return h <= 23 ? h : -1;
  }
  int h = decode(r, v & (uint8_t)~HOUR_PM);
  if (h < 1 || h > 12)
    return -1;
  return (v & HOUR_PM) ? h % 12 + 12 : h % 12;
}

static bool is_clock(uint8_t reg)
{
  switch (reg) {
  case REG_SEC: case REG_MIN: case REG_HOUR: case REG_WDAY: case REG_MDAY:
  case REG_MONTH: case REG_YEAR: case REG_CENTURY:
    return true;
  default:
    return false;
  }
}

static uint8_t read_clock(const struct rtc *r, uint8_t reg)
{
  struct tm tm;
  now_tm(r, &tm);
  int year = tm.tm_year + 1900;
  switch (reg) {
  case REG_SEC:
    return encode(r, tm.tm_sec > 59 ? 59 : tm.tm_sec);
  case REG_MIN:
    return encode(r, tm.tm_min);
  case REG_HOUR:
    return encode_hour(r, tm.tm_hour);
  case REG_WDAY:
    return encode(r, tm.tm_wday + 1); /* Sunday is 1 */
  case REG_MDAY:
    return encode(r, tm.tm_mday);
  case REG_MONTH:
    return encode(r, tm.tm_mon + 1);
  case REG_YEAR:
    return encode(r, year % 100);
  default: /* REG_CENTURY */
    return encode(r, year / 100);
  }
}

/* Sets one field of the clock: the offset moves so that the guest's clock
 * reads the new value from now on. A value outside the field's range is
 * ignored, as is a write to the weekday, which follows from the date; a
 * day past the end of its month rolls over into the next, as timegm does. */
static void write_clock(struct rtc *r, uint8_t reg, uint8_t v)
{
  struct tm tm;
  now_tm(r, &tm);
  int year = tm.tm_year + 1900;
  int d = reg == REG_HOUR ? decode_hour(r, v) : decode(r, v);
  switch (reg) {
  case REG_SEC:
    if (d < 0 || d > 59)
      return;
    tm.tm_sec = d;
    break;
  case REG_MIN:
    if (d < 0 || d > 59)
      return;
    tm.tm_min = d;
    break;
  case REG_HOUR:
    if (d < 0)
      return;
    tm.tm_hour = d;
    break;
  case REG_MDAY:
    if (d < 1 || d > 31)
      return;
    tm.tm_mday = d;
    break;
  case REG_MONTH:
    if (d < 1 || d > 12)
      return;
    tm.tm_mon = d - 1;
    break;
  case REG_YEAR:
    if (d < 0 || d > 99)
      return;
    tm.tm_year = year / 100 * 100 + d - 1900;
    break;
  case REG_CENTURY:
    if (d < 19 || d > 99)
      return;
    tm.tm_year = d * 100 + year % 100 - 1900;
    break;
  default: /* REG_WDAY */
    return;
  }
  tm.tm_isdst = -1;
  time_t t = r->utc ? timegm(&tm) : mktime(&tm);
  if (t == (time_t)-1 || t < 0 || (int64_t)t > RTC_MAX_TIME)
    return;
  r->offset = (int64_t)t - base_time(r);
}

static uint8_t read_data(struct rtc *r)
{
  uint8_t reg = r->index;
  if (is_clock(reg))
    return read_clock(r, reg);
  switch (reg) {
  case REG_A:
    return r->cmos[REG_A] & (uint8_t)~A_UIP;
  case REG_C:
    return 0; /* no interrupt flags: no interrupts */
  case REG_D:
    return D_VRT;
  default:
    return r->cmos[reg];
  }
}

static void write_data(struct rtc *r, uint8_t v)
{
  uint8_t reg = r->index;
  if (is_clock(reg)) {
    write_clock(r, reg, v);
    return;
  }
  switch (reg) {
  case REG_A:
    r->cmos[REG_A] = v & (uint8_t)~A_UIP;
    break;
  case REG_C:
  case REG_D: /* read-only */
    break;
  default: /* register B and plain storage */
    r->cmos[reg] = v;
    break;
  }
}

/* Offset 0 is the index port, 1 the data port; a 2-byte access is both,
 * as an ISA bus would split it. */
static int rtc_access(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                      uint32_t size, bool write)
{
  struct rtc *r = opaque;
  (void)c;
  pthread_mutex_lock(&r->lock);
  for (uint32_t i = 0; i < size; i++) {
    uint64_t port = offset + i;
    if (offset > 1 || i > 1 - offset) { /* past the end: not ours */
      if (!write)
        data[i] = 0xff;
    } else if (port == 0) {
      if (write) {
        r->index = data[i] & 0x7f;
        r->nmi_masked = data[i] & 0x80;
      } else {
        data[i] = 0xff; /* the index port is write-only */
      }
    } else if (write) {
      write_data(r, data[i]);
    } else {
      data[i] = read_data(r);
    }
  }
  pthread_mutex_unlock(&r->lock);
  return 0;
}

static void rtc_destroy(struct device *dev)
{
  struct rtc *r = (struct rtc *)dev;
  pthread_mutex_destroy(&r->lock);
  free(r);
}

int rtc_attach(struct vm *vm, bool fixed_time, int64_t epoch, bool utc, char *err)
{
  struct rtc *r = calloc(1, sizeof *r);
  if (r == NULL)
    return errf(err, "out of memory");
  pthread_mutex_init(&r->lock, NULL);
  r->dev.name = "rtc";
  r->dev.destroy = rtc_destroy;
  r->fixed = fixed_time;
  r->epoch = epoch;
  r->utc = utc;
  if (!utc)
    tzset(); /* localtime_r need not */
  r->cmos[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
  r->cmos[REG_B] = B_24H; /* BCD, 24-hour, no interrupts */
  if (bus_add(&vm->pio, RTC_INDEX, 2, rtc_access, r, "rtc", 0, err) < 0) {
    rtc_destroy(&r->dev);
    return -1;
  }
  vm_add_device(vm, &r->dev);
  return 0;
}
