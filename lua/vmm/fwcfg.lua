-- QEMU's fw_cfg device, legacy interface, written in Lua: the way firmware
-- and boot code ask the VMM about the machine (CPU count, RAM, the kernel
-- command line) and fetch named blobs ("files") from it.
--
--   local fwcfg = require "vmm.fwcfg"
--   local fw = fwcfg.install(vm, { cpus = 2, ram_size = 64 << 20, cmdline = "quiet" })
--   fw:add_file("etc/luavmm/hello", "hi")       --> 0x20, its selector
--
-- The guest writes a 16-bit selector to port 0x510, then reads the selected
-- item a byte at a time from port 0x511; each read advances an offset that
-- selecting resets to 0. Reads past an item's end, and every read of an
-- unknown selector, return 0. Writes to the data port are ignored (QEMU
-- dropped legacy writes too), and so are selector writes that are not 16
-- bits wide. There is no DMA interface: the id item says so, and port
-- 0x514 is not claimed.
--
-- Items (integers little-endian, as on x86; the file directory big-endian):
--   0x0000  signature   "QEMU"
--   0x0001  id          u32, bit 0: the traditional interface (no DMA, bit 1)
--   0x0002  UUID        16 bytes (zero unless opts.uuid)
--   0x0003  RAM size    u64, opts.ram_size (vmm.pc gives the RAM below 4 GiB)
--   0x0005  nb_cpus     u16, opts.cpus
--   0x000f  max_cpus    u16, opts.max_cpus or opts.cpus
--   0x0014  cmdline size  u32, the command line's length plus its NUL
--   0x0015  cmdline data  the command line and a NUL
--   0x0019  file directory: u32 count, then per file { u32 size, u16 select,
--           u16 reserved, char name[56] }
--   0x0020+ the files, in the order they were added
--
-- All state lives in the returned object: two VMs have two fw_cfgs.

local M = {}

M.PORT = 0x510               -- selector; the data port is PORT + 1
M.SIGNATURE, M.ID, M.UUID, M.RAM_SIZE = 0x0000, 0x0001, 0x0002, 0x0003
M.NB_CPUS, M.MAX_CPUS = 0x0005, 0x000f
M.CMDLINE_SIZE, M.CMDLINE_DATA = 0x0014, 0x0015
M.FILE_DIR, M.FILE_FIRST = 0x0019, 0x0020
M.FILE_LAST = 0x3fff         -- bit 14 and 15 of a selector are flags in QEMU
M.NAME_MAX = 55              -- a file name and its NUL fill the 56-byte field
M.ID_TRADITIONAL = 0x1

local FwCfg = {}
FwCfg.__index = FwCfg

local function check_u(opts, name, bits, default)
  local v = opts[name]
  if v == nil then
    if default == nil then error(string.format("fwcfg.install: %s is required", name), 3) end
    return default
  end
  if math.type(v) ~= "integer" or v < 0 or (bits < 64 and v >> bits ~= 0) then
    error(string.format("fwcfg.install: %s must be an integer from 0 to 2^%d-1, got %s",
                        name, bits, tostring(v)), 3)
  end
  return v
end

