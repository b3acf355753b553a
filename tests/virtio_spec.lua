-- virtio: the runtime's guest-side driver (guests/rt/virtio.c) against the
-- C devices (src/dev/virtio_mmio.c, virtio_blk.c, virtio_rng.c), end to end:
-- a virtio-blk round trip checked byte by byte in the image file, across a
-- VM stop and restart, a read-only disk, virtio-rng, a guest that breaks
-- every rule (guests/virtio_hostile64.c, one case per run), and the
-- transport driven from Lua alone with vm:dispatch.
--
-- The guests ask for their parameters with hypercall 0x30 and report with
-- hypercall 0x31 (guests/vtest.h): 0 the mode or case, 1 the device's base,
-- 2 the features (1 indirect, 2 event index), 3 the memory size.
local vmm = require "vmm"
local H = require "helper"
local V = require "virtio_helper"

local BLK, RNG = 0xd0000000, 0xd0001000
local HC_CHECKPOINT = V.HC_CHECKPOINT
local SECTOR, MEMORY = V.SECTOR, V.MEMORY
local F_INDIRECT, F_EVENT_IDX = 1, 2
local VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 = 28, 29, 32
local BLK_F_RO = 5

local pattern, disk, assert_image = V.pattern, V.disk, V.assert_image
local guest_vm, run, assert_passed = V.guest_vm, V.run, V.assert_passed
local function image(bytes) return H.tmpfile(bytes, finally) end

local function has_feature(features, bit) return (features >> bit) & 1 == 1 end

-- ---- virtio-blk ----

local ROUND_TRIP, WRITE, READ, READONLY = 0, 1, 2, 3
local DISK_SECTORS, written_disk = V.DISK_SECTORS, V.written_disk

local function blk_vm(path, params, opts)
  local vm, out = guest_vm("virtio_blk64.bin", params)
  local dev = vm:virtio_blk{ addr = BLK, irq = 5, path = path, id = "virtio-spec disk",
                             readonly = opts and opts.readonly }
  return vm, out, dev
end

