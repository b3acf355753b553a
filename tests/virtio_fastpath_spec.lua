-- The virtio fast path (src/dev/virtio_mmio.c): queue notifications of C
-- backends through KVM_IOEVENTFD, served by the device's I/O thread, and
-- interrupts through an irqfd when the VM has the in-kernel irqchip; the
-- `fastpath` option and what dev:status() says about it. End to end with
-- the runtime's driver: the virtio-blk round trip (virtio_blk64) with no
-- QueueNotify exit, a guest that waits for completion interrupts and one
-- whose handler races new work against its ACK (virtio_irq64), hostile
-- drivers with and without the fast path, and runs stopped and resumed in
-- the middle of a stream of requests.
local vmm = require "vmm"
local virtio = require "vmm.virtio"
local H = require "helper"
local V = require "virtio_helper"

local BLK, RNG = 0xd0000000, 0xd0001000
local NOTIFY = 0x50
local HC_CHECKPOINT, HC_PROGRESS = V.HC_CHECKPOINT, 0x32
local SECTOR, MEMORY, TIMEOUT = V.SECTOR, V.MEMORY, V.TIMEOUT
local F_INDIRECT, F_EVENT_IDX = 1, 2
local IRQ = 5
local NO_IRQ = 0xff

local pattern, disk, assert_image = V.pattern, V.disk, V.assert_image
local guest_vm, run, assert_passed = V.guest_vm, V.run, V.assert_passed
local function image(bytes) return H.tmpfile(bytes, finally) end

-- QueueNotify exits of the device at base, from vm:stats().
local function notify_exits(vm, base)
  return vm:stats().mmio[(base or BLK) + NOTIFY] or 0
end

local function path_counts(st)
  return { notifies = st.notifies, notifies_ioeventfd = st.notifies_ioeventfd,
           notifies_mmio = st.notifies_mmio, interrupts = st.interrupts,
           interrupts_irqfd = st.interrupts_irqfd, interrupts_line = st.interrupts_line }
end

local DISK_SECTORS, written_disk = V.DISK_SECTORS, V.written_disk

