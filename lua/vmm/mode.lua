-- CPU mode set-up written in Lua: real mode, 32-bit protected mode and
-- 64-bit long mode, with the GDT and identity page tables built in guest
-- memory. Everything here goes through cpu:set and memory:write, so it is
-- also a worked example of the API.
--
--   local mode = require "vmm.mode"
--   mode.long(vm:cpu(0), { entry = 0x100000 })
--   vm:cpu(0):set_mode("protected", { entry = 0x100000 })

local M = {}

-- Where the helpers put things unless told otherwise. Guests built in
-- guests/ are linked for this layout (see README, "Writing a guest").
M.layout = {
  gdt = 0x500,           -- 3 descriptors
  page_tables = 0x1000,  -- PML4, PDPT, then one page directory per GiB
  real_entry = 0x8000,   -- real-mode guests: cs = 0, ip = 0x8000
  real_stack = 0x7c00,
  entry = 0x100000,      -- protected and long mode guests: 1 MiB
  stack = 0x80000,
}

local CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_PG =
  0x1, 0x2, 0x10, 0x20, 0x10000, 0x80000000
local CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT = 0x20, 0x200, 0x400
local EFER_LME, EFER_LMA = 0x100, 0x400

local CODE, DATA = 0x08, 0x10   -- GDT selectors

local function opt(opts, name, default)
  local v = opts and opts[name]
  if v == nil then return default end
  if math.type(v) ~= "integer" then
    error(string.format("mode: %s must be an integer, got %s", name, type(v)), 3)
  end
  return v
end

-- A flat segment: base 0, limit 4 GiB.
local function flat(selector, type, long)
  return { selector = selector, base = 0, limit = 0xffffffff, type = type, present = 1,
           dpl = 0, s = 1, l = long and 1 or 0, db = long and (type == 0xb) and 0 or 1,
           g = 1, avl = 0, unusable = 0 }
end

-- An 8-byte GDT descriptor for a flat segment.
local function descriptor(seg)
  local limit, base = 0xfffff, seg.base
  local access = 0x80 | (seg.dpl << 5) | (seg.s << 4) | seg.type
  local flags = (seg.g << 3) | (seg.db << 2) | (seg.l << 1) | seg.avl
  return string.pack("<I2I2I1I1I1I1", limit & 0xffff, base & 0xffff, (base >> 16) & 0xff,
                     access, ((flags << 4) | (limit >> 16)) & 0xff, (base >> 24) & 0xff)
end

