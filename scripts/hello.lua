-- usage: luavmm scripts/hello.lua [--mode real|protected|long]
--
-- Boots one of the hello guests (guests/hello16.S, hello32.c, hello64.c) in
-- the CPU mode it was built for and prints what it says. Everything the
-- guest does goes through Lua handlers:
--   port 0xE9  console: each byte written is one character of output
--   port 0xF4  exit: the byte written is the guest's exit code
-- The real-mode guest ends with `hlt` instead, which counts as exit code 0.
-- The script exits with the guest's code. Build the guests with `make`.
--
-- Without the luavmm program, from the repository root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/hello.lua --mode long

local vmm = require "vmm"
local mode = require "vmm.mode"
local guests = require "vmm.guests"

-- Each mode's guest and where it goes (see lua/vmm/mode.lua's layout).
local GUESTS = {
  real = { file = "hello16.bin", at = mode.layout.real_entry },
  protected = { file = "hello32.bin", at = mode.layout.entry },
  long = { file = "hello64.bin", at = mode.layout.entry },
}

local USAGE = "usage: hello.lua [--mode real|protected|long]"

-- The guests are built next to the script's repository, whatever the
-- current directory: <repo>/scripts/hello.lua -> <repo>/build/guests/.
local function parse_args(args)
  local which = "real"
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--mode" then
      which = args[i + 1]
      if not which then return nil, "hello.lua: --mode needs a value" end
      i = i + 2
    elseif a:match("^%-%-mode=") then
      which = a:sub(8)
      i = i + 1
    else
      return nil, string.format("hello.lua: unexpected argument '%s'", a)
    end
  end
  if not GUESTS[which] then
    return nil, string.format("hello.lua: unknown mode '%s'", which)
  end
  return which
end

local function main(args)
  local which, err = parse_args(args)
  if not which then
    io.stderr:write(err, "\n", USAGE, "\n")
    return 2
  end
  local guest = GUESTS[which]
  local path, missing = guests.find(guest.file)
  if not path then
    io.stderr:write("hello.lua: ", missing, "\n")
    return 1
  end

  -- Unhandled port or MMIO accesses stop the run with an error naming them.
  local vm <close> = vmm.vm{ memory = "64M", unhandled = "stop" }
  vm:load(path, guest.at)
  vm:cpu(0):set_mode(which, { entry = guest.at })

  -- The console. A handler gets (cpu, offset in its range, access size,
  -- value); value is nil for a read, and what a read handler returns is
  -- what the guest reads. Reads return 0xE9, as QEMU's debugcon does.
  vm:on_io(0xe9, function(cpu, offset, size, value)
    if value == nil then return 0xe9 end
    io.write(string.char(value & 0xff))
  end)

  -- The exit port: vm:stop(code) ends the run once this handler returns,
  -- with { reason = "stop", code = code }. (vm:debug_exit{} is the same
  -- thing as a C device.)
  vm:on_io(0xf4, function(cpu, offset, size, value)
    if value ~= nil then vm:stop(value & 0xff) end
  end)

  local result = vm:run{ timeout = 5 }
  io.stdout:flush()
  if result.reason == "stop" then
    return result.code
  elseif result.reason == "hlt" then
    return 0
  end
  io.stderr:write(string.format("hello.lua: the guest did not finish: %s at rip 0x%x\n",
                                result.reason, result.rip))
  return 1
end

os.exit(main(arg or {}))