describe("the virtio fast path: notifications through ioeventfd", function()
  for _, f in ipairs{ 0, F_INDIRECT | F_EVENT_IDX } do
    it("serves the blk round trip with no QueueNotify exit" .. (f ~= 0
         and " (indirect descriptors, event index)" or ""), function()
      local path = image(disk(DISK_SECTORS))
      local vm <close>, out = guest_vm("virtio_blk64.bin", { [0] = 0, [1] = BLK, [2] = f })
      local dev = vm:virtio_blk{ addr = BLK, irq = IRQ, path = path, id = "fast disk",
                                 fastpath = true }
      local r = run(vm, out)
      assert_passed(r)
      assert.matches('id: "fast disk"', r.output, 1, true)
      local st = dev:status()
      assert.is_nil(st.fastpath_error)
      assert.same({ fastpath = true, ioeventfd = true, irqfd = false },
                  { fastpath = st.fastpath, ioeventfd = st.ioeventfd, irqfd = st.irqfd })
      -- GET_ID, 3 writes, a flush, 3 reads, 4 past the end: all through the
      -- eventfd; interrupts on the line (no irqchip).
      assert.same({ notifies = 12, notifies_ioeventfd = 12, notifies_mmio = 0, interrupts = 12,
                    interrupts_irqfd = 0, interrupts_line = 12 }, path_counts(st))
      assert.equal(0, notify_exits(vm))
      assert.same({ reads = 3, writes = 3, flushes = 1, io_errors = 4, errors = 0 },
                  { reads = st.reads, writes = st.writes, flushes = st.flushes,
                    io_errors = st.io_errors, errors = st.errors })
      vm:close()
      assert_image(path, written_disk())
    end)
  end

  it("is the default, and fastpath = false puts every notification back on the exit path",
     function()
    local path = image(disk(DISK_SECTORS))
    local vm <close>, out = guest_vm("virtio_blk64.bin", { [0] = 0, [1] = BLK })
    local dev = vm:virtio_blk{ addr = BLK, irq = IRQ, path = path, fastpath = false }
    assert.is_true(vm:virtio_rng{ addr = RNG, irq = 6 }:status().ioeventfd)
    local r = run(vm, out)
    assert_passed(r)
    local st = dev:status()
    assert.same({ fastpath = false, ioeventfd = false, irqfd = false },
                { fastpath = st.fastpath, ioeventfd = st.ioeventfd, irqfd = st.irqfd })
    assert.same({ notifies = 12, notifies_ioeventfd = 0, notifies_mmio = 12, interrupts = 12,
                  interrupts_irqfd = 0, interrupts_line = 12 }, path_counts(st))
    assert.equal(12, notify_exits(vm))
    vm:close()
    assert_image(path, written_disk())
  end)

  it("serves virtio-rng the same way", function()
    local vm <close>, out = guest_vm("virtio_rng64.bin", { [1] = RNG, [2] = F_EVENT_IDX })
    local dev = vm:virtio_rng{ addr = RNG, irq = 6, fastpath = true }
    local r = run(vm, out)
    assert_passed(r)
    assert.are_not.equal(r.output:match("first :([ %x]+)"), r.output:match("second:([ %x]+)"))
    local st = dev:status()
    assert.is_true(st.ioeventfd)
    assert.equal(2, st.notifies_ioeventfd)
    assert.equal(0, notify_exits(vm, RNG))
  end)

  it("keeps a Lua backend's notifications on the exit path; it gets an irqfd at most",
     function()
    local vm <close> = vmm.vm{ memory = "2M", irqchip = true }
    local served = 0
    local dev = vm:virtio{ addr = BLK, irq = IRQ, device_id = 0x7e, queues = { 8 },
                           fastpath = true, notify = function(d, q)
      for chain in function() return d:pop(q) end do
        d:push(q, chain, 0)
        served = served + 1
      end
      d:notify_used(q)
    end }
    local drv = virtio.driver(vm, BLK)
    assert(drv:init())
    drv:queue(0, 8)
    drv:live()
    drv:offer(0, { { 0x8000, 4, write = true } })
    drv:notify(0)
    assert.equal(1, served)
    local st = dev:status()
    assert.same({ fastpath = true, ioeventfd = false, irqfd = true },
                { fastpath = st.fastpath, ioeventfd = st.ioeventfd, irqfd = st.irqfd })
    assert.same({ notifies = 1, notifies_ioeventfd = 0, notifies_mmio = 1, interrupts = 1,
                  interrupts_irqfd = 1, interrupts_line = 0 }, path_counts(st))
    assert.is_true(vm:irq_level(IRQ)) -- the record follows InterruptStatus
    drv:ack()
    assert.is_false(vm:irq_level(IRQ))
  end)

  it("is an option of every C virtio device, the console's too", function()
    if not vmm.methods.vm.virtio_console then
      return pending("no vm:virtio_console in this tree")
    end
    local vm <close> = vmm.vm{ memory = "1M" }
    local on = vm:virtio_console{ addr = BLK, irq = IRQ, input = false, output = false }
    local off = vm:virtio_console{ addr = RNG, irq = 6, input = false, output = false,
                                   fastpath = false }
    assert.same({ true, true }, { on:status().fastpath, on:status().ioeventfd })
    assert.same({ false, false }, { off:status().fastpath, off:status().ioeventfd })
  end)

  it("refuses a fastpath that is not a boolean and unknown options, before the device exists",
     function()
    local vm <close> = vmm.vm{ memory = "1M" }
    local path = image(disk(8))
    assert.matches("virtio_blk: fastpath must be true or false, not string",
                   H.error_of(vm.virtio_blk, vm, { addr = BLK, irq = IRQ, path = path,
                                                   fastpath = "yes" }))
    assert.matches("virtio_rng: fastpath must be true or false, not number",
                   H.error_of(vm.virtio_rng, vm, { addr = RNG, irq = 6, fastpath = 1 }))
    assert.matches("virtio: fastpath must be true or false, not table",
                   H.error_of(vm.virtio, vm, { addr = RNG, irq = 6, device_id = 4,
                                               queues = { 8 }, notify = print, fastpath = {} }))
    -- Nor a misspelt option, naming what is known, nor an id that is no string.
    assert.matches("virtio_blk: unknown option 'read_only' %(known: addr, irq, path, readonly, "
                   .. "id, fastpath%)",
                   H.error_of(vm.virtio_blk, vm, { addr = BLK, irq = IRQ, path = path,
                                                   read_only = true }))
    assert.matches("virtio_blk: id must be a string %(got table%)",
                   H.error_of(vm.virtio_blk, vm, { addr = BLK, irq = IRQ, path = path, id = {} }))
    assert.matches("virtio_rng: unknown option 'path' %(known: addr, irq, fastpath%)",
                   H.error_of(vm.virtio_rng, vm, { addr = RNG, irq = 6, path = path }))
    -- Nothing was attached: the addresses are still free.
    vm:virtio_blk{ addr = BLK, irq = IRQ, path = path }
    vm:virtio_rng{ addr = RNG, irq = 6 }
  end)
end)

