-- The control plane: SMP, background runs, pause/resume/stop, statistics,
-- trace record and replay, scenarios, and the races around them.
local vmm = require "vmm"
local H = require "helper"
local trace = require "vmm.trace"
local scenario = require "vmm.scenario"

local HLT = "\xf4"
local SPIN = "\xeb\xfe"                 -- jmp $
local OUT_LOOP = "\xe6\x80\xeb\xfc"     -- out 0x80, al; jmp back

-- A VM whose every vCPU starts in real mode at 0x8000.
local function smp(code, cpus)
  local vm = vmm.vm{ memory = "1M", cpus = cpus }
  vm.memory:write(0x8000, code)
  for i = 0, cpus - 1 do vm:cpu(i):set_mode("real") end
  return vm
end

describe("SMP", function()
  it("runs every vCPU on its own thread and tells handlers which one called", function()
    -- mov cx, 10; out 0x80, al; loop; hlt
    local vm <close> = smp("\xb9\x0a\x00\xe6\x80\xe2\xfc" .. HLT, 4)
    local count = {}
    vm:on_io(0x80, function(cpu) count[cpu.id] = (count[cpu.id] or 0) + 1 end)
    local r = vm:run{ timeout = 10 }
    assert.equal("hlt", r.reason)
    assert.same({ [0] = 10, 10, 10, 10 }, count)
    assert.equal(4, #r.cpus)
    for i = 1, 4 do assert.equal("hlt", r.cpus[i].reason) end
  end)

  it("gives each vCPU its own APIC ID in CPUID", function()
    local vm <close> = vmm.vm{ memory = "1M", cpus = 3 }
    for i = 0, 2 do
      assert.equal(i, vm:cpu(i):cpuid(1).ebx >> 24)
    end
  end)

  it("stops every vCPU when one faults, and names that one", function()
    local vm <close> = vmm.vm{ memory = "1M", cpus = 3 }
    vm.memory:write(0x8000, SPIN)
    vm.memory:write(0x9000, "\xe6\x99" .. SPIN)
    for i = 0, 2 do vm:cpu(i):set_mode("real", { entry = i == 2 and 0x9000 or 0x8000 }) end
    local r = vm:run{ timeout = 10, raise = false }
    assert.equal("fault", r.reason)
    assert.equal(2, r.cpu)
    assert.matches("cpu 2: unhandled I/O write to port 0x99", r.message)
    assert.equal("peer", r.cpus[1].reason)
  end)

  it("ends every vCPU with the exit port", function()
    local vm <close> = vmm.vm{ memory = "1M", cpus = 2 }
    vm.memory:write(0x8000, SPIN)
    vm.memory:write(0x9000, "\xb0\x03\xe6\xf4" .. SPIN)
    vm:debug_exit{}
    vm:cpu(0):set_mode("real")
    vm:cpu(1):set_mode("real", { entry = 0x9000 })
    local r = vm:run{ timeout = 10 }
    assert.equal("exit", r.reason)
    assert.equal(3, r.code)
  end)

  it("times out as a whole", function()
    local vm <close> = smp(SPIN, 2)
    local r = vm:run{ timeout = 0.3 }
    assert.equal("timeout", r.reason)
  end)
end)

describe("a background run", function()
  it("runs while the caller goes on, and can be waited for", function()
    local vm <close> = smp(OUT_LOOP, 1)
    local n = 0
    vm:on_io(0x80, function() n = n + 1; if n == 50 then vm:stop(9) end end)
    vm:start()
    local r = vm:wait{ timeout = 10 }
    assert.equal("stop", r.reason)
    assert.equal(9, r.code)
    assert.equal(50, n)
    assert.equal("stopped", vm.state)
  end)

  it("runs Lua handlers while the caller sleeps", function()
    local vm <close> = smp(OUT_LOOP, 1)
    local n = 0
    vm:on_io(0x80, function() n = n + 1 end)
    vm:start()
    vmm.sleep(0.2)
    vm:stop()
    vm:wait()
    assert.is_true(n > 0)
  end)

  it("returns nil, 'timeout' from a wait that times out, and keeps running", function()
    local vm <close> = smp(SPIN, 1)
    vm:start()
    local r, why = vm:wait{ timeout = 0.1 }
    assert.is_nil(r)
    assert.equal("timeout", why)
    assert.equal("running", vm.state)
    assert.is_true(vm:stop())
    assert.equal("stop", vm:wait().reason)
  end)

  it("pauses, shows its registers, resumes and stops", function()
    local vm <close> = smp(SPIN, 2)
    vm:start()
    assert.is_true(vm:pause())
    assert.equal("paused", vm.state)
    assert.equal(0x8000, vm:cpu(0).rip)
    assert.equal(0x8000, vm:cpu(1).rip)
    vm:resume()
    assert.equal("running", vm.state)
    vm:stop(1)
    local r = vm:wait()
    assert.equal("stop", r.reason)
    assert.equal(1, r.code)
  end)

  it("can be stopped while paused", function()
    local vm <close> = smp(SPIN, 1)
    vm:start()
    vm:pause()
    vm:stop(4)
    assert.equal(4, vm:wait{ timeout = 5 }.code)
  end)

  it("refuses register access while running, and a second start", function()
    local vm <close> = smp(SPIN, 1)
    vm:start()
    assert.matches("cpu 0 is running; stop or pause the VM", H.error_of(function() return vm:cpu(0).rax end))
    assert.matches("already running", H.error_of(vm.start, vm))
    assert.matches("already running", H.error_of(vm.run, vm))
    assert.matches("the VM is running", H.error_of(vm.stats, vm))
    vm:stop()
    vm:wait()
  end)

  it("stops a handler that never returns", function()
    local vm <close> = smp("\xe6\x80" .. HLT, 1)
    vm:on_io(0x80, function() while true do end end)
    vm:start()
    local r, why = vm:wait{ timeout = 0.2 }
    assert.equal("timeout", why)
    vm:stop(2)
    r = vm:wait{ timeout = 5 }
    assert.equal("stop", r.reason)
    assert.equal(2, r.code)
  end)

  it("stops a vCPU that waits for the control-plane lock", function()
    -- cpu 0's handler holds the lock until told to stop; cpu 1 queues behind it
    local vm <close> = smp(OUT_LOOP, 2)
    vm:on_io(0x80, function(cpu)
      if cpu.id == 0 then
        local t = vmm.now()
        while vmm.now() - t < 0.3 do end
      end
    end)
    vm:start()
    vmm.sleep(0.05)
    vm:stop(3)
    local r = vm:wait{ timeout = 5 }
    assert.equal(3, r.code)
  end)

  it("swaps a handler while running, keeping its state", function()
    local vm <close> = smp(OUT_LOOP, 1)
    local seen = {}
    vm:on_io(0x80, function() seen.old = (seen.old or 0) + 1 end)
    vm:start()
    vmm.sleep(0.05)
    vm:on_io(0x80, function() seen.new = (seen.new or 0) + 1; if seen.new == 5 then vm:stop() end end)
    vm:wait{ timeout = 5 }
    assert.is_true(seen.old > 0)
    assert.equal(5, seen.new)
  end)

  it("keeps a started VM alive when every reference is dropped", function()
    local weak = setmetatable({}, { __mode = "v" })
    do
      local vm = smp(OUT_LOOP, 1)
      local n = 0
      vm:on_io(0x80, function() n = n + 1 end)
      vm:start()
      weak[1] = vm
    end
    collectgarbage()
    collectgarbage()
    local vm = weak[1]
    assert.is_not_nil(vm)
    assert.equal("running", vm.state)
    vm:close() -- stops and joins
    assert.equal("closed", vm.state)
  end)

  it("is stopped and joined by close", function()
    local vm = smp(OUT_LOOP, 2)
    vm:on_io(0x80, function() end)
    vm:start()
    vm:close()
    assert.is_true(vm.closed)
  end)

  it("cannot be waited for or paused from its own handler", function()
    local vm <close> = smp("\xe6\x80" .. HLT, 1)
    local errs = {}
    vm:on_io(0x80, function()
      errs[1] = H.error_of(vm.wait, vm)
      errs[2] = H.error_of(vm.pause, vm)
      errs[3] = H.error_of(vm.close, vm)
    end)
    vm:start()
    vm:wait{ timeout = 5 }
    assert.matches("cannot wait for its own VM", errs[1])
    assert.matches("cannot pause its own VM", errs[2])
    assert.matches("cannot close a running VM from its own handler", errs[3])
  end)

  it("reports misuse of wait, pause and resume", function()
    local vm <close> = smp(HLT, 1)
    assert.matches("not running in the background", H.error_of(vm.wait, vm))
    assert.matches("only a VM started with vm:start", H.error_of(vm.pause, vm))
    assert.matches("not paused", H.error_of(vm.resume, vm))
  end)
end)

describe("statistics", function()
  it("count exits by reason, port and hypercall, and time handlers", function()
    -- 3 x out 0x80 (Lua), 2 x out 0xe9 (C), hlt
    local vm <close> = H.real("\xe6\x80\xe6\x80\xe6\x80\xe6\xe9\xe6\xe9" .. HLT)
    vm:on_io(0x80, function() end)
    vm:debugcon{ path = "/dev/null" }
    local r = vm:run()
    assert.equal(6, r.exits)
    local s = vm:stats()
    assert.equal(6, s.exits)
    assert.equal(5, s.reasons.io)
    assert.equal(1, s.reasons.hlt)
    assert.equal(3, s.ports[0x80])
    assert.equal(2, s.ports[0xe9])
    assert.equal(3, s.handlers.lua.calls)
    assert.equal(2, s.handlers.c.calls)
    assert.is_true(s.handlers.lua.seconds > 0)
    vm:reset_stats()
    assert.equal(0, vm:stats().exits)
  end)

  it("are kept per vCPU", function()
    local vm <close> = smp("\xe6\x80" .. HLT, 2)
    vm:on_io(0x80, function() end)
    vm:run{ timeout = 10 }
    local s = vm:stats()
    assert.equal(2, s.ports[0x80])
    assert.equal(1, s.cpus[1].ports[0x80])
    assert.equal(1, s.cpus[2].ports[0x80])
  end)
end)

describe("traces", function()
  local path = os.tmpname()
  after_each(function() os.remove(path) end)

  -- A little Lua device: reads return a counter of writes.
  local function device(vm, bug)
    local writes = 0
    vm:on_io(0x60, function(_, _, _, value)
      if value == nil then return writes * 2 + (bug or 0) end
      writes = writes + 1
    end)
  end
  -- out 0x60 x2, in 0x60 -> [0x500], out 0x60, in 0x60 -> [0x501], hlt
  local CODE = "\xe6\x60\xe6\x60\xe4\x60\xa2\x00\x05\xe6\x60\xe4\x60\xa2\x01\x05" .. HLT

  it("record every exit and what the guest read", function()
    local vm <close> = H.real(CODE)
    device(vm)
    vm:trace(path)
    vm:run()
    assert.equal(6, vm:trace(false))
    local recs = trace.read(path)
    assert.equal(6, #recs)
    assert.same({ true, true, false }, { recs[1].write, recs[2].write, recs[3].write })
    assert.equal(4, recs[3].value)
    assert.equal(6, recs[5].value)
    assert.equal("exit", recs[6].kind)
    assert.equal(5, recs[6].exit) -- KVM_EXIT_HLT
  end)

  it("replay against the handlers without a guest", function()
    local vm <close> = H.real(CODE)
    device(vm)
    vm:trace(path)
    vm:run()
    vm:trace(false)
    local fresh <close> = vmm.vm{ memory = "1M" }
    device(fresh)
    local ok, n = trace.replay(fresh, path)
    assert.is_true(ok)
    assert.equal(6, n)
  end)

  it("report the first divergence", function()
    local vm <close> = H.real(CODE)
    device(vm)
    vm:trace(path)
    vm:run()
    vm:trace(false)
    local changed <close> = vmm.vm{ memory = "1M" }
    device(changed, 1)
    local ok, d = trace.replay(changed, path)
    assert.is_false(ok)
    assert.equal(3, d.n)
    assert.equal(4, d.expected)
    assert.equal(5, d.actual)
    assert.matches("exit 3: io read 0x60 %(1 byte%): expected 0x4, got 0x5", d.message)
  end)

  it("record hypercalls with their arguments and replay them", function()
    local code = "\xb8\x07\x00\x00\x00\x48\xbf" .. H.u64(20) .. "\x48\xbe" .. H.u64(22)
      .. "\x66\xba\xba\xab\xef" .. HLT
    local vm <close> = H.long(code)
    vm:on_hypercall(7, function(_, a, b) return a + b end)
    vm:trace(path)
    vm:run()
    vm:trace(false)
    local recs = trace.read(path)
    assert.equal("hypercall", recs[1].kind)
    assert.equal(7, recs[1].nr)
    assert.equal(42, recs[1].result)
    assert.same({ 20, 22 }, { recs[1].args[1], recs[1].args[2] })
    local other <close> = vmm.vm{ memory = "1M" }
    other:on_hypercall(7, function(_, a, b) return a * b end)
    local ok, d = trace.replay(other, path)
    assert.is_false(ok)
    assert.equal(42, d.expected)
    assert.equal(440, d.actual)
  end)

  it("reject files that are not traces", function()
    local f = io.open(path, "wb")
    f:write("not a trace at all")
    f:close()
    assert.matches("is not a luavmm trace", H.error_of(trace.read, path))
    f = io.open(path, "wb")
    f:write("LVMTRACE\1\0\0\0\0\0\0\0" .. string.rep("\1", 20))
    f:close()
    assert.matches("truncated in record 1", H.error_of(trace.read, path))
    assert.matches("cannot record a trace to /nonexistent/x", H.error_of(function()
      local vm <close> = vmm.vm{ memory = "1M" }
      vm:trace("/nonexistent/x")
    end))
  end)

  it("dispatch checks its arguments", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.matches("kind must be", H.error_of(vm.dispatch, vm, { kind = "pci" }))
    assert.matches("size 3 is not a valid io access size",
                   H.error_of(vm.dispatch, vm, { kind = "io", addr = 0x60, size = 3 }))
    assert.matches("addr is missing or out of range",
                   H.error_of(vm.dispatch, vm, { kind = "io", addr = 0x10000, size = 1 }))
    assert.matches("no vCPU 5", H.error_of(vm.dispatch, vm, { cpu = 5, addr = 0x60, size = 1 }))
    assert.matches("unhandled I/O read from port 0x60",
                   H.error_of(vm.dispatch, vm, { kind = "io", addr = 0x60, size = 1 }))
  end)
end)

describe("scenarios", function()
  it("expect output, exits, registers and the end of the run", function()
    local s <close> = scenario.new{ guest = H.guest("hello64.bin"), mode = "long" }
    s:expect_output("Hello from 64")
    s:expect_output("long mode!\n")
    local e = s:expect_exit{ reason = "io", port = 0xf4, value = 0 }
    assert.equal(0xf4, e.port)
    s:expect_register("rsp", function(v) return v > 0x100000 end)
    s:expect_memory(0x100000, s.vm.memory:read(0x100000, 4))
    s:finish{ reason = "stop", code = 0 }
  end)

  it("fail with what they expected and what happened", function()
    local s <close> = scenario.new{ guest = H.guest("hello64.bin"), mode = "long" }
    assert.matches('expected exit {port=0xe9, reason="io", value=0x49}, got {.*value=0x48.*} %(field value differs%)',
                   H.error_of(s.expect_exit, s, { reason = "io", port = 0xe9, value = 0x49 }))
    assert.matches('expected the guest to print "Goodbye"; it printed "Hello from 64%-bit long mode!\\\n"',
                   H.error_of(s.expect_output, s, "Goodbye"))
    assert.matches("expected rax = 0x5 on cpu 0, got 0x",
                   H.error_of(s.expect_register, s, "rax", 5))
    assert.matches('expected memory at 0x100000 to hold "nope"',
                   H.error_of(s.expect_memory, s, 0x100000, "nope"))
  end)

  it("run_until stops at the first exit that matches", function()
    local vm <close> = H.long("\xe6\x80\xe6\x81\xe6\x82" .. HLT)
    vm:on_io(0x80, 3, function() end)
    local e = vm:cpu(0):run_until(function(x) return x.port == 0x81 end)
    assert.equal(0x81, e.port)
    local none, last = vm:cpu(0):run_until(function(x) return x.port == 0x99 end)
    assert.is_nil(none)
    assert.equal("hlt", last.reason)
  end)
end)
