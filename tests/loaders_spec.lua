-- Loaders: ELF executables (vmm.elf) and the Linux boot protocol
-- (vmm.linux) on images built here byte by byte, good ones and every kind
-- of broken one, and what they leave in guest memory and in the CPU.
local vmm = require "vmm"
local pc = require "vmm.pc"
local elf = require "vmm.elf"
local linux = require "vmm.linux"
local mode = require "vmm.mode"
local H = require "helper"

-- ---- ELF images ----

-- An ELF file: the header, the program headers after it (or at o.phoff),
-- then o.body at o.body_at (0x100). Fields default to a good x86-64 (or,
-- with bits = 32, i386) executable; a phdr's vaddr defaults to its paddr.
local function mkelf(o)
  local bits = o.bits or 64
  local ehsize = bits == 64 and 64 or 52
  local phdrs = o.phdrs or {}
  local phoff = o.phoff or ehsize
  local ident = "\127ELF" .. string.char(bits == 64 and 2 or 1, o.ei_data or 1, 1)
    .. string.rep("\0", 9)
  local fmt = bits == 64 and "<I2I2I4i8i8i8I4I2I2I2I2I2I2" or "<I2I2I4I4I4I4I4I2I2I2I2I2I2"
  local hdr = ident .. string.pack(fmt, o.type or 2, o.machine or (bits == 64 and 62 or 3), 1,
    o.entry or 0x100000, phoff, 0, 0, ehsize, o.phentsize or (bits == 64 and 56 or 32),
    o.phnum or #phdrs, 0, 0, 0)
  local ph = {}
  for _, p in ipairs(phdrs) do
    local vaddr = p.vaddr or p.paddr
    if bits == 64 then
      ph[#ph + 1] = string.pack("<I4I4i8i8i8i8i8i8", p.type or 1, 7, p.offset or 0x100, vaddr,
                                p.paddr, p.filesz, p.memsz or p.filesz, p.align or 0x10)
    else
      ph[#ph + 1] = string.pack("<I4I4I4I4I4I4I4I4", p.type or 1, p.offset or 0x100, vaddr,
                                p.paddr, p.filesz, p.memsz or p.filesz, 7, p.align or 0x10)
    end
  end
  local image = hdr
  if phoff >= #image then image = image .. string.rep("\0", phoff - #image) .. table.concat(ph) end
  local body_at = o.body_at or 0x100
  if #image < body_at then image = image .. string.rep("\0", body_at - #image) end
  return image .. (o.body or "")
end

-- A note: namesz, descsz, type, name and desc padded to 4 bytes.
local function note(name, ntype, desc)
  local function pad(s) return s .. string.rep("\0", (4 - #s % 4) % 4) end
  return string.pack("<I4I4I4", #name + 1, #desc, ntype) .. pad(name .. "\0") .. pad(desc)
end

-- The good image: "\xf4" (hlt) and "DATA" at 1 MiB, 4 KiB in memory.
local BODY = "\xf4\0\0\0DATA" .. string.rep("\0", 8)
local function good(o)
  o = o or {}
  o.phdrs = o.phdrs or { { paddr = 0x100000, filesz = #BODY, memsz = 0x1000 } }
  o.body = o.body or BODY
  return mkelf(o)
end

-- string.unpack's values without the position after them.
local function fields(fmt, s, pos)
  local t = { string.unpack(fmt, s, pos) }
  t[#t] = nil
  return t
end

local function parse_error(image) return H.error_of(elf.parse, image, "t.elf") end

describe("vmm.elf", function()
  it("loads an ELF64 executable: bytes from the file, the rest of p_memsz zeroed", function()
    local vm <close> = vmm.vm{ memory = "2M" }
    vm.memory:fill(0x100000, 0x2000, 0xaa)
    local info = elf.load(vm, { data = good(), name = "t.elf" })
    assert.equal("ELF64", info.class)
    assert.equal(64, info.bits)
    assert.equal(0x100000, info.entry)
    assert.equal(0x100000, info.phys_entry)
    assert.equal(0x100000, info.lowest)
    assert.equal(0x101000, info.top)
    assert.equal(BODY, vm.memory:read(0x100000, #BODY))
    assert.equal(string.rep("\0", 0x1000 - #BODY), vm.memory:read(0x100000 + #BODY, 0x1000 - #BODY))
    assert.equal(0xaa, vm.memory:u8(0x101000)) -- nothing past p_memsz
    vm:cpu(0):set_mode("long", { entry = info.phys_entry })
    local r = vm:run{ timeout = 5 }
    assert.equal("hlt", r.reason)
    assert.equal(0x100001, r.rip)
  end)

  it("loads our 32-bit guest's ELF and runs it at its entry point", function()
    local vm <close> = vmm.vm{ memory = "4M" }
    local info = elf.load(vm, H.guest("hello32.elf"))
    assert.equal("ELF32", info.class)
    vm:cpu(0):set_mode("protected", { entry = info.phys_entry })
    local out = {}
    vm:on_io(0xe9, function(_, _, _, v) out[#out + 1] = string.char(v) end)
    vm:debug_exit{}
    local r = vm:run{ timeout = 10 }
    assert.equal("exit", r.reason)
    assert.equal("Hello from 32-bit protected mode!\n", table.concat(out))
  end)

  it("puts segments at p_paddr and translates a virtual entry point", function()
    local vm <close> = vmm.vm{ memory = "2M" }
    local base = -0x80000000 + 0x100000 -- 0xffffffff80100000
    local info = elf.load(vm, { data = good{ entry = base + 4,
      phdrs = { { paddr = 0x100000, vaddr = base, filesz = #BODY } } } })
    assert.equal(base + 4, info.entry)
    assert.equal(0x100004, info.phys_entry)
    assert.equal("DATA", vm.memory:read(0x100004, 4))
  end)

  it("takes a physical entry point that lies in no virtual range (a vmlinux's)", function()
    local info = elf.parse(good{ entry = 0x100000,
      phdrs = { { paddr = 0x100000, vaddr = -0x7f000000, filesz = #BODY } } })
    assert.equal(0x100000, info.phys_entry)
  end)

  it("finds the Xen PVH entry note, 4 or 8 bytes long", function()
    for _, desc in ipairs{ string.pack("<I4", 0x100008), string.pack("<I8", 0x100008) } do
      local notes = note("GNU", 3, "abcd") .. note("Xen", 18, desc)
      local info = elf.parse(good{ body = BODY .. notes, phdrs = {
        { paddr = 0x100000, filesz = #BODY },
        { type = 4, offset = 0x100 + #BODY, paddr = 0, filesz = #notes, align = 4 } } })
      assert.equal(0x100008, info.pvh_entry)
      assert.equal(2, #info.notes)
      assert.same({ name = "GNU", type = 3, desc = "abcd" }, info.notes[1])
    end
  end)

  it("has no PVH entry without the note", function()
    assert.is_nil(elf.parse(good()).pvh_entry)
  end)

  it("rejects truncated headers, bad magic, class, byte order, type and machine", function()
    assert.equal("elf: t.elf: truncated ELF header (3 bytes)", parse_error("\127EL"))
    assert.equal("elf: t.elf: truncated ELF header (20 bytes, an ELF64 header is 64)",
                 parse_error(good():sub(1, 20)))
    assert.equal("elf: t.elf: truncated ELF header (40 bytes, an ELF32 header is 52)",
                 parse_error(good{ bits = 32 }:sub(1, 40)))
    assert.equal('elf: t.elf: not an ELF file (bad magic "XELF")',
                 parse_error("XELF" .. good():sub(5)))
    assert.equal("elf: t.elf: unsupported ELF class 3 (EI_CLASS: 1 or 2)",
                 parse_error(good():sub(1, 4) .. "\3" .. good():sub(6)))
    assert.equal("elf: t.elf: not little-endian (EI_DATA 2)", parse_error(good{ ei_data = 2 }))
    assert.equal("elf: t.elf: e_type 1 is not an executable (ET_EXEC 2 or ET_DYN 3)",
                 parse_error(good{ type = 1 }))
    assert.equal("elf: t.elf: e_machine 3 does not match an ELF64 file (expected 62, EM_X86_64)",
                 parse_error(good{ machine = 3 }))
    assert.equal("elf: t.elf: e_machine 62 does not match an ELF32 file (expected 3, EM_386)",
                 parse_error(good{ bits = 32, machine = 62 }))
    assert.is_nil(parse_error(good{ type = 3 })) -- ET_DYN, loaded at its link address
  end)

  it("rejects program header tables that are empty, too big or outside the file", function()
    assert.equal("elf: t.elf: no program headers (e_phnum 0)", parse_error(good{ phnum = 0 }))
    assert.equal("elf: t.elf: too many program headers (e_phnum 65, at most 64)",
                 parse_error(good{ phnum = 65 }))
    assert.equal("elf: t.elf: e_phentsize 32 is too small (an ELF64 program header is 56 bytes)",
                 parse_error(good{ phentsize = 32 }))
    local image = good()
    assert.equal(string.format("elf: t.elf: program header table [0x%x, 0x%x) is outside the "
                               .. "file (%d bytes)", #image - 8, #image - 8 + 56, #image),
                 parse_error(image:sub(1, 32) .. string.pack("<i8", #image - 8) .. image:sub(41)))
    assert.equal("elf: t.elf: e_phoff 0x8000000000000000 is out of range",
                 parse_error(image:sub(1, 32) .. string.pack("<i8", math.mininteger)
                             .. image:sub(41)))
    assert.equal("elf: t.elf: e_phoff + program header table size overflows "
                 .. "(0x7fffffffffffffff + 0x38)",
                 parse_error(image:sub(1, 32) .. string.pack("<i8", math.maxinteger)
                             .. image:sub(41)))
  end)

  it("rejects segments whose bytes are not in the file or do not fit their size", function()
    local n = #good()
    assert.equal(string.format("elf: t.elf: program header 0: p_offset 0x100 + p_filesz 0x1000 "
                               .. "is past the end of the file (%d bytes)", n),
                 parse_error(good{ phdrs = { { paddr = 0x100000, filesz = 0x1000 } } }))
    assert.equal("elf: t.elf: program header 0: p_filesz 0x10 is larger than p_memsz 0x8",
                 parse_error(good{ phdrs = { { paddr = 0x100000, filesz = 16, memsz = 8 } } }))
    assert.equal("elf: t.elf: program header 0 p_offset 0x8000000000000000 is out of range",
                 parse_error(good{ phdrs = { { offset = math.mininteger, paddr = 0x100000,
                                               filesz = 16 } } }))
    assert.equal("elf: t.elf: program header 0 p_offset + p_filesz overflows "
                 .. "(0x7ffffffffffffff0 + 0x10)",
                 parse_error(good{ phdrs = { { offset = math.maxinteger - 15, paddr = 0x100000,
                                               filesz = 16, align = 0 } } }))
  end)

  it("rejects segments that wrap around, overlap or are misaligned", function()
    assert.equal("elf: t.elf: program header 0 p_paddr + p_memsz overflows "
                 .. "(0x7ffffffffffff000 + 0x2000)",
                 parse_error(good{ phdrs = { { paddr = math.maxinteger - 0xfff, filesz = 16,
                                               memsz = 0x2000 } } }))
    assert.equal("elf: t.elf: program header 0 p_paddr 0xffffffff80000000 is out of range",
                 parse_error(good{ phdrs = { { paddr = -0x80000000, filesz = 16 } } }))
    assert.equal("elf: t.elf: program header 0: p_vaddr 0xfffffffffffff000 + p_memsz 0x2000 "
                 .. "wraps around",
                 parse_error(good{ phdrs = { { paddr = 0x100000, vaddr = -0x1000, filesz = 16,
                                               memsz = 0x2000 } } }))
    assert.equal("elf: t.elf: program header 0: [0xfffff000, 0x100001000) wraps around 4 GiB",
                 parse_error(good{ bits = 32, entry = 0xfffff000,
                                   phdrs = { { paddr = 0xfffff000, filesz = 16,
                                               memsz = 0x2000 } } }))
    assert.equal("elf: t.elf: program header 0: p_align 0x30 is not a power of two",
                 parse_error(good{ phdrs = { { paddr = 0x100000, filesz = 16, align = 0x30 } } }))
    assert.equal("elf: t.elf: program header 0: p_offset 0x100 and p_vaddr 0x100000 disagree "
                 .. "modulo p_align 0x1000",
                 parse_error(good{ phdrs = { { paddr = 0x100000, filesz = 16, align = 0x1000 } } }))
    assert.equal("elf: t.elf: program headers 0 and 1 overlap at physical 0x100800",
                 parse_error(good{ phdrs = { { paddr = 0x100000, filesz = 16, memsz = 0x1000 },
                                             { paddr = 0x100800, filesz = 16 } } }))
    assert.equal("elf: t.elf: e_entry 0x200000 is not inside any loadable segment",
                 parse_error(good{ entry = 0x200000 }))
    assert.equal("elf: t.elf: nothing to load (no PT_LOAD segment with p_memsz > 0)",
                 parse_error(good{ phdrs = { { paddr = 0x100000, filesz = 0 } } }))
  end)

  it("rejects notes that run past their segment and a PVH note of the wrong size", function()
    local function with_notes(notes, filesz)
      return good{ body = BODY .. notes, phdrs = { { paddr = 0x100000, filesz = #BODY },
        { type = 4, offset = 0x100 + #BODY, paddr = 0, filesz = filesz or #notes, align = 4 } } }
    end
    assert.equal("elf: t.elf: note at file offset 0x110 is truncated (8 bytes left in its "
                 .. "segment)", parse_error(with_notes(note("Xen", 18, "abcd"), 8)))
    assert.equal("elf: t.elf: note at file offset 0x110 (namesz 4, descsz 64) runs past its "
                 .. "segment", parse_error(with_notes(string.pack("<I4I4I4", 4, 64, 18) .. "Xen\0")))
    assert.equal("elf: t.elf: the Xen PHYS32_ENTRY note has 2 bytes (4 or 8)",
                 parse_error(with_notes(note("Xen", 18, "ab"))))
    assert.equal("elf: t.elf: the Xen PHYS32_ENTRY note's address 0x100000000 is not a 32-bit "
                 .. "address", parse_error(with_notes(note("Xen", 18, string.pack("<I8", 1 << 32)))))
  end)

  it("writes nothing when a segment lies outside guest memory", function()
    local vm <close> = vmm.vm{ memory = "2M" }
    vm.memory:fill(0x100000, 16, 0xaa)
    local image = good{ phdrs = { { paddr = 0x100000, filesz = 16 },
                                  { paddr = 0x1ff000, filesz = 0, memsz = 0x2000 } } }
    assert.equal("elf: t.elf: program header 1: [0x1ff000, 0x201000) is outside guest memory",
                 H.error_of(elf.load, vm, { data = image, name = "t.elf" }))
    assert.equal(string.rep("\xaa", 16), vm.memory:read(0x100000, 16))
  end)

  it("names the file it cannot open", function()
    local vm <close> = vmm.vm{ memory = "2M" }
    assert.equal("elf: cannot open /nonexistent/k.elf: No such file or directory",
                 H.error_of(elf.load, vm, "/nonexistent/k.elf"))
  end)
end)

-- ---- bzImages ----

-- A bzImage of a few KB: one setup sector after the boot sector, then the
-- protected-mode part with `hlt` at its 64-bit entry (+0x200). o overrides
-- header fields; o.tail appends bytes.
local function mkbz(o)
  o = o or {}
  local kernel = o.kernel or (string.rep("\0", 0x200) .. "\xf4" .. string.rep("\0", 0x5ff))
  local sects = o.setup_sects or 1
  local setup = { string.rep("\0", ((sects == 0 and 4 or sects) + 1) * 512) }
  local function put(off, fmt, v)
    local s = setup[1]
    local b = string.pack(fmt, v)
    setup[1] = s:sub(1, off) .. b .. s:sub(off + #b + 1)
  end
  local header_end = o.header_end or 0x26c
  put(0x1f1, "<I1", sects)
  put(0x1f4, "<I4", o.syssize or (#kernel + 15) // 16)
  put(0x1fe, "<I2", o.boot_flag or 0xaa55)
  put(0x200, "<I1", 0xeb)
  put(0x201, "<I1", header_end - 0x202)
  put(0x202, "c4", o.magic or "HdrS")
  put(0x206, "<I2", o.version or 0x020f)
  put(0x211, "<I1", o.loadflags or 0x01)
  put(0x214, "<I4", 0x100000)
  put(0x22c, "<I4", o.initrd_addr_max or 0x7fffffff)
  put(0x230, "<I4", o.kernel_alignment or 0x200000)
  put(0x234, "<I1", 1)
  put(0x236, "<I2", o.xloadflags or 0x01)
  put(0x238, "<I4", o.cmdline_size or 0x7ff)
  put(0x258, "<i8", o.pref_address or 0x200000)
  put(0x260, "<I4", o.init_size or 0x100000)
  put(0x268, "<I4", 0x12345678) -- kernel_info_offset: copied as it is
  return setup[1] .. kernel
end

local function bz_error(o) return H.error_of(linux.parse_bzimage, mkbz(o), "bz") end

local function boot_error(m, opts)
  return H.error_of(linux.boot, m, opts)
end

describe("vmm.linux", function()
  local m
  before_each(function() m = pc.new{ memory = "8M" } end)
  after_each(function() m:close() end)

  it("parses a bzImage's setup header", function()
    local h = linux.parse_bzimage(mkbz(), "bz")
    assert.equal(0x020f, h.version)
    assert.equal(1, h.setup_sects)
    assert.equal(1024, h.setup_size)
    assert.equal(0x800, h.kernel_size)
    assert.equal(0x26c, h.header_end)
    assert.equal(0x7ff, h.cmdline_size)
    assert.equal(0x200000, h.pref_address)
    assert.equal(0x100000, h.init_size)
    assert.equal(mkbz():sub(0x1f1 + 1, 0x26c), h.header_bytes)
  end)

  it("rejects bad bzImages, naming the field", function()
    assert.equal('linux: bz: not a bzImage (no "HdrS" setup header magic at 0x202)',
                 bz_error{ magic = "HdrZ" })
    assert.equal("linux: bz: boot protocol 2.09 is too old (need 2.12 or later: the 64-bit "
                 .. "entry is announced by xloadflags)", bz_error{ version = 0x0209 })
    assert.equal("linux: bz: setup header end 0x222 (from the jump at 0x200) is outside "
                 .. "[0x264, 0x290]", bz_error{ header_end = 0x222 })
    assert.equal("linux: bz: setup_sects 40 puts the kernel at 0x5200, past the end of the "
                 .. "file (3072 bytes)",
                 H.error_of(linux.parse_bzimage, mkbz():sub(1, 0x1f1) .. "\40"
                            .. mkbz():sub(0x1f3), "bz"))
    assert.equal("linux: bz: truncated: the setup header ends at 0x26c, the file has 608 bytes",
                 H.error_of(linux.parse_bzimage, mkbz():sub(1, 0x260), "bz"))
    assert.equal("linux: bz: boot_flag is 0x1234, not 0xaa55", bz_error{ boot_flag = 0x1234 })
    assert.equal("linux: bz: syssize says the kernel has 4096 bytes, the file has 2048 after "
                 .. "the setup code", bz_error{ syssize = 256 })
    assert.equal("linux: bz: loadflags has no LOADED_HIGH: a zImage (loaded at 0x10000) is not "
                 .. "supported", bz_error{ loadflags = 0 })
    assert.equal("linux: bz: xloadflags has no XLF_KERNEL_64: the kernel has no 64-bit entry "
                 .. "point", bz_error{ xloadflags = 0x2 })
    assert.equal("linux: bz: kernel_alignment 0x3000 is not a power of two",
                 bz_error{ kernel_alignment = 0x3000 })
    assert.equal("linux: bz: init_size is 0", bz_error{ init_size = 0 })
  end)

  it("boots a bzImage at its 64-bit entry with the zero page it built", function()
    local image = mkbz()
    local rd = string.rep("R", 5000)
    local cmdline = "console=ttyS0 root=/dev/ram0 quiet"
    local placed = linux.boot(m, { kernel = { data = image, name = "bz" },
                                   initrd = { data = rd, name = "rd" }, cmdline = cmdline })
    assert.equal("bzimage", placed.format)
    assert.equal("64", placed.entry)
    assert.equal(0x100200, placed.rip)
    assert.same({ addr = 0x100000, size = 0x800, top = 0x300000, version = "2.15" }, placed.kernel)
    assert.same({ addr = 0x7fe000, size = 5000 }, placed.initrd)
    assert.same({ addr = 0x20000, size = #cmdline, text = cmdline }, placed.cmdline)
    assert.equal(0x7000, placed.boot_params)

    local mem = m.vm.memory
    assert.equal(image:sub(1025), mem:read(0x100000, 0x800))
    assert.equal(rd, mem:read(0x7fe000, 5000))
    assert.equal(cmdline .. "\0", mem:read(0x20000, #cmdline + 1))
    -- the zero page: the image's setup header with the loader's fields set
    local zp = mem:read(0x7000, 4096)
    local function at(off, fmt) return (string.unpack(fmt, zp, off + 1)) end
    assert.equal("HdrS", zp:sub(0x203, 0x206))
    assert.equal(0x020f, at(0x206, "<I2"))
    assert.equal(0x12345678, at(0x268, "<I4"))          -- copied through
    assert.equal(image:sub(0x1f2, 0x1f9), zp:sub(0x1f2, 0x1f9))
    assert.equal(0xff, at(0x210, "<I1"))                -- type_of_loader
    assert.equal(0x01, at(0x211, "<I1"))                -- loadflags: LOADED_HIGH
    assert.equal(0xffff, at(0x1fa, "<I2"))              -- vid_mode
    assert.equal(0x100000, at(0x214, "<I4"))            -- code32_start
    assert.equal(0x20000, at(0x228, "<I4"))             -- cmd_line_ptr
    assert.equal(0x7fe000, at(0x218, "<I4"))            -- ramdisk_image
    assert.equal(5000, at(0x21c, "<I4"))                -- ramdisk_size
    assert.equal(0, at(0x0c0, "<I4") | at(0x0c4, "<I4") | at(0x0c8, "<I4")) -- ext_*
    assert.equal(0, at(0x1ef, "<I1"))                   -- sentinel
    assert.equal(string.rep("\0", 0x1e8), zp:sub(1, 0x1e8))
    local e820 = m:e820()
    assert.same(e820, placed.e820)
    assert.equal(#e820, at(0x1e8, "<I1"))
    for i, e in ipairs(e820) do
      assert.same({ e.addr, e.size, e.type }, fields("<I8I8I4", zp, 0x2d0 + (i - 1) * 20 + 1))
    end
    assert.equal(string.rep("\0", 20), zp:sub(0x2d0 + #e820 * 20 + 1, 0x2d0 + #e820 * 20 + 20))

    -- the CPU: long mode, __BOOT_CS / __BOOT_DS, rsi = the zero page, no interrupts
    local cpu = m.vm:cpu(0)
    assert.equal(0x100200, cpu.rip)
    assert.equal(0x7000, cpu.rsi)
    assert.equal(0x10, cpu.cs.selector)
    assert.equal(1, cpu.cs.l)
    for _, s in ipairs{ "ds", "es", "ss" } do assert.equal(0x18, cpu[s].selector) end
    assert.equal(0, cpu.rflags & 0x200)
    assert.equal(0x500, cpu.efer & 0x500)               -- LME, LMA
    assert.same({ base = 0x500, limit = 31 }, cpu.gdt)
    assert.equal(string.rep("\0", 16), mem:read(0x500, 16))
    local r = m.vm:run{ timeout = 5 }
    assert.equal("hlt", r.reason)
    assert.equal(0x100201, r.rip)
  end)

  it("passes the ACPI RSDP in the zero page", function()
    linux.boot(m, { kernel = { data = mkbz() }, rsdp = 0xf0000 })
    assert.equal(0xf0000, m.vm.memory:u64(0x7000 + 0x70))
  end)

  it("rejects a command line longer than cmdline_size or with a NUL", function()
    assert.equal("linux: bz: the command line has 20 bytes; the kernel takes at most 16 "
                 .. "(cmdline_size)",
                 boot_error(m, { kernel = { data = mkbz{ cmdline_size = 16 }, name = "bz" },
                                 cmdline = string.rep("x", 20) }))
    assert.is_nil(boot_error(m, { kernel = { data = mkbz{ cmdline_size = 16 }, name = "bz" },
                                  cmdline = string.rep("x", 16) }))
    assert.equal("linux: bz: the command line contains a NUL byte",
                 boot_error(m, { kernel = { data = mkbz(), name = "bz" }, cmdline = "a\0b" }))
  end)

  it("rejects an initrd that does not fit between the kernel and initrd_addr_max", function()
    -- (Small strings on purpose: a freed string of megabytes raises glibc's
    -- mmap threshold for the rest of the process, which stress_spec's RSS
    -- check would see.)
    assert.equal("linux: rd: the initrd (5000 bytes) does not fit between the kernel's end "
                 .. "0x300000 and 0x300000 (initrd_addr_max 0x2fffff, top of RAM below it)",
                 boot_error(m, { kernel = { data = mkbz{ initrd_addr_max = 0x2fffff } },
                                 initrd = { data = string.rep("R", 5000), name = "rd" } }))
    assert.equal("linux: rd: the initrd (5000 bytes) does not fit between the kernel's end "
                 .. "0x7ff000 and 0x800000 (initrd_addr_max 0x7fffffff, top of RAM below it)",
                 boot_error(m, { kernel = { data = mkbz{ init_size = 0x5ff000 } },
                                 initrd = { data = string.rep("R", 5000), name = "rd" } }))
    assert.equal("linux: rd: the initrd is empty",
                 boot_error(m, { kernel = { data = mkbz() }, initrd = { data = "", name = "rd" } }))
    -- just fits: right above the kernel's init_size
    local placed = linux.boot(m, { kernel = { data = mkbz{ initrd_addr_max = 0x300fff } },
                                   initrd = { data = string.rep("R", 4096), name = "rd" } })
    assert.same({ addr = 0x300000, size = 4096 }, placed.initrd)
  end)

  it("rejects a kernel that needs more RAM than the machine has", function()
    assert.equal("linux: bz: needs RAM from 0x100000 to 0x1200000 (the image, then init_size "
                 .. "0x1000000 at 0x200000); the machine has 8 MiB",
                 boot_error(m, { kernel = { data = mkbz{ init_size = 0x1000000 }, name = "bz" } }))
  end)

  it("rejects an e820 map the zero page cannot hold", function()
    for i = 1, 70 do m:reserve(0x400000 + i * 0x2000, 0x1000) end
    local n = #m:e820()
    assert.is_true(n > 128)
    assert.equal(string.format("linux: the e820 map has %d entries; the zero page holds 128", n),
                 boot_error(m, { kernel = { data = mkbz() } }))
  end)

  it("rejects what is neither a bzImage nor an ELF, and bad options", function()
    assert.equal('linux: junk: is neither a bzImage (no "HdrS" at 0x202) nor an ELF file',
                 boot_error(m, { kernel = { data = string.rep("x", 4096), name = "junk" } }))
    assert.equal("linux: bz: a bzImage has no PVH entry (boot a vmlinux for that)",
                 boot_error(m, { kernel = { data = mkbz(), name = "bz" }, entry = "pvh" }))
    assert.equal('linux.boot: entry must be "auto", "64" or "pvh", got 32',
                 boot_error(m, { kernel = { data = mkbz() }, entry = "32" }))
    assert.equal("linux.boot: machine must be a vmm.pc machine (it supplies the e820 map)",
                 boot_error(m.vm, { kernel = { data = mkbz() } }))
    assert.equal("linux: the kernel: cannot open /nonexistent/bz: No such file or directory",
                 boot_error(m, { kernel = "/nonexistent/bz" }))
  end)
end)

-- ---- vmlinux: the ELF entries ----

-- A kernel ELF linked high (vaddr 0xffffffff80100000) at physical 1 MiB,
-- its ELF entry (physical, as a vmlinux's) and its PVH entry both `hlt`.
local function vmlinux(o)
  o = o or {}
  local code = "\xf4" .. string.rep("\0", 15) .. "\xf4" .. string.rep("\0", 15)
  local notes = o.pvh == false and "" or note("Xen", 18, string.pack("<I8", 0x100010))
  local phdrs = { { paddr = 0x100000, vaddr = -0x80000000 + 0x100000, filesz = #code,
                    memsz = 0x2000, align = 0x100 } }
  if #notes > 0 then
    phdrs[2] = { type = 4, offset = 0x100 + #code, paddr = 0, filesz = #notes, align = 4 }
  end
  return mkelf{ bits = o.bits, entry = 0x100000, body = code .. notes, phdrs = phdrs }
end

describe("vmm.linux with a vmlinux", function()
  local m
  before_each(function() m = pc.new{ memory = "8M" } end)
  after_each(function() m:close() end)

  it("enters at startup_64 with a zero page of its own making", function()
    local placed = linux.boot(m, { kernel = { data = vmlinux(), name = "vmlinux" },
                                   initrd = { data = "RD" }, cmdline = "console=ttyS0" })
    assert.equal("elf", placed.format)
    assert.equal("64", placed.entry)
    assert.equal(0x100000, placed.rip)
    assert.same({ addr = 0x100000, size = 0x2000, top = 0x102000 }, placed.kernel)
    assert.same({ addr = 0x7ff000, size = 2 }, placed.initrd)
    local zp = m.vm.memory:read(0x7000, 4096)
    local function at(off, fmt) return (string.unpack(fmt, zp, off + 1)) end
    assert.equal(0xaa55, at(0x1fe, "<I2"))
    assert.equal("HdrS", zp:sub(0x203, 0x206))
    assert.equal(0x020c, at(0x206, "<I2"))
    assert.equal(0xff, at(0x210, "<I1"))
    assert.equal(0x01, at(0x211, "<I1"))
    assert.equal(2047, at(0x238, "<I4"))                -- cmdline_size
    assert.equal(0x7fffffff, at(0x22c, "<I4"))          -- initrd_addr_max
    assert.equal(0x20000, at(0x228, "<I4"))
    assert.equal(0x7ff000, at(0x218, "<I4"))
    assert.equal(2, at(0x21c, "<I4"))
    assert.equal(#m:e820(), at(0x1e8, "<I1"))
    local cpu = m.vm:cpu(0)
    assert.equal(0x7000, cpu.rsi)
    assert.equal(0x10, cpu.cs.selector)
    local r = m.vm:run{ timeout = 5 }
    assert.equal("hlt", r.reason)
    assert.equal(0x100001, r.rip)
  end)

  it("enters at the PVH entry with an hvm_start_info", function()
    local placed = linux.boot(m, { kernel = { data = vmlinux(), name = "vmlinux" },
                                   initrd = { data = "RD" }, cmdline = "console=ttyS0",
                                   entry = "pvh", rsdp = 0xf0000 })
    assert.equal("pvh", placed.entry)
    assert.equal(0x100010, placed.rip)
    assert.equal(0x8000, placed.start_info)
    assert.is_nil(placed.boot_params)
    local mem = m.vm.memory
    local magic, version, flags, nmods, modlist, cmdline, rsdp, memmap, entries =
      string.unpack("<I4I4I4I4I8I8I8I8I4", mem:read(0x8000, 56))
    assert.same({ 0x336ec578, 1, 0, 1, 0x20000, 0xf0000, #m:e820() },
                { magic, version, flags, nmods, cmdline, rsdp, entries })
    assert.same({ 0x7ff000, 2, 0, 0 }, fields("<I8I8I8I8", mem:read(modlist, 32)))
    for i, e in ipairs(m:e820()) do
      local a, s, t, z = string.unpack("<I8I8I4I4", mem:read(memmap + (i - 1) * 24, 24))
      assert.same({ e.addr, e.size, e.type, 0 }, { a, s, t, z })
    end
    assert.equal("console=ttyS0\0", mem:read(0x20000, 14))
    local cpu = m.vm:cpu(0)
    assert.equal(0x8000, cpu.rbx)
    assert.equal(0x100010, cpu.rip)
    assert.equal(1, cpu.cr0 & 0x80000001)               -- PE, no paging
    assert.equal(0, cpu.cr4)
    assert.equal(1, cpu.cs.db)
    assert.equal(0, cpu.rflags & 0x200)
    local r = m.vm:run{ timeout = 5 }
    assert.equal("hlt", r.reason)
    assert.equal(0x100011, r.rip)
  end)

  it("has no module list without an initrd", function()
    linux.boot(m, { kernel = { data = vmlinux() }, entry = "pvh" })
    assert.same({ 0, 0 }, fields("<I4I8", m.vm.memory:read(0x800c, 12)))
  end)

  it("refuses the PVH entry without the note, and a 32-bit ELF at the 64-bit entry", function()
    assert.equal("linux: vmlinux: has no Xen PVH entry (no XEN_ELFNOTE_PHYS32_ENTRY note)",
                 boot_error(m, { kernel = { data = vmlinux{ pvh = false }, name = "vmlinux" },
                                 entry = "pvh" }))
    local elf32 = good{ bits = 32 }
    assert.equal("linux: k32: is a 32-bit ELF: only the PVH entry can start it",
                 boot_error(m, { kernel = { data = elf32, name = "k32" } }))
  end)

  it("refuses a kernel below 1 MiB or beyond RAM", function()
    local low = good{ entry = 0x10000, phdrs = { { paddr = 0x10000, filesz = 16 } } }
    assert.equal("linux: k: loads at 0x10000, below 1 MiB where the boot structures go",
                 boot_error(m, { kernel = { data = low, name = "k" } }))
    local big = good{ phdrs = { { paddr = 0x100000, filesz = 16, memsz = 0x800000 } } }
    assert.equal("linux: k: needs RAM from 0x100000 to 0x900000; the machine has 8 MiB",
                 boot_error(m, { kernel = { data = big, name = "k" } }))
  end)
end)

describe("vmm.linux helpers", function()
  it("renders an e820 map as Linux prints it", function()
    assert.same({
      "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
      "BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved",
      "BIOS-e820: [mem 0x00000000000e0000-0x00000000000e0fff] ACPI data",
      "BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] ACPI NVS",
    }, linux.e820_lines{ { addr = 0, size = 0x9fc00, type = 1 },
                         { addr = 0x9fc00, size = 0x400, type = 2 },
                         { addr = 0xe0000, size = 0x1000, type = 3 },
                         { addr = 1 << 32, size = 1 << 30, type = 4 } })
  end)

  it("has a Lua COM1 for polled output: LSR says empty, loopback reflects MCR", function()
    -- in al, 0x3fd -> [0x500]; out 'h', 'i'; MCR = loop|OUT2|RTS; MSR -> [0x501]
    local vm <close> = H.real("\xba\xfd\x03\xec\xa2\x00\x05" .. "\xba\xf8\x03\xb0\x68\xee\xb0\x69\xee"
      .. "\xba\xfc\x03\xb0\x1a\xee" .. "\xba\xfe\x03\xec\xa2\x01\x05" .. "\xf4")
    local out = {}
    local dev = linux.com1(vm, { output = function(s) out[#out + 1] = s end })
    assert.equal("hlt", vm:run{ timeout = 5 }.reason)
    assert.equal("hi", table.concat(out))
    assert.equal(2, dev.bytes)
    assert.equal(0x60, vm.memory:u8(0x500))
    assert.equal(0x90, vm.memory:u8(0x501))
  end)
end)

describe("vmm.mode selectors", function()
  it("puts the code and data descriptors where the Linux boot protocol wants them", function()
    local vm <close> = vmm.vm{ memory = "2M" }
    vm.memory:write(0x100000, "\xf4")
    local cpu = vm:cpu(0)
    mode.long(cpu, { selectors = { code = 0x10, data = 0x18 } })
    assert.equal(0x10, cpu.cs.selector)
    assert.equal(0x18, cpu.ss.selector)
    assert.same({ base = 0x500, limit = 31 }, cpu.gdt)
    assert.equal(string.rep("\0", 16), vm.memory:read(0x500, 16))
    assert.equal(0x00af9b000000ffff, vm.memory:u64(0x510))  -- 64-bit code
    assert.equal(0x00cf93000000ffff, vm.memory:u64(0x518))  -- flat data
    assert.equal("hlt", vm:run{ timeout = 5 }.reason)
    mode.protected(cpu, { selectors = { code = 0x20 } })
    assert.equal(0x20, cpu.cs.selector)
    assert.equal(0x10, cpu.ds.selector)
    assert.same({ base = 0x500, limit = 39 }, cpu.gdt)
  end)

  it("keeps 0x08 and 0x10 by default and rejects bad selectors", function()
    local vm <close> = vmm.vm{ memory = "2M" }
    local cpu = vm:cpu(0)
    mode.long(cpu)
    assert.equal(0x08, cpu.cs.selector)
    assert.same({ base = 0x500, limit = 23 }, cpu.gdt)
    assert.equal("mode: selectors.code must be a GDT selector (a multiple of 8 from 0x8 to "
                 .. "0xff8), got 17", H.error_of(mode.long, cpu, { selectors = { code = 17 } }))
    assert.equal("mode: selectors.code and selectors.data are the same",
                 H.error_of(mode.long, cpu, { selectors = { code = 0x10 } }))
    assert.equal("mode: selectors must be a table { code = , data = }, got number",
                 H.error_of(mode.protected, cpu, { selectors = 8 }))
  end)
end)
