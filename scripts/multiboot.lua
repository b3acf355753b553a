-- usage: luavmm scripts/multiboot.lua KERNEL [--append S] [--module PATH[=CMDLINE]]...
--                                    [--memory 64M] [--cpus N] [--timeout S]
--
-- Boots a Multiboot kernel on a PC machine (vmm.pc) the way a boot loader
-- would: fw_cfg on ports 0x510/0x511, the ACPI and MP tables in the
-- firmware area, the in-kernel interrupt controllers and PIT, then the
-- kernel and its modules loaded by vmm.multiboot and vCPU 0 started at
-- the kernel's entry (the other vCPUs wait for INIT/SIPI). The kernel
-- command line (--append) goes to both Multiboot and fw_cfg. Port 0xE9
-- prints to stdout (debugcon) and a write to port 0xF4 ends the run
-- (isa-debug-exit); the script exits with the byte written there.
-- Accesses to any other port or MMIO address stop the run with an error
-- naming them.
--
-- Try it on the test kernel, guests/multiboot32.c (its header comment has
-- a command line that passes). Without the luavmm program:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/multiboot.lua build/guests/multiboot32.bin ...

local vmm = require "vmm"
local pc = require "vmm.pc"
local multiboot = require "vmm.multiboot"

local USAGE = "usage: multiboot.lua KERNEL [--append S] [--module PATH[=CMDLINE]]... "
  .. "[--memory 64M] [--cpus N] [--timeout S]"

local function parse_args(args)
  local o = { modules = {}, memory = "64M", cpus = 1, timeout = 30 }
  local i = 1
  local a, inline
  -- The option's value: after '=' in the same argument, or the next one.
  local function value()
    if inline then
      i = i + 1
      return inline
    end
    local v = args[i + 1]
    if v == nil then error("multiboot.lua: " .. a .. " needs a value", 0) end
    i = i + 2
    return v
  end
  while i <= #args do
    a, inline = args[i], nil
    local name, rest = a:match("^(%-%-[%w-]+)=(.*)$")
    if name then a, inline = name, rest end
    if a == "--append" then
      o.cmdline = value()
    elseif a == "--module" then
      local spec = value()
      local path, cmdline = spec:match("^([^=]*)=(.*)$")
      o.modules[#o.modules + 1] = { path = path or spec, cmdline = cmdline }
    elseif a == "--memory" then
      o.memory = value()
    elseif a == "--cpus" then
      local v = value()
      o.cpus = math.tointeger(tonumber(v))
      if not o.cpus or o.cpus < 1 then
        error("multiboot.lua: --cpus needs a whole number from 1 up, not '" .. v .. "'", 0)
      end
    elseif a == "--timeout" then
      local v = value()
      o.timeout = tonumber(v)
      if not o.timeout or o.timeout <= 0 then
        error("multiboot.lua: --timeout needs a number of seconds, not '" .. v .. "'", 0)
      end
    elseif a:sub(1, 2) == "--" then
      error(string.format("multiboot.lua: unknown option '%s'", a), 0)
    elseif o.kernel then
      error(string.format("multiboot.lua: unexpected argument '%s' (the kernel is '%s')", a,
                          o.kernel), 0)
    else
      o.kernel = a
      i = i + 1
    end
  end
  if not o.kernel then error("multiboot.lua: no kernel given", 0) end
  return o
end

local function main(args)
  local ok, o = pcall(parse_args, args)
  if not ok then
    io.stderr:write(tostring(o), "\n", USAGE, "\n")
    return 2
  end

  local made, m = pcall(pc.new, { memory = o.memory, cpus = o.cpus, irqchip = true, pit = true })
  if not made then
    io.stderr:write("multiboot.lua: ", tostring(m), "\n")
    return 1
  end
  local vm <close> = m.vm
  m:install_firmware{ cmdline = o.cmdline }
  vm:debugcon{ port = 0xe9 }
  vm:debug_exit{ port = 0xf4 }
  -- Errors in the kernel's file or the modules are the user's, not the
  -- script's: a message, no traceback.
  local booted, err = pcall(multiboot.boot, m, { kernel = o.kernel, cmdline = o.cmdline,
                                                 modules = o.modules })
  if not booted then
    io.stderr:write(tostring(err), "\n")
    return 1
  end

  local r = vm:run{ timeout = o.timeout }
  io.stdout:flush()
  if r.reason == "exit" then return r.code end
  io.stderr:write(string.format("multiboot.lua: the kernel did not exit through port 0xf4: %s "
                                .. "at rip 0x%x\n", r.reason, r.rip))
  return 1
end

os.exit(main(arg or {}))
