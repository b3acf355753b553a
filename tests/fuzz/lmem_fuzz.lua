-- The Lua half of lmem_fuzz.c: returns a function that decodes one input
-- into calls of the guest-memory API (src/lmem.c: memory:read, write,
-- fill, u8 to u64, load, map, regions, #memory, tostring) with arguments
-- of every kind (integers near 2^63, negative and huge; floats, NaN and
-- numeric strings; random strings; nil, booleans, tables, functions,
-- userdata), on a fresh VM per input, and checks each call against a
-- model of guest memory kept in Lua:
--   - a call succeeds exactly when the model says its arguments are valid
--     and its range lies inside guest memory; what it returns is what the
--     model says (read and uN read back the model's bytes);
--   - a call that fails raises a string (no other error object), one that
--     names no argument below #1 (luaL_argerror with a stack index);
--   - after every call, guest memory is exactly the model: the regions
--     (read in C, not through the API under test) and every byte in them,
--     so a write that went outside its range, or a failed call that
--     changed something, is caught.
-- A mismatch is a finding (the returned string).
--
-- Input: ops until the input ends, each { u8 op, u8 argc, argc values }.
--   op % 14: 0 read, 1 write, 2 fill, 3 u8, 4 u16, 5 u32, 6 u64, 7 load,
--   8 map, 9 regions, 10 #memory, 11 tostring, 12 close the VM (later
--   calls must say it is closed), 13 a method called on a wrong self (the
--   next byte picks the method, the first value is the self)
--   argc % 5 values, each a kind byte and its payload (see value()).
--
-- Limits of the harness: a map bigger than 64 KiB, or beyond the fourth,
-- that would otherwise succeed is not made (the host would have to back
-- it, and the model copies all of guest memory after every call); a KVM_SET_USER_MEMORY_REGION refusal is the host's
-- business (KVM has private slots the model does not know), accepted when
-- nothing changed. load reads only the files listed below.

local vmm = require "vmm"
-- From C: compare(memory, model) -> nil or what differs (guest memory read
-- in C against the model's regions), and the path of a file it owns.
local compare, scratch_path = ...

local VERBOSE = os.getenv("LMEM_FUZZ_VERBOSE") -- each call and its result on stderr
local MAX_READ = 1 << 30
local MAP_CAP = 64 * 1024
local MAX_MAPS = 4     -- successful maps per input beyond the layout
local PAGE = 4096

-- The VM's memory at the start of every input: a hole, two adjacent
-- regions, and a read-only one (host writes to it are allowed).
local LAYOUT = {
  { gpa = 0x00000, size = 0x10000, name = "a" },
  { gpa = 0x20000, size = 0x08000, name = "b" },
  { gpa = 0x28000, size = 0x08000, name = "c" },
  { gpa = 0x40000, size = 0x01000, name = "rom", readonly = true },
}

-- Integers worth trying: the edges of the layout, of the API's limits and
-- of lua_Integer.
local EDGES = {
  0, 1, 2, 7, 8, 0xff, 0x100, 0xffff, 0x10000, 0x1ffff, 0x20000, 0x27fff, 0x28000, 0x2fff8,
  0x30000, 0x3ffff, 0x40000, 0x40ff8, 0x41000, 0x80000, 0x7fffffff, 0x80000000, 0xffffffff,
  0x100000000, 1 << 52, (1 << 52) - PAGE, MAX_READ, MAX_READ + 1, math.maxinteger,
  math.maxinteger - 7, math.mininteger, math.mininteger + 1, -1, -8, -PAGE, 0x10000 - 8,
  PAGE, 2 * PAGE, 0x50000, 0x100000, 0xfffff000,
}
local FLOATS = { 0.5, 1.0, -0.0, 65536.0, 2.0 ^ 63, -(2.0 ^ 63), 2.0 ^ 53 + 1, 1e300, 0 / 0,
                 math.huge, -math.huge, 0x20000 + 0.0, 4096.0 }
local NUMERIC = { "0x10000", "65536", " 12 ", "1e3", "0x7fffffffffffffff", "-1", "4096.0",
                  "0x20000", "1.5", "9223372036854775808", "", "0x" }
local SIZES = { "4K", "8KiB", "4096", "1M", "0", "4k", "1G", "3T", "12KB", "4x", "", " 4K",
                "-4K", "4.0K", "18446744073709551616", "99999999999999999999K", "64KIB", "2Mb",
                "1MiBx", "8192" }

local vm, memory, mem_methods
local model         -- { { gpa, size, bytes, readonly } } sorted by gpa
local closed
local maps          -- successful maps in this input

local function new_vm()
  vm = vmm.vm{ memory = false }
  memory = vm.memory
  mem_methods = getmetatable(memory).__index
  model = {}
  for _, r in ipairs(LAYOUT) do
    memory:map(r)
    model[#model + 1] = { gpa = r.gpa, size = r.size, bytes = string.rep("\0", r.size),
                          readonly = r.readonly or false }
  end
  closed = false
  maps = 0
end

-- ---- the model ----

local function total()
  local n = 0
  for _, r in ipairs(model) do n = n + r.size end
  return n
end

local function find(gpa)
  for i, r in ipairs(model) do
    if gpa >= r.gpa and gpa - r.gpa < r.size then return i, r end
  end
end

-- Whether [gpa, gpa+len) is all guest memory (gpa, len: non-negative).
local function covers(gpa, len)
  if gpa + len < gpa then return false end      -- wraps past 2^63: not an address
  local stop = gpa + len
  while gpa < stop do
    local _, r = find(gpa)
    if not r then return false end
    gpa = r.gpa + r.size
  end
  return true
end

local function model_read(gpa, len)
  local out = {}
  local at, stop = gpa, gpa + len
  while at < stop do
    local _, r = find(at)
    local off = at - r.gpa
    local n = math.min(r.size - off, stop - at)
    out[#out + 1] = r.bytes:sub(off + 1, off + n)
    at = at + n
  end
  return table.concat(out)
end

local function model_write(gpa, s)
  local at, done = gpa, 0
  while done < #s do
    local _, r = find(at)
    local off = at - r.gpa
    local n = math.min(r.size - off, #s - done)
    r.bytes = r.bytes:sub(1, off) .. s:sub(done + 1, done + n) .. r.bytes:sub(off + n + 1)
    at, done = at + n, done + n
  end
end

-- ---- what the C side accepts ----

-- lua_tointegerx: integers, integral floats, strings that convert.
local function toint(v)
  if type(v) == "number" then return math.tointeger(v) end
  if type(v) == "string" then
    local n = tonumber(v)
    return n and math.tointeger(n)
  end
end

-- lu_checkaddr: a non-negative integer, or nil.
local function addr(v)
  local n = toint(v)
  if n and n >= 0 then return n end
end

-- luaL_checklstring: strings, and numbers as tostring writes them.
local function str(v)
  if type(v) == "string" then return v end
  if type(v) == "number" then return tostring(v) end
end

-- lu_parse_size: digits, then K, M, G or T with an optional i and b.
local function parse_size(s)
  local digits, rest = s:match("^(%d+)(.*)$")
  if not digits then return nil end
  local shifts = { k = 10, m = 20, g = 30, t = 40 }
  local shift = shifts[rest:sub(1, 1):lower()]
  if shift then
    rest = rest:sub(2):gsub("^[iI]", ""):gsub("^[bB]", "")
  else
    shift = 0
  end
  if rest ~= "" then return nil end
  -- strtoull saturates at 2^64 - 1; a shifted value must not overflow.
  local n = math.tointeger(tonumber(digits))
  local huge = n == nil or #digits > 19 or (#digits == 19 and digits > "9223372036854775807")
  if huge then
    if shift > 0 then return nil end
    return -1 -- 2^64 - 1 as a bit pattern: never a valid size
  end
  if shift > 0 and n > (math.maxinteger >> (shift - 1)) then return nil end
  return n << shift
end

-- lu_checksize: a non-negative integer, or a size string.
local function size_arg(v)
  if type(v) == "number" then
    local n = math.tointeger(v)
    if n and n >= 0 then return n end
    return nil
  end
  if type(v) == "string" then return parse_size(v) end
end

-- ---- decoding ----

local data, pos

local function u8()
  if pos > #data then return 0 end
  pos = pos + 1
  return data:byte(pos - 1)
end

local function take(fmt, n)
  if pos + n - 1 > #data then
    pos = #data + 1
    return 0
  end
  local v = string.unpack(fmt, data, pos)
  pos = pos + n
  return v
end

local value
local function map_table()
  return { gpa = value(), size = value(), name = value(), readonly = value() }
end

-- One argument: a kind byte, then its payload.
function value()
  local kind = u8() % 13
  if kind == 0 then return nil
  elseif kind == 1 then return take("<I2", 2)
  elseif kind == 2 then return take("<i8", 8)
  elseif kind == 3 then
    local e = EDGES[u8() % #EDGES + 1]
    local delta = (u8() % 17) - 8
    return e + delta
  elseif kind == 4 then return FLOATS[u8() % #FLOATS + 1]
  elseif kind == 5 then
    local n = u8() % 64
    local s = data:sub(pos, pos + n - 1)
    pos = pos + n
    return s
  elseif kind == 6 then return NUMERIC[u8() % #NUMERIC + 1]
  elseif kind == 7 then return u8() % 2 == 1
  elseif kind == 8 then return map_table()
  elseif kind == 9 then return SIZES[u8() % #SIZES + 1]
  elseif kind == 10 then return memory
  elseif kind == 11 then return print
  else return vm
  end
end

-- ---- checks ----

local function describe(args, n)
  local parts = {}
  for i = 1, n do
    local v = args[i]
    if type(v) == "string" then parts[i] = string.format("%q", v)
    elseif type(v) == "number" and math.type(v) == "integer" then parts[i] = string.format("0x%x", v)
    elseif type(v) == "table" then
      local f = {}
      for _, k in ipairs{ "gpa", "size", "name", "readonly" } do
        if v[k] ~= nil then
          f[#f + 1] = k .. " = " .. (math.type(v[k]) == "integer" and string.format("0x%x", v[k])
                                     or type(v[k]) == "string" and string.format("%q", v[k])
                                     or tostring(v[k]))
        end
      end
      parts[i] = "{ " .. table.concat(f, ", ") .. " }"
    else parts[i] = tostring(v) end
  end
  return table.concat(parts, ", ")
end

-- A clean error: a message, and if it blames an argument by number, one
-- the call had, or the first one it lacked (self is #1: the calls below
-- are not method calls).
local function clean_error(err, nargs)
  if type(err) ~= "string" then
    return "raised a " .. type(err) .. ", not a message"
  end
  if err == "" then return "raised an empty message" end
  local n = tonumber(err:match("bad argument #(%-?%d+)"))
  if n and (n < 1 or n > nargs + 1 or (n == nargs + 1 and not err:find("got no value", 1, true))) then
    return "names an argument it was not given: " .. err
  end
end

-- Guest memory as C sees it, against the model.
local function check_memory()
  if closed then return end
  return compare(memory, model)
end

-- ---- the methods, each with its model: returns ok_expected, then a
-- function that checks the results and updates the model ----

local INT = { u8 = 1, u16 = 2, u32 = 4, u64 = 8 }

local function expect(method, args)
  local a1, a2, a3 = args[1], args[2], args[3]
  if method == "read" then
    local gpa, len = addr(a1), addr(a2)
    if not gpa or not len or len > MAX_READ or not covers(gpa, len) then return false end
    return true, function(s) return s == model_read(gpa, len) or "read the wrong bytes" end
  elseif method == "write" then
    local gpa, s = addr(a1), str(a2)
    if not gpa or not s or not covers(gpa, #s) then return false end
    return true, function(n)
      model_write(gpa, s)
      return n == #s or "returned the wrong count"
    end
  elseif method == "fill" then
    local gpa, len = addr(a1), addr(a2)
    local byte = a3 == nil and 0 or toint(a3)
    if not gpa or not len or not byte or byte < 0 or byte > 255 or not covers(gpa, len) then
      return false
    end
    -- The harness never asks for more than the layout holds (see covers).
    return true, function() model_write(gpa, string.rep(string.char(byte), len)) end
  elseif INT[method] then
    local size = INT[method]
    local gpa = addr(a1)
    if not gpa then return false end
    if a2 == nil then
      if not covers(gpa, size) then return false end
      return true, function(v)
        -- Zero-extended below 8 bytes, the bit pattern at 8.
        local want = string.unpack(size < 8 and "<I" .. size or "<i8", model_read(gpa, size))
        return v == want or string.format("read 0x%x, the model has 0x%x", v, want)
      end
    end
    local v = toint(a2)
    if not v then return false end
    if size < 8 and (v < -(1 << (8 * size - 1)) or v > (1 << (8 * size)) - 1) then return false end
    if not covers(gpa, size) then return false end
    return true, function() model_write(gpa, string.pack("<i8", v):sub(1, size)) end
  elseif method == "load" then
    local path, gpa = str(a1), addr(a2)
    if not path or not gpa then return false end
    if path == scratch_path then
      local f = assert(io.open(path, "rb"))
      local bytes = f:read("a")
      f:close()
      if not covers(gpa, #bytes) then return false end
      return true, function(n)
        model_write(gpa, bytes)
        return n == #bytes or "returned the wrong size"
      end
    elseif path == "/proc/self/status" then
      return true, function(n) return n == 0 or "a file of st_size 0 loaded bytes" end
    end
    return false -- missing, a directory, a device: never a regular file
  elseif method == "map" then
    if type(a1) ~= "table" then return false end
    local gpa, size = addr(a1.gpa), a1.size ~= nil and size_arg(a1.size)
    local name = a1.name
    if name ~= nil and type(name) ~= "string" and type(name) ~= "number" then return false end
    if not gpa or not size then return false end
    local stop = gpa + size
    if size == 0 or gpa % PAGE ~= 0 or size % PAGE ~= 0 or stop < gpa or stop > 1 << 52 then
      return false
    end
    for _, r in ipairs(model) do
      if gpa < r.gpa + r.size and r.gpa < stop then return false end
    end
    if size > MAP_CAP or maps >= MAX_MAPS then return "skip" end
    return true, function()
      maps = maps + 1
      local at = 1
      while model[at] and model[at].gpa < gpa do at = at + 1 end
      table.insert(model, at, { gpa = gpa, size = size, bytes = string.rep("\0", size),
                                readonly = a1.readonly and true or false })
    end
  elseif method == "regions" then
    return true, function(list)
      if #list ~= #model then return "listed the wrong number of regions" end
      for i, r in ipairs(list) do
        local m = model[i]
        if r.gpa ~= m.gpa or r.size ~= m.size or r.readonly ~= m.readonly then
          return "listed a region wrong"
        end
      end
    end
  elseif method == "len" then
    return true, function(n) return n == total() or "gave the wrong total" end
  elseif method == "tostring" then
    return true, function(s) return type(s) == "string" or "did not give a string" end
  end
end

local METHODS = { "read", "write", "fill", "u8", "u16", "u32", "u64", "load", "map", "regions",
                  "len", "tostring" }

-- #memory and tostring(memory) through the metamethods themselves, so a
-- wrong self reaches them too.
local function call(method, self, args, n)
  local mt = getmetatable(memory)
  if method == "len" then return pcall(mt.__len, self) end
  if method == "tostring" then return pcall(mt.__tostring, self) end
  return pcall(mem_methods[method], self, table.unpack(args, 1, n))
end

local function step()
  local op = u8() % 14
  local argc = u8() % 5
  if op == 12 then
    vm:close()
    closed = true
    return
  end
  local wrong_self = op == 13
  local method = METHODS[(wrong_self and u8() or op) % #METHODS + 1]
  local args = {}
  for i = 1, argc do args[i] = value() end
  if method == "load" and args[1] ~= nil and type(args[1]) ~= "table" then
    -- Paths: our scratch file (rewritten with some of the input), or ones
    -- that exist but are no regular file, or are empty, or do not exist.
    local paths = { scratch_path, "/nonexistent/luavmm", "/", "/dev/null", "/proc/self/status" }
    local pick = u8()
    args[1] = paths[pick % #paths + 1]
    if args[1] == scratch_path then
      local f = assert(io.open(scratch_path, "wb"))
      f:write(data:sub(pos, pos + pick - 1))
      f:close()
      pos = pos + pick
    end
  end
  local self = memory
  if wrong_self then self = args[1]; table.remove(args, 1); argc = math.max(argc - 1, 0) end

  local ok_expected, check
  if closed or (wrong_self and self ~= memory) then
    ok_expected = method == "tostring" and self == memory -- tostring works on a closed memory
    if ok_expected then check = function() end end
  else
    ok_expected, check = expect(method, args)
  end
  if ok_expected == "skip" then return end
  local ok, res = call(method, self, args, argc)
  local what = string.format("memory:%s(%s)%s", method, describe(args, argc),
                             closed and " on a closed VM" or "")
  if VERBOSE then io.stderr:write(what, " -> ", tostring(ok), " ", tostring(res), "\n") end
  if not ok and ok_expected and method == "map" and tostring(res):find("KVM_SET_USER_MEMORY_REGION", 1, true) then
    -- The host refusing a slot the model thought free (KVM's own slots):
    -- fine, as long as nothing changed.
    return check_memory()
  end
  if ok ~= (ok_expected and true or false) then
    return string.format("%s %s, the model expected it to %s%s", what,
                         ok and "succeeded" or "failed", ok_expected and "succeed" or "fail",
                         ok and "" or ": " .. tostring(res))
  end
  if not ok then
    local bad = clean_error(res, argc + 1)
    if bad then return what .. " " .. bad end
  else
    local bad = check(res)
    if type(bad) == "string" then return what .. " " .. bad end
  end
  local bad = check_memory()
  if bad then return "after " .. what .. ": " .. bad end
end

return function(input)
  data, pos = input, 1
  new_vm()
  local finding
  while pos <= #data and not finding do
    finding = step()
  end
  if not closed then vm:close() end
  return finding
end