-- The GDT: null descriptors except at the code and data selectors.
local function write_gdt(cpu, at, code, data)
  local slots = {}
  for i = 0, math.max(code.selector, data.selector) // 8 do slots[i + 1] = string.rep("\0", 8) end
  slots[code.selector // 8 + 1] = descriptor(code)
  slots[data.selector // 8 + 1] = descriptor(data)
  cpu.vm.memory:write(at, table.concat(slots))
  return { base = at, limit = #slots * 8 - 1 }
end

-- opts.selectors = { code = 0x10, data = 0x18 }: where the code and data
-- descriptors go (the Linux 64-bit boot protocol wants __BOOT_CS 0x10 and
-- __BOOT_DS 0x18). Default 0x08 and 0x10.
local function selectors(opts)
  local sel = opts and opts.selectors
  if sel == nil then return CODE, DATA end
  if type(sel) ~= "table" then
    error("mode: selectors must be a table { code = , data = }, got " .. type(sel), 3)
  end
  local code, data = sel.code or CODE, sel.data or DATA
  for name, v in pairs{ code = code, data = data } do
    if math.type(v) ~= "integer" or v < 8 or v > 0xff8 or v % 8 ~= 0 then
      error(string.format("mode: selectors.%s must be a GDT selector (a multiple of 8 from "
                          .. "0x8 to 0xff8), got %s", name, tostring(v)), 3)
    end
  end
  if code == data then error("mode: selectors.code and selectors.data are the same", 3) end
  return code, data
end

-- The task register must be a busy TSS for VM entry to accept the state.
local TR = { selector = 0, base = 0, limit = 0x67, type = 0xb, present = 1, s = 0, dpl = 0,
             db = 0, l = 0, g = 0, unusable = 0 }
local LDT = { selector = 0, base = 0, limit = 0xffff, type = 2, present = 1, s = 0,
              dpl = 0, db = 0, l = 0, g = 0, unusable = 1 }

--- Real mode: cs = ds = es = ss = segment, ip = entry - segment * 16.
function M.real(cpu, opts)
  local entry = opt(opts, "entry", M.layout.real_entry)
  local segment = opt(opts, "segment", 0)
  local stack = opt(opts, "stack", M.layout.real_stack)
  local function seg(type)
    return { selector = segment, base = segment * 16, limit = 0xffff, type = type,
             present = 1, dpl = 0, s = 1, l = 0, db = 0, g = 0, unusable = 0 }
  end
  cpu:set{
    cs = seg(0xb), ds = seg(0x3), es = seg(0x3), fs = seg(0x3), gs = seg(0x3), ss = seg(0x3),
    cr0 = CR0_ET | CR0_NE, cr3 = 0, cr4 = 0, efer = 0,
    gdt = { base = 0, limit = 0xffff }, idt = { base = 0, limit = 0x3ff },
    rip = entry - segment * 16, rsp = stack, rflags = 2,
  }
end

--- 32-bit protected mode, flat segments, paging off.
function M.protected(cpu, opts)
  local cs, ds = selectors(opts)
  local code, data = flat(cs, 0xb, false), flat(ds, 0x3, false)
  local gdt = write_gdt(cpu, opt(opts, "gdt", M.layout.gdt), code, data)
  cpu:set{
    gdt = gdt, idt = { base = 0, limit = 0 },
    cs = code, ds = data, es = data, fs = data, gs = data, ss = data, tr = TR, ldt = LDT,
    cr0 = CR0_PE | CR0_ET | CR0_NE, cr3 = 0, cr4 = 0, efer = 0,
    rip = opt(opts, "entry", M.layout.entry), rsp = opt(opts, "stack", M.layout.stack),
    rflags = 2,
  }
end

--- Identity page tables mapping the first `gib` GiB with 2 MiB pages.
--- Returns the PML4's address. Needs (2 + gib) pages at `at`.
function M.identity_map(memory, at, gib)
  if at % 4096 ~= 0 then error("mode: page_tables must be 4096-aligned", 2) end
  if gib < 1 or gib > 512 then error("mode: map must be 1 to 512 GiB", 2) end
  local pml4, pdpt, pd = at, at + 0x1000, at + 0x2000
  local PRESENT_RW, PAGE_2M = 0x3, 0x80
  memory:write(pml4, string.pack("<I8", pdpt | PRESENT_RW) .. string.rep("\0", 4088))
  local entries = {}
  for i = 0, 511 do
    entries[#entries + 1] = string.pack("<I8", i < gib and (pd + i * 0x1000) | PRESENT_RW or 0)
  end
  memory:write(pdpt, table.concat(entries))
  for g = 0, gib - 1 do
    entries = {}
    for i = 0, 511 do
      local phys = (g << 30) | (i << 21)
      entries[#entries + 1] = string.pack("<I8", phys | PRESENT_RW | PAGE_2M)
    end
    memory:write(pd + g * 0x1000, table.concat(entries))
  end
  return pml4
end

--- 64-bit long mode: identity map of the first `map` GiB (default 4, so
--- the 32-bit MMIO hole is reachable), SSE enabled, paging on.
function M.long(cpu, opts)
  local cs, ds = selectors(opts)
  local code, data = flat(cs, 0xb, true), flat(ds, 0x3, false)
  local gdt = write_gdt(cpu, opt(opts, "gdt", M.layout.gdt), code, data)
  local pml4 = M.identity_map(cpu.vm.memory, opt(opts, "page_tables", M.layout.page_tables),
                              opt(opts, "map", 4))
  cpu:set{
    gdt = gdt, idt = { base = 0, limit = 0 },
    cs = code, ds = data, es = data, fs = data, gs = data, ss = data, tr = TR, ldt = LDT,
    cr3 = pml4, cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT,
    cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
    efer = EFER_LME | EFER_LMA,
    rip = opt(opts, "entry", M.layout.entry), rsp = opt(opts, "stack", M.layout.stack),
    rflags = 2,
  }
end

--- cpu:set_mode("real" | "protected" | "long", opts)
function M.set(cpu, mode, opts)
  local f = mode == "real" and M.real or mode == "protected" and M.protected
            or mode == "long" and M.long
  if not f then
    error(string.format("mode: unknown mode '%s' (real, protected or long)", tostring(mode)), 2)
  end
  return f(cpu, opts)
end

return M
