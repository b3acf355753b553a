-- virtio-console (src/dev/virtio_console.c) against the runtime's virtio
-- driver (guests/virtio_console64.c): output to a file, exactly and in
-- order, bursts included; input from a file or a FIFO into receive buffers
-- offered late or small, none of it lost; a driver that breaks the
-- console's rules; the options; and the terminal, raw during a run and
-- given back after it and after Ctrl-A x.
--
-- The guest asks for its parameters with hypercall 0x30 and reports with
-- hypercall 0x31 (see the top of guests/virtio_console64.c).
local vmm = require "vmm"
local mode = require "vmm.mode"
local H = require "helper"
local V = require "virtio_helper"

local BASE, IRQ = 0xd0002000, 7
local HC_PARAM, HC_CHECKPOINT = 0x30, 0x31
local MEMORY = 4 * 1024 * 1024
local ROM = 0x800000
local TIMEOUT = 20
local F_INDIRECT, F_EVENT_IDX = 1, 2
local ECHO, BURST, HOSTILE = 0, 1, 2
local P = { mode = 0, base = 1, features = 2, memory = 3, rom = 4, case = 5, input = 6,
            rx_size = 7, rx_bufs = 8, burst = 9, chunk = 10, any = 11 }
local CP_BEFORE_RX, CP_BURST_START, CP_BURST_END, CP_CASE_DONE = 1, 2, 3, 4

local GREETING = "virtio_console64: hello through the transmit queue\n"
  .. "split over two descriptors\n" .. "one more request, three buffers\n"
local KNOWN = "luavmm virtio console input: the quick brown fox jumps over the lazy dog "
  .. "0123456789\n"
local AFTER_RESET = "after reset: ok\n"

