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
