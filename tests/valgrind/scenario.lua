-- The long scenario that tests/valgrind/run.sh runs under valgrind's
-- memcheck (build/luavmm tests/valgrind/scenario.lua): a mix of what
-- luavmm does, each part checked, so that a wrong result fails it as
-- surely as a memory error does. Every part creates and closes its own VMs;
-- some are left to the collector and to lua_close at exit on purpose.
--
--   1. many VMs created, run and closed, several alive at once
--   2. SMP: four vCPU threads calling Lua hypercall handlers concurrently
--   3. Lua handlers that fail (an error, a wrong return value), a fault
--      with its register dump, a timeout, vm:stop from a handler
--   4. traces: recorded, read back and replayed
--   5. a virtio-blk round trip, and virtio-rng, with the C devices
--   6. the background: start, pause, register reads, resume, stop
--   7. loaders: an ELF, a Multiboot kernel with a module, the PC machine's
--      firmware tables
--   8. scenarios (vmm.scenario), statistics, the C UART
--   9. registers through every KVM get and set call
-- It prints one line per part and "valgrind scenario: ok" at the end. The
-- parts run LUAVMM_VALGRIND_ROUNDS times (default 1; run.sh asks for more),
-- so that whatever one round leaks, the next leaks again.
-- Run it plainly too: LUAVMM_BUILD names the build folder (default build).

local vmm = require "vmm"
local mode = require "vmm.mode"

local build = os.getenv("LUAVMM_BUILD") or "build"
local function guest(name) return build .. "/guests/" .. name end
local TIMEOUT = 60 -- generous: valgrind slows the Lua and C sides a lot