describe("interrupts through irqfd (irqchip = true)", function()
  for _, fastpath in ipairs{ true, false } do
    it("a guest waiting for completion interrupts gets them" .. (fastpath and ""
         or " (fastpath = false: KVM_IRQ_LINE)"), function()
      local path = image(disk(64))
      local vm <close>, out = guest_vm("virtio_irq64.bin", { [0] = 0, [1] = BLK, [5] = IRQ },
                                       { irqchip = true })
      local dev = vm:virtio_blk{ addr = BLK, irq = IRQ, path = path, fastpath = fastpath }
      local r = run(vm, out)
      assert_passed(r)
      local taken = tonumber(r.output:match("3 requests, (%d+) interrupts taken"))
      assert.is_true(taken ~= nil and taken >= 1, r.output)
      local st = dev:status()
      assert.equal(fastpath, st.irqfd)
      assert.equal(fastpath, st.ioeventfd)
      -- Write, flush, read: one used-buffer interrupt each.
      assert.same({ notifies = 3, notifies_ioeventfd = fastpath and 3 or 0,
                    notifies_mmio = fastpath and 0 or 3, interrupts = 3,
                    interrupts_irqfd = fastpath and 3 or 0,
                    interrupts_line = fastpath and 0 or 3 }, path_counts(st))
      assert.equal(fastpath and 0 or 3, notify_exits(vm))
      vm:close()
      assert_image(path, disk(64, function(s) return s < 8 and pattern(s) or nil end))
    end)

    it("loses no interrupt when new work completes after the driver's ACK" .. (fastpath and ""
         or " (fastpath = false)"), function()
      local vm <close>, out = guest_vm("virtio_irq64.bin", { [0] = 1, [1] = BLK, [5] = IRQ },
                                       { irqchip = true })
      local dev = vm:virtio_blk{ addr = BLK, irq = IRQ, path = image(disk(64, pattern)),
                                 fastpath = fastpath }
      local r = run(vm, out)
      assert_passed(r)
      assert.matches("ACK race: 2 interrupts", r.output, 1, true)
      local st = dev:status()
      assert.equal(2, st.interrupts)
      assert.equal(fastpath and 2 or 0, st.interrupts_irqfd)
    end)
  end

  it("without an irqchip, the line is the one Lua sees", function()
    local path = image(disk(DISK_SECTORS))
    local vm <close>, out = guest_vm("virtio_blk64.bin", { [0] = 0, [1] = BLK })
    local dev = vm:virtio_blk{ addr = BLK, irq = IRQ, path = path }
    assert.is_false(vm:irq_level(IRQ))
    assert_passed(run(vm, out))
    local st = dev:status()
    assert.is_false(st.irqfd)
    -- The guest acknowledged only the first interrupt: the line is up.
    assert.is_true(vm:irq_level(IRQ))
    assert.equal(12, st.interrupts_line)
  end)
end)

-- ---- hostile drivers ----

