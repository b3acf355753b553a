-- usage: luavmm scripts/hypercall.lua
--
-- Hypercalls answered in Lua. The guest (guests/hypercall64.c, 64-bit long
-- mode) asks the host to compute three things, prints the answers and
-- checks them itself; this script exits with the guest's exit code, 0 when
-- every answer was right.
--
-- A hypercall is `out dx, eax` with dx = 0xABBA and eax = the number; the
-- arguments are in rdi, rsi, rcx, r10, r8, r9 and the handler's return
-- value goes back in rax. By convention a negative result is an error
-- (like Linux's -errno). The handlers here:
--   1  sum(a1, ..., a6)   the sum of the six arguments
--   2  fib(n)             the n-th Fibonacci number, for n <= 93 (the last
--                         that fits in 64 unsigned bits); -EINVAL above
--   3  upper(gpa, len)    upper-cases len bytes of guest memory at gpa in
--                         place and returns len; -EINVAL for a length
--                         outside 0..4096, -EFAULT outside guest memory
--
-- Without the luavmm program, from the repository root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/hypercall.lua

local vmm = require "vmm"
local mode = require "vmm.mode"
local guests = require "vmm.guests"

local EINVAL, EFAULT = 22, 14
local MAX_UPPER = 4096

local function main()
  local path, missing = guests.find("hypercall64.bin")
  if not path then
    io.stderr:write("hypercall.lua: ", missing, "\n")
    return 1
  end

  local vm <close> = vmm.vm{ memory = "64M", unhandled = "stop" }
  vm:load(path, mode.layout.entry)
  vm:cpu(0):set_mode("long")
  -- Console and exit as C devices: the guest's output goes straight to
  -- stdout, and a write to port 0xF4 ends the run with reason "exit".
  vm:debugcon{ port = 0xe9 }
  vm:debug_exit{ port = 0xf4 }

  -- Handlers get the vCPU, then the six argument registers as integers
  -- (64-bit bit patterns: an address above 2^63 would look negative).
  vm:on_hypercall(1, function(cpu, a1, a2, a3, a4, a5, a6)
    return a1 + a2 + a3 + a4 + a5 + a6
  end)

  vm:on_hypercall(2, function(cpu, n)
    if n < 0 or n > 93 then return -EINVAL end
    local a, b = 0, 1
    for _ = 1, n do a, b = b, a + b end  -- wraps past 2^63: unsigned bits stay right
    return a
  end)

  -- The guest hands over a guest physical address. The memory object
  -- copies in and out with bounds checks and raises an error outside guest
  -- memory; pcall turns that into an error result for the guest, rather
  -- than failing the run.
  vm:on_hypercall(3, function(cpu, gpa, len)
    if len < 0 or len > MAX_UPPER then return -EINVAL end
    local memory = cpu.vm.memory
    local ok, text = pcall(memory.read, memory, gpa, len)
    if not ok then return -EFAULT end
    memory:write(gpa, text:upper())
    return len
  end)

  local result = vm:run{ timeout = 5 }
  if result.reason == "exit" then
    return result.code
  end
  io.stderr:write(string.format("hypercall.lua: the guest did not finish: %s at rip 0x%x\n",
                                result.reason, result.rip))
  return 1
end

os.exit(main())
