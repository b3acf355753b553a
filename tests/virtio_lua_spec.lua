-- virtio devices written in Lua (vm:virtio): the transport's registers,
-- the queue API (pop, chain:read/write, push, notify_used), config space,
-- failures and misuse, driven through vm:dispatch with rings built by hand
-- in guest memory (vmm.virtio's driver); then the Lua virtio-rng
-- (vmm.devices.rng) against the guest driver that also drives the C one.
local vmm = require "vmm"
local H = require "helper"
local virtio = require "vmm.virtio"
local rng = require "vmm.devices.rng"

local BASE = 0xd0002000
local IRQ = 7
local R, S = virtio.reg, virtio.status
local BUF = 0x8000 -- data buffers; the driver's rings are at 0x10000

-- A VM with a Lua device (opts merged over a minimal one) and a driver that
-- has negotiated VERSION_1 and set up queue 0 with 8 entries, live unless
-- opts.live == false. Returns vm, dev, drv.
local function setup(opts)
  opts = opts or {}
  local vm = vmm.vm{ memory = "2M" }
  local spec = { addr = BASE, irq = IRQ, device_id = 0x7e, queues = { 8 },
                 notify = function() end }
  for k, v in pairs(opts) do
    if k ~= "live" and k ~= "features_wanted" then spec[k] = v end
  end
  local dev = vm:virtio(spec)
  local drv = virtio.driver(vm, BASE)
  assert(drv:init(opts.features_wanted))
  drv:queue(0, 8)
  if opts.live ~= false then drv:live() end
  return vm, dev, drv
end

-- A notify callback that pops every chain and hands each to fn(dev, q, chain).
local function serve(fn)
  return function(dev, q)
    while true do
      local chain, err = dev:pop(q)
      if chain == nil then
        assert(err == nil, err)
        break
      end
      fn(dev, q, chain)
    end
  end
end

describe("a Lua virtio device", function()
  it("shows the driver the transport's registers and its own identity", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    vm:virtio{ addr = BASE, irq = IRQ, device_id = 0x2a, features = 0x5, queues = { 64, 16 },
               notify = function() end }
    local drv = virtio.driver(vm, BASE)
    assert.equal(0x74726976, drv:read(R.magic))
    assert.equal(2, drv:read(R.version))
    assert.equal(0x2a, drv:read(R.device_id))
    local f = drv:device_features()
    assert.equal(0x5, f & 0xffffff)
    assert.is_true(f & (1 << virtio.feature.version_1) ~= 0)
    drv:write(R.queue_sel, 0)
    assert.equal(64, drv:read(R.queue_num_max))
    drv:write(R.queue_sel, 1)
    assert.equal(16, drv:read(R.queue_num_max))
    drv:write(R.queue_sel, 2)
    assert.equal(0, drv:read(R.queue_num_max))
    assert.equal("vmm.virtio (Lua device 42 'virtio device 42' at 0xd0003000, irq 8)",
                 tostring(vm:virtio{ addr = BASE + 0x1000, irq = 8, device_id = 42,
                                     queues = { 1 }, notify = function() end }))
  end)

  it("calls notify with the device and the queue, on the vCPU's coroutine", function()
    local calls = {}
    local vm <close>, dev, drv = setup{ queues = { 8, 8 }, notify = function(d, q)
      local _, main = coroutine.running()
      calls[#calls + 1] = { d, q, main }
    end }
    drv:queue(1, 4)
    drv:notify(1)
    drv:notify(0)
    assert.equal(2, #calls)
    assert.equal(dev, calls[1][1])
    assert.equal(1, calls[1][2])
    assert.equal(0, calls[2][2])
    assert.is_false(calls[1][3])
    assert.equal(2, dev:status().notifies)
  end)

  it("is not notified before DRIVER_OK, for a queue that is not ready, or a bad index", function()
    local n = 0
    local vm <close>, dev, drv = setup{ live = false, queues = { 8, 8 },
                                        notify = function() n = n + 1 end }
    drv:notify(0)
    assert.equal(0, n)
    drv:live()
    drv:notify(1) -- queue 1 is not set up
    drv:notify(9)
    assert.equal(0, n)
    assert.equal(1, dev:status().bad_accesses)
    drv:notify(0)
    assert.equal(1, n)
  end)

  it("pops chains with their sizes and reads their readable part", function()
    local seen = {}
    local vm <close>, dev, drv = setup{ notify = serve(function(d, q, chain)
      seen[#seen + 1] = { head = chain.head, queue = chain.queue, readable = chain.readable,
                          writable = chain.writable, count = chain.count,
                          all = chain:read(), mid = chain:read(1, 3), tail = chain:read(8, 100),
                          none = chain:read(11) }
      d:push(q, chain, 0)
    end) }
    vm.memory:write(BUF, "hello")
    vm.memory:write(BUF + 0x100, " world")
    drv:offer(0, { { BUF, 5 }, { BUF + 0x100, 6 }, { BUF + 0x200, 16, write = true } })
    drv:notify(0)
    assert.same({ { head = 0, queue = 0, readable = 11, writable = 16, count = 3,
                    all = "hello world", mid = "ell", tail = "rld", none = "" } }, seen)
    assert.same({ { id = 0, len = 0 } }, drv:used(0))
  end)

  it("writes into the writable part, bounded by it, and pushes the length", function()
    local vm <close>, dev, drv = setup{ notify = serve(function(d, q, chain)
      assert.equal(3, chain:write("abc"))
      assert.equal(9, chain:write(string.rep("x", 100))) -- appends, up to the end
      assert.equal(12, chain.written)
      assert.equal(2, chain:write("YZ", 4))
      assert.equal(0, chain:write("!", 12))
      d:push(q, chain)
    end) }
    vm.memory:fill(BUF, 0x100, 0x2e)
    -- 4 + 8 writable bytes in two buffers, with a gap between them
    drv:offer(0, { { BUF, 4, write = true }, { BUF + 0x10, 8, write = true } })
    drv:notify(0)
    assert.equal("abcx", vm.memory:read(BUF, 4))
    assert.equal("YZxxxxxx", vm.memory:read(BUF + 0x10, 8))
    assert.equal(string.rep(".", 12), vm.memory:read(BUF + 4, 12))
    assert.equal(".", vm.memory:read(BUF + 0x18, 1))
    assert.same({ { id = 0, len = 12 } }, drv:used(0))
  end)

  it("serves many chains, wrapping around the rings", function()
    local vm <close>, dev, drv = setup{ notify = serve(function(d, q, chain)
      d:push(q, chain, chain:write(chain:read():upper()))
    end) }
    local used = {}
    for i = 1, 20 do
      vm.memory:write(BUF, "req" .. i)
      local head = drv:offer(0, { { BUF, #("req" .. i) }, { BUF + 0x100, 8, write = true } })
      drv:notify(0)
      local u = drv:used(0)
      assert.same({ { id = head, len = #("req" .. i) } }, u)
      used[#used + 1] = vm.memory:read(BUF + 0x100, u[1].len)
    end
    assert.equal("REQ1", used[1])
    assert.equal("REQ20", used[20])
  end)

  it("interrupts the driver through its line when it wants one", function()
    local wants = {}
    local vm <close>, dev, drv = setup{ notify = serve(function(d, q, chain)
      d:push(q, chain, 0)
      wants[#wants + 1] = d:notify_used(q)
    end) }
    assert.is_false(vm:irq_level(IRQ))
    drv:offer(0, { { BUF, 4, write = true } })
    drv:notify(0)
    assert.same({ true }, wants)
    assert.is_true(vm:irq_level(IRQ))
    assert.equal(virtio.interrupt.used, drv:read(R.interrupt_status))
    assert.equal(virtio.interrupt.used, drv:ack())
    assert.is_false(vm:irq_level(IRQ))
    assert.is_false(dev:notify_used(0)) -- nothing new since
    -- VIRTQ_AVAIL_F_NO_INTERRUPT: the driver does not want one
    vm.memory:u16(drv.queues[0].avail, virtio.avail.no_interrupt)
    drv:offer(0, { { BUF, 4, write = true } })
    drv:notify(0)
    assert.same({ true, false }, wants)
    assert.is_false(vm:irq_level(IRQ))
    assert.equal(1, dev:status().interrupts)
  end)

  it("honours the event index when the driver negotiated it", function()
    local vm <close>, dev, drv = setup{
      features_wanted = (1 << virtio.feature.version_1) | (1 << virtio.feature.event_idx),
      notify = serve(function(d, q, chain) d:push(q, chain, 0) end) }
    local rec = drv.queues[0]
    vm.memory:u16(rec.avail + 4 + 2 * rec.size, 1) -- used_event: after the second entry
    drv:offer(0, { { BUF, 4, write = true } })
    drv:notify(0)
    assert.is_false(dev:notify_used(0))
    drv:offer(0, { { BUF, 4, write = true } })
    drv:notify(0)
    assert.is_true(dev:notify_used(0))
    assert.is_true(vm:irq_level(IRQ))
  end)

  it("walks indirect tables when the driver negotiated them", function()
    local got
    local vm <close>, dev, drv = setup{
      features_wanted = (1 << virtio.feature.version_1) | (1 << virtio.feature.indirect_desc),
      notify = serve(function(d, q, chain)
        got = { chain.readable, chain.writable, chain:read() }
        d:push(q, chain, chain:write("ok"))
      end) }
    local table_at = 0x9000
    vm.memory:write(BUF, "in")
    vm.memory:write(table_at, string.pack("<I8I4I2I2", BUF, 2, virtio.desc.next, 1)
      .. string.pack("<I8I4I2I2", BUF + 0x10, 2, virtio.desc.write, 0))
    local rec = drv.queues[0]
    vm.memory:write(rec.desc, string.pack("<I8I4I2I2", table_at, 32, virtio.desc.indirect, 0))
    vm.memory:u16(rec.avail + 4, 0)
    vm.memory:u16(rec.avail + 2, 1)
    drv:notify(0)
    assert.same({ 2, 2, "in" }, got)
    assert.equal("ok", vm.memory:read(BUF + 0x10, 2))
  end)

  it("has a config space the driver reads and writes through the transport", function()
    local writes = {}
    local vm <close>, dev, drv = setup{ config = "\x01\x02\x03\x04abcd",
      config_write = function(d, offset, size) writes[#writes + 1] = { offset, size, d:config() } end }
    assert.equal(0x04030201, drv:read(R.config, 4))
    assert.equal(0x62, drv:read(R.config + 5, 1))
    assert.equal(0x64636261, drv:read(R.config + 4, 4))
    assert.equal(0x6463626104030201, drv:read(R.config, 8))
    assert.equal(0, drv:read(R.config + 6, 4)) -- runs past the 8 bytes
    assert.equal(1, dev:status().bad_accesses)
    drv:write(R.config + 4, 0x5a5a, 2)
    assert.same({ { 4, 2, "\x01\x02\x03\x04ZZcd" } }, writes)
    assert.equal("ZZcd", dev:config(4))
    assert.equal("\x02\x03", dev:config(1, 2))
    local gen = drv:read(R.config_generation)
    dev:config(0, "\xff")
    assert.equal(gen + 1, drv:read(R.config_generation))
    assert.equal(0xff, drv:read(R.config, 1))
    -- a live driver is told of the change with a config interrupt
    assert.equal(virtio.interrupt.config, drv:read(R.interrupt_status))
    assert.is_true(vm:irq_level(IRQ))
    assert.matches("run past the 8 config bytes", H.error_of(dev.config, dev, 6, "xyz"))
    assert.matches("outside the 8 config bytes", H.error_of(dev.config, dev, 9))
    assert.matches("run past", H.error_of(dev.config, dev, 2, 7))
  end)

  it("fails with a reason: NEEDS_RESET until the driver resets it", function()
    local notified, resets = 0, {}
    local vm <close>, dev, drv = setup{ notify = function() notified = notified + 1 end,
      reset = function(d) resets[#resets + 1] = d:status().status end }
    assert.same({ 0 }, resets) -- the driver's reset when it started
    resets = {}
    dev:fail("the backend caught fire")
    local st = dev:status()
    assert.is_true(st.needs_reset)
    assert.equal("the backend caught fire", st.error)
    assert.equal(1, st.errors)
    assert.is_true(drv:status() & S.needs_reset ~= 0)
    -- the driver hears of it through a config interrupt
    assert.equal(virtio.interrupt.config, drv:read(R.interrupt_status))
    drv:offer(0, { { BUF, 4, write = true } })
    drv:notify(0)
    assert.equal(0, notified) -- a broken device serves nobody
    local chain, err = dev:pop(0)
    assert.is_nil(chain)
    assert.equal("the device needs a reset (the backend caught fire)", err)
    drv:init()
    assert.same({ 0 }, resets)
    assert.is_false(dev:status().needs_reset)
  end)

  it("makes a chain that breaks the rules a NEEDS_RESET, and pop returns why", function()
    local results = {}
    local vm <close>, dev, drv = setup{ name = "pickydev", notify = function(d, q)
      results[#results + 1] = { d:pop(q) }
    end }
    drv:offer(0, { { 0x7fff0000, 16, write = true } }) -- far outside the 2 MiB
    drv:notify(0)
    assert.is_nil(results[1][1])
    assert.matches("^pickydev: queue 0: descriptor chain 0 has a buffer outside guest memory",
                   results[1][2])
    local st = dev:status()
    assert.is_true(st.needs_reset)
    assert.equal(results[1][2], st.error)
  end)

  it("stops the run when notify fails, naming the device and the queue", function()
    local vm <close>, dev, drv = setup{ name = "grumpy", notify = function(d, q)
      error("no entropy today")
    end }
    local err = H.error_of(drv.notify, drv, 0)
    assert.matches("Lua handler for grumpy at 0xd0002000 %(notify, queue 0%) failed:", err)
    assert.matches("no entropy today", err)
    assert.matches("stack traceback", err)

    -- the same from a guest: mov eax, BASE + QueueNotify; mov dword [rax], 0; hlt
    vm.memory:write(0x100000, "\xb8" .. H.u32(BASE + R.queue_notify) .. "\xc7\x00" .. H.u32(0)
      .. "\xf4")
    vm:cpu(0):set_mode("long")
    err = H.error_of(vm.run, vm, { timeout = 10 })
    assert.matches("^cpu 0: Lua handler for grumpy at 0xd0002000 %(notify, queue 0%) failed:", err)
    assert.matches("no entropy today", err)
  end)

  it("stops when config_write or reset fail too", function()
    local armed = false
    local vm <close>, dev, drv = setup{ config = "\0\0\0\0",
      config_write = function() error("read-only, really") end,
      reset = function() if armed then error("cannot reset") end end }
    armed = true
    assert.matches("%(config_write, offset 2, 1 byte%) failed:.*read%-only, really",
                   H.error_of(drv.write, drv, R.config + 2, 1, 1))
    assert.matches("%(reset%) failed:.*cannot reset", H.error_of(drv.write, drv, R.status, 0))
  end)

  it("runs notify on the vCPU's thread during a background run", function()
    local vm <close>, dev, drv = setup{ notify = serve(function(d, q, chain)
      d:push(q, chain, chain:write("from thread"))
      d:notify_used(q)
    end) }
    drv:offer(0, { { BUF, 16, write = true } })
    vm.memory:write(0x100000, "\xb8" .. H.u32(BASE + R.queue_notify) .. "\xc7\x00" .. H.u32(0)
      .. "\xf4")
    vm:cpu(0):set_mode("long")
    vm:start()
    local r = vm:wait{ timeout = 10 }
    assert.equal("hlt", r.reason)
    assert.equal("from thread", vm.memory:read(BUF, 11))
    assert.same({ { id = 0, len = 11 } }, drv:used(0))
    assert.is_true(vm:irq_level(IRQ))
  end)

  describe("misuse", function()
    it("checks the constructor's options", function()
      local vm <close> = vmm.vm{ memory = "1M" }
      local function try(t)
        local o = { addr = BASE, irq = IRQ, device_id = 4, queues = { 8 }, notify = print }
        for k, v in pairs(t) do o[k] = v end
        if t.notify == false then o.notify = nil end
        return H.error_of(vm.virtio, vm, o)
      end
      assert.matches("unknown option 'queue'", try{ queue = 8 })
      assert.matches("queues must be a list of 1 to 8", try{ queues = {} })
      assert.matches("queues%[2%] must be a power of two", try{ queues = { 8, 12 } })
      assert.matches("queues%[1%] must be a power of two", try{ queues = { 65536 } })
      assert.matches("bits 24 to 40, which belong to the transport",
                     try{ features = 1 << 32 })
      assert.matches("config must be a string of at most 256", try{ config = ("x"):rep(257) })
      assert.matches("notify must be a function", try{ notify = false })
      assert.matches("reset must be a function or nil", try{ reset = 3 })
      assert.matches("device_id must be an integer", try{ device_id = 0 })
      assert.matches("4096%-aligned", try{ addr = BASE + 8 })
      assert.matches("irq must be", try{ irq = 99 })
      assert.matches("overlap", (function()
        vm:virtio{ addr = BASE, irq = IRQ, device_id = 4, queues = { 8 }, notify = print }
        return try{}
      end)())
    end)

    it("checks queue indices", function()
      local vm <close>, dev = setup{}
      assert.matches("no queue 1 %(this device has queues 0 to 0%)", H.error_of(dev.pop, dev, 1))
      assert.matches("no queue %-1", H.error_of(dev.notify_used, dev, -1))
      assert.matches("number expected", H.error_of(dev.pop, dev, "zero"))
    end)

    it("refuses a chain from another device, queue, or pushed twice", function()
      local kept = {}
      local vm <close>, dev, drv = setup{ queues = { 8, 8 }, notify = function(d, q)
        kept[#kept + 1] = d:pop(q)
      end }
      local other = vm:virtio{ addr = BASE + 0x1000, irq = 8, device_id = 4, queues = { 8 },
                               notify = print }
      drv:queue(1, 8)
      drv:offer(0, { { BUF, 8, write = true } })
      drv:notify(0)
      local chain = assert(kept[1])
      assert.matches("popped from another virtio device", H.error_of(other.push, other, 0, chain))
      assert.matches("popped from queue 0, not queue 1", H.error_of(dev.push, dev, 1, chain))
      assert.matches("written 9 is not 0 to the chain's 8", H.error_of(dev.push, dev, 0, chain, 9))
      assert.matches("outside the chain's 8 writable", H.error_of(chain.write, chain, "x", 9))
      assert.matches("outside the chain's 0 readable", H.error_of(chain.read, chain, 1))
      dev:push(0, chain, 8)
      assert.is_true(chain.pushed)
      assert.matches("already pushed", H.error_of(dev.push, dev, 0, chain))
      assert.matches("chain:write: chain 0 was already pushed", H.error_of(chain.write, chain, "x"))
      assert.matches("no field or method 'bogus'", H.error_of(function() return chain.bogus end))
      assert.matches("^vmm.virtio.chain %(queue 0, head 0, 0 readable, 8 writable, pushed%)$",
                     tostring(chain))
    end)

    it("refuses a chain popped before the driver reset the device", function()
      local kept = {}
      local vm <close>, dev, drv = setup{ notify = function(d, q) kept[#kept + 1] = d:pop(q) end }
      vm.memory:write(BUF, "old")
      drv:offer(0, { { BUF, 3 }, { BUF + 0x10, 8, write = true } })
      drv:notify(0)
      local chain = assert(kept[1])
      drv:init()
      drv:queue(0, 8)
      drv:live()
      assert.matches("chain:read: the chain is stale", H.error_of(chain.read, chain))
      assert.matches("chain:write: the chain is stale", H.error_of(chain.write, chain, "x"))
      assert.matches("dev:push: the chain is stale", H.error_of(dev.push, dev, 0, chain))
      assert.same({}, drv:used(0))
    end)

    it("refuses chains and devices once the VM is closed", function()
      local kept = {}
      local vm, dev, drv = setup{ notify = function(d, q) kept[#kept + 1] = d:pop(q) end }
      drv:offer(0, { { BUF, 8, write = true } })
      drv:notify(0)
      local chain = assert(kept[1])
      vm:close()
      assert.matches("the VM of this chain's virtio device is closed",
                     H.error_of(chain.write, chain, "x"))
      assert.matches("closed", H.error_of(chain.read, chain))
      assert.matches("the VM of this virtio device is closed", H.error_of(dev.pop, dev, 0))
      assert.matches("the VM of this virtio device is closed", H.error_of(dev.status, dev))
      assert.equal("vmm.virtio (closed)", tostring(dev))
      assert.equal(8, chain.writable) -- fields still read
    end)

    it("is not taken for the C device of the same id", function()
      local vm <close> = vmm.vm{ memory = "1M" }
      local dev = vm:virtio{ addr = BASE, irq = IRQ, device_id = 2, queues = { 8 },
                             name = "my-blk", notify = print }
      local st = dev:status()
      assert.equal(2, st.device_id)
      assert.equal("my-blk", st.name)
      assert.is_nil(st.reads) -- virtio-blk's statistics are the C device's only
    end)

    it("has no queue methods on C devices", function()
      local vm <close> = vmm.vm{ memory = "1M" }
      local dev = vm:virtio_rng{ addr = BASE, irq = IRQ }
      assert.matches("dev:pop: this is a C virtio device", H.error_of(dev.pop, dev, 0))
      assert.matches("C virtio device", H.error_of(dev.fail, dev, "x"))
    end)

    it("cannot be added while the VM runs", function()
      local vm <close> = vmm.vm{ memory = "2M" }
      vm.memory:write(0x100000, "\xeb\xfe") -- jmp $
      vm:cpu(0):set_mode("long")
      vm:start()
      assert.matches("the VM is running", H.error_of(vm.virtio, vm, { addr = BASE, irq = IRQ,
        device_id = 4, queues = { 8 }, notify = print }))
      vm:stop()
      vm:wait()
    end)
  end)
end)

describe("the Lua virtio-rng (vmm.devices.rng)", function()
  it("fills each buffer from its seeded generator", function()
    local vm <close> = vmm.vm{ memory = "2M" }
    local dev, stats = rng.attach(vm, { addr = BASE, irq = IRQ, seed = 1234 })
    local drv = virtio.driver(vm, BASE)
    assert.equal(4, drv:read(R.device_id))
    assert.is_true(drv:init())
    drv:queue(0, 8)
    drv:live()
    drv:offer(0, { { BUF, 10, write = true } })
    drv:offer(0, { { BUF + 0x100, 7, write = true }, { BUF + 0x200, 9, write = true } })
    drv:notify(0)
    assert.same({ { id = 0, len = 10 }, { id = 1, len = 16 } }, drv:used(0))
    local expect = rng.generator(1234)(26)
    assert.equal(expect, vm.memory:read(BUF, 10) .. vm.memory:read(BUF + 0x100, 7)
      .. vm.memory:read(BUF + 0x200, 9))
    assert.same({ served = 2, bytes = 26 }, stats)
    assert.is_true(vm:irq_level(IRQ))
  end)

  it("reads /dev/urandom without a seed, and caps a request at max bytes", function()
    local vm <close> = vmm.vm{ memory = "2M" }
    rng.attach(vm, { addr = BASE, irq = IRQ, max = 32 })
    local drv = virtio.driver(vm, BASE)
    drv:init()
    drv:queue(0, 8)
    drv:live()
    drv:offer(0, { { BUF, 64, write = true } })
    drv:notify(0)
    assert.same({ { id = 0, len = 32 } }, drv:used(0))
    assert.not_equal(string.rep("\0", 32), vm.memory:read(BUF, 32))
    assert.equal(string.rep("\0", 32), vm.memory:read(BUF + 32, 32))
  end)

  it("has a generator that does not depend on how it is asked", function()
    local a, b = rng.generator(7), rng.generator(7)
    assert.equal(a(5) .. a(11) .. a(1), b(17))
    assert.not_equal(rng.generator(8)(16), rng.generator(7)(16))
    assert.matches("unknown option 'sead'", H.error_of(rng.attach, vmm.vm{ memory = false },
                                                       { addr = BASE, irq = IRQ, sead = 1 }))
  end)
end)

-- The guest driver the other virtio specs use, against the C virtio-rng
-- and the Lua one: the same guest passes with both.
describe("the virtio-rng guest", function()
  local guest = H.guest("virtio_rng64.bin")
  local have = io.open(guest, "rb")
  if have then have:close() end

  -- Runs the guest against a device made by attach(vm, base); returns the
  -- run's result and the console text.
  local function run_guest(attach, features, background)
    local vm <close> = vmm.vm{ memory = "8M" }
    vm:load(guest, 0x100000)
    vm:cpu(0):set_mode("long")
    local out = {}
    vm:on_io(0xe9, function(_, _, _, v) out[#out + 1] = string.char(v) end)
    vm:debug_exit{ port = 0xf4 }
    local base = 0xd0004000
    vm:on_hypercall(0x30, function(_, i)
      if i == 1 then return base elseif i == 2 then return features or 0 end
      return 0
    end)
    vm:on_hypercall(0x31, function() end)
    local dev = attach(vm, base)
    local r
    if background then
      vm:start()
      r = vm:wait{ timeout = 60 }
    else
      r = vm:run{ timeout = 60 }
    end
    return r, table.concat(out), dev:status()
  end

  local function c_rng(vm, base) return vm:virtio_rng{ addr = base, irq = 5 } end
  local function lua_rng(vm, base) return rng.attach(vm, { addr = base, irq = 5 }) end
  local function seeded_rng(vm, base) return rng.attach(vm, { addr = base, irq = 5, seed = 99 }) end
  for _, case in ipairs{
    { "the C device", c_rng },
    { "the C device, indirect descriptors and event index", c_rng, 3 },
    { "the Lua device", lua_rng },
    { "the Lua device, indirect descriptors and event index", lua_rng, 3 },
    { "the seeded Lua device in a background run", seeded_rng, 1, true },
  } do
    local name, attach, features, background = case[1], case[2], case[3], case[4]
    if have then
      it("passes with " .. name, function()
        local r, text, st = run_guest(attach, features, background)
        assert.equal("exit", r.reason, text)
        assert.equal(0, r.code, text)
        assert.matches("all %d+ checks passed", text)
        assert.is_false(st.needs_reset)
      end)
    else
      pending("passes with " .. name .. " (no " .. guest .. " yet)")
    end
  end
end)
