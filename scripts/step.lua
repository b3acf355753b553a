-- usage: luavmm scripts/step.lua [--steps N]
--
-- Single-stepping a guest exit by exit. The real-mode hello guest
-- (guests/hello16.S) writes "Hello from real mode!\n" to port 0xE9 a byte
-- at a time and halts. This script takes its first N exits (default 8)
-- one at a time with cpu:step() and prints each, e.g.
--   exit 1: io out port 0xe9 size 1 value 0x48 'H' at rip 0x800f
-- then lets the guest finish with vm:run() and prints what the console
-- handler collected and how the run ended. Exits 0 when the guest halted.
--
-- cpu:step() runs the vCPU up to its next exit and returns that exit as a
-- table *before* any handler has seen it. The exit stays pending: the next
-- cpu:step() or vm:run() first hands it to the registered handler (or
-- cpu:reply(value) answers it instead), then lets the guest go on. So
-- stepping changes nothing in what the guest sees.
--
-- Without the luavmm program, from the repository root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/step.lua

local vmm = require "vmm"
local mode = require "vmm.mode"
local guests = require "vmm.guests"

local USAGE = "usage: step.lua [--steps N]"

-- The guests are built next to the script's repository, whatever the
-- current directory: <repo>/scripts/step.lua -> <repo>/build/guests/.
local function parse_args(args)
  local steps = 8
  local i = 1
  while i <= #args do
    local a, value = args[i], nil
    if a == "--steps" then
      value = args[i + 1]
      if not value then return nil, "step.lua: --steps needs a value" end
      i = i + 2
    elseif a:match("^%-%-steps=") then
      value = a:sub(9)
      i = i + 1
    else
      return nil, string.format("step.lua: unexpected argument '%s'", a)
    end
    steps = math.tointeger(tonumber(value))
    if not steps or steps < 0 then
      return nil, string.format("step.lua: --steps must be a whole number >= 0, not '%s'",
                                value)
    end
  end
  return steps
end

-- s as a Lua string literal on one line: %q, but "\n" for a newline.
local function quote(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end

-- One line per exit record: what cpu:step() returned. e.rip is where the
-- guest goes on from: KVM has already moved past the `out` or `hlt` that
-- exited (hello16's `out` is at 0x8010, so its exits show 0x8011).
local function describe(n, e)
  local what
  if e.reason == "io" then
    what = string.format("io %s port 0x%x size %d", e.dir, e.port, e.size)
    if e.value then   -- only writes carry a value
      what = what .. string.format(" value 0x%x", e.value)
      if e.size == 1 and e.value >= 0x20 and e.value < 0x7f then
        what = what .. string.format(" '%s'", string.char(e.value))
      elseif e.size == 1 then
        what = what .. " " .. quote(string.char(e.value))
      end
    end
  elseif e.reason == "mmio" then
    what = string.format("mmio %s 0x%x size %d", e.dir, e.addr, e.size)
    if e.value then what = what .. string.format(" value 0x%x", e.value) end
  else
    what = e.reason    -- "hlt", "shutdown", ...
  end
  return string.format("exit %d: %s at rip 0x%x", n, what, e.rip)
end

local function main(args)
  local steps, err = parse_args(args)
  if not steps then
    io.stderr:write(err, "\n", USAGE, "\n")
    return 2
  end
  local path, missing = guests.find("hello16.bin")
  if not path then
    io.stderr:write("step.lua: ", missing, "\n")
    return 1
  end

  local vm <close> = vmm.vm{ memory = "64M", unhandled = "stop" }
  vm:load(path, mode.layout.real_entry)
  local cpu = vm:cpu(0)
  cpu:set_mode("real", { entry = mode.layout.real_entry })

  -- The console handler collects the guest's output instead of printing
  -- it, so the listing below stays readable.
  local output = {}
  vm:on_io(0xe9, function(cpu, offset, size, value)
    if value == nil then return 0xe9 end   -- a read: QEMU's debugcon answers 0xE9
    output[#output + 1] = string.char(value & 0xff)
  end)

  for n = 1, steps do
    -- Runs cpu 0 to its next exit. The exit is returned, not handled yet:
    -- the handler above sees it when the next step or run begins.
    local e = cpu:step{ timeout = 5 }
    print(describe(n, e))
    -- A halt or a fault ends the guest; nothing more to step through.
    if e.reason ~= "io" and e.reason ~= "mmio" then break end
  end

  -- vm:run() first dispatches the exit still pending from the last step,
  -- then runs the guest to its end.
  local result = vm:run{ timeout = 5 }
  print("guest output: " .. quote(table.concat(output)))
  print(string.format("run ended: %s at rip 0x%x", result.reason, result.rip))
  return result.reason == "hlt" and 0 or 1
end

os.exit(main(arg or {}))
