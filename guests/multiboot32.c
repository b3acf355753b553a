/* multiboot32: a Multiboot kernel that checks what its loader gave it.
 *
 * Loaded by a Multiboot loader (lua/vmm/multiboot.lua; scripts/multiboot.lua
 * boots it on a PC machine with fw_cfg), it checks the loader's magic, the
 * info structure, the memory map, its modules and what fw_cfg says, prints
 * what it found on port 0xE9, and exits through port 0xF4 with 0 when
 * everything matched, or with the code of the first check that failed
 * (every failure is printed):
 *
 *   2   eax is not 0x2BADB002
 *   3   the info flags lack memory (0), cmdline (2), mods (3) or mmap (6)
 *   4   an expectation below is malformed, or mods=N is given without
 *       a mod<i>= for each module
 *   5   the memory map's entry count is not mmap=, or an entry's size is not 20
 *   6   the usable RAM in the map (type 1, summed) is not ram=
 *   7   mem_lower / mem_upper disagree with the map
 *   8   the module count is not mods=
 *   9   module i's size or CRC-32 is not what mod<i>= says
 *   10  a module is not page-aligned (the header asks for it), ends before
 *       it starts, or overlaps the kernel's image
 *   11  fw_cfg's signature (selector 0) is not "QEMU"
 *   12  fw_cfg's CPU count (selector 5) is not cpus=
 *   13  fw_cfg's command line (selectors 0x14, 0x15) differs from Multiboot's
 *
 * The host states its expectations in the kernel command line, which the
 * guest must parse anyway; words it does not know are ignored, and a value
 * without an expectation is printed but not checked (the structural checks
 * run in any case: the map's entry sizes, mem_lower/mem_upper against the
 * map, module placement, fw_cfg's signature and command line):
 *
 *   cpus=N          vCPUs (fw_cfg's nb_cpus)
 *   mmap=N          entries in the memory map
 *   ram=N           bytes of usable RAM in the map (decimal or 0x hex)
 *   mods=N          modules
 *   mod<i>=S:C      module i (from 0) has S bytes with CRC-32 C (as zlib's)
 *
 * The numbers are the host's word, independent of the loader that builds
 * the info structure: a loader that gets the map or a module wrong, or a
 * test that lies about one, fails its check. tests/multiboot_spec.lua
 * computes them from the machine; by hand, on a 64 MiB machine:
 *
 *   printf one > /tmp/m0; printf two2 > /tmp/m1
 *   build/luavmm scripts/multiboot.lua build/guests/multiboot32.bin --memory 64M \
 *     --cpus 2 --append "cpus=2 mmap=5 ram=0x3f9fc00 mods=2 mod0=3:0x7a6c86f1 \
 *     mod1=4:0xbe15b0ea" --module /tmp/m0 --module /tmp/m1=second
 */
#include <luavmm.h>

#define MB_LOADER_MAGIC 0x2BADB002u
#define MB_INFO_MEMORY (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MODS (1u << 3)
#define MB_INFO_MMAP (1u << 6)
#define MB_INFO_LOADER_NAME (1u << 9)

#define FW_CFG_SELECT 0x510
#define FW_CFG_DATA 0x511
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_NB_CPUS 0x05
#define FW_CFG_CMDLINE_SIZE 0x14
#define FW_CFG_CMDLINE_DATA 0x15

#define MAX_MODS 8

struct mb_info {
  uint32_t flags;
  uint32_t mem_lower, mem_upper;
  uint32_t boot_device;
  uint32_t cmdline;
  uint32_t mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr;
  uint32_t drives_length, drives_addr;
  uint32_t config_table;
  uint32_t boot_loader_name;
};

struct mb_module {
  uint32_t mod_start, mod_end, string, reserved;
};

struct mb_mmap_entry {
  uint32_t size;
  uint64_t addr, len;
  uint32_t type;
} __attribute__((packed));

/* Stored by rt/multiboot.S at entry; the image's end from the linker. */
extern uint32_t multiboot_magic, multiboot_info;
extern char __image_start[], __image_end[];

/* The expectations from the command line. */
static struct {
  int have_cpus, have_mmap, have_ram, have_mods;
  uint64_t cpus, mmap, ram, mods;
  int have_mod[MAX_MODS];
  uint64_t mod_size[MAX_MODS], mod_crc[MAX_MODS];
} want;

static int first_failure;

/* Prints a failed check and remembers the first one's code. */
static void fail(int code, const char *what)
{
  printf("FAIL %d: %s\n", code, what);
  if (!first_failure)
    first_failure = code;
}

/* ---- command line ---- */

static int is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n';
}

