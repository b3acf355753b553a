-- A virtio-rng written in Lua, on the same virtio-mmio transport as the C
-- one (vm:virtio_rng) and driven by the same guest drivers:
--
--   local rng = require("vmm.devices.rng")
--   local dev = rng.attach(vm, { addr = 0xd0002000, irq = 7 })            -- /dev/urandom
--   local dev = rng.attach(vm, { addr = 0xd0002000, irq = 7, seed = 42 }) -- reproducible
--
-- Every buffer the driver offers is filled, up to `max` bytes a request
-- (default 64 KiB: a buffer may be larger than guest memory itself, by
-- overlapping, and the spec lets the device write less). With a seed the
-- bytes come from rng.generator(seed), so a test can predict them.

local M = {}

-- A deterministic byte source: splitmix64 from `seed`. Returns a function
-- n -> the next n bytes.
function M.generator(seed)
  local state = math.tointeger(seed) or error("vmm.devices.rng: seed must be an integer", 2)
  local pending = ""
  local function next64()
    state = state + 0x9e3779b97f4a7c15
    local z = state
    z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
    z = (z ~ (z >> 27)) * 0x94d049bb133111eb
    return z ~ (z >> 31)
  end
  return function(n)
    local parts, have = { pending }, #pending
    while have < n do
      local word = string.pack("<i8", next64())
      parts[#parts + 1] = word
      have = have + 8
    end
    local all = table.concat(parts)
    pending = all:sub(n + 1)
    return all:sub(1, n)
  end
end

-- The host's entropy, read in Lua.
local function urandom()
  local f = assert(io.open("/dev/urandom", "rb"))
  return function(n)
    local s = f:read(n)
    if s == nil or #s ~= n then error("vmm.devices.rng: short read from /dev/urandom") end
    return s
  end
end

local known = { addr = true, irq = true, seed = true, queue_size = true, max = true,
                name = true }

-- rng.attach(vm, { addr, irq, seed = nil, queue_size = 256, max = 65536,
-- name = "virtio-rng (Lua)" }) -> the device (vm:virtio's object) and a
-- table { served, bytes } counting the requests served and the bytes given.
function M.attach(vm, opts)
  assert(type(opts) == "table", "vmm.devices.rng.attach: options table expected")
  for k in pairs(opts) do
    if not known[k] then error("vmm.devices.rng.attach: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local source = opts.seed ~= nil and M.generator(opts.seed) or urandom()
  local max = opts.max or 65536
  local stats = { served = 0, bytes = 0 }
  local dev = vm:virtio{
    addr = opts.addr, irq = opts.irq,
    device_id = 4,
    queues = { opts.queue_size or 256 },
    name = opts.name or "virtio-rng (Lua)",
    notify = function(dev, q)
      while true do
        local chain = dev:pop(q)
        if chain == nil then break end -- none left, or the driver broke the rules
        local n = math.min(chain.writable, max)
        local written = n > 0 and chain:write(source(n)) or 0
        dev:push(q, chain, written)
        stats.served = stats.served + 1
        stats.bytes = stats.bytes + written
      end
      dev:notify_used(q)
    end,
  }
  return dev, stats
end

return M