-- A subset of tests/virtio_spec.lua's cases (numbers as in
-- guests/virtio_hostile64.c), each run with and without the fast path: the
-- device must say and do the same.
local HOSTILE = {
  { 1, "buffer_outside_memory", reset = "buffer outside guest memory (0x400000+0x200)" },
  { 5, "chain_loops", reset = "descriptor chain 0 loops" },
  { 8, "avail_index_far_ahead", reset = "available index 1000 is 1000 entries ahead" },
  { 9, "zero_length_buffers", io_errors = 0, reads = 2 },
  { 10, "status_missing_on_write", reset = "request 0 has no writable status byte" },
  { 16, "bad_request_fields", io_errors = 4, writes = 0 },
  { 17, "data_over_used_ring", reads = 1 },
  { 26, "notify_unknown_queues", bad_accesses = 3 },
  { 27, "notify_before_queue_setup", reads = 0 },
  { 28, "notify_storm", reads = 1 },
  { 34, "driver_ok_without_features_ok", reset = "the driver set DRIVER_OK without FEATURES_OK" },
  { 43, "indirect_many_tiny_buffers", reads = 2, io_errors = 0 },
  { 44, "reuse_after_needs_reset", reset = "buffer outside guest memory (0xdead00000000+0x200)" },
  { 45, "reset_then_write", error = "available ring entry 0 names descriptor 999 of 16",
    writes = 1, image = { [100] = 1000 } },
}
local HOSTILE_SECTORS = 128
local ROM = 0x800000

local function hostile(case, fastpath)
  local path = image(disk(HOSTILE_SECTORS, pattern))
  local vm <close>, out = guest_vm("virtio_hostile64.bin",
                                   { [0] = case[1], [1] = BLK, [3] = MEMORY, [4] = ROM })
  vm.memory:map{ gpa = ROM, size = 0x1000, name = "rom", readonly = true }
  local dev = vm:virtio_blk{ addr = BLK, irq = IRQ, path = path, fastpath = fastpath }
  local seen
  vm:on_hypercall(HC_CHECKPOINT, function() seen = dev:status() end)
  local r = run(vm, out)
  assert.matches(string.format("case %d: %s\n", case[1], case[2]), r.output, 1, true)
  assert_passed(r)
  assert.is_table(seen, "the guest never reached its checkpoint")
  local st = dev:status()
  vm:close()
  local want = disk(HOSTILE_SECTORS, function(s)
    return case.image and case.image[s] and pattern(case.image[s]) or pattern(s)
  end)
  assert_image(path, want)
  return r.output, seen, st
end

-- What a case's checkpoint must show (as tests/virtio_spec.lua checks it).
local function check_case(case, seen)
  if case.reset then
    assert.is_true(seen.needs_reset)
    assert.equal(1, seen.errors)
    assert.matches(case.reset, seen.error, 1, true)
  elseif case.error then
    assert.is_false(seen.needs_reset)
    assert.matches(case.error, seen.error, 1, true)
  else
    assert.is_false(seen.needs_reset)
    assert.equal(0, seen.errors)
  end
  for _, k in ipairs{ "bad_accesses", "io_errors", "reads", "writes" } do
    if case[k] then assert.equal(case[k], seen[k], k) end
  end
end

describe("a hostile virtio driver with the fast path", function()
  for _, case in ipairs(HOSTILE) do
    it(string.format("case %d, %s: the same as on the exit path", case[1], case[2]), function()
      local out_fast, seen_fast, st_fast = hostile(case, true)
      local out_slow, seen_slow, st_slow = hostile(case, false)
      check_case(case, seen_fast)
      check_case(case, seen_slow)
      assert.equal(out_slow, out_fast)
      for _, k in ipairs{ "needs_reset", "errors", "error", "bad_accesses", "io_errors", "reads",
                          "writes", "features", "status" } do
        assert.equal(seen_slow[k], seen_fast[k], k)
      end
      -- Every notification counted, whichever way it came; those of a
      -- live queue 0 came through the eventfd.
      assert.equal(st_slow.notifies, st_fast.notifies)
      assert.equal(0, st_slow.notifies_ioeventfd)
      assert.is_true(st_fast.notifies_ioeventfd > 0)
      assert.is_true(st_fast.ioeventfd)
    end)
  end
end)

