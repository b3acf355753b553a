-- Writes the hand-made seed inputs of the fuzz harnesses into
-- tests/fuzz/corpus/<harness>/seed-<name> (their formats are described at
-- the top of virtq_fuzz.c, mmio_fuzz.c, bus_fuzz.c, loader_fuzz.lua and
-- lmem_fuzz.lua). Run from the repository root:
--   lua5.4 tests/fuzz/seeds.lua
-- Regression inputs of findings are tests/fuzz/corpus/<harness>/regress-*:
-- those found by the fuzzer are its inputs as they were; the ones below were
-- found otherwise and written by hand. Found by the fuzzers:
--   bus/regress-overlap-wrap     bus_overlap missed the ranges it overlapped
--                                when base + len wrapped past 2^64
--   lmem/regress-map-field       memory:map{} blamed "bad argument #-1" (a
--                                stack slot) for its missing gpa
--   loader/regress-unnamed-prefix  bytes given without a name were named
--                                after the reader's prefix: "elf: elf: ...",
--                                "linux: linux: the initrd: ..."

local function pack(fmt, ...) return string.pack(fmt, ...) end

-- Guest memory image: a sparse map { [gpa] = bytes } in region A (the
-- image is only as long as its last byte).
local function image(map)
  local top = 0
  for at, bytes in pairs(map) do top = math.max(top, at + #bytes) end
  local buf = {}
  for i = 1, top do buf[i] = "\0" end
  for at, bytes in pairs(map) do
    for i = 1, #bytes do buf[at + i] = bytes:sub(i, i) end
  end
  return table.concat(buf)
end

local NEXT, WRITE, INDIRECT = 1, 2, 4
local function desc(addr, len, flags, next) return pack("<I8I4I2I2", addr, len, flags, next or 0) end
-- An avail ring with idx and entries.
local function avail(idx, ...)
  local s = pack("<I2I2", 0, idx)
  for _, head in ipairs{ ... } do s = s .. pack("<I2", head) end
  return s
end

local function write(harness, name, data)
  local path = "tests/fuzz/corpus/" .. harness .. "/" .. (name:match("^regress%-") and name
                                                         or "seed-" .. name)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  print(path, #data)
end

-- ---- virtq_fuzz: shape, features, desc, avail, used, nops, ops, memory ----
local POP, PUSH, READ, WRITE_OP, NOTIFY, POKE, SETUP, BUFS = 0, 1, 2, 3, 4, 5, 6, 7
local function op(o, arg, x, y) return pack("<BBI2I2", o, arg or 0, x or 0, y or 0) end
local function virtq(name, shape, features, ops, mem)
  write("virtq", name, pack("<BBI2I2I2B", shape, features, 0x100, 0x200, 0x300, #ops)
    .. table.concat(ops) .. image(mem))
end

virtq("basic", 3, 0,
  { op(POP), op(READ, 0, 0, 16), op(WRITE_OP, 0, 2, 10), op(PUSH, 0, 8), op(NOTIFY), op(POP) },
  { [0x100] = desc(0x400, 4, NEXT, 1) .. desc(0x500, 8, WRITE),
    [0x200] = avail(1, 0), [0x400] = "ping" })

virtq("indirect", 3, 1,
  { op(POP), op(BUFS, 0, 0, 64), op(BUFS, 1, 1, 64), op(PUSH, 0, 16), op(NOTIFY) },
  { [0x100] = desc(0x700, 32, INDIRECT),
    [0x700] = desc(0x400, 4, NEXT, 1) .. desc(0x500, 16, WRITE),
    [0x200] = avail(1, 0), [0x400] = "pong" })

virtq("event-idx", 2, 2,
  { op(POP), op(PUSH, 0, 1), op(NOTIFY), op(POP), op(POKE, 0, 0x206, 1), op(POKE, 0, 0x202, 2),
    op(POP), op(PUSH, 0, 1), op(NOTIFY), op(SETUP, 2), op(POP) },
  { [0x100] = desc(0x400, 4, WRITE) .. desc(0x500, 4, WRITE),
    [0x200] = avail(1, 0, 1) .. pack("<I2", 1) })

-- Found by the virtio-rng guest: with the event index the device never set
-- avail_event, so a driver stopped notifying after its first chain. One
-- chain, popped until the queue is dry.
virtq("regress-avail-event", 2, 2, { op(POP), op(PUSH, 0, 4), op(POP) },
  { [0x100] = desc(0x400, 4, WRITE), [0x200] = avail(1, 0) })

virtq("region-b", 4, 0, { op(POP), op(POP), op(POP) },
  { [0x100] = desc(0x9000, 0x100, WRITE) .. desc(0x7ff0, 0x20, WRITE) .. desc(0xfff0, 0x10, 0),
    [0x200] = avail(3, 0, 1, 2) })

virtq("loop", 2, 0, { op(POP), op(POKE, 0, 0x10e, 2), op(POKE, 0, 0x202, 2), op(POP) },
  { [0x100] = desc(0x400, 4, NEXT, 1) .. desc(0x400, 4, NEXT, 0),
    [0x200] = avail(1, 0, 1) })

-- ---- mmio_fuzz: device, nops, ops, memory ----
local R = { status = 0x70, dfsel = 0x14, features = 0x20, fsel = 0x24, qsel = 0x30, qnum = 0x38,
            qready = 0x44, notify = 0x50, isr = 0x60, ack = 0x64, desc = 0x80, driver = 0x90,
            device = 0xa0, devf = 0x10, gen = 0xfc, config = 0x100, qmax = 0x34 }
local function rd(off, size) return pack("<BBI2I4", 0, size or 2, off, 0) end
local function wr(off, v, size) return pack("<BBI2I4", 1, size or 2, off, v) end
-- The driver's bring-up of queue q (8 entries, rings at 0x100/0x200/0x300).
local function bring_up(features_high, features_low)
  return { wr(R.status, 0), wr(R.status, 1), wr(R.status, 3), rd(R.devf),
           wr(R.dfsel, 1), rd(R.devf), wr(R.fsel, 0), wr(R.features, features_low or 0),
           wr(R.fsel, 1), wr(R.features, features_high or 1), wr(R.status, 11), rd(R.status),
           wr(R.qsel, 0), rd(R.qmax), wr(R.qnum, 8), wr(R.desc, 0x100), wr(R.driver, 0x200),
           wr(R.device, 0x300), wr(R.qready, 1), wr(R.status, 15) }
end
local function mmio(name, device, ops, mem)
  write("mmio", name, pack("<BB", device, #ops) .. table.concat(ops) .. image(mem))
end
local function with(list, ...)
  local out = {}
  for _, v in ipairs(list) do out[#out + 1] = v end
  for _, v in ipairs{ ... } do out[#out + 1] = v end
  return out
end

mmio("rng", 0, with(bring_up(), wr(R.notify, 0), rd(R.isr), wr(R.ack, 1), rd(R.status)),
  { [0x100] = desc(0x400, 16, WRITE), [0x200] = avail(1, 0) })

-- Fast-path notifications (size bit 6 on a QueueNotify write): one before
-- the device is live, one that serves, one for a queue that does not
-- exist, one after a reset.
local KICK = 0x42
mmio("kick", 0, { wr(R.notify, 0, KICK), table.unpack(with(bring_up(), wr(R.notify, 0, KICK),
                  rd(R.isr), wr(R.ack, 1), wr(R.notify, 5, KICK), wr(R.status, 0),
                  wr(R.notify, 0, KICK), rd(R.status))) },
  { [0x100] = desc(0x400, 16, WRITE), [0x200] = avail(1, 0) })
-- The deferred backend takes no fast-path notifications: they only count.
mmio("kick-echo", 2, with(bring_up(), wr(R.notify, 0, KICK), wr(R.notify, 1, KICK),
                          wr(R.notify, 0), rd(R.isr)),
  { [0x100] = desc(0x400, 5, NEXT, 1) .. desc(0x500, 8, WRITE), [0x200] = avail(1, 0),
    [0x400] = "hello" })

-- virtio-blk: GET_ID, then a read of sector 1, then a write of sector 2.
mmio("blk", 1, with(bring_up(1, (1 << 28) | (1 << 29)), wr(R.notify, 0), rd(R.isr),
                    wr(R.ack, 1), rd(R.config, 3), rd(R.config + 4, 2), wr(R.status, 0)),
  { [0x100] = desc(0x400, 16, NEXT, 1) .. desc(0x500, 20, WRITE | NEXT, 2)
      .. desc(0x600, 1, WRITE) .. desc(0x410, 16, NEXT, 4) .. desc(0x800, 512, WRITE | NEXT, 5)
      .. desc(0x601, 1, WRITE) .. desc(0x420, 16, NEXT, 7) .. desc(0x800, 512, NEXT, 5),
    [0x200] = avail(3, 0, 3, 6),
    [0x400] = pack("<I4I4I8", 8, 0, 0) .. pack("<I4I4I8", 0, 0, 1) .. pack("<I4I4I8", 1, 0, 2) })

-- The deferred backend: two queues, config writes, a reset in the middle.
mmio("echo", 2, with(bring_up(), wr(R.notify, 0), rd(R.isr), wr(R.ack, 3),
                     wr(R.config + 2, 0x41, 0), rd(R.gen), rd(R.config, 3),
                     wr(R.qsel, 1), rd(R.qmax), wr(R.notify, 1), wr(R.status, 0), rd(R.status)),
  { [0x100] = desc(0x400, 5, NEXT, 1) .. desc(0x500, 8, WRITE), [0x200] = avail(1, 0),
    [0x400] = "hello" })

-- ---- bus_fuzz: space, then { op, value, value } ----
-- A value is a selector and its operand: (0, u8) small, (1, u16), (2, u64),
-- (3, u8) 2^64-1-n, (4, u8) the limit minus n, (5 + 8k, i) an edge of range
-- i (base, or end with i's bit 7; k = 0 one below, 1 on it, 2 one above),
-- (6, s) 2^(s%64) give or take one, (7, u32).
local B_ADD, B_REMOVE, B_FIND, B_EXACT, B_OVERLAP, B_REMOVE_AT = 0, 3, 4, 5, 6, 7
local function small(v) return pack("<BB", 0, v) end
local function u16(v) return pack("<BI2", 1, v) end
local function u64(v) return pack("<Bi8", 2, v) end
local function top(n) return pack("<BB", 3, n) end
local function limit(n) return pack("<BB", 4, n) end
local function edge(i, which, delta) return pack("<BB", 5 + 8 * (delta + 1), i | (which == "end" and 0x80 or 0)) end
local function bus(name, space, ops, extra)
  write("bus", name, pack("<B", space) .. (extra or "") .. table.concat(ops))
end
local function bop(o, x, y) return pack("<B", o) .. x .. (y or small(0)) end

-- The PC's ports: a UART, the i8042's two ports, the RTC, the exit port,
-- one overlapping add refused, lookups at the edges, removal.
bus("ports", 0, {
  bop(B_ADD, u16(0x3f8), small(8)), bop(B_ADD, small(0x60), small(1)), bop(B_ADD, small(0x64), small(1)),
  bop(B_ADD, small(0x70), small(2)), bop(B_ADD, small(0xf4), small(1)), bop(B_ADD, u16(0x3fc), small(8)),
  bop(B_FIND, u16(0x3ff), small(1)), bop(B_FIND, u16(0x3ff), small(2)), bop(B_FIND, small(0x71), small(1)),
  bop(B_EXACT, small(0x70), small(2)), bop(B_OVERLAP, small(0x60), small(5)),
  bop(B_ADD, limit(1), small(1)), bop(B_ADD, limit(1), small(2)), bop(B_FIND, limit(1), small(3)),
  bop(B_REMOVE, small(0x64)), bop(B_REMOVE_AT, small(0)), bop(B_FIND, edge(0, "end", 0), small(1)),
})

-- MMIO: ranges at the top of the 64-bit space, where ends overflow.
bus("mmio-top", 1, {
  bop(B_ADD, u64(0xd0000000), u16(0x1000)), bop(B_ADD, top(0x0f), small(0x10)),
  bop(B_ADD, top(0x1f), small(0x10)), bop(B_ADD, top(0x30), small(0x20)),
  bop(B_FIND, top(0x20), small(8)), bop(B_FIND, top(1), small(2)),
  bop(B_OVERLAP, top(0x40), top(0)), bop(B_EXACT, edge(1, "base", 0), small(0x10)),
  bop(B_ADD, edge(0, "end", 0), small(1)), bop(B_ADD, edge(0, "end", -1), small(1)),
  bop(B_FIND, edge(0, "end", -1), small(1)), bop(B_REMOVE, edge(2, "base", 0)),
})

-- A space with a limit from the input (0x10 << 12).
bus("limit", 2, {
  bop(B_ADD, limit(0x10), small(0x10)), bop(B_ADD, limit(0x10), small(0x11)),
  bop(B_ADD, pack("<BB", 6, 12), pack("<BB", 6, 12)), bop(B_FIND, limit(1), small(1)),
}, pack("<I4", 0x10))


-- ---- loader_fuzz: a kernel file ----
-- Besides these, the corpus holds our guests' ELF files and the Multiboot
-- guest's a.out-kludge image, as built (stripped: the loaders read no
-- section headers): elf-hello32, elf-hello64, elf-multiboot32,
-- aout-multiboot32 (strip -o, cp).

-- A minimal ELF: the header, then program headers, then their bytes.
-- segs: { type, offset, vaddr, paddr, filesz, memsz, align }.
local function elf_file(bits, entry, segs, body)
  local ehsize, phentsize = bits == 64 and 64 or 52, bits == 64 and 56 or 32
  local ident = "\127ELF" .. string.char(bits == 64 and 2 or 1, 1, 1) .. string.rep("\0", 9)
  local h
  if bits == 64 then
    h = ident .. pack("<I2I2I4I8I8I8I4I2I2I2I2I2I2", 2, 62, 1, entry, ehsize, 0, 0, ehsize,
                      phentsize, #segs, 0, 0, 0)
  else
    h = ident .. pack("<I2I2I4I4I4I4I4I2I2I2I2I2I2", 2, 3, 1, entry, ehsize, 0, 0, ehsize,
                      phentsize, #segs, 0, 0, 0)
  end
  for _, s in ipairs(segs) do
    if bits == 64 then
      h = h .. pack("<I4I4I8I8I8I8I8I8", s[1], 5, s[2], s[3], s[4], s[5], s[6], s[7])
    else
      h = h .. pack("<I4I4I4I4I4I4I4I4", s[1], s[2], s[3], s[4], s[5], s[6], 5, s[7])
    end
  end
  return h .. string.rep("\0", 0x100 - #h) .. body
end

-- A Xen PVH note: namesz 4 "Xen\0", descsz 4, type 18, the entry.
local pvh_note = pack("<I4I4I4", 4, 4, 18) .. "Xen\0" .. pack("<I4", 0x100010)
write("loader", "elf64-pvh", elf_file(64, 0x100000, {
  { 1, 0x100, 0x100000, 0x100000, 0x40, 0x2000, 0x10 },
  { 4, 0x140, 0, 0, #pvh_note, #pvh_note, 4 },
}, string.rep("\xf4", 0x40) .. pvh_note))

-- A 64-bit kernel linked high (virtual 0xffffffff81000000) and loaded at
-- 1 MiB, its entry a physical address as a vmlinux states it.
write("loader", "elf64-high", elf_file(64, 0x100000, {
  { 1, 0x100, -0x7f000000, 0x100000, 0x20, 0x1000, 0x100 },
}, string.rep("\x90", 0x20)))

write("loader", "elf32", elf_file(32, 0x100004, {
  { 1, 0x100, 0x100000, 0x100000, 0x10, 0x20, 0x100 },
  { 1, 0x110, 0x200000, 0x200000, 0x10, 0x10, 0x10 },
}, string.rep("\xf4", 0x20)))

-- A Multiboot a.out-kludge kernel: the header at offset 8, loaded at
-- 1 MiB, a page of bss.
local MB_MAGIC = 0x1BADB002
local function mb_header(flags, fields)
  return pack("<I4I4I4", MB_MAGIC, flags, (-(MB_MAGIC + flags)) & 0xffffffff) .. (fields or "")
end
local code = "\xb0\x2a\xe6\xf4\xf4"
write("loader", "multiboot-aout", string.rep("\0", 8) .. mb_header(0x10003,
  pack("<I4I4I4I4I4", 0x100008, 0x100000, 0x100000 + 8 + 32 + #code, 0x102000, 0x100028)) .. code)
-- Flags 0 and 1 only: the kernel must then be an ELF file.
write("loader", "multiboot-elf", elf_file(32, 0x100000, {
  { 1, 0x100, 0x100000, 0x100000, 0x20, 0x20, 0x100 },
}, mb_header(3) .. string.rep("\xf4", 0x14)))

-- A bzImage: the setup header of boot protocol 2.15 (setup_sects 4, the
-- 64-bit entry, loaded high, relocatable, 1 MiB alignment, init_size 1 MiB,
-- the kernel preferring 1 MiB), then 1 KiB of "kernel".
local function bzimage(fields)
  local setup = {}
  for i = 1, 5 * 512 do setup[i] = "\0" end
  local function put(off, fmt, v)
    local b = pack(fmt, v)
    for i = 1, #b do setup[off + i] = b:sub(i, i) end
  end
  local f = {
    setup_sects = 4, syssize = 1024 // 16, boot_flag = 0xaa55, jump = 0x66eb, version = 0x020f,
    loadflags = 1, kernel_alignment = 0x100000, relocatable = 1, xloadflags = 1,
    cmdline_size = 2047, init_size = 0x100000, pref_address = 0x100000,
    initrd_addr_max = 0x7fffffff,
  }
  for k, v in pairs(fields or {}) do f[k] = v end
  put(0x1f1, "<I1", f.setup_sects)
  put(0x1f4, "<I4", f.syssize)
  put(0x1fe, "<I2", f.boot_flag)
  put(0x200, "<I2", f.jump)          -- jmp short: the header ends at 0x202 + 0x66
  put(0x202, "c4", "HdrS")
  put(0x206, "<I2", f.version)
  put(0x211, "<I1", f.loadflags)
  put(0x22c, "<I4", f.initrd_addr_max)
  put(0x230, "<I4", f.kernel_alignment)
  put(0x234, "<I1", f.relocatable)
  put(0x236, "<I2", f.xloadflags)
  put(0x238, "<I4", f.cmdline_size)
  put(0x258, "<i8", f.pref_address)
  put(0x260, "<I4", f.init_size)
  return table.concat(setup) .. string.rep("\x90", 1024)
end
write("loader", "bzimage", bzimage())
-- The same with an initrd limit that leaves no room for one.
write("loader", "bzimage-initrd-max", bzimage{ initrd_addr_max = 0x1ff })

-- ---- lmem_fuzz: ops { op, argc, values } (tests/fuzz/lmem_fuzz.lua) ----
-- Values: kind, then its payload: 0 nil, 1 u16, 2 i64, 3 an edge (index
-- into EDGES, delta + 8), 4 a float (index), 5 a string (length, bytes),
-- 6 a numeric string (index), 7 a boolean, 8 a map table (four values),
-- 9 a size string (index), 10 the memory, 11 a function, 12 the VM.
local M_READ, M_WRITE, M_FILL, M_U8, M_U16, M_U32, M_U64, M_LOAD, M_MAP, M_REGIONS, M_LEN,
      M_TOSTRING, M_CLOSE, M_WRONG = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
local V = {
  int = function(v) return pack("<Bi8", 2, v) end,
  small = function(v) return pack("<BI2", 1, v) end,
  edge = function(i, d) return pack("<BBB", 3, i - 1, (d or 0) + 8) end,
  float = function(i) return pack("<BB", 4, i - 1) end,
  str = function(s) return pack("<BB", 5, #s) .. s end,
  numeric = function(i) return pack("<BB", 6, i - 1) end,
  bool = function(b) return pack("<BB", 7, b and 1 or 0) end,
  size = function(i) return pack("<BB", 9, i - 1) end,
  none = function() return pack("<B", 0) end,
  memory = function() return pack("<B", 10) end,
  vm = function() return pack("<B", 12) end,
}
local function map_t(gpa, size, name, ro) return pack("<B", 8) .. gpa .. size .. name .. ro end
local function mop(o, ...)
  local args = { ... }
  return pack("<BB", o, #args) .. table.concat(args)
end
-- A method (index into METHODS: 1 read ... 12 tostring) called on `self`.
local function wrong(method, self, ...)
  local args = { ... }
  return pack("<BBB", M_WRONG, #args + 1, method - 1) .. self .. table.concat(args)
end
local function lmem(name, ops) write("lmem", name, table.concat(ops)) end

-- Writes, reads and fills in and across the regions, the u8-u64 family.
lmem("basic", {
  mop(M_WRITE, V.small(0x100), V.str("hello, guest")), mop(M_READ, V.small(0x100), V.small(12)),
  mop(M_FILL, V.int(0x27ff0), V.small(0x20), V.small(0xa5)), mop(M_READ, V.int(0x27ff8), V.small(16)),
  mop(M_U32, V.int(0x27ffe), V.int(0xdeadbeef)), mop(M_U64, V.int(0x27ffc)),
  mop(M_U8, V.small(1), V.int(-128)), mop(M_U16, V.small(2), V.int(0xffff)), mop(M_U16, V.small(2)),
  mop(M_REGIONS), mop(M_LEN), mop(M_TOSTRING),
})
-- The hole, the ends, wrapping and huge values, refused.
lmem("edges", {
  mop(M_READ, V.edge(10, -4), V.small(8)), mop(M_WRITE, V.edge(9, -2), V.str("xxxx")),
  mop(M_FILL, V.edge(29), V.edge(29)), mop(M_READ, V.edge(1), V.edge(27, 1)),
  mop(M_U64, V.edge(22), V.edge(31)), mop(M_U8, V.small(0), V.int(256)),
  mop(M_READ, V.float(2), V.float(13)), mop(M_WRITE, V.numeric(1), V.str("n")),
  mop(M_FILL, V.small(0), V.small(4), V.small(300)), mop(M_U32, V.int(-1)),
})
-- Wrong types and a wrong self.
lmem("types", {
  mop(M_READ, V.bool(true), V.small(1)), mop(M_WRITE, V.small(0), V.bool(false)),
  mop(M_WRITE, V.small(0), V.float(1)), mop(M_READ), wrong(1, V.vm(), V.small(0), V.small(1)),
  wrong(12, V.small(3)), wrong(11, V.str("abc")), wrong(4, V.memory(), V.small(7)),
  mop(M_LEN), mop(M_U8, V.memory()),
})
-- Maps: good, misaligned, overlapping, sized by strings; then loads.
lmem("map", {
  mop(M_MAP, map_t(V.int(0x50000), V.small(0x2000), V.str("x"), V.bool(false))),
  mop(M_MAP, map_t(V.int(0x60000), V.size(1), V.none(), V.bool(true))),
  mop(M_MAP, map_t(V.int(0x70001), V.small(0x1000), V.none(), V.none())),
  mop(M_MAP, map_t(V.int(0x20000), V.small(0x1000), V.none(), V.none())),
  mop(M_MAP, map_t(V.none(), V.size(2), V.none(), V.none())),
  mop(M_MAP, map_t(V.int(0x80000), V.size(10), V.vm(), V.none())),
  mop(M_WRITE, V.int(0x51ff0), V.str("in the new region")), mop(M_REGIONS),
  mop(M_LOAD, V.str("p"), V.int(0x100)) .. pack("<B", 0) .. string.rep("L", 0),
  mop(M_LOAD, V.str("p"), V.int(0x20)) .. pack("<B", 40) .. string.rep("loaded!\n", 5),
  mop(M_LOAD, V.str("p"), V.int(0x7ff0)) .. pack("<B", 3),
  mop(M_LOAD, V.str("p"), V.int(0x7ff0)) .. pack("<B", 4),
})
-- Close, then every method must say so.
lmem("closed", {
  mop(M_WRITE, V.small(0), V.str("x")), mop(M_CLOSE), mop(M_READ, V.small(0), V.small(1)),
  mop(M_TOSTRING), mop(M_LEN), mop(M_REGIONS), mop(M_U8, V.small(0), V.small(1)),
})

-- Branches the fuzzer reached late or never: Xen notes of the wrong size
-- and with a 64-bit address, Multiboot headers asking for a video mode or
-- for flags nobody knows.
local function pvh_elf(desc)
  local note = pack("<I4I4I4", 4, #desc, 18) .. "Xen\0" .. desc
  return elf_file(64, 0x100000, {
    { 1, 0x100, 0x100000, 0x100000, 0x40, 0x2000, 0x10 },
    { 4, 0x140, 0, 0, #note, #note, 4 },
  }, string.rep("\xf4", 0x40) .. note)
end
write("loader", "elf64-pvh-short", pvh_elf("\1\0"))
write("loader", "elf64-pvh-high", pvh_elf(pack("<I8", 0x100000000)))
write("loader", "multiboot-video", string.rep("\0", 8) .. mb_header(0x10004,
  pack("<I4I4I4I4I4", 0x100008, 0x100000, 0, 0, 0x100028)) .. code)
write("loader", "multiboot-unknown-flags", mb_header(0x8000 | 0x18) .. code)