describe("virtio-blk with the runtime's driver", function()
  for _, f in ipairs{ 0, F_INDIRECT, F_EVENT_IDX, F_INDIRECT | F_EVENT_IDX } do
    local name = ({ [0] = "direct descriptors", "indirect descriptors", "event indexes",
                    "indirect descriptors and event indexes" })[f]
    it("round trip with " .. name .. ": the pattern lands at the exact offsets", function()
      local path = image(disk(DISK_SECTORS))
      local vm <close>, out, dev = blk_vm(path, { [0] = ROUND_TRIP, [1] = BLK, [2] = f })
      local r = run(vm, out)
      assert_passed(r)
      assert.matches('id: "virtio-spec disk"', r.output, 1, true)
      assert.matches("capacity: 2048 sectors, block size 512", r.output, 1, true)
      local st = dev:status()
      assert.same({ driver_ok = true, needs_reset = false, errors = 0, reads = 3, writes = 3,
                    flushes = 1, io_errors = 4, bytes_read = 12 * SECTOR,
                    bytes_written = 12 * SECTOR, bad_accesses = 0 },
                  { driver_ok = st.driver_ok, needs_reset = st.needs_reset, errors = st.errors,
                    reads = st.reads, writes = st.writes, flushes = st.flushes,
                    io_errors = st.io_errors, bytes_read = st.bytes_read,
                    bytes_written = st.bytes_written, bad_accesses = st.bad_accesses })
      assert.is_true(has_feature(st.features, VIRTIO_F_VERSION_1))
      assert.equal(f & F_INDIRECT ~= 0, has_feature(st.features, VIRTIO_F_INDIRECT_DESC))
      assert.equal(f & F_EVENT_IDX ~= 0, has_feature(st.features, VIRTIO_F_EVENT_IDX))
      -- GET_ID, 3 writes, a flush, 3 reads, 4 past the end: one notification
      -- each (event index or not), and the driver asked for every interrupt.
      assert.equal(12, st.notifies)
      assert.equal(12, st.interrupts)
      vm:close()
      assert_image(path, written_disk())
    end)
  end

  it("keeps the data across a VM stop and restart on the same image", function()
    local path = image(disk(DISK_SECTORS))
    do
      local vm <close>, out, dev = blk_vm(path, { [0] = WRITE })
      assert_passed(run(vm, out))
      local st = dev:status()
      assert.equal(3, st.writes)
      assert.equal(1, st.flushes)
      assert.equal(0, st.reads)
    end
    assert_image(path, written_disk())
    local vm <close>, out, dev = blk_vm(path, { [0] = READ, [2] = F_INDIRECT })
    local r = run(vm, out)
    assert_passed(r)
    assert.equal(3, select(2, r.output:gsub("pattern matches", "")))
    local st = dev:status()
    assert.equal(3, st.reads)
    assert.equal(0, st.writes)
    vm:close()
    assert_image(path, written_disk())
  end)

  it("notices data that changed between two VMs (the comparison is real)", function()
    local bytes = written_disk()
    local at = 9 * SECTOR + 100 -- a byte of sector 9
    bytes = bytes:sub(1, at) .. string.char(bytes:byte(at + 1) ~ 0xff) .. bytes:sub(at + 2)
    local path = image(bytes)
    local vm <close>, out = blk_vm(path, { [0] = READ })
    local r = run(vm, out)
    assert.equal("exit", r.reason)
    assert.is_true(r.code > 0, r.output)
    assert.matches("read sectors 8%-15 in 1 descriptors: status 0, PATTERN DIFFERS", r.output)
    assert.matches("check %d+ failed: sectors 8%-15 do not hold the pattern", r.output)
  end)

  it("refuses writes to a read-only disk and leaves the image alone", function()
    local bytes = disk(64, pattern)
    local path = image(bytes)
    local vm <close>, out, dev = blk_vm(path, { [0] = READONLY }, { readonly = true })
    local r = run(vm, out)
    assert_passed(r)
    assert.matches("write sector 0 on a read-only disk: status 1", r.output, 1, true)
    local st = dev:status()
    assert.is_true(has_feature(st.features, BLK_F_RO))
    assert.equal(0, st.writes)
    assert.equal(1, st.io_errors)
    assert.equal(1, st.reads)
    vm:close()
    assert_image(path, bytes)
  end)

  it("with a disk too small for the test, the guest says so instead of failing later",
     function()
    local path = image(disk(8))
    local vm <close>, out = blk_vm(path, { [0] = ROUND_TRIP })
    local r = run(vm, out)
    assert.equal("exit", r.reason)
    assert.is_true(r.code > 0)
    assert.matches("capacity 8: the disk needs 32 sectors at least", r.output, 1, true)
  end)
end)

-- ---- virtio-rng ----

describe("virtio-rng with the runtime's driver", function()
  for _, f in ipairs{ 0, F_INDIRECT | F_EVENT_IDX } do
    it("gives 64 random bytes twice" .. (f ~= 0 and " (indirect, event index)" or ""),
       function()
      local vm <close>, out = guest_vm("virtio_rng64.bin", { [1] = RNG, [2] = f })
      local dev = vm:virtio_rng{ addr = RNG, irq = 6 }
      local r = run(vm, out)
      assert_passed(r)
      local first = r.output:match("first :([ %x]+)")
      local second = r.output:match("second:([ %x]+)")
      assert.is_truthy(first and second)
      assert.are_not.equal(first, second)
      local st = dev:status()
      assert.equal(4, st.device_id)
      assert.equal(2, st.notifies)
      assert.is_false(st.needs_reset)
      assert.equal(f & F_INDIRECT ~= 0, has_feature(st.features, VIRTIO_F_INDIRECT_DESC))
    end)
  end
end)

-- ---- a hostile driver ----