-- ---- stopping and resuming mid-stream ----

local STREAM = 24        -- 4 KiB writes, then as many reads
local BLOCK_SECTORS = 8

local function stream_disk(n)
  return disk(n, function(s) return s < STREAM * BLOCK_SECTORS and pattern(s) or nil end)
end

local function stream_vm(path, opts)
  local vm, out = guest_vm("virtio_irq64.bin", { [0] = 2, [1] = BLK, [5] = opts.line or IRQ,
                                                 [6] = STREAM }, { irqchip = opts.irqchip })
  local dev = vm:virtio_blk{ addr = BLK, irq = IRQ, path = path }
  vm:on_hypercall(HC_PROGRESS, function() end)
  return vm, out, dev
end

describe("a VM stopped and resumed in the middle of a stream of requests", function()
  for _, variant in ipairs{ { irqchip = true, name = "interrupts" },
                            { irqchip = false, line = NO_IRQ, name = "polling" } } do
    it("loses nothing when stopped right after each third notification (" .. variant.name
         .. ")", function()
      local sectors = STREAM * BLOCK_SECTORS + 64
      local path = image(disk(sectors))
      local vm <close>, out, dev = stream_vm(path, variant)
      local stops = 0
      vm:on_hypercall(HC_PROGRESS, function(_, i)
        if i % 3 == 0 then vm:stop(i) end
      end)
      local r
      repeat
        r = run(vm, out)
        if r.reason == "stop" then
          stops = stops + 1
          -- A stopped VM serves nothing: its I/O thread is gone, and a
          -- notification it had not read yet waits in its eventfd.
          local before = dev:status()
          vmm.sleep(0.02)
          local after = dev:status()
          assert.same(path_counts(before), path_counts(after))
          assert.equal(before.reads + before.writes, after.reads + after.writes)
        end
      until r.reason ~= "stop"
      assert_passed(r)
      assert.equal(2 * STREAM // 3, stops)
      local st = dev:status()
      assert.equal(2 * STREAM, st.notifies_ioeventfd)
      assert.equal(0, st.notifies_mmio)
      assert.equal(STREAM, st.writes)
      assert.equal(STREAM, st.reads)
      assert.equal(0, notify_exits(vm))
      vm:close()
      assert_image(path, stream_disk(sectors))
    end)
  end

  it("loses nothing when runs end at short timeouts, wherever they land", function()
    local sectors = STREAM * BLOCK_SECTORS
    local path = image(disk(sectors))
    local vm <close>, out, dev = stream_vm(path, { irqchip = true })
    local runs, r = 0, nil
    repeat
      runs = runs + 1
      r = run(vm, out, { timeout = 0.03 })
    until r.reason ~= "timeout" or runs > 2000
    assert_passed(r)
    assert.is_true(runs > 1, "the stream ended within one run: nothing was interrupted")
    local st = dev:status()
    assert.equal(STREAM, st.writes)
    assert.equal(STREAM, st.reads)
    assert.equal(0, st.errors)
    vm:close()
    assert_image(path, stream_disk(sectors))
  end)

  it("goes on through a pause, and a close in the middle of a background run joins its thread",
     function()
    local sectors = STREAM * BLOCK_SECTORS
    local path = image(disk(sectors))
    local vm, out, dev = stream_vm(path, { irqchip = true })
    vm:start()
    vmm.sleep(0.05)
    assert.is_true(vm:pause())
    vm:resume()
    local r = vm:wait{ timeout = TIMEOUT, raise = false }
    r.output = table.concat(out)
    assert_passed(r)
    assert.equal(2 * STREAM, dev:status().notifies_ioeventfd)
    vm:close()
    assert_image(path, stream_disk(sectors))

    local vm2 <close>, _, dev2 = stream_vm(image(disk(sectors)), { irqchip = true })
    vm2:start()
    vmm.sleep(0.05)
    vm2:close()
    assert.is_true(vm2.closed)
    assert.matches("closed", tostring(dev2))
  end)
end)