/* A decimal or 0x-hex number in [s, end); 0 if it is not one. */
static int parse_number(const char *s, const char *end, uint64_t *out)
{
  uint64_t v = 0;
  int base = 10;
  if (end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s += 2;
  }
  if (s == end)
    return 0;
  for (; s < end; s++) {
    int d;
    if (*s >= '0' && *s <= '9')
      d = *s - '0';
    else if (base == 16 && *s >= 'a' && *s <= 'f')
      d = *s - 'a' + 10;
    else if (base == 16 && *s >= 'A' && *s <= 'F')
      d = *s - 'A' + 10;
    else
      return 0;
    v = v * (uint64_t)base + (uint64_t)d;
  }
  *out = v;
  return 1;
}

/* Does the word [w, end) start with key followed by '='? Then *value is
 * what follows. */
static int key_is(const char *w, const char *end, const char *key, const char **value)
{
  size_t n = strlen(key);
  if ((size_t)(end - w) <= n || memcmp(w, key, n) != 0 || w[n] != '=')
    return 0;
  *value = w + n + 1;
  return 1;
}

/* One word of the command line; 0 when it is one of ours and malformed. */
static int parse_word(const char *w, const char *end)
{
  const char *v;
  if (key_is(w, end, "cpus", &v))
    return want.have_cpus = parse_number(v, end, &want.cpus);
  if (key_is(w, end, "mmap", &v))
    return want.have_mmap = parse_number(v, end, &want.mmap);
  if (key_is(w, end, "ram", &v))
    return want.have_ram = parse_number(v, end, &want.ram);
  if (key_is(w, end, "mods", &v))
    return want.have_mods = parse_number(v, end, &want.mods);
  if (end - w > 5 && memcmp(w, "mod", 3) == 0 && w[3] >= '0' && w[3] <= '9' && w[4] == '=') {
    int i = w[3] - '0';
    const char *colon = w + 5;
    while (colon < end && *colon != ':')
      colon++;
    if (i >= MAX_MODS || colon == end)
      return 0;
    return want.have_mod[i] = parse_number(w + 5, colon, &want.mod_size[i]) &&
                              parse_number(colon + 1, end, &want.mod_crc[i]);
  }
  return 1;
}

static void parse_cmdline(const char *s)
{
  while (*s) {
    while (is_space(*s))
      s++;
    const char *w = s;
    while (*s && !is_space(*s))
      s++;
    if (s > w && !parse_word(w, s)) {
      printf("cmdline: cannot read '%.*s'\n", (int)(s - w), w);
      fail(4, "a malformed expectation in the command line");
    }
  }
  /* Without a number the structural checks still run and the value is
   * printed; only its exact check is left out (a plain
   * `scripts/multiboot.lua build/guests/multiboot32.bin` passes). */
  if (!want.have_cpus || !want.have_mmap || !want.have_ram || !want.have_mods)
    printf("cmdline: printed, not checked (no expectation):%s%s%s%s\n",
           want.have_cpus ? "" : " cpus=", want.have_mmap ? "" : " mmap=",
           want.have_ram ? "" : " ram=", want.have_mods ? "" : " mods=");
}

/* ---- checks ---- */

static uint32_t crc32(const uint8_t *p, uint32_t n)
{
  uint32_t crc = 0xffffffffu;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++)
      crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
  }
  return ~crc;
}

static void check_mmap(const struct mb_info *mbi)
{
  uint32_t count = 0;
  uint64_t usable = 0, lower_end = 0, upper_end = 0x100000;
  int bad_size = 0;
  uint32_t at = mbi->mmap_addr, end = mbi->mmap_addr + mbi->mmap_length;
  while (at < end) {
    const struct mb_mmap_entry *e = (const struct mb_mmap_entry *)(uintptr_t)at;
    printf("  [0x%llx, 0x%llx) type %u\n", (unsigned long long)e->addr,
           (unsigned long long)(e->addr + e->len), e->type);
    if (e->size != 20)
      bad_size = 1;
    if (e->type == 1) {
      usable += e->len;
      if (e->addr == 0)
        lower_end = e->len;
      if (e->addr <= upper_end && e->addr + e->len > upper_end)
        upper_end = e->addr + e->len;
    }
    count++;
    at += e->size + 4;
  }
  printf("mmap: %u entries, 0x%llx bytes usable\n", count, (unsigned long long)usable);
  if (bad_size)
    fail(5, "a memory map entry's size is not 20");
  if (want.have_mmap && count != want.mmap)
    fail(5, "the memory map's entry count is not mmap=");
  if (want.have_ram && usable != want.ram)
    fail(6, "the usable RAM in the memory map is not ram=");
  printf("mem_lower %u KiB, mem_upper %u KiB\n", mbi->mem_lower, mbi->mem_upper);
  if ((uint64_t)mbi->mem_lower * 1024 != (lower_end > 0xa0000 ? 0xa0000 : lower_end) ||
      (uint64_t)mbi->mem_upper * 1024 != upper_end - 0x100000)
    fail(7, "mem_lower or mem_upper disagree with the memory map");
}