-- One entry per case of guests/virtio_hostile64.c, in its order.
--   reset:   the device must have set NEEDS_RESET, with an error matching this
--   error:   an error message without NEEDS_RESET at the checkpoint (the case reset it)
--   counters at the checkpoint: exact values (features, bad_accesses, io_errors),
--   notifies: at least this many
--   image:   the sectors the case may change, and their new content
local CASES = {
  { "buffer_outside_memory", reset = "buffer outside guest memory (0x400000+0x200)" },
  { "buffer_straddles_end", reset = "buffer outside guest memory (0x3fff00+0x200)" },
  { "length_wraps", reset = "buffer outside guest memory (0xffffffffffffff00+0x200)" },
  { "write_from_outside", reset = "buffer outside guest memory (0xdead00000000+0x200)" },
  { "chain_loops", reset = "descriptor chain 0 loops" },
  { "next_out_of_range", reset = "descriptor chain 0 links to descriptor 200 of 16" },
  { "head_out_of_range", reset = "available ring entry 0 names descriptor 999 of 16" },
  { "avail_index_far_ahead",
    reset = "available index 1000 is 1000 entries ahead of the device, more than the queue's 16" },
  { "zero_length_buffers", io_errors = 0, reads = 2 },
  { "status_missing_on_write", reset = "request 0 has no writable status byte" },
  { "status_missing_on_read", io_errors = 1 },
  { "header_device_writable", io_errors = 1 },
  { "write_data_device_writable", io_errors = 1, writes = 0 },
  { "read_data_device_readable", io_errors = 1 },
  { "readable_after_writable", reset = "has a device-readable buffer after a writable one" },
  { "bad_request_fields", io_errors = 4, writes = 0 },
  { "data_over_used_ring", reads = 1 },
  { "data_over_descriptors", reads = 1 },
  { "rings_outside_memory", reset = "queue 0: a ring is outside guest memory" },
  { "rings_misaligned", reset = "queue 0: misaligned ring" },
  { "queue_size_not_power_of_two", reset = "queue 0: queue size 3 is not a power of two" },
  { "queue_size_over_max", reset = "queue 0: size 512 is larger than QueueNumMax 256" },
  { "queue_size_zero", reset = "queue 0: queue size 0 is not a power of two" },
  { "queue_registers_while_ready", bad_accesses = 0 },
  { "queue_select_out_of_range", bad_accesses = 0 },
  { "notify_unknown_queues", bad_accesses = 3 },
  { "notify_before_queue_setup", reads = 0 },
  { "notify_storm", notifies = 200, reads = 1 },
  { "readonly_registers", bad_accesses = 19 },
  { "narrow_register_accesses", bad_accesses = 11 },
  { "config_space_bounds", bad_accesses = 6 },
  { "unoffered_features", features = 1 << VIRTIO_F_VERSION_1 },
  { "features_after_features_ok", features = 1 << VIRTIO_F_VERSION_1 },
  { "driver_ok_without_features_ok", reset = "the driver set DRIVER_OK without FEATURES_OK" },
  { "indirect_not_negotiated", reset = "uses an indirect table, which was not negotiated" },
  { "indirect_nested", reset = "an indirect table points at another" },
  { "indirect_huge",
    reset = "indirect table length 1048576 is not a multiple of 16 from 16 to 16384" },
  { "indirect_odd_length", reset = "indirect table length 40 is not a multiple of 16" },
  { "indirect_with_next", reset = "an indirect descriptor also has NEXT" },
  { "indirect_loops", reset = "the indirect table's links loop" },
  { "indirect_outside_memory",
    reset = "indirect table at 0x3ffff0+0x30 is outside guest memory or misaligned" },
  { "indirect_in_chain", reset = "an indirect descriptor is not the chain's only one" },
  { "indirect_many_tiny_buffers", reads = 2, io_errors = 0 },
  { "reuse_after_needs_reset", reset = "buffer outside guest memory (0xdead00000000+0x200)" },
  { "reset_then_write", error = "available ring entry 0 names descriptor 999 of 16", writes = 1,
    image = { [100] = pattern(1000) } },
  { "buffers_in_rom", writes = 1, image = { [4] = string.rep("\xc5", SECTOR) },
    reset = "has a device-writable buffer in read-only memory 'rom' (0x800000+0x200)" },
  { "used_ring_in_rom", reset = "queue 0: the device area 0x800000 is in read-only memory 'rom'" },
}

