-- Guest memory from Lua: bounds-checked copies, integers, regions, files.
local vmm = require "vmm"
local H = require "helper"

describe("vm.memory", function()
  local vm
  before_each(function() vm = vmm.vm{ memory = "1M" } end)
  after_each(function() vm:close() end)

  it("writes and reads strings", function()
    assert.equal(5, vm.memory:write(0x1000, "hello"))
    assert.equal("hello", vm.memory:read(0x1000, 5))
    assert.equal("", vm.memory:read(0x1000, 0))
  end)

  it("reads and writes integers little-endian", function()
    local m = vm.memory
    m:u32(0x2000, 0x11223344)
    assert.equal(0x44, m:u8(0x2000))
    assert.equal(0x3344, m:u16(0x2000))
    assert.equal(0x11223344, m:u32(0x2000))
    m:u64(0x3000, -1)
    assert.equal(-1, m:u64(0x3000))
    assert.equal(0xffffffff, m:u32(0x3004))
    m:u8(0x4000, -1)
    assert.equal(0xff, m:u8(0x4000))
  end)

  it("refuses values that do not fit", function()
    assert.matches("does not fit in 1 bytes", H.error_of(vm.memory.u8, vm.memory, 0, 256))
    assert.matches("does not fit in 2 bytes", H.error_of(vm.memory.u16, vm.memory, 0, 0x10000))
  end)

  it("fills", function()
    vm.memory:fill(0x5000, 16, 0xab)
    assert.equal(string.rep("\xab", 16), vm.memory:read(0x5000, 16))
    assert.matches("a byte is 0 to 255", H.error_of(vm.memory.fill, vm.memory, 0, 1, 256))
  end)

  it("refuses every range that leaves guest memory", function()
    local m = vm.memory
    local top = 1 << 20
    assert.matches("%[0xffffe, 0x100003%) is not inside guest memory",
                   H.error_of(m.write, m, top - 2, "hello"))
    assert.matches("not inside guest memory", H.error_of(m.read, m, top - 1, 2))
    assert.matches("not inside guest memory", H.error_of(m.u32, m, top - 2))
    assert.matches("not inside guest memory", H.error_of(m.u64, m, top, 1))
    assert.matches("not inside guest memory", H.error_of(m.fill, m, 0, top + 1))
    assert.matches("must not be negative", H.error_of(m.read, m, -1, 1))
    assert.matches("must not be negative", H.error_of(m.read, m, 0, -1))
    assert.matches("at most 1 GiB", H.error_of(m.read, m, 0, 1 << 40))
    -- an address near 2^63 must not wrap around to a valid range
    assert.matches("not inside guest memory", H.error_of(m.write, m, math.maxinteger, "x"))
    assert.matches("not inside guest memory", H.error_of(m.read, m, math.maxinteger - 1, 4))
    assert.matches("address expected, got string", H.error_of(m.read, m, "zero", 1))
  end)

  it("maps extra regions and lists them in order", function()
    vm.memory:map{ gpa = 0x200000, size = "64K", name = "extra" }
    vm.memory:map{ gpa = 0xfffc0000, size = "256K", name = "rom", readonly = true }
    local r = vm.memory:regions()
    assert.equal(3, #r)
    assert.same({ gpa = 0, size = 1 << 20, name = "ram", readonly = false }, r[1])
    assert.same({ gpa = 0x200000, size = 0x10000, name = "extra", readonly = false }, r[2])
    assert.same({ gpa = 0xfffc0000, size = 0x40000, name = "rom", readonly = true }, r[3])
    vm.memory:write(0xfffc0000, "BIOS")
    assert.equal("BIOS", vm.memory:read(0xfffc0000, 4))
  end)

  it("rejects overlapping and misaligned regions", function()
    assert.matches("region 'x' %[0x80000, 0x180000%) overlaps region 'ram' %[0x0, 0x100000%)",
                   H.error_of(vm.memory.map, vm.memory, { gpa = 0x80000, size = "1M", name = "x" }))
    assert.matches("multiples of 4096",
                   H.error_of(vm.memory.map, vm.memory, { gpa = 0x100100, size = 4096 }))
    assert.matches("size is required", H.error_of(vm.memory.map, vm.memory, { gpa = 0x200000 }))
    assert.matches("beyond the guest physical address space",
                   H.error_of(vm.memory.map, vm.memory, { gpa = 1 << 60, size = 4096 }))
  end)

  it("copies across adjacent regions but not across a hole", function()
    vm.memory:map{ gpa = 1 << 20, size = 4096, name = "next" }
    vm.memory:write((1 << 20) - 2, "abcd")
    assert.equal("abcd", vm.memory:read((1 << 20) - 2, 4))
    assert.matches("not inside guest memory",
                   H.error_of(vm.memory.write, vm.memory, (1 << 20) + 4094, "abcd"))
  end)

  it("loads files", function()
    local path = H.tmpfile("\1\2\3\4guest")
    assert.equal(9, vm:load(path, 0x7000))
    assert.equal("\1\2\3\4guest", vm.memory:read(0x7000, 9))
    assert.matches("is not inside guest memory", H.error_of(vm.load, vm, path, (1 << 20) - 4))
    os.remove(path)
    assert.matches("cannot load " .. path .. ": No such file", H.error_of(vm.load, vm, path, 0))
    assert.matches("not a regular file", H.error_of(vm.load, vm, "/tmp", 0))
  end)
end)

describe("memory and MMIO handlers", function()
  it("may not overlap, whichever comes first", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    vm:on_mmio(0x200000, 0x1000, function() end)
    assert.matches("region 'late' %[0x200000, 0x201000%) overlaps the MMIO range of 'Lua handler",
                   H.error_of(vm.memory.map, vm.memory, { gpa = 0x200000, size = 4096, name = "late" }))
    -- a read-only region may sit under a handler: writes reach it
    vm.memory:map{ gpa = 0x200000, size = 4096, name = "flash", readonly = true }
  end)
end)