-- A UUID as 16 raw bytes or in its text form (8-4-4-4-12 hex digits).
local function parse_uuid(v)
  if v == nil then return string.rep("\0", 16) end
  if type(v) ~= "string" then
    error("fwcfg.install: uuid must be a string, got " .. type(v), 3)
  end
  if #v == 16 then return v end
  local hex = v:match("^(%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x)$")
  if not hex then
    error("fwcfg.install: uuid must be 16 bytes or xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, got '"
          .. v .. "'", 3)
  end
  return (hex:gsub("%-", ""):gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

local function check_cmdline(v, where)
  if v == nil then return "" end
  if type(v) ~= "string" then
    error(string.format("%s: cmdline must be a string, got %s", where, type(v)), 3)
  end
  if v:find("\0", 1, true) then
    error(string.format("%s: cmdline must not contain a NUL byte", where), 3)
  end
  return v
end

-- The fw_cfgs installed, by VM and port: registering a port range again
-- would quietly replace the first device's handler.
local installed = setmetatable({}, { __mode = "k" })

local KNOWN = { cpus = true, max_cpus = true, ram_size = true, cmdline = true, uuid = true,
                port = true }

--- fwcfg.install(vm, { cpus = n, ram_size = bytes, cmdline = s, max_cpus = n,
---   uuid = s, port = 0x510 }) -> fw
--- cpus defaults to vm.cpus; ram_size is required.
function M.install(vm, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("fwcfg.install: options must be a table", 2) end
  for k in pairs(opts) do
    if not KNOWN[k] then
      error(string.format("fwcfg.install: unknown option '%s' (known: cpus, max_cpus, "
                          .. "ram_size, cmdline, uuid, port)", tostring(k)), 2)
    end
  end
  local cpus = check_u(opts, "cpus", 16, vm.cpus)
  if cpus < 1 then error("fwcfg.install: cpus must be at least 1", 2) end
  local max_cpus = check_u(opts, "max_cpus", 16, cpus)
  if max_cpus < cpus then
    error(string.format("fwcfg.install: max_cpus (%d) is less than cpus (%d)", max_cpus, cpus), 2)
  end
  local port = check_u(opts, "port", 16, M.PORT)
  if port > 0xfffe then error("fwcfg.install: port must leave room for the data port", 2) end

  installed[vm] = installed[vm] or {}
  if installed[vm][port] then
    error(string.format("fwcfg.install: this VM has a fw_cfg at port 0x%x already", port), 2)
  end

  local fw = setmetatable({ vm = vm, port = port, items = {}, files = {}, names = {},
                            selector = 0, offset = 0 }, FwCfg)
  fw.items[M.SIGNATURE] = "QEMU"
  fw.items[M.ID] = string.pack("<I4", M.ID_TRADITIONAL)
  fw.items[M.UUID] = parse_uuid(opts.uuid)
  fw.items[M.RAM_SIZE] = string.pack("<I8", check_u(opts, "ram_size", 64))
  fw.items[M.NB_CPUS] = string.pack("<I2", cpus)
  fw.items[M.MAX_CPUS] = string.pack("<I2", max_cpus)
  fw:set_cmdline(check_cmdline(opts.cmdline, "fwcfg.install"))
  fw:update_directory()

  vm:on_io(port, 2, function(_, offset, size, value)
    return fw:access(offset, size, value)
  end)
  installed[vm][port] = fw
  return fw
end

--- One access to the two ports, as the guest makes it: offset 0 is the
--- selector, 1 the data port. Returns what a read gets.
function FwCfg:access(offset, size, value)
  if offset == 0 then
    if value ~= nil and size == 2 then self:select(value) end
    return 0
  end
  if value ~= nil then return nil end
  -- The ports' range ends at the data port: every access there is a byte.
  local item = self.items[self.selector] or ""
  if self.offset >= #item then return 0 end
  self.offset = self.offset + 1
  return item:byte(self.offset)
end

--- Selects an item, as a write to the selector port does.
function FwCfg:select(selector)
  self.selector = selector & 0xffff
  self.offset = 0
end

--- An item's bytes (nil for an unknown selector).
function FwCfg:get(selector)
  return self.items[selector]
end

--- Replaces the kernel command line (items 0x14 and 0x15).
function FwCfg:set_cmdline(cmdline)
  cmdline = check_cmdline(cmdline, "fw:set_cmdline")
  self.cmdline = cmdline
  self.items[M.CMDLINE_SIZE] = string.pack("<I4", #cmdline + 1)
  self.items[M.CMDLINE_DATA] = cmdline .. "\0"
end

-- Rebuilds the directory item from the file list.
function FwCfg:update_directory()
  local parts = { string.pack(">I4", #self.files) }
  for _, f in ipairs(self.files) do
    parts[#parts + 1] = string.pack(">I4I2I2", #f.data, f.selector, 0)
      .. f.name .. string.rep("\0", 56 - #f.name)
  end
  self.items[M.FILE_DIR] = table.concat(parts)
end

--- fw:add_file(name, data) -> selector: a named blob in the directory.
--- Names are 1 to 55 bytes without NUL, and unique.
function FwCfg:add_file(name, data)
  if type(name) ~= "string" then
    error("fw:add_file: name must be a string, got " .. type(name), 2)
  end
  if #name == 0 or #name > M.NAME_MAX then
    error(string.format("fw:add_file: name '%s' must be 1 to %d bytes long, not %d",
                        name, M.NAME_MAX, #name), 2)
  end
  if name:find("\0", 1, true) then
    error("fw:add_file: name must not contain a NUL byte", 2)
  end
  if type(data) ~= "string" then
    error(string.format("fw:add_file: data for '%s' must be a string, got %s", name, type(data)), 2)
  end
  if #data > 0xffffffff then
    error(string.format("fw:add_file: '%s' is larger than 4 GiB", name), 2)
  end
  if self.names[name] then
    error(string.format("fw:add_file: a file named '%s' exists already (selector 0x%x)",
                        name, self.names[name].selector), 2)
  end
  local selector = M.FILE_FIRST + #self.files
  if selector > M.FILE_LAST then
    error(string.format("fw:add_file: no selector left for '%s' (0x%x to 0x%x are taken)",
                        name, M.FILE_FIRST, M.FILE_LAST), 2)
  end
  local f = { name = name, data = data, selector = selector }
  self.files[#self.files + 1] = f
  self.names[name] = f
  self.items[selector] = data
  self:update_directory()
  return selector
end

--- The file called name: { name, data, selector }, or nil.
function FwCfg:file(name)
  return self.names[name]
end

return M