static void check_modules(const struct mb_info *mbi)
{
  const struct mb_module *mods = (const struct mb_module *)(uintptr_t)mbi->mods_addr;
  printf("modules: %u\n", mbi->mods_count);
  if (want.have_mods && mbi->mods_count != want.mods)
    fail(8, "the module count is not mods=");
  for (uint32_t i = 0; i < mbi->mods_count; i++) {
    const struct mb_module *m = &mods[i];
    if (m->mod_end < m->mod_start || (m->mod_start & 0xfff) != 0 ||
        (m->mod_start < (uintptr_t)__image_end && m->mod_end > (uintptr_t)__image_start)) {
      printf("module %u: [0x%x, 0x%x)\n", i, m->mod_start, m->mod_end);
      fail(10, "a module is misplaced (not page-aligned, inverted, or over the kernel)");
      continue;
    }
    uint32_t size = m->mod_end - m->mod_start;
    uint32_t crc = crc32((const uint8_t *)(uintptr_t)m->mod_start, size);
    printf("module %u: [0x%x, 0x%x) %u bytes, crc32 0x%08x, string \"%s\"\n", i, m->mod_start,
           m->mod_end, size, crc, (const char *)(uintptr_t)m->string);
    if (i < MAX_MODS && want.have_mod[i]) {
      if (size != want.mod_size[i] || crc != want.mod_crc[i])
        fail(9, "a module's size or CRC-32 is not what mod<i>= says");
    } else if (i < want.mods) {
      fail(4, "the command line lacks a module's mod<i>=");
    }
  }
}

static void fw_cfg_select(uint16_t key)
{
  outw(FW_CFG_SELECT, key);
}

static uint32_t fw_cfg_read(int n)
{
  uint32_t v = 0;
  for (int i = 0; i < n; i++)
    v |= (uint32_t)inb(FW_CFG_DATA) << (8 * i);
  return v;
}

static void check_fw_cfg(const char *cmdline)
{
  char sig[5];
  fw_cfg_select(FW_CFG_SIGNATURE);
  for (int i = 0; i < 4; i++)
    sig[i] = (char)inb(FW_CFG_DATA);
  sig[4] = 0;
  fw_cfg_select(FW_CFG_NB_CPUS);
  uint32_t cpus = fw_cfg_read(2);
  printf("fw_cfg: signature \"%s\", %u CPUs\n", sig, cpus);
  if (memcmp(sig, "QEMU", 4) != 0) {
    fail(11, "fw_cfg's signature is not QEMU");
    return;
  }
  if (want.have_cpus && cpus != want.cpus)
    fail(12, "fw_cfg's CPU count is not cpus=");

  fw_cfg_select(FW_CFG_CMDLINE_SIZE);
  uint32_t size = fw_cfg_read(4);
  int same = size == strlen(cmdline) + 1;
  fw_cfg_select(FW_CFG_CMDLINE_DATA);
  for (uint32_t i = 0; same && i < size; i++)
    same = inb(FW_CFG_DATA) == (uint8_t)cmdline[i];
  if (!same)
    fail(13, "fw_cfg's command line differs from Multiboot's");
}

int main(void)
{
  printf("multiboot32: eax 0x%x, info at 0x%x\n", multiboot_magic, multiboot_info);
  if (multiboot_magic != MB_LOADER_MAGIC) {
    fail(2, "eax is not the Multiboot loader magic 0x2BADB002");
    return first_failure;
  }
  const struct mb_info *mbi = (const struct mb_info *)(uintptr_t)multiboot_info;
  uint32_t need = MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MODS | MB_INFO_MMAP;
  printf("flags 0x%x", mbi->flags);
  if (mbi->flags & MB_INFO_LOADER_NAME)
    printf(", loaded by %s", (const char *)(uintptr_t)mbi->boot_loader_name);
  printf("\n");
  if ((mbi->flags & need) != need) {
    fail(3, "the info flags lack memory, cmdline, mods or mmap");
    return first_failure;
  }
  const char *cmdline = (const char *)(uintptr_t)mbi->cmdline;
  printf("cmdline: \"%s\"\n", cmdline);
  parse_cmdline(cmdline);
  check_mmap(mbi);
  check_modules(mbi);
  check_fw_cfg(cmdline);
  if (first_failure == 0)
    puts("multiboot32: all checks passed");
  return first_failure;
}
