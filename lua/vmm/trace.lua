-- Exit traces: reading the files vm:trace(path) records, and replaying them
-- against a machine's handlers without running any guest. The format is
-- described in src/trace.h and the README.
--
--   vm:trace("run.trace"); vm:run(); vm:trace(false)        -- record
--   for rec in trace.records("run.trace") do ... end        -- inspect
--   local ok, diff = trace.replay(other_vm, "run.trace")     -- replay
--
-- A replay feeds every recorded access to the handler the VM has for it,
-- in order, and compares what the handler answers (a read's value, a
-- hypercall's result) with what the guest got when it was recorded. Writes
-- are replayed too, so device state evolves as it did.

local M = {}

local KINDS = { [1] = "io", [2] = "mmio", [3] = "hypercall", [4] = "exit" }
local HEADER = "LVMTRACE"

-- Opens a trace and checks its header; returns the file.
local function open(path)
  local f, err = io.open(path, "rb")
  if not f then error("trace: " .. err, 3) end
  local head = f:read(16)
  if not head or #head < 16 or head:sub(1, 8) ~= HEADER then
    f:close()
    error("trace: " .. path .. " is not a luavmm trace", 3)
  end
  local version = string.unpack("<I4", head, 9)
  if version ~= 1 then
    f:close()
    error(string.format("trace: %s has version %d; this luavmm reads version 1", path, version), 3)
  end
  return f
end

--- Iterates over the records of a trace: each a table with kind ("io",
--- "mmio", "hypercall", "exit"), cpu, rip, and per kind: write, size,
--- addr, value (io, mmio); nr, args, result (hypercall); exit (the KVM
--- exit reason number).
function M.records(path)
  local f = open(path)
  local n = 0
  return function()
    local head = f:read(32)
    if head == nil then
      f:close()
      return nil
    end
    if #head < 32 then
      f:close()
      error(string.format("trace: %s is truncated in record %d", path, n + 1), 2)
    end
    n = n + 1
    local kind, flags, size, cpu, extra, addr, value, rip =
      string.unpack("<BBBBI4i8i8i8", head)
    local rec = { n = n, kind = KINDS[kind], cpu = cpu, rip = rip }
    if rec.kind == nil then
      f:close()
      error(string.format("trace: %s: record %d has unknown kind %d", path, n, kind), 2)
    elseif rec.kind == "hypercall" then
      local rest = f:read(48)
      if not rest or #rest < 48 then
        f:close()
        error(string.format("trace: %s is truncated in record %d", path, n), 2)
      end
      rec.nr, rec.result = extra, value
      rec.args = { string.unpack("<i8i8i8i8i8i8", rest) }
      rec.args[7] = nil
    elseif rec.kind == "exit" then
      rec.exit = extra
    else
      rec.write, rec.size, rec.addr, rec.value = flags & 1 == 1, size, addr, value
    end
    return rec
  end
end

--- Reads a whole trace into a list.
function M.read(path)
  local list = {}
  for rec in M.records(path) do list[#list + 1] = rec end
  return list
end

--- One line describing a record (without the value when bare is set).
function M.describe(rec, bare)
  if rec.kind == "hypercall" then
    return string.format("hypercall %d(%s) = %d", rec.nr,
                         table.concat(rec.args, ", "), rec.result)
  elseif rec.kind == "exit" then
    return string.format("exit %d at rip 0x%x", rec.exit, rec.rip)
  end
  local text = string.format("%s %s 0x%x (%d byte%s)", rec.kind,
                             rec.write and "write" or "read", rec.addr, rec.size,
                             rec.size == 1 and "" or "s")
  if bare then return text end
  return string.format("%s %s 0x%x", text, rec.write and "=" or "->", rec.value)
end

local function mask(value, size)
  if size >= 8 then return value end
  return value & ((1 << (size * 8)) - 1)
end

--- Replays the trace at path against vm's handlers. Returns true, count;
--- or false and the first divergence: { n =, record =, expected =,
--- actual =, message = }.
function M.replay(vm, path)
  local count = 0
  for rec in M.records(path) do
    local ok, got
    if rec.kind == "hypercall" then
      ok, got = pcall(vm.dispatch, vm, { cpu = rec.cpu, kind = "hypercall", nr = rec.nr,
                                         args = rec.args })
    elseif rec.kind == "io" or rec.kind == "mmio" then
      ok, got = pcall(vm.dispatch, vm, { cpu = rec.cpu, kind = rec.kind, addr = rec.addr,
                                         size = rec.size,
                                         value = rec.write and rec.value or nil })
    else
      ok = true -- hlt and the like carry no answer to compare
    end
    local expected = rec.kind == "hypercall" and rec.result
                     or (rec.kind ~= "exit" and not rec.write and rec.value) or nil
    if not ok then
      return false, { n = rec.n, record = rec, expected = expected, error = got,
                      message = string.format("exit %d: %s: the handler failed: %s", rec.n,
                                              M.describe(rec), got) }
    end
    if expected ~= nil then
      local actual = rec.kind == "hypercall" and got or mask(got, rec.size)
      if actual ~= expected then
        return false, { n = rec.n, record = rec, expected = expected, actual = actual,
                        message = string.format("exit %d: %s: expected 0x%x, got 0x%x", rec.n,
                                                M.describe(rec, true), expected, actual) }
      end
    end
    count = count + 1
  end
  return true, count
end

return M
