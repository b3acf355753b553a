-- usage: luavmm scripts/smp.lua [--cpus N]
--
-- An SMP machine: N vCPUs (default 4, 1 to 16) run the same guest
-- (guests/smp64.c, 64-bit long mode) at once, each on its own thread. Each
-- CPU says hello, adds 1 to a counter kept here in Lua PER_CPU times,
-- reports how many times it did, and halts. The script prints the reports
-- and the counter, and exits 0 only when every vCPU reported in and the
-- counter is N x PER_CPU.
--
-- Hypercalls (`out dx, eax` to port 0xABBA; arguments in rdi, rsi, rcx):
--   0x10  print(gpa, len)     writes len bytes of guest memory at gpa
--   0x11  count()             counter = counter + 1; returns the new value
--   0x12  report(id, n, bad)  the CPU's own index (from CPUID), its number
--                             of count() calls, and how many of their
--                             results did not grow
--
-- There is no interrupt controller: no vCPU waits for an INIT/SIPI. Every
-- one starts at the registers set here, all at once; the guest's start
-- code (guests/rt/crt0.S) tells them apart with CPUID and gives each its
-- own stack. A `hlt` ends only the vCPU that runs it; the run ends when
-- all of them have ended.
--
-- Without the luavmm program, from the repository root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/smp.lua --cpus 4

local vmm = require "vmm"
local mode = require "vmm.mode"
local guests = require "vmm.guests"

local USAGE = "usage: smp.lua [--cpus N]   (N from 1 to 16, default 4)"
local MAX_CPUS = 16     -- LUAVMM_MAX_CPUS in guests/include/luavmm.h
local PER_CPU = 1000    -- INCREMENTS in guests/smp64.c
local HC_PRINT, HC_COUNT, HC_REPORT = 0x10, 0x11, 0x12
local EINVAL, EFAULT = 22, 14
local MAX_PRINT = 4096

-- The guests are built next to the script's repository, whatever the
-- current directory: <repo>/scripts/smp.lua -> <repo>/build/guests/.
local function parse_args(args)
  local cpus = 4
  local i = 1
  while i <= #args do
    local a, value = args[i], nil
    if a == "--cpus" then
      value = args[i + 1]
      if not value then return nil, "smp.lua: --cpus needs a value" end
      i = i + 2
    elseif a:match("^%-%-cpus=") then
      value = a:sub(8)
      i = i + 1
    else
      return nil, string.format("smp.lua: unexpected argument '%s'", a)
    end
    cpus = math.tointeger(tonumber(value))
    if not cpus or cpus < 1 or cpus > MAX_CPUS then
      return nil, string.format("smp.lua: --cpus must be a whole number from 1 to %d, not '%s'",
                                MAX_CPUS, value)
    end
  end
  return cpus
end

local function main(args)
  local ncpus, err = parse_args(args)
  if not ncpus then
    io.stderr:write(err, "\n", USAGE, "\n")
    return 2
  end
  local path, missing = guests.find("smp64.bin")
  if not path then
    io.stderr:write("smp.lua: ", missing, "\n")
    return 1
  end

  local vm <close> = vmm.vm{ memory = "64M", cpus = ncpus, unhandled = "stop" }
  vm:load(path, mode.layout.entry)
  -- Every vCPU gets the same registers: long mode, rip at the entry. The
  -- GDT and page tables set_mode writes into guest memory are the same
  -- bytes each time, so writing them once per vCPU is harmless.
  for i = 0, ncpus - 1 do
    vm:cpu(i):set_mode("long", { entry = mode.layout.entry })
  end

  -- The handlers below run one at a time, whichever vCPU thread calls
  -- them: a thread takes the control-plane lock (the one lock that guards
  -- the Lua state) before it calls into Lua. So `counter = counter + 1`
  -- needs no lock of its own, though several threads call it at once. The
  -- first argument is the calling vCPU; cpu.id is its index.
  local counter = 0
  local seen = {}      -- seen[id]: count() calls the host saw from vCPU id
  local last_id, switches = nil, 0   -- how often the caller of count() changed
  local reports = {}   -- reports[id]: what vCPU id reported
  for i = 0, ncpus - 1 do seen[i] = 0 end

  vm:on_hypercall(HC_PRINT, function(cpu, gpa, len)
    if len < 0 or len > MAX_PRINT then return -EINVAL end
    -- Bounds-checked copy out of guest memory; outside it raises, which
    -- pcall turns into -EFAULT for the guest instead of failing the run.
    local ok, text = pcall(vm.memory.read, vm.memory, gpa, len)
    if not ok then return -EFAULT end
    io.write(text)
    return len
  end)

  vm:on_hypercall(HC_COUNT, function(cpu)
    counter = counter + 1
    seen[cpu.id] = seen[cpu.id] + 1
    if cpu.id ~= last_id then
      switches, last_id = switches + 1, cpu.id
    end
    return counter
  end)

  vm:on_hypercall(HC_REPORT, function(cpu, id, n, bad)
    reports[cpu.id] = { id = id, n = n, bad = bad }
    return 0
  end)

  -- With several vCPUs, vm:run starts one thread per vCPU and waits for
  -- all of them without holding the control-plane lock (so the handlers
  -- can run). The timeout is generous: a count() call costs about 10 µs
  -- here, but the vCPU threads share the host's few CPUs. raise = false:
  -- a fault comes back as { reason = "fault", message = ... } instead of
  -- an error, so the reports below are still printed.
  local t0 = vmm.now()
  local result = vm:run{ timeout = 20 + ncpus, raise = false }
  local elapsed = vmm.now() - t0
  io.stdout:flush()

  -- result.reason is "hlt" when every vCPU halted; result.cpus[i + 1] is
  -- vCPU i's own ending. Anything else (a timeout, an exit, a fault) is a
  -- failure.
  local ok = result.reason == "hlt"
  if not ok then
    io.stderr:write(string.format("smp.lua: the run ended with %s on cpu %d at rip 0x%x%s\n",
                                  result.reason, result.cpu, result.rip,
                                  result.message and ": " .. result.message or ""))
  end
  for i = 0, ncpus - 1 do
    local r = reports[i]
    if r == nil then
      print(string.format("cpu %d: no report (%s at rip 0x%x)", i,
                          result.cpus and result.cpus[i + 1].reason or result.reason,
                          result.cpus and result.cpus[i + 1].rip or result.rip))
      ok = false
    else
      local good = r.id == i and r.n == PER_CPU and seen[i] == PER_CPU and r.bad == 0
      print(string.format("cpu %d: %d increments (host saw %d), CPUID index %d, %d not growing%s",
                          i, r.n, seen[i], r.id, r.bad, good and "" or "  <-- wrong"))
      ok = ok and good
    end
  end
  local expected = ncpus * PER_CPU
  print(string.format("counter = %d (expected %d x %d = %d)", counter, ncpus, PER_CPU,
                      expected))
  ok = ok and counter == expected
  -- How concurrent it was: with one vCPU the caller never changes; with
  -- several, the calls of different vCPUs interleave.
  print(string.format("%d vCPU%s ran for %.3f s; the caller of count() changed %d times",
                      ncpus, ncpus == 1 and "" or "s", elapsed, math.max(switches - 1, 0)))
  return ok and 0 or 1
end

os.exit(main(arg or {}))
