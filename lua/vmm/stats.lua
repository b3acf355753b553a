-- Exit statistics as text: what `luavmm --stats` prints when a VM is closed
-- and what vmm.stats.format(vm:stats()) returns.

local M = {}

local TOP = 10 -- entries shown per table

-- "k1 n1, k2 n2, ..." for the biggest counts, keys through fmt.
local function top(counts, fmt)
  local list = {}
  for k, n in pairs(counts) do list[#list + 1] = { k, n } end
  table.sort(list, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    return tostring(a[1]) < tostring(b[1])
  end)
  local parts = {}
  for i = 1, math.min(#list, TOP) do
    parts[i] = string.format("%s %d", fmt(list[i][1]), list[i][2])
  end
  if #list > TOP then parts[#parts + 1] = string.format("(%d more)", #list - TOP) end
  return #parts > 0 and table.concat(parts, ", ") or "none"
end

local function hex(k) return string.format("0x%x", k) end

local function handler_line(name, h)
  if h.calls == 0 then return string.format("%s: none", name) end
  return string.format("%s: %d calls, %.6f s (%.2f us each)", name, h.calls, h.seconds,
                       h.seconds / h.calls * 1e6)
end

--- Formats a vm:stats() table; title names the VM.
function M.format(s, title)
  local lines = {
    string.format("%s: %d exits", title or "luavmm statistics", s.exits),
    "  by reason: " .. top(s.reasons, tostring),
    "  ports: " .. top(s.ports, hex),
    "  MMIO addresses: " .. top(s.mmio, hex),
    "  hypercalls: " .. top(s.hypercalls, tostring),
    "  handlers: " .. handler_line("C", s.handlers.c) .. "; " .. handler_line("Lua", s.handlers.lua),
  }
  if s.cpus and #s.cpus > 1 then
    local per = {}
    for i, c in ipairs(s.cpus) do per[i] = string.format("cpu %d %d", i - 1, c.exits) end
    lines[#lines + 1] = "  exits per vCPU: " .. table.concat(per, ", ")
  end
  return table.concat(lines, "\n")
end

return M
