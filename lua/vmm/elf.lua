-- ELF executables for x86: parse the headers, copy the loadable segments
-- into guest memory, report the entry point and the notes a loader cares
-- about. Everything in the file is untrusted: each field is checked before
-- it is used, and a bad one fails with the file's name and the field's.
--
--   local elf = require "vmm.elf"
--   local info = elf.load(vm, "build/linux/vmlinux")
--   info.phys_entry, info.lowest, info.top, info.pvh_entry
--   local parsed = elf.parse(bytes, "name")     -- headers only, nothing loaded
--
-- Segments go to their physical address (p_paddr), not their virtual one:
-- a loader puts bytes in physical memory, and before the guest turns paging
-- on nothing else exists. For programs linked at identity (our guests) the
-- two are equal; a Linux vmlinux is linked at 0xffffffff81000000 and up
-- (far beyond guest RAM), its per-CPU segment even at virtual 0, while its
-- p_paddr values say where those bytes belong in RAM (16 MiB and up).

local M = {}

M.ET_EXEC, M.ET_DYN = 2, 3
M.EM_386, M.EM_X86_64 = 3, 62
M.PT_LOAD, M.PT_NOTE = 1, 4
M.XEN_ELFNOTE_PHYS32_ENTRY = 18   -- Xen's PVH entry point (a 32-bit physical address)

-- More program headers than this is not a program we want: Linux has 5,
-- our guests 2.
M.MAX_PHDRS = 64

local ELFCLASS32, ELFCLASS64, ELFDATA2LSB = 1, 2, 1

-- Where 64-bit fields are in each class. "a" is an address or size field:
-- 4 bytes in ELF32, 8 in ELF64.
local FORMATS = {
  [ELFCLASS32] = {
    name = "ELF32", ehsize = 52, phentsize = 32, machine = M.EM_386,
    -- e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags,
    -- e_ehsize, e_phentsize, e_phnum
    header = "<I2I2I4I4I4I4I4I2I2I2",
    -- p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
    phdr = function(s, at)
      local t, off, va, pa, fsz, msz, fl, al = string.unpack("<I4I4I4I4I4I4I4I4", s, at)
      return t, fl, off, va, pa, fsz, msz, al
    end,
  },
  [ELFCLASS64] = {
    name = "ELF64", ehsize = 64, phentsize = 56, machine = M.EM_X86_64,
    header = "<I2I2I4I8I8I8I4I2I2I2",
    -- p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
    phdr = function(s, at)
      return string.unpack("<I4I4I8I8I8I8I8I8", s, at)
    end,
  },
}

local function fail(name, fmt, ...)
  error(string.format("elf: %s: " .. fmt, name, ...), 0)
end

-- 64-bit fields come back from string.unpack as bit patterns; anything at
-- or above 2^63 reads as negative. No offset, size or physical address we
-- accept is that large, and ruling it out here lets every later sum be
-- checked with plain integers. Virtual addresses are the exception (a
-- 64-bit kernel lives at 0xffffffff8xxxxxxx): they stay bit patterns,
-- compared with math.ult.
local LIMIT = math.maxinteger
local function field(name, what, v)
  if v < 0 then fail(name, "%s 0x%x is out of range", what, v) end
  return v
end

-- a + b, or an error naming what overflowed.
local function add(name, what, a, b)
  if a > LIMIT - b then fail(name, "%s overflows (0x%x + 0x%x)", what, a, b) end
  return a + b
end

local function is_pow2(v) return v > 0 and v & (v - 1) == 0 end

-- The notes in a PT_NOTE segment's bytes (found at file offset `base`):
-- { name, type, desc } each. Entries are 4-byte aligned, or 8 when the
-- segment says so.
local function parse_notes(name, bytes, base, align)
  local notes = {}
  local stop = #bytes
  local a = align == 8 and 8 or 4
  local function pad(n) return (n + a - 1) // a * a end
  local at = 0
  while at < stop do
    if stop - at < 12 then
      fail(name, "note at file offset 0x%x is truncated (%d bytes left in its segment)",
           base + at, stop - at)
    end
    local namesz, descsz, ntype = string.unpack("<I4I4I4", bytes, at + 1)
    local name_at = at + 12
    local desc_at = name_at + pad(namesz)
    if desc_at > stop or desc_at + descsz > stop then
      fail(name, "note at file offset 0x%x (namesz %d, descsz %d) runs past its segment",
           base + at, namesz, descsz)
    end
    local nname = bytes:sub(name_at + 1, name_at + namesz)
    notes[#notes + 1] = { name = nname:gsub("%z+$", ""), type = ntype,
                          desc = bytes:sub(desc_at + 1, desc_at + descsz) }
    at = desc_at + pad(descsz)
  end
  return notes
