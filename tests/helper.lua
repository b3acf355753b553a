-- Shared helpers for the busted specs: tiny guests assembled by hand.
local vmm = require "vmm"

local H = {}

H.build = os.getenv("LUAVMM_BUILD") or "build"

function H.guest(name)
  return H.build .. "/guests/" .. name
end

-- A VM whose real-mode code is at 0x8000 (cs = 0), stack at 0x7c00.
function H.real(code, opts)
  opts = opts or {}
  local vm = vmm.vm{ memory = opts.memory or "1M", unhandled = opts.unhandled }
  vm.memory:write(0x8000, code)
  vm:cpu(0):set_mode("real")
  return vm
end

-- A VM in 64-bit long mode with code at 1 MiB.
function H.long(code, opts)
  opts = opts or {}
  local vm = vmm.vm{ memory = opts.memory or "2M", unhandled = opts.unhandled }
  vm.memory:write(0x100000, code)
  vm:cpu(0):set_mode("long")
  return vm
end

-- Little-endian immediates for hand-assembled code.
function H.u16(v) return string.pack("<I2", v) end
function H.u32(v) return string.pack("<I4", v) end
function H.u64(v) return string.pack("<i8", v) end

-- The error a failing call raises, as a string (nil if it did not fail).
function H.error_of(f, ...)
  local ok, err = pcall(f, ...)
  if ok then return nil end
  return tostring(err)
end

return H