local tmpfiles = {}
local function tmpname()
  local p = os.tmpname()
  tmpfiles[#tmpfiles + 1] = p
  return p
end
local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function check(cond, fmt, ...)
  if not cond then error(string.format(fmt, ...), 2) end
end
local ROUNDS = math.tointeger(tonumber(os.getenv("LUAVMM_VALGRIND_ROUNDS") or "1")) or 1
local parts = {}
local function part(name, fn) parts[#parts + 1] = { name = name, fn = fn } end

-- A long-mode guest with its console collected by a Lua handler and the
-- exit port in C.
local function long_guest(name, opts)
  opts = opts or {}
  local vm = vmm.vm{ memory = opts.memory or "4M", cpus = opts.cpus }
  vm:load(guest(name), mode.layout.entry)
  for i = 0, (opts.cpus or 1) - 1 do vm:cpu(i):set_mode("long", { entry = mode.layout.entry }) end
  local out = {}
  vm:on_io(0xe9, function(_, _, _, v) out[#out + 1] = string.char(v) end)
  vm:debug_exit{ port = 0xf4 }
  return vm, out
end

part("1. many VMs, several alive at once", function()
  local alive = {}
  for i = 1, 24 do
    local vm, out = long_guest("hello64.bin")
    local r = vm:run{ timeout = TIMEOUT }
    check(r.reason == "exit" and r.code == 0, "hello64 ended with %s", r.reason)
    check(table.concat(out) == "Hello from 64-bit long mode!\n", "hello64 printed %q", table.concat(out))
    alive[#alive + 1] = vm
    if #alive == 4 then
      alive[1]:close()
      table.remove(alive, 1)
    end
    if i % 8 == 0 then alive = {} collectgarbage() end -- the rest to the collector
  end
  -- Real and protected mode too, and a VM never run.
  for _, g in ipairs{ { "hello16.bin", "real", 0x8000 }, { "hello32.bin", "protected", mode.layout.entry } } do
    local vm <close> = vmm.vm{ memory = "2M" }
    vm:load(guest(g[1]), g[3])
    vm:cpu(0):set_mode(g[2], { entry = g[3] })
    vm:on_io(0xe9, function() end)
    vm:debug_exit{ port = 0xf4 }
    vm:run{ timeout = TIMEOUT }
  end
  local unused = vmm.vm{ memory = "1M", cpus = 2 }
  unused = nil
end)

part("2. SMP: four threads in Lua handlers", function()
  local vm <close> = vmm.vm{ memory = "16M", cpus = 4 }
  vm:load(guest("smp64.bin"), mode.layout.entry)
  for i = 0, 3 do vm:cpu(i):set_mode("long", { entry = mode.layout.entry }) end
  local counter, reports = 0, {}
  vm:on_hypercall(0x10, function(_, gpa, len) return #vm.memory:read(gpa, len) end)
  vm:on_hypercall(0x11, function() counter = counter + 1 return counter end)
  vm:on_hypercall(0x12, function(cpu, id, n, bad) reports[cpu.id] = { id, n, bad } return 0 end)
  local r = vm:run{ timeout = TIMEOUT }
  check(r.reason == "hlt", "the SMP run ended with %s", r.reason)
  check(counter == 4000, "counter %d, expected 4000", counter)
  for i = 0, 3 do check(reports[i] and reports[i][2] == 1000 and reports[i][3] == 0, "cpu %d's report", i) end
end)

part("3. failing handlers, faults, timeouts, stops", function()
  -- out 0x80, al; hlt (real mode)
  local function real(code, opts)
    local vm = vmm.vm{ memory = "1M", unhandled = opts and opts.unhandled }
    vm.memory:write(0x8000, code)
    vm:cpu(0):set_mode("real")
    return vm
  end
  for i = 1, 10 do
    local vm <close> = real("\xe6\x80\xf4")
    vm:on_io(0x80, function() error("handler failure " .. i) end)
    local r = vm:run{ timeout = TIMEOUT, raise = false }
    check(r.reason == "fault" and r.message:find("handler failure " .. i, 1, true), "failing handler: %s", r.reason)
    local ok, err = pcall(vm.run, vm, { timeout = TIMEOUT })
    check(not ok or err, "a second run")
  end
  do -- a read handler returning a table
    local vm <close> = real("\xe4\x80\xf4") -- in al, 0x80
    vm:on_io(0x80, function() return {} end)
    local r = vm:run{ timeout = TIMEOUT, raise = false }
    check(r.reason == "fault" and r.message:find("returned a table", 1, true), "bad return")
  end
  do -- an unhandled access under "stop": a fault with the register dump
    local vm <close> = real("\xe6\x81\xf4")
    local r = vm:run{ timeout = TIMEOUT, raise = false }
    check(r.reason == "fault" and r.message:find("rip ", 1, true), "unhandled: %s", r.reason)
  end
  do -- a spin loop ended by its timeout, then by vm:stop from a handler
    local vm <close> = real("\xe6\x80\xeb\xfc", { unhandled = "ignore" })
    check(vm:run{ timeout = 0.3 }.reason == "timeout", "timeout")
    local n = 0
    vm:on_io(0x80, function() n = n + 1 if n == 50 then vm:stop(7) end end)
    local r = vm:run{ timeout = TIMEOUT }
    check(r.reason == "stop" and r.code == 7, "stop from a handler: %s", r.reason)
  end
end)

part("4. traces: recorded, read, replayed", function()
  local trace = require "vmm.trace"
  local path = tmpname()
  local vm, out = long_guest("hypercall64.bin")
  vm:on_hypercall(1, function(_, a, b) return a + b end)
  vm:on_unhandled("ignore")
  vm:trace(path)
  vm:run{ timeout = TIMEOUT, raise = false }
  local n = vm:trace(false)
  check(n > 0, "no exits traced")
  local count = 0
  for rec in trace.records(path) do
    count = count + 1
    trace.describe(rec)
  end
  check(count == n, "read %d records of %d", count, n)
  vm:close()
  -- Replay against a fresh machine with the same handlers.
  local vm2, _ = long_guest("hypercall64.bin")
  vm2:on_hypercall(1, function(_, a, b) return a + b end)
  vm2:on_unhandled("ignore")
  trace.replay(vm2, path)
  vm2:close()
  check(#out > 0, "the guest printed nothing")
end)

part("5. virtio-blk round trip, virtio-rng", function()
  local image = tmpname()
  local f = assert(io.open(image, "wb"))
  f:write(string.rep("\0", 2048 * 512))
  f:close()
  local vm <close>, out = long_guest("virtio_blk64.bin")
  vm:on_hypercall(0x30, function(_, i) return i == 1 and 0xd0000000 or 0 end)
  vm:on_hypercall(0x31, function() return 0 end)
  local dev = vm:virtio_blk{ addr = 0xd0000000, irq = 5, path = image }
  local r = vm:run{ timeout = TIMEOUT, raise = false }
  check(r.reason == "exit" and r.code == 0, "virtio-blk: %s %s %s\n%s", r.reason, tostring(r.code),
        tostring(r.message), table.concat(out))
  local disk = slurp(image)
  check(disk:sub(2047 * 512 + 1, 2047 * 512 + 16) == "sector 000007ff\n", "the last sector")
  check(dev ~= nil, "no device")

  local vm2 <close>, out2 = long_guest("virtio_rng64.bin")
  vm2:on_hypercall(0x30, function() return 0 end)
  vm2:on_hypercall(0x31, function() return 0 end)
  vm2:virtio_rng{ addr = 0xd0001000, irq = 6 }
  local r2 = vm2:run{ timeout = TIMEOUT, raise = false }
  check(r2.reason == "exit" and r2.code == 0, "virtio-rng: %s %s\n%s", r2.reason, tostring(r2.code),
        table.concat(out2))
end)

part("6. background runs: pause, resume, stop", function()
  local vm <close> = vmm.vm{ memory = "16M", cpus = 2 }
  vm:load(guest("spin64.bin"), mode.layout.entry)
  for i = 0, 1 do vm:cpu(i):set_mode("long", { entry = mode.layout.entry }) end
  vm:on_io(0xe9, function() end)
  for _ = 1, 5 do
    vm:start()
    check(vm:pause(), "pause")
    check(vm:cpu(0).rip >= mode.layout.entry, "rip")
    vm:resume()
    vm:stop()
    check(vm:wait{ timeout = TIMEOUT }.reason == "stop", "stop")
  end
end)

part("7. loaders: ELF, Multiboot, firmware tables", function()
  local elf = require "vmm.elf"
  local pc = require "vmm.pc"
  local multiboot = require "vmm.multiboot"
  local vm <close> = vmm.vm{ memory = "4M" }
  local info = elf.load(vm, guest("hello64.elf"))
  vm:cpu(0):set_mode("long", { entry = info.phys_entry })
  vm:on_io(0xe9, function() end)
  vm:debug_exit{ port = 0xf4 }
  check(vm:run{ timeout = TIMEOUT }.reason == "exit", "the ELF guest")

  local m = pc.new{ memory = "64M" }
  m:install_firmware{ cmdline = "valgrind" }
  m.vm:debug_exit{}
  local console = {}
  m.vm:on_io(0xe9, function(_, _, _, v) console[#console + 1] = string.char(v) end)
  multiboot.boot(m, { kernel = guest("multiboot32.bin"), cmdline = "valgrind run",
                      modules = { { data = string.rep("module", 100), cmdline = "m1" } } })
  local r = m.vm:run{ timeout = TIMEOUT, raise = false }
  check(r.reason == "exit", "multiboot: %s %s\n%s", r.reason, tostring(r.message), table.concat(console))
  m.vm:close()
end)

part("8. scenarios, statistics, the UART", function()
  local scenario = require "vmm.scenario"
  local s <close> = scenario.new{ guest = guest("hello64.bin"), mode = "long" }
  s:expect_output("Hello from 64-bit long mode!\n")
  s:expect_exit{ reason = "io", dir = "out", port = 0xf4, value = 0 }
  s:finish{ reason = "stop", code = 0 }

  local out = tmpname()
  local vm <close> = vmm.vm{ memory = "4M" }
  vm:load(guest("hello64.bin"), mode.layout.entry)
  vm:cpu(0):set_mode("long")
  vm:serial{ port = 0x3f8, output = out }
  vm:on_io(0xe9, function() end)
  vm:debug_exit{ port = 0xf4 }
  vm:run{ timeout = TIMEOUT }
  local st = vm:stats()
  check(type(st) == "table", "stats")
  require("vmm.stats").format(st, "valgrind")
end)

-- KVM's GET and SET ioctls write into and read from our buffers: valgrind
-- must know which bytes each defines (it does, from the request numbers'
-- size and direction bits; nothing here may read a byte it thinks unset).
part("9. registers through every KVM call", function()
  local vm <close> = vmm.vm{ memory = "4M", irqchip = true }
  vm:load(guest("hello64.bin"), mode.layout.entry)
  local cpu = vm:cpu(0)
  cpu:set_mode("long")
  for _ = 1, 20 do
    local r, sr = cpu:regs(), cpu:sregs()
    check(r.rip == mode.layout.entry and sr.efer & 0x500 == 0x500, "long mode")
    check(cpu:msr(0xc0000080) == sr.efer, "EFER through KVM_GET_MSRS")
    cpu:msr(0xc0000102, 0x1234) -- KERNEL_GS_BASE
    check(cpu:msr(0xc0000102) == 0x1234, "KVM_SET_MSRS")
    local f = cpu:fpu()
    cpu:set_fpu{ fcw = f.fcw, mxcsr = f.mxcsr }
    local ids = cpu:cpuid()
    cpu:set_cpuid(ids)
    check(cpu:cpuid(0) ~= nil, "CPUID leaf 0")
    check(cpu:translate(mode.layout.entry) == mode.layout.entry, "identity mapping")
    check(#cpu:dump() > 0 and cpu:mp_state() == "runnable", "dump, mp_state")
  end
  vm:on_io(0xe9, function() end)
  vm:debug_exit{ port = 0xf4 }
  local e = cpu:step{ timeout = TIMEOUT }
  check(e.reason == "io", "step: %s", e.reason)
  check(vm:run{ timeout = TIMEOUT }.reason == "exit", "the rest of the run")
end)

for round = 1, ROUNDS do
  for _, p in ipairs(parts) do
    local t0 = vmm.now()
    p.fn()
    print(string.format("round %d: %-44s ok (%.2f s)", round, p.name, vmm.now() - t0))
  end
end
for _, p in ipairs(tmpfiles) do os.remove(p) end
print("valgrind scenario: ok")