-- Guest memory the hostile guest never uses legitimately: below its image
-- (above the page tables), from past its stacks to the end, where its bad
-- buffers point half inside, and a page of ROM (a read-only region, past a
-- hole after RAM) that the device may read but never write.
local ROM = 0x800000
local CANARIES = { { 0x8000, 0x100000 - 0x8000 }, { 0x200000, MEMORY - 0x200000 },
                   { ROM, 0x1000 } }
local CANARY_BYTE = 0xc5
for _, range in ipairs(CANARIES) do range[3] = string.rep(string.char(CANARY_BYTE), range[2]) end

describe("a hostile virtio driver", function()
  local HOSTILE_SECTORS = 128

  for n, c in ipairs(CASES) do
    local what = c.reset and "the device needs a reset: " .. c.reset
      or c.error and "an error, then a reset: " .. c.error
      or "the device copes without a reset"
    it(string.format("case %d, %s: %s", n, c[1], what), function()
      local bytes = disk(HOSTILE_SECTORS, pattern)
      local path = image(bytes)
      local vm <close>, out = guest_vm("virtio_hostile64.bin",
                                       { [0] = n, [1] = BLK, [3] = MEMORY, [4] = ROM })
      vm.memory:map{ gpa = ROM, size = 0x1000, name = "rom", readonly = true }
      local dev = vm:virtio_blk{ addr = BLK, irq = 5, path = path }
      local seen
      vm:on_hypercall(HC_CHECKPOINT, function() seen = dev:status() end)
      for _, range in ipairs(CANARIES) do vm.memory:fill(range[1], range[2], CANARY_BYTE) end

      local r = run(vm, out)
      assert.matches(string.format("case %d: %s\n", n, c[1]), r.output, 1, true)
      assert_passed(r)
      for _, range in ipairs(CANARIES) do
        local got = vm.memory:read(range[1], range[2])
        if got ~= range[3] then
          error(string.format("guest memory at 0x%x changed", range[1] + got:find("[^\xc5]") - 1))
        end
      end

      -- What the device said at the checkpoint, before the guest reset it.
      assert.is_table(seen, "the guest never reached its checkpoint")
      if c.reset then
        assert.is_true(seen.needs_reset)
        assert.equal(1, seen.errors)
        assert.is_string(seen.error)
        assert.matches(c.reset, seen.error, 1, true)
      elseif c.error then
        assert.is_false(seen.needs_reset)
        assert.equal(1, seen.errors)
        assert.matches(c.error, seen.error, 1, true)
      else
        assert.is_false(seen.needs_reset)
        assert.equal(0, seen.errors)
        assert.is_nil(seen.error)
      end
      for _, k in ipairs{ "bad_accesses", "io_errors", "features", "reads", "writes" } do
        if c[k] then assert.equal(c[k], seen[k], k) end
      end
      if c.notifies then assert.is_true(seen.notifies >= c.notifies) end

      -- After the guest's reset the device worked again.
      local st = dev:status()
      assert.is_true(st.driver_ok)
      assert.is_false(st.needs_reset)
      assert.matches("a correct read after a reset: ok", r.output, 1, true)
      vm:close()
      local want = disk(HOSTILE_SECTORS, function(s) return c.image and c.image[s] or pattern(s) end)
      assert_image(path, want)
    end)
  end

  it("names a case it does not know and exits 254", function()
    local vm <close>, out = guest_vm("virtio_hostile64.bin", { [0] = #CASES + 1, [3] = MEMORY })
    vm:virtio_blk{ addr = BLK, irq = 5, path = image(disk(HOSTILE_SECTORS)) }
    local r = run(vm, out)
    assert.equal(254, r.code)
    assert.matches("no case " .. (#CASES + 1), r.output, 1, true)
  end)
end)

-- ---- the transport from Lua alone ----

describe("the virtio-mmio transport driven with vm:dispatch", function()
  local MAGIC, VERSION, DEVICE_ID, VENDOR_ID = 0x000, 0x004, 0x008, 0x00c
  local DEVICE_FEATURES, DEVICE_FEATURES_SEL = 0x010, 0x014
  local DRIVER_FEATURES, DRIVER_FEATURES_SEL = 0x020, 0x024
  local QUEUE_SEL, QUEUE_NUM_MAX, QUEUE_NUM, QUEUE_READY = 0x030, 0x034, 0x038, 0x044
  local QUEUE_NOTIFY, INTERRUPT_STATUS, INTERRUPT_ACK, STATUS = 0x050, 0x060, 0x064, 0x070
  local QUEUE_DESC, QUEUE_DRIVER, QUEUE_DEVICE = 0x080, 0x090, 0x0a0
  local CONFIG_GENERATION, CONFIG = 0x0fc, 0x100
  local ACK, DRIVER, DRIVER_OK, FEATURES_OK, NEEDS_RESET = 1, 2, 4, 8, 64

  local vm, blk, path
  before_each(function()
    path = H.write_file(os.tmpname(), disk(64, pattern))
    vm = vmm.vm{ memory = "1M" }
    blk = vm:virtio_blk{ addr = BLK, irq = 5, path = path }
    vm:virtio_rng{ addr = RNG, irq = 6 }
  end)
  after_each(function()
    vm:close()
    os.remove(path)
  end)

  local function get(off, size, base)
    return vm:dispatch{ kind = "mmio", addr = (base or BLK) + off, size = size or 4 }
  end
  local function set(off, value, size, base)
    vm:dispatch{ kind = "mmio", addr = (base or BLK) + off, size = size or 4, value = value }
  end
  -- Driver features (64 bits) and a status write, FEATURES_OK asked for.
  local function negotiate(features)
    set(STATUS, 0)
    set(STATUS, ACK | DRIVER)
    set(DRIVER_FEATURES_SEL, 0)
    set(DRIVER_FEATURES, features & 0xffffffff)
    set(DRIVER_FEATURES_SEL, 1)
    set(DRIVER_FEATURES, features >> 32)
    set(STATUS, ACK | DRIVER | FEATURES_OK)
    return get(STATUS)
  end

  it("identifies both devices", function()
    assert.same({ 0x74726976, 2, 2, 0x4d4d564c },
                { get(MAGIC), get(VERSION), get(DEVICE_ID), get(VENDOR_ID) })
    assert.same({ 0x74726976, 2, 4 },
                { get(MAGIC, 4, RNG), get(VERSION, 4, RNG), get(DEVICE_ID, 4, RNG) })
    assert.equal(0, blk:status().bad_accesses)
  end)

  it("offers its features 32 bits at a time", function()
    set(DEVICE_FEATURES_SEL, 0)
    local lo = get(DEVICE_FEATURES)
    set(DEVICE_FEATURES_SEL, 1)
    local hi = get(DEVICE_FEATURES)
    set(DEVICE_FEATURES_SEL, 2)
    assert.equal(0, get(DEVICE_FEATURES))
    local f = hi << 32 | lo
    for _, bit in ipairs{ VIRTIO_F_VERSION_1, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX,
                          2, 6, 9 } do
      assert.is_true(has_feature(f, bit), "feature bit " .. bit)
    end
    assert.is_false(has_feature(f, BLK_F_RO))
  end)

  it("keeps FEATURES_OK only for offered features with VERSION_1", function()
    local v1 = 1 << VIRTIO_F_VERSION_1
    assert.equal(ACK | DRIVER | FEATURES_OK, negotiate(v1 | 1 << 9))
    assert.equal(v1 | 1 << 9, blk:status().features)
    assert.equal(ACK | DRIVER, negotiate(1 << 9))            -- no VERSION_1
    assert.equal(ACK | DRIVER, negotiate(v1 | 1 << 1))       -- SIZE_MAX: not offered
    assert.equal(ACK | DRIVER, negotiate(v1 | 1 << 40))
    assert.equal(ACK | DRIVER | FEATURES_OK, negotiate(v1 | 1 << VIRTIO_F_EVENT_IDX))
    -- Once FEATURES_OK holds, the features are fixed.
    set(DRIVER_FEATURES_SEL, 0)
    set(DRIVER_FEATURES, 0xffffffff)
    assert.equal(v1 | 1 << VIRTIO_F_EVENT_IDX, blk:status().features)
    set(STATUS, 0)
    assert.equal(0, get(STATUS))
    assert.equal(0, blk:status().features)
    assert.equal(0, blk:status().errors)
  end)

  it("refuses DRIVER_OK without FEATURES_OK, saying why", function()
    set(STATUS, ACK | DRIVER)
    set(STATUS, ACK | DRIVER | DRIVER_OK)
    assert.equal(ACK | DRIVER | NEEDS_RESET, get(STATUS))
    local st = blk:status()
    assert.is_true(st.needs_reset)
    assert.is_false(st.driver_ok)
    assert.equal("the driver set DRIVER_OK without FEATURES_OK", st.error)
    set(STATUS, 0)
    assert.equal(0, get(STATUS))
    assert.is_false(blk:status().needs_reset)
  end)

  it("reads 0 and ignores writes for accesses other than 4 aligned bytes, and counts them",
     function()
    negotiate(1 << VIRTIO_F_VERSION_1)
    for _, a in ipairs{ { MAGIC, 1 }, { MAGIC, 2 }, { MAGIC, 8 }, { MAGIC + 1, 1 },
                        { MAGIC + 2, 4 }, { STATUS, 2 } } do
      assert.equal(0, get(a[1], a[2]), string.format("offset 0x%x, %d bytes", a[1], a[2]))
    end
    set(STATUS, 0, 1)          -- a reset, were it 4 bytes
    set(STATUS, 0, 2)
    set(STATUS, 0, 8)
    set(STATUS + 1, 0, 4)
    assert.equal(ACK | DRIVER | FEATURES_OK, get(STATUS))
    assert.equal(10, blk:status().bad_accesses)
    -- Unknown and write-only registers read 0; read-only ones ignore writes.
    assert.equal(0, get(0x0c0))
    assert.equal(0, get(QUEUE_NOTIFY))
    set(MAGIC, 0)
    set(DEVICE_ID, 7)
    assert.equal(0x74726976, get(MAGIC))
    assert.equal(2, get(DEVICE_ID))
    assert.equal(14, blk:status().bad_accesses)
    assert.is_false(blk:status().needs_reset)
  end)

  it("keeps config accesses inside the config space", function()
    assert.equal(64, get(CONFIG, 8))                 -- capacity, in sectors
    assert.equal(64, get(CONFIG, 1))
    assert.equal(512, get(CONFIG + 20, 4))           -- blk_size
    assert.equal(0, get(CONFIG + 24, 4))             -- past the 24 bytes
    assert.equal(0, get(CONFIG + 20, 8))             -- across the end
    assert.equal(0, get(CONFIG + 0xeff, 1))          -- the window's last byte
    assert.equal(3, blk:status().bad_accesses)
    set(CONFIG, 12345, 8)                            -- read-only: dropped
    assert.equal(64, get(CONFIG, 8))
    assert.equal(0, get(CONFIG_GENERATION))
    assert.equal(0, get(CONFIG, 4, RNG))             -- rng has no config at all
    assert.equal(4, blk:status().bad_accesses)
  end)

  it("has one queue of up to 256 entries", function()
    set(QUEUE_SEL, 0)
    assert.equal(256, get(QUEUE_NUM_MAX))
    assert.equal(0, get(QUEUE_READY))
    set(QUEUE_SEL, 1)
    assert.equal(0, get(QUEUE_NUM_MAX))
    set(QUEUE_NUM, 8)
    set(QUEUE_READY, 1)
    assert.equal(0, get(QUEUE_READY))
    assert.is_false(blk:status().needs_reset)
  end)

  it("serves a request that Lua built in guest memory", function()
    local mem = vm.memory
    local DESC, AVAIL, USED, HDR, DATA, ST = 0x10000, 0x11000, 0x12000, 0x13000, 0x14000, 0x15000
    assert.equal(ACK | DRIVER | FEATURES_OK, negotiate(1 << VIRTIO_F_VERSION_1))
    set(QUEUE_SEL, 0)
    set(QUEUE_NUM, 8)
    set(QUEUE_DESC, DESC)
    set(QUEUE_DRIVER, AVAIL)
    set(QUEUE_DEVICE, USED)
    set(QUEUE_READY, 1)
    assert.equal(1, get(QUEUE_READY))
    set(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    mem:write(HDR, string.pack("<I4I4I8", 0, 0, 7))                 -- read sector 7
    mem:write(DESC, string.pack("<I8I4I2I2", HDR, 16, 1, 1)
      .. string.pack("<I8I4I2I2", DATA, SECTOR, 3, 2)
      .. string.pack("<I8I4I2I2", ST, 1, 2, 0))
    mem:u8(ST, 0xee)
    mem:write(AVAIL, string.pack("<I2I2I2", 0, 1, 0))
    set(QUEUE_NOTIFY, 0)
    assert.equal(1, mem:u16(USED + 2))
    assert.same({ 0, SECTOR + 1 }, { mem:u32(USED + 4), mem:u32(USED + 8) })
    assert.equal(0, mem:u8(ST))
    assert.equal(pattern(7), mem:read(DATA, SECTOR))
    assert.equal(1, get(INTERRUPT_STATUS))               -- a used buffer
    set(INTERRUPT_ACK, 1)
    assert.equal(0, get(INTERRUPT_STATUS))
    local st = blk:status()
    assert.equal(1, st.reads)
    assert.equal(1, st.interrupts)
  end)
end)

-- ---- the example ----

describe("scripts/virtio-blk.lua", function()
  local LUAVMM = H.quote(H.luavmm)

  it("runs the round trip on a temporary image and prints what the device did", function()
    if not H.can_spawn then return pending(H.no_spawn_reason) end
    local r = H.sh(LUAVMM .. " scripts/virtio-blk.lua --indirect --event-idx", { limit = 60 })
    assert.equal(0, r.rc, r.out .. r.err)
    assert.equal("", r.err)
    assert.matches("virtio_blk64: all %d+ checks passed\n", r.out)
    assert.matches("run: exit 0 after [%d.]+ s, %d+ exits\n", r.out)
    assert.matches("features 0x130000244, 12 notifications, 12 interrupts\n", r.out, 1, true)
    assert.matches("3 reads (6144 bytes), 3 writes (6144 bytes), 1 flushes, 4 I/O errors, "
                   .. "0 bad accesses, needs reset: false\n", r.out, 1, true)
    assert.matches("image: the pattern is on sectors 0-2, 8-15 and 2047\n", r.out, 1, true)
  end)

  it("writes the image given with --image, and refuses unknown arguments", function()
    if not H.can_spawn then return pending(H.no_spawn_reason) end
    local path = image(disk(40))
    local r = H.sh(LUAVMM .. " scripts/virtio-blk.lua --image " .. H.quote(path), { limit = 60 })
    assert.equal(0, r.rc, r.out .. r.err)
    assert.matches("image: the pattern is on sectors 0-2, 8-15 and 39\n", r.out, 1, true)
    assert_image(path, disk(40, function(s)
      return (s <= 2 or (s >= 8 and s <= 15) or s == 39) and pattern(s) or nil
    end))
    r = H.sh(LUAVMM .. " scripts/virtio-blk.lua --bogus")
    assert.equal(2, r.rc)
    assert.matches("virtio-blk.lua: unknown argument --bogus\nusage:", r.err, 1, true)
  end)
end)
