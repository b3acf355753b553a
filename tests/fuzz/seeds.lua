-- Writes the hand-made seed inputs of the fuzz harnesses into
-- tests/fuzz/corpus/<harness>/seed-<name> (their formats are described at
-- the top of virtq_fuzz.c and mmio_fuzz.c). Run from the repository root:
--   lua5.4 tests/fuzz/seeds.lua
-- Regression inputs of findings are tests/fuzz/corpus/<harness>/regress-*:
-- those found by the fuzzer are its inputs as they were; the ones below were
-- found otherwise and written by hand.

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
