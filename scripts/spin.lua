-- usage: luavmm scripts/spin.lua [--timeout S] [--cpus N]
--
-- A guest that never exits: guests/spin64.c (64-bit long mode) prints
-- "spinning" and then loops in a `jmp` to itself, with no I/O, so the VMM
-- never hears from it again. Only the run's timeout can end it (or Ctrl-C).
-- This script runs it with vm:run{ timeout = S } (default 1 second) and
-- reports on stderr where the timeout found it:
--   spin.lua: stopped by the 1 s timeout at rip 0x100090 (after 1.000 s)
-- It exits with 3 when the timeout ended the run, as expected, and with 1
-- for any other ending, which would be a bug.
--
-- --cpus N (default 1) spins on N vCPUs: one thread per vCPU instead of
-- running on the calling thread; the timeout stops them all, and vm:run
-- returns only once every vCPU thread is gone.
--
-- Without the luavmm program, from the repository root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/spin.lua --timeout 1

local vmm = require "vmm"
local mode = require "vmm.mode"
local guests = require "vmm.guests"

local USAGE = "usage: spin.lua [--timeout S] [--cpus N]"
local TIMED_OUT = 3

-- The guests are built next to the script's repository, whatever the
-- current directory: <repo>/scripts/spin.lua -> <repo>/build/guests/.
local function parse_args(args)
  local opts = { timeout = 1, cpus = 1 }
  local i = 1
  while i <= #args do
    local a = args[i]
    -- --name=value or --name value
    local name, value = a:match("^%-%-(%a+)=(.*)$")
    if name then
      i = i + 1
    else
      name, value = a:match("^%-%-(%a+)$"), args[i + 1]
      i = i + 2
    end
    if name ~= "timeout" and name ~= "cpus" then
      return nil, string.format("spin.lua: unexpected argument '%s'", a)
    end
    if value == nil then
      return nil, string.format("spin.lua: --%s needs a value", name)
    end
    local n = tonumber(value)
    if name == "timeout" and not (n and n > 0 and n <= 1e6) then
      return nil, string.format("spin.lua: --timeout must be a positive number of seconds, "
                                .. "not '%s'", value)
    end
    if name == "cpus" then
      n = math.tointeger(n)
      if not n or n < 1 or n > 16 then
        return nil, string.format("spin.lua: --cpus must be a whole number from 1 to 16, "
                                  .. "not '%s'", value)
      end
    end
    opts[name] = n
  end
  return opts
end

local function main(args)
  local opts, err = parse_args(args)
  if not opts then
    io.stderr:write(err, "\n", USAGE, "\n")
    return 2
  end
  local path, missing = guests.find("spin64.bin")
  if not path then
    io.stderr:write("spin.lua: ", missing, "\n")
    return 1
  end

  local vm <close> = vmm.vm{ memory = "64M", cpus = opts.cpus, unhandled = "stop" }
  vm:load(path, mode.layout.entry)
  for i = 0, opts.cpus - 1 do
    vm:cpu(i):set_mode("long", { entry = mode.layout.entry })
  end
  -- The console and exit port as C devices: output goes straight to
  -- stdout, without a Lua call per byte.
  vm:debugcon{ port = 0xe9 }
  vm:debug_exit{ port = 0xf4 }

  -- timeout = S arms a timer; when it fires the VMM kicks every vCPU out
  -- of KVM_RUN, and the run ends with { reason = "timeout", rip = where
  -- the guest was }. That is a result, not an error: raise = true (the
  -- default) raises only for faults, such as a triple fault.
  local t0 = vmm.now()
  local result = vm:run{ timeout = opts.timeout }
  local elapsed = vmm.now() - t0
  io.stdout:flush()

  if result.reason == "timeout" then
    io.stderr:write(string.format("spin.lua: stopped by the %g s timeout at rip 0x%x "
                                  .. "(after %.3f s)\n", opts.timeout, result.rip, elapsed))
    return TIMED_OUT
  end
  io.stderr:write(string.format("spin.lua: the guest should spin until the timeout, but "
                                .. "the run ended with %s at rip 0x%x\n", result.reason,
                                result.rip))
  return 1
end

os.exit(main(arg or {}))
