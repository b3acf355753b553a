-- The vmm module: the C core (vmm.core, in vmm.so) plus the parts written
-- in Lua. `require "vmm"` loads this file; it returns the core's table with
-- the Lua helpers added, so scripts see one module.
local core = require "vmm.core"

local vmm = {}
for k, v in pairs(core) do vmm[k] = v end

-- Methods written in Lua.
core.methods.cpu.set_mode = function(cpu, mode, opts)
  return require("vmm.mode").set(cpu, mode, opts)
end

-- cpu:run_until(pred, { timeout = s }) steps until pred(exit) is true and
-- returns that exit, still pending; nil, "timeout" or nil, exit when the
-- time runs out or the guest stops first.
core.methods.cpu.run_until = function(cpu, pred, opts)
  local deadline = core.now() + (opts and opts.timeout or 10)
  while true do
    local left = deadline - core.now()
    if left <= 0 then return nil, "timeout" end
    local e = cpu:step{ timeout = left }
    if e.reason == "timeout" then return nil, "timeout" end
    if pred(e) then return e end
    if e.reason ~= "io" and e.reason ~= "mmio" then return nil, e end
  end
end

-- Submodules load on first use: vmm.mode, vmm.guest, ...
return setmetatable(vmm, {
  __index = function(t, name)
    if type(name) ~= "string" then return nil end
    local ok, mod = pcall(require, "vmm." .. name)
    if not ok then
      if tostring(mod):find("module 'vmm." .. name .. "' not found", 1, true) then
        return nil
      end
      error(mod, 2)
    end
    rawset(t, name, mod)
    return mod
  end,
})