end

-- Notes are small (Linux's are 0x200 bytes); a bigger PT_NOTE is refused
-- rather than read.
M.MAX_NOTES = 1 << 20

--- elf.reader(source [, what [, unnamed]]) -> { name, size, read = fn(offset, len) -> bytes, close }
--- A file (path) or bytes ({ data = bytes, name = "label" }) read in
--- pieces, so that loading a 50 MB kernel never holds it in one string.
--- vmm.linux reads kernels and initrds through it too. what starts the
--- reader's own errors; unnamed (default: what) names bytes given without
--- a name, in the callers' messages, which have their own prefix.
function M.reader(source, what, unnamed)
  what = what or "image"
  if type(source) == "string" then
    local f, err = io.open(source, "rb")
    if not f then error(string.format("%s: cannot open %s", what, err), 0) end
    local size = f:seek("end")
    local r = { name = source, size = size }
    function r.read(off, len)
      f:seek("set", off)
      local bytes = len > 0 and f:read(len) or ""
      if not bytes or #bytes ~= len then
        error(string.format("%s: %s: cannot read %d bytes at offset 0x%x", what, source, len,
                            off), 0)
      end
      return bytes
    end
    function r.close() f:close() end
    return r
  elseif type(source) == "table" and type(source.data) == "string" then
    local data = source.data
    return { name = source.name or unnamed or what, size = #data, close = function() end,
             read = function(off, len) return data:sub(off + 1, off + len) end }
  end
  error(string.format("%s must be a path or { data = bytes, name = ... }, got %s", what,
                      type(source)), 0)
end

-- Copies file bytes [off, off + len) to guest memory at gpa, 64 KiB at a
-- time: small strings, never one the size of a kernel.
function M.copy(memory, gpa, r, off, len)
  local CHUNK = 0x10000
  local done = 0
  while done < len do
    local n = math.min(CHUNK, len - done)
    memory:write(gpa + done, r.read(off + done, n))
    done = done + n
  end
end

-- elf.parse on a reader (elf.reader).
local function parse(r)
  local name, size = r.name, r.size
  if size < 16 then fail(name, "truncated ELF header (%d bytes)", size) end
  local data = r.read(0, math.min(size, 64))
  if data:sub(1, 4) ~= "\127ELF" then
    fail(name, "not an ELF file (bad magic %q)", data:sub(1, 4))
  end
  local class, order, version = data:byte(5, 7)
  local fmt = FORMATS[class]
  if not fmt then fail(name, "unsupported ELF class %d (EI_CLASS: 1 or 2)", class) end
  if size < fmt.ehsize then
    fail(name, "truncated ELF header (%d bytes, an %s header is %d)", size, fmt.name, fmt.ehsize)
  end
  if order ~= ELFDATA2LSB then fail(name, "not little-endian (EI_DATA %d)", order) end
  if version ~= 1 then fail(name, "unsupported EI_VERSION %d", version) end

  local e_type, machine, e_version, entry, phoff, _, _, ehsize, phentsize, phnum =
    string.unpack(fmt.header, data, 17)
  if e_type ~= M.ET_EXEC and e_type ~= M.ET_DYN then
    fail(name, "e_type %d is not an executable (ET_EXEC 2 or ET_DYN 3)", e_type)
  end
  if machine ~= fmt.machine then
    fail(name, "e_machine %d does not match an %s file (expected %d, %s)", machine, fmt.name,
         fmt.machine, fmt.machine == M.EM_386 and "EM_386" or "EM_X86_64")
  end
  if e_version ~= 1 then fail(name, "unsupported e_version %d", e_version) end
  if ehsize < fmt.ehsize then fail(name, "e_ehsize %d is too small", ehsize) end
  phoff = field(name, "e_phoff", phoff)
  if phentsize < fmt.phentsize then
    fail(name, "e_phentsize %d is too small (an %s program header is %d bytes)", phentsize,
         fmt.name, fmt.phentsize)
  end
  if phnum == 0 then fail(name, "no program headers (e_phnum 0)") end
  if phnum > M.MAX_PHDRS then
    fail(name, "too many program headers (e_phnum %d, at most %d)", phnum, M.MAX_PHDRS)
  end
  local table_end = add(name, "e_phoff + program header table size", phoff, phnum * phentsize)
  if table_end > size then
    fail(name, "program header table [0x%x, 0x%x) is outside the file (%d bytes)", phoff,
         table_end, size)
  end

  local info = { name = name, class = fmt.name, bits = class == ELFCLASS64 and 64 or 32,
                 type = e_type, machine = machine, entry = entry, segments = {}, notes = {} }
  local table_bytes = r.read(phoff, phnum * phentsize)
  for i = 0, phnum - 1 do
    local p_type, flags, offset, vaddr, paddr, filesz, memsz, align =
      fmt.phdr(table_bytes, i * phentsize + 1)
    local what = string.format("program header %d", i)
    offset = field(name, what .. " p_offset", offset)
    paddr = field(name, what .. " p_paddr", paddr)
    filesz = field(name, what .. " p_filesz", filesz)
    memsz = field(name, what .. " p_memsz", memsz)
    align = field(name, what .. " p_align", align)
    if p_type == M.PT_LOAD or p_type == M.PT_NOTE then
      local file_end = add(name, what .. " p_offset + p_filesz", offset, filesz)
      if file_end > size then
        fail(name, "%s: p_offset 0x%x + p_filesz 0x%x is past the end of the file (%d bytes)",
             what, offset, filesz, size)
      end
    end
    if p_type == M.PT_LOAD then
      if filesz > memsz then
        fail(name, "%s: p_filesz 0x%x is larger than p_memsz 0x%x", what, filesz, memsz)
      end
      add(name, what .. " p_paddr + p_memsz", paddr, memsz)
      if math.ult(vaddr + memsz, vaddr) then
        fail(name, "%s: p_vaddr 0x%x + p_memsz 0x%x wraps around", what, vaddr, memsz)
      end
      if class == ELFCLASS32 and paddr + memsz > 0x100000000 then
        fail(name, "%s: [0x%x, 0x%x) wraps around 4 GiB", what, paddr, paddr + memsz)
      end
      if align > 1 then
        if not is_pow2(align) then
          fail(name, "%s: p_align 0x%x is not a power of two", what, align)
        end
        if offset % align ~= vaddr % align then
          fail(name, "%s: p_offset 0x%x and p_vaddr 0x%x disagree modulo p_align 0x%x", what,
               offset, vaddr, align)
        end
      end
      info.segments[#info.segments + 1] = { index = i, offset = offset, vaddr = vaddr,
        paddr = paddr, filesz = filesz, memsz = memsz, flags = flags, align = align }
    elseif p_type == M.PT_NOTE then
      if filesz > M.MAX_NOTES then
        fail(name, "%s: a PT_NOTE of 0x%x bytes is too large (at most 0x%x)", what, filesz,
             M.MAX_NOTES)
      end
      for _, n in ipairs(parse_notes(name, r.read(offset, filesz), offset, align)) do
        info.notes[#info.notes + 1] = n
      end
    end
  end

  local loaded = {}
  for _, s in ipairs(info.segments) do
    if s.memsz > 0 then loaded[#loaded + 1] = s end
  end
  if #loaded == 0 then fail(name, "nothing to load (no PT_LOAD segment with p_memsz > 0)") end
  for _, s in ipairs(loaded) do
    info.lowest = math.min(info.lowest or s.paddr, s.paddr)
    info.top = math.max(info.top or 0, s.paddr + s.memsz)
  end
  -- Segments must not overlap in physical memory: the later copy would
  -- silently replace part of the earlier one.
  table.sort(loaded, function(a, b) return a.paddr < b.paddr end)
  for i = 2, #loaded do
    local a, b = loaded[i - 1], loaded[i]
    if a.paddr + a.memsz > b.paddr then
      fail(name, "program headers %d and %d overlap at physical 0x%x", a.index, b.index, b.paddr)
    end
  end

  -- e_entry is a virtual address: translate it through the segment holding
  -- it. A vmlinux states its entry as a physical address already
  -- (phys_startup_64), which lies in no segment's virtual range but in a
  -- physical one.
  for _, s in ipairs(info.segments) do
    if math.ult(entry - s.vaddr, s.memsz) then
      info.phys_entry = entry - s.vaddr + s.paddr
      break
    end
  end
  if not info.phys_entry then
    for _, s in ipairs(info.segments) do
      if math.ult(entry - s.paddr, s.memsz) then
        info.phys_entry = entry
        break
      end
    end
  end
  if not info.phys_entry then
    fail(name, "e_entry 0x%x is not inside any loadable segment", entry)
  end

  for _, n in ipairs(info.notes) do
    if n.name == "Xen" and n.type == M.XEN_ELFNOTE_PHYS32_ENTRY then
      if #n.desc ~= 4 and #n.desc ~= 8 then
        fail(name, "the Xen PHYS32_ENTRY note has %d bytes (4 or 8)", #n.desc)
      end
      local v = #n.desc == 4 and string.unpack("<I4", n.desc) or string.unpack("<i8", n.desc)
      if v < 0 or v > 0xffffffff then
        fail(name, "the Xen PHYS32_ENTRY note's address 0x%x is not a 32-bit address", v)
      end
      info.pvh_entry = v
    end
  end
  return info
end

--- elf.parse(bytes [, name]) -> { class, bits, type, machine, entry, phys_entry,
---   segments = { { index, offset, vaddr, paddr, filesz, memsz, flags, align } },
---   notes = { { name, type, desc } }, pvh_entry, lowest, top }
--- Checks everything elf.load needs except where guest memory is.
--- `lowest` is the first byte loaded, `top` one past the last. bytes may
--- also be a reader (elf.reader).
function M.parse(data, name)
  if type(data) == "string" then return parse(M.reader({ data = data, name = name or "image" })) end
  if type(data) == "table" and type(data.read) == "function" then return parse(data) end
  error("elf.parse: bytes must be a string, got " .. type(data), 2)
end

-- Whether [gpa, gpa + size) lies in guest memory (regions may be adjacent).
local function in_memory(memory, gpa, size)
  local at, stop = gpa, gpa + size
  for _, r in ipairs(memory:regions()) do
    if at >= r.gpa and at < r.gpa + r.size and not r.readonly then
      at = r.gpa + r.size
      if at >= stop then return true end
    end
  end
  return size == 0
end

-- elf.load on a reader.
local function load(vm, r, opts)
  local info = parse(r)
  local name = r.name
  local memory = vm.memory
  for _, s in ipairs(info.segments) do
    if not in_memory(memory, s.paddr, s.memsz) then
      fail(name, "program header %d: [0x%x, 0x%x) is outside guest memory", s.index, s.paddr,
           s.paddr + s.memsz)
    end
    if opts.max_address and s.paddr + s.memsz > opts.max_address then
      fail(name, "program header %d: [0x%x, 0x%x) goes above 0x%x", s.index, s.paddr,
           s.paddr + s.memsz, opts.max_address)
    end
  end
  for _, s in ipairs(info.segments) do
    M.copy(memory, s.paddr, r, s.offset, s.filesz)
    if s.memsz > s.filesz then memory:fill(s.paddr + s.filesz, s.memsz - s.filesz, 0) end
  end
  return info
end

--- elf.load(vm, source [, opts]) -> info (as elf.parse, with the segments loaded)
--- source: a path, { data = bytes, name = "label" } or a reader (elf.reader,
--- left open). The vm may also be a vmm.pc machine. Every segment is
--- checked against guest memory before anything is written; p_memsz
--- beyond p_filesz is zeroed. opts.max_address: segments must end at or
--- below it.
function M.load(vm, source, opts)
  if type(vm) == "table" and vm.vm then vm = vm.vm end
  if type(source) == "table" and type(source.read) == "function" then
    return load(vm, source, opts or {})
  end
  if type(source) ~= "string" and not (type(source) == "table" and type(source.data) == "string") then
    error("elf.load: source must be a path or { data = bytes, name = ... }", 2)
  end
  local r = M.reader(source, "elf", "image")
  local ok, info = pcall(load, vm, r, opts or {})
  r.close()
  if not ok then error(info, 0) end
  return info
end

return M
