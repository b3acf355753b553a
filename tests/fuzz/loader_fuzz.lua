-- The Lua half of loader_fuzz.c: returns a function that feeds one input,
-- as a kernel file, to every loader in lua/vmm/ (vmm.elf, vmm.multiboot,
-- vmm.linux), header parsers and full loaders, and returns nil, or a
-- finding as a string.
--
-- Everything in a kernel file is untrusted, so a loader may refuse it, but
-- only with one of its own validation messages: "elf: ", "multiboot: " or
-- "linux: " at the start, once (a loader that calls another passes that one's
-- message on: linux.boot and multiboot.boot raise vmm.elf's for an ELF
-- file). Any other error ("attempt to index a nil value", "bad argument",
-- "number has no integer representation", a guest memory range refused by
-- memory:write because the loader did not check it first) is a finding,
-- and so is a success that breaks what the loader promises (an entry point
-- outside what it loaded, a kernel outside RAM).
--
-- loader_fuzz.c calls this chunk with the path of a file it owns (a memfd):
-- multiboot.boot takes its kernel only as a path, so the input goes there;
-- the others take { data = bytes }.

local kernel_path = ...
local pc = require "vmm.pc"
local elf = require "vmm.elf"
local multiboot = require "vmm.multiboot"
local linux = require "vmm.linux"

-- One small PC for every input: creating a VM per input would cost more
-- than the loaders do. Loading over what the last input left is what a
-- loader must cope with anyway. 4 MiB: 1 MiB of low memory and 3 MiB
-- above it, enough for the seeds (the test guests, a small bzImage).
local machine = pc.new{ memory = "4M" }
local initrd_bytes = string.rep("initrd", 100)

local PREFIXES = { "elf: ", "multiboot: ", "linux: " }

-- One of our messages: a loader's prefix, once ("linux: linux: ..." is a
-- message put together wrong).
local function ours(msg)
  if type(msg) ~= "string" then return false end
  for _, p in ipairs(PREFIXES) do
    if msg:sub(1, #p) == p then return msg:sub(#p + 1, 2 * #p) ~= p end
  end
  return false
end

-- Calls fn(...); returns nil when it succeeded or refused the input with
-- one of our messages, else the finding. check(result) may add one.
local function try(what, check, fn, ...)
  local ok, res = xpcall(fn, debug.traceback, ...)
  if ok then
    local bad = check and check(res)
    return bad and string.format("%s succeeded but %s", what, bad) or nil
  end
  -- The traceback follows the message on the next line.
  local msg = type(res) == "string" and res:match("^[^\n]*") or res
  if ours(msg) then return nil end
  return string.format("%s raised something other than a loader's message:\n%s", what,
                       tostring(res))
end

local function within(v, lo, hi) return v >= lo and v < hi end

local function check_elf(info)
  if not (info.lowest < info.top) then
    return string.format("lowest 0x%x is not below top 0x%x", info.lowest, info.top)
  end
  if not within(info.phys_entry, info.lowest, info.top) then
    return string.format("phys_entry 0x%x is outside [0x%x, 0x%x)", info.phys_entry,
                         info.lowest, info.top)
  end
  for _, s in ipairs(info.segments) do
    if s.filesz > s.memsz then return "a segment has p_filesz > p_memsz" end
  end
end

local function check_multiboot(info)
  if not within(info.entry, info.kernel.start, info.kernel.stop) then
    return string.format("entry 0x%x is outside the kernel [0x%x, 0x%x)", info.entry,
                         info.kernel.start, info.kernel.stop)
  end
end

local function check_linux(placed)
  local k = placed.kernel
  for _, e in ipairs(placed.e820) do
    if e.type == pc.E820_RAM and k.addr >= e.addr and k.top <= e.addr + e.size then return end
  end
  return string.format("the kernel [0x%x, 0x%x) is not inside one RAM range", k.addr, k.top)
end

local function write_kernel(data)
  local f = assert(io.open(kernel_path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

return function(data)
  local n = #data
  -- Options vary with the input's length, so the corpus reaches each.
  local entry = ({ "auto", "64", "pvh" })[n % 3 + 1]
  local with_initrd = n % 2 == 0
  -- Bytes with a name, or without (the loaders then name them).
  local name = n % 4 < 2 and "input" or nil
  local initrd = with_initrd and { data = initrd_bytes, name = name and "initrd" } or nil
  local finding
  local function note(f) finding = finding or f end
  note(try("elf.parse", check_elf, elf.parse, data, "input"))
  note(try("multiboot.parse_header", nil, multiboot.parse_header, data, "input"))
  note(try("linux.parse_bzimage", nil, linux.parse_bzimage, data, "input"))
  note(try("elf.load", check_elf, elf.load, machine.vm, { data = data, name = name }))
  note(try("linux.boot", check_linux, linux.boot, machine, {
    kernel = { data = data, name = name }, entry = entry, cmdline = "console=ttyS0",
    initrd = initrd }))
  write_kernel(data)
  note(try("multiboot.boot", check_multiboot, multiboot.boot, machine, {
    kernel = kernel_path, cmdline = "fuzz", modules = { { data = "module", cmdline = "m" } } }))
  return finding
end