-- n bytes of KNOWN repeated: what the echo guest expects.
local function known(n)
  return KNOWN:rep(n // #KNOWN + 1):sub(1, n)
end

-- The burst: byte i is byte i % 64 KiB of 32-bit words w * 2654435761.
local PATTERN
local function burst_bytes(n)
  if not PATTERN then
    local t = {}
    for w = 0, 16383 do t[#t + 1] = string.pack("<I4", (w * 2654435761) & 0xffffffff) end
    PATTERN = table.concat(t)
  end
  return PATTERN:rep(n // #PATTERN + 1):sub(1, n)
end

-- A temporary file, removed when the test ends.
local function tmpfile(content) return H.tmpfile(content, finally) end

-- The first byte where two strings differ, for messages.
local function difference(got, want)
  if got == want then return "nothing" end
  for i = 1, math.min(#got, #want) do
    if got:byte(i) ~= want:byte(i) then
      return string.format("byte %d (0x%02x, expected 0x%02x) of %d (expected %d): %q", i - 1,
                           got:byte(i), want:byte(i), #got, #want, got:sub(i, i + 40))
    end
  end
  return string.format("the lengths: %d bytes, expected %d", #got, #want)
end

local function assert_bytes(want, got, what)
  assert(got == want, (what or "the output") .. " differs at " .. difference(got, want))
end

-- A VM running the guest with its console collected, the exit port a C
-- device and parameters answered from `params`; `console` holds the
-- options of vm:virtio_console (addr and irq filled in).
local function console_vm(params, console)
  local vm = vmm.vm{ memory = MEMORY }
  vm:load(H.guest("virtio_console64.bin"), mode.layout.entry)
  vm:cpu(0):set_mode("long")
  local out = {}
  vm:on_io(0xe9, function(_, _, _, v) out[#out + 1] = string.char(v) end)
  vm:debug_exit{ port = 0xf4 }
  params[P.memory] = params[P.memory] or MEMORY
  vm:on_hypercall(HC_PARAM, function(_, i) return params[i] or 0 end)
  vm:on_hypercall(HC_CHECKPOINT, function() end) -- tests that look there replace it
  console.addr, console.irq = console.addr or BASE, console.irq or IRQ
  local dev = vm:virtio_console(console)
  return vm, out, dev
end

local run, assert_passed = V.run, V.assert_passed

local function assert_clean(st)
  assert.is_false(st.needs_reset, st.error)
  assert.equal(0, st.errors)
  assert.is_nil(st.error)
  assert.equal(0, st.output_errors)
end

-- ---- output ----

describe("virtio-console output", function()
  for _, f in ipairs{ 0, F_INDIRECT, F_EVENT_IDX, F_INDIRECT | F_EVENT_IDX } do
    local name = ({ [0] = "direct descriptors", "indirect descriptors", "event indexes",
                    "indirect descriptors and event indexes" })[f]
    it("goes to a file exactly, request by request, with " .. name, function()
      local input = known(3 * #KNOWN)
      local path = tmpfile()
      local vm <close>, out, dev = console_vm({ [P.features] = f, [P.input] = #input },
                                              { output = path, input = tmpfile(input) })
      local r = run(vm, out)
      assert_passed(r)
      local st = dev:status()
      assert_clean(st)
      assert.equal(3, st.device_id)
      assert.equal(#GREETING + #input, st.output_bytes)
      assert.equal(#input, st.input_bytes)
      assert.equal(0, st.input_pending)
      assert.equal(f & F_INDIRECT ~= 0, (st.features >> 28) & 1 == 1)
      assert.equal(f & F_EVENT_IDX ~= 0, (st.features >> 29) & 1 == 1)
      vm:close()
      assert_bytes(GREETING .. input, H.read_file(path))
    end)
  end

  for _, c in ipairs{ { 65536, 4096 }, { 65536, 65536 }, { 65536, 256 }, { 200000, 8192 } } do
    local total, chunk = c[1], c[2]
    it(string.format("loses nothing of a burst of %d bytes in requests of %d, each on the file "
                     .. "before the driver has it back", total, chunk), function()
      local path = tmpfile()
      local vm <close>, out, dev = console_vm({ [P.mode] = BURST, [P.burst] = total,
                                                [P.chunk] = chunk },
                                              { output = path, input = false })
      local sizes = {}
      vm:on_hypercall(HC_CHECKPOINT, function(_, n)
        sizes[n] = #(H.read_file(path) or "")
      end)
      local r = run(vm, out)
      assert_passed(r)
      -- Every chain the guest got back was on the file by then.
      assert.same({ [CP_BURST_START] = #GREETING, [CP_BURST_END] = #GREETING + total }, sizes)
      local st = dev:status()
      assert_clean(st)
      assert.equal(#GREETING + total, st.output_bytes)
      vm:close()
      assert_bytes(GREETING .. burst_bytes(total), H.read_file(path))
    end)
  end

  it("writes 1 MiB to a file (throughput)", function()
    local total = 1 << 20
    for _, chunk in ipairs{ 4096, 65536 } do
      local path = tmpfile()
      local vm <close>, out = console_vm({ [P.mode] = BURST, [P.burst] = total,
                                           [P.chunk] = chunk }, { output = path, input = false })
      local t = {}
      vm:on_hypercall(HC_CHECKPOINT, function(_, n) t[n] = vmm.now() end)
      assert_passed(run(vm, out))
      vm:close()
      assert_bytes(GREETING .. burst_bytes(total), H.read_file(path))
      local seconds = t[CP_BURST_END] - t[CP_BURST_START]
      print(string.format("# virtio-console: 1 MiB to a file in requests of %d bytes: %.3f s, "
                          .. "%.1f MB/s", chunk, seconds, total / seconds / 1e6))
    end
  end)

  it("drops output it cannot write, counts it, and keeps serving the driver", function()
    local input = known(#KNOWN)
    local vm <close>, out, dev = console_vm({}, { output = "/dev/full", input = tmpfile(input) })
    assert_passed(run(vm, out))
    local st = dev:status()
    assert.equal(4, st.output_errors) -- three greeting requests and the echo
    assert.equal(#GREETING + #input, st.output_bytes)
    assert.is_false(st.needs_reset)
  end)

  -- In the background and ended by vm:stop: the vCPU may be waiting for
  -- the device's lock while the device's I/O thread waits for room, and
  -- only a stop request lets either go. (A run's timeout is a signal to the
  -- vCPU's thread, which ThreadSanitizer holds back while that thread sits
  -- in pthread_mutex_lock; vm:stop needs no signal to reach the device.)
  it("lets vm:stop end a run while nobody reads the output", function()
    local vm <close>, _, dev = console_vm({ [P.mode] = BURST, [P.burst] = 1 << 20, [P.chunk] = 4096 },
                                          { output = H.stalled_fifo(finally), input = false })
    vm:start()
    vmm.sleep(0.5) -- far more than the guest needs to fill the pipe (not dev:status: see below)
    vm:stop(3)
    local r = vm:wait{ timeout = TIMEOUT, raise = false }
    assert.is_table(r, "the VM did not stop")
    assert.equal("stop", r.reason)
    assert.equal(3, r.code)
    -- Only now: while the I/O thread waits for room it holds the device's
    -- lock, which dev:status() takes too.
    assert.is_true(dev:status().output_errors > 0, "the output left unwritten is counted")
  end)

  it("sends nothing anywhere with output = false", function()
    local input = known(10)
    local vm <close>, out, dev = console_vm({ [P.input] = 10 },
                                            { output = false, input = tmpfile(input) })
    assert_passed(run(vm, out))
    assert.equal(#GREETING + 10, dev:status().output_bytes)
    assert.equal(0, dev:status().output_errors)
  end)
end)

-- ---- input ----

describe("virtio-console input", function()
  for _, c in ipairs{ { 1, 1 }, { 3, 2 }, { 7, 16 }, { 64, 4 }, { 256, 16 } } do
    local size, count = c[1], c[2]
    it(string.format("arrives in order in %d buffer%s of %d bytes offered after it came",
                     count, count == 1 and "" or "s", size), function()
      local input = known(size == 1 and 1500 or 10000)
      local path = tmpfile()
      local vm <close>, out, dev = console_vm({ [P.input] = #input, [P.rx_size] = size,
                                                [P.rx_bufs] = count },
                                              { output = path, input = tmpfile(input) })
      -- Buffers come late: the device has read a chunk and holds it.
      local held
      vm:on_hypercall(HC_CHECKPOINT, function()
        held = H.wait_for(function()
          local st = dev:status()
          return st.input_pending > 0 and st.input_pending
        end, "the device to hold input")
      end)
      local r = run(vm, out)
      assert_passed(r)
      assert.equal(math.min(#input, 4096), held) -- one chunk read, then it waited
      local st = dev:status()
      assert_clean(st)
      assert.equal(#input, st.input_bytes)
      assert.equal(0, st.input_pending)
      vm:close()
      assert_bytes(GREETING .. input, H.read_file(path))
    end)
  end

  it("waits while the guest offers nothing, across a run's end, and goes on next run", function()
    local input = known(5000)
    local path = tmpfile()
    local go = false
    local vm <close>, out, dev = console_vm({ [P.input] = #input, [P.rx_size] = 100 },
                                            { output = path, input = tmpfile(input) })
    vm:on_hypercall(HC_CHECKPOINT, function()
      if go then return end
      H.wait_for(function() return dev:status().input_pending > 0 end, "the device to hold input")
      vm:stop(7)
    end)
    local r = vm:run{ timeout = TIMEOUT }
    assert.equal("stop", r.reason)
    assert.equal(4096, dev:status().input_pending)
    go = true
    r = run(vm, out) -- from after the checkpoint: the guest offers its buffers now
    assert_passed(r)
    assert.equal(#input, dev:status().input_bytes)
    vm:close()
    assert_bytes(GREETING .. input, H.read_file(path))
  end)

  it("reads a FIFO as its writer writes, without blocking on opening it", function()
    if not H.can_spawn then return pending(H.no_spawn_reason) end
    local dir = H.tempdir()
    finally(function() H.remove_tree(dir) end)
    local fifo = dir .. "/fifo"
    assert.is_true(os.execute("mkfifo " .. H.quote(fifo)))
    local input = known(9000)
    local path = tmpfile()
    local vm <close>, out, dev = console_vm({ [P.input] = #input, [P.rx_size] = 37,
                                              [P.rx_bufs] = 3 },
                                            { output = path, input = fifo }) -- no writer yet
    vm:start()
    local w = assert(io.open(fifo, "wb"))
    for i = 1, #input, 2000 do
      vmm.sleep(0.05)
      w:write(input:sub(i, i + 1999))
      w:flush()
    end
    w:close()
    local r = vm:wait{ timeout = TIMEOUT }
    assert.is_table(r)
    r.output, r.seconds = table.concat(out), 0
    assert_passed(r)
    assert.equal(#input, dev:status().input_bytes)
    vm:close()
    assert_bytes(GREETING .. input, H.read_file(path))
  end)

  it("passes Ctrl-A Ctrl-A as one Ctrl-A, and Ctrl-A with anything else as both", function()
    local path = tmpfile()
    local vm <close>, out = console_vm({ [P.input] = 7, [P.any] = 1 },
                                       { output = path, input = tmpfile("ab\1\1c\1zq") })
    assert_passed(run(vm, out))
    vm:close()
    assert_bytes(GREETING .. "ab\1c\1zq", H.read_file(path))
  end)

  it("ends the run with reason 'quit' at Ctrl-A x, and takes no escape when told so", function()
    local vm <close>, out, dev = console_vm({ [P.input] = 20, [P.any] = 1 },
                                            { output = false, input = tmpfile("ab\1xcd") })
    local r = vm:run{ timeout = TIMEOUT }
    assert.equal("quit", r.reason)
    assert.is_true(dev:status().input_bytes <= 2) -- nothing after the escape

    local path = tmpfile()
    local vm2 <close>, out2 = console_vm({ [P.input] = 2, [P.any] = 1 },
                                         { output = path, input = tmpfile("\1x"),
                                           escape = false })
    assert_passed(run(vm2, out2))
    vm2:close()
    assert_bytes(GREETING .. "\1x", H.read_file(path))
  end)
end)

-- ---- a hostile driver ----

-- One entry per case of guests/virtio_console64.c, in its order.
--   reset:  NEEDS_RESET at the checkpoint, with an error containing this
--   output: what the case itself sends (before the reset's AFTER_RESET)
--   input:  the guest reads the input whole (after the reset, or in the case)
--   bad_accesses: the exact count at the checkpoint
local CASES = {
  { "tx_writable", reset = "virtio-console: transmit chain 6 has 16 bytes of device-writable "
    .. "buffers; a transmit queue takes device-readable buffers only" },
  { "tx_only_writable", reset = "virtio-console: transmit chain 6 has 64 bytes of "
    .. "device-writable buffers" },
  { "rx_readable", input = true, reset = "virtio-console: receive chain 0 has 16 bytes of "
    .. "device-readable buffers; a receive queue takes device-writable buffers only" },
  { "rx_readable_then_writable", input = true, reset = "virtio-console: receive chain 0 has 16 "
    .. "bytes of device-readable buffers" },
  { "zero_length", input = true, output = "zero-length\n" },
  { "notify_queue_2", output = "still here\n", bad_accesses = 3 },
  { "tx_outside_memory", reset = "virtio-console: transmit queue: descriptor chain 6 has a "
    .. "buffer outside guest memory (0x3ffff0+0x40)" },
  { "rx_outside_memory", input = true, reset = "virtio-console: receive queue: descriptor "
    .. "chain 0 has a buffer outside guest memory (0xdead00000000+0x40)" },
  { "rx_in_rom", input = true, reset = "virtio-console: receive queue: descriptor chain 0 has a "
    .. "device-writable buffer in read-only memory 'rom' (0x800000+0x40)" },
}

describe("a hostile virtio-console driver", function()
  for n, c in ipairs(CASES) do
    local what = c.reset and "the device needs a reset: " .. c.reset
      or "the device copes without a reset"
    it(string.format("case %d, %s: %s", n, c[1], what), function()
      local input = known(#KNOWN)
      local path = tmpfile()
      local vm <close>, out, dev = console_vm({ [P.mode] = HOSTILE, [P.case] = n, [P.rom] = ROM },
                                              { output = path, input = tmpfile(input) })
      vm.memory:map{ gpa = ROM, size = 0x1000, name = "rom", readonly = true }
      vm.memory:fill(ROM, 0x1000, 0xc5)
      local seen
      vm:on_hypercall(HC_CHECKPOINT, function() seen = dev:status() end)
      local r = run(vm, out)
      assert.matches(string.format("case %d: %s\n", n, c[1]), r.output, 1, true)
      assert_passed(r)
      assert.is_table(seen, "the guest never reached its checkpoint")
      if c.reset then
        assert.is_true(seen.needs_reset)
        assert.equal(1, seen.errors)
        assert.is_string(seen.error)
        assert.matches(c.reset, seen.error, 1, true)
      else
        assert.is_false(seen.needs_reset)
        assert.equal(0, seen.errors)
      end
      if c.bad_accesses then assert.equal(c.bad_accesses, seen.bad_accesses) end
      -- After the guest's reset the device worked again, and the input held
      -- back through all of it arrived whole (the guest checked it).
      local st = dev:status()
      assert.is_true(st.driver_ok)
      assert.is_false(st.needs_reset)
      assert.equal(c.input and #input or 0, st.input_bytes)
      assert.equal(c.input and 0 or #input, st.input_pending)
      assert.equal(string.rep("\xc5", 0x1000), vm.memory:read(ROM, 0x1000))
      vm:close()
      assert_bytes(GREETING .. (c.output or "") .. AFTER_RESET, H.read_file(path))
    end)
  end

  it("names a case it does not know and exits 254", function()
    local vm <close>, out = console_vm({ [P.mode] = HOSTILE, [P.case] = #CASES + 1 },
                                       { output = false, input = false })
    local r = run(vm, out)
    assert.equal(254, r.code)
    assert.matches("no case " .. (#CASES + 1), r.output, 1, true)
  end)
end)

-- ---- the transport's view, and the options ----

describe("vm:virtio_console", function()
  local function get(vm, off, size)
    return vm:dispatch{ kind = "mmio", addr = BASE + off, size = size or 4 }
  end

  it("is device 3 with two queues of up to 256 and no multiport", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    local dev = vm:virtio_console{ addr = BASE, irq = IRQ, output = false, input = false }
    assert.equal(3, get(vm, 0x008))
    vm:dispatch{ kind = "mmio", addr = BASE + 0x014, size = 4, value = 0 }
    local features = get(vm, 0x010)
    assert.equal(0, features & 0x7) -- no SIZE (no terminal here), MULTIPORT, EMERG_WRITE
    for q, max in pairs{ [0] = 256, [1] = 256, [2] = 0, [3] = 0 } do
      vm:dispatch{ kind = "mmio", addr = BASE + 0x030, size = 4, value = q }
      assert.equal(max, get(vm, 0x034), "queue " .. q)
    end
    assert.equal(1, get(vm, 0x104)) -- max_nr_ports
    -- emerg_wr is not offered: a config write is dropped and counted
    vm:dispatch{ kind = "mmio", addr = BASE + 0x108, size = 4, value = 0x41 }
    assert.equal(1, dev:status().bad_accesses)
    assert.equal("virtio_mmio.device=4K@0xd0002000:7", dev:cmdline())
    assert.equal("vmm.virtio (device 3 at 0xd0002000, irq 7)", tostring(dev))
  end)

  it("checks its options", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    local function err(opts)
      opts.addr, opts.irq = opts.addr or BASE, opts.irq or IRQ
      return H.error_of(vm.virtio_console, vm, opts)
    end
    assert.matches("virtio_console: unknown option 'baud' %(known: addr, irq, input, output, "
                   .. "escape, fastpath%)", err{ baud = 9600 })
    assert.matches("virtio_console: addr must be an integer", err{ addr = "x" })
    assert.matches("virtio_console: irq must be an integer from 0x0 to 0x17", err{ irq = 24 })
    assert.matches("virtio_console: input must be \"stdin\", false or a path, not number",
                   err{ input = 0 })
    assert.matches("virtio_console: output must be \"stdout\", \"stderr\", false or a path, "
                   .. "not true", err{ output = true })
    assert.matches("virtio_console: cannot open output /nonexistent/out: No such file or "
                   .. "directory", err{ output = "/nonexistent/out", input = false })
    assert.matches("virtio_console: cannot open input /nonexistent/in: No such file or "
                   .. "directory", err{ output = false, input = "/nonexistent/in" })
    assert.matches("virtio_console: a virtio%-mmio device's address must be 4096%-aligned",
                   err{ addr = BASE + 8, input = false, output = false })
  end)

  it("shares stdin with the UART: one of them reads it", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    vm:serial{ input = "stdin", output = false }
    assert.matches("virtio_console: stdin is already the input of the UART at port 0x3f8; "
                   .. "give this one input = false or a path",
                   H.error_of(vm.virtio_console, vm, { addr = BASE, irq = IRQ, input = "stdin",
                                                       output = false }))
    vm:close()
    local vm2 <close> = vmm.vm{ memory = "1M" } -- closing the VM gave stdin back
    vm2:virtio_console{ addr = BASE, irq = IRQ, input = "stdin", output = false }
    assert.matches("serial: stdin is already the input of the virtio console at 0xd0002000",
                   H.error_of(vm2.serial, vm2, { input = "stdin", output = false }))
    assert.matches("virtio_console: stdin is already the input of the virtio console at "
                   .. "0xd0002000", H.error_of(vm2.virtio_console, vm2, { addr = BASE + 0x1000,
                                                                         irq = 8,
                                                                         input = "stdin" }))
    -- a UART that only takes stdin by default does without
    vm2:serial{ output = false }
  end)

  it("cannot be added while the VM runs", function()
    local vm <close>, out = console_vm({ [P.input] = 1, [P.any] = 1 },
                                       { output = false, input = tmpfile("x") })
    local err
    vm:on_hypercall(HC_CHECKPOINT, function()
      err = H.error_of(vm.virtio_console, vm, { addr = BASE + 0x1000, irq = 8 })
    end)
    assert_passed(run(vm, out))
    assert.matches("virtio_console: the VM is running; add devices before running it", err)
  end)
end)

-- ---- on a terminal ----

if not H.can_spawn then
  pending("virtio-console on a terminal: " .. H.no_spawn_reason)
  return
end

-- A script for the luavmm program: the guest echoes 4 bytes of stdin
-- through a virtio console on stdout; the result's reason, the size the
-- config space shows and the VIRTIO_CONSOLE_F_SIZE bit go to the file named
-- by arg 1.
local SCRIPT = [[
local mode = require "vmm.mode"
local vm <close> = vmm.vm{ memory = %d }
vm:load(%q, mode.layout.entry)
vm:cpu(0):set_mode("long")
vm:debug_exit{ port = 0xf4 }
local params = { [6] = 4, [11] = 1, [3] = %d }
vm:on_hypercall(0x30, function(_, i) return params[i] or 0 end)
vm:on_hypercall(0x31, function() return 0 end)
vm:on_io(0xe9, function() end)
vm:virtio_console{ addr = 0xd0002000, irq = 7, input = "stdin" }
local r = vm:run{ timeout = 60 }
local function reg(off, size, value)
  return vm:dispatch{ kind = "mmio", addr = 0xd0002000 + off, size = size, value = value }
end
reg(0x014, 4, 0)
local f = io.open(arg[1], "w")
f:write(r.reason, " ", reg(0x100, 2), "x", reg(0x102, 2), " F_SIZE ", reg(0x010, 4) & 1)
f:close()
]]

describe("virtio-console on a terminal", function()
  local t

  local function start()
    local dir = H.tempdir()
    H.write_file(dir .. "/console.lua", SCRIPT:format(MEMORY,
                 H.abs_build .. "/guests/virtio_console64.bin", MEMORY))
    t = H.terminal(dir, H.quote(H.luavmm) .. " console.lua result")
  end

  after_each(function()
    if t then
      t:close()
      t = nil
    end
  end)

  local function text() return t:text() end
  local function wait_text(pattern, what) return t:wait_text(pattern, what, true) end
  local function keys(...) t:keys(...) end
  local function pane_stty() return t:stty() end
  local function finished()
    local before, after = t:finished()
    return before, after, H.read_file(t.dir .. "/result")
  end

  it("takes the terminal raw for the run and gives it back as it was", function()
    start()
    wait_text("one more request, three buffers", "the greeting")
    assert.matches("%(Ctrl%-A x quits%)", text())
    local during = pane_stty()
    assert.matches("%-icanon", during)
    assert.matches("%-echo ", during)
    assert.matches("%-isig", during)
    local rows, cols = during:match("rows (%d+); columns (%d+)")
    keys("w", "x", "y", "z")
    local before, after, result = finished()
    -- the terminal's size is in the config space, and offered
    assert.equal(string.format("exit %dx%d F_SIZE 1", cols, rows), result)
    assert.equal(before, after)
    assert.matches("buffers\nwxyzrc=0", text(), 1, true) -- the echo, no local echo
    assert.matches(" icanon", pane_stty())
  end)

  it("gives the terminal back after Ctrl-A x", function()
    start()
    wait_text("one more request, three buffers", "the greeting")
    keys("a")
    keys("C-a", "x")
    local before, after, result = finished()
    assert.matches("^quit ", result)
    assert.equal(before, after)
    assert.matches(" icanon", pane_stty())
    assert.matches("rc=0", text())
  end)
end)
