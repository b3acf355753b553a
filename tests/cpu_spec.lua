-- Registers, segments, MSRs, FPU and CPUID from Lua.
local vmm = require "vmm"
local H = require "helper"

describe("cpu registers", function()
  local vm, cpu
  before_each(function()
    vm = vmm.vm{ memory = "1M" }
    cpu = vm:cpu(0)
  end)
  after_each(function() vm:close() end)

  it("reads and writes general registers as 64-bit patterns", function()
    cpu.rax = 0x1234
    cpu:set{ rbx = -1, r15 = 0x7fffffffffffffff, rip = 0x8000 }
    assert.equal(0x1234, cpu.rax)
    assert.equal(-1, cpu.rbx)
    assert.equal(0x7fffffffffffffff, cpu.r15)
    local r = cpu:regs()
    assert.equal(0x8000, r.rip)
    assert.equal(-1, r.rbx)
    assert.is_number(r.rflags)
  end)

  it("starts at the x86 reset vector", function()
    assert.equal(0xfff0, cpu.rip)
    assert.equal(0xf000, cpu.cs.selector)
    assert.equal(0xffff0000, cpu.cs.base)
  end)

  it("sets segments from tables and real-mode selectors", function()
    cpu:set{ ds = 0x1234 }
    assert.equal(0x1234, cpu.ds.selector)
    assert.equal(0x12340, cpu.ds.base)
    cpu:set{ es = { base = 0x100000, limit = 0xfffff, g = 1 } }
    local es = cpu.es
    assert.equal(0x100000, es.base)
    assert.equal(1, es.g)
    assert.equal(0x3, es.type) -- kept from before
  end)

  it("sets control registers and descriptor tables", function()
    cpu:set{ cr3 = 0x5000, gdt = { base = 0x500, limit = 23 } }
    assert.equal(0x5000, cpu.cr3)
    assert.same({ base = 0x500, limit = 23 }, cpu.gdt)
    local s = cpu:sregs()
    assert.equal(0x5000, s.cr3)
    assert.equal(0x500, s.gdt.base)
    assert.equal(0xf000, s.cs.selector)
  end)

  it("names unknown registers, fields and bad values", function()
    assert.matches("unknown register 'rzx'", H.error_of(cpu.set, cpu, { rzx = 1 }))
    assert.matches("cpu has no register or method 'raxx'", H.error_of(function() return cpu.raxx end))
    assert.matches("rax must be an integer, not string", H.error_of(cpu.set, cpu, { rax = "1" }))
    assert.matches("cs: unknown segment field 'bsae'", H.error_of(cpu.set, cpu, { cs = { bsae = 0 } }))
    assert.matches("cs.type = 16 is out of range", H.error_of(cpu.set, cpu, { cs = { type = 16 } }))
    assert.matches("a selector is an integer from 0 to 0xffff", H.error_of(cpu.set, cpu, { ds = 0x10000 }))
    assert.matches("gdt must be a table", H.error_of(cpu.set, cpu, { gdt = 5 }))
  end)

  it("reports control register values KVM refuses, changing nothing", function()
    cpu.rax = 7
    local err = H.error_of(cpu.set, cpu, { cr0 = 0x80000010, rax = 9 })
    assert.matches("KVM rejected the segment and control registers %(Invalid argument%): cr0=0x80000010", err)
    assert.equal(7, cpu.rax)
  end)

  it("reads and writes MSRs", function()
    local IA32_SYSENTER_CS = 0x174
    cpu:msr(IA32_SYSENTER_CS, 0x10)
    assert.equal(0x10, cpu:msr(IA32_SYSENTER_CS))
    assert.matches("cannot read MSR 0xdeadbeef", H.error_of(cpu.msr, cpu, 0xdeadbeef))
    assert.matches("32%-bit number", H.error_of(cpu.msr, cpu, -1))
  end)

  it("reads and writes the FPU state", function()
    local f = cpu:fpu()
    assert.equal(0x37f, f.fcw)
    assert.equal(16, #f.xmm)
    local x = string.rep("\x5a", 16)
    cpu:set_fpu{ mxcsr = 0x1f80, xmm = { [3] = x } }
    assert.equal(x, cpu:fpu().xmm[3])
    assert.matches("16%-byte string", H.error_of(cpu.set_fpu, cpu, { xmm = { "short" } }))
  end)

  it("reads and replaces CPUID", function()
    local leaf0 = cpu:cpuid(0)
    assert.is_true(leaf0.eax >= 1)
    local all = cpu:cpuid()
    for _, e in ipairs(all) do
      if e.leaf == 0 then e.ebx = 0x61756c00 end -- a vendor string of our own
    end
    cpu:set_cpuid(all)
    assert.equal(0x61756c00, cpu:cpuid(0).ebx)
    assert.is_nil(cpu:cpuid(0x4fffffff))
    assert.matches("eax must be a 32%-bit integer", H.error_of(cpu.set_cpuid, cpu, { { leaf = 0, eax = -1 } }))
  end)

  it("translates through page tables", function()
    cpu:set_mode("long")
    assert.equal(0x123456, cpu:translate(0x123456))
    local gpa, err = cpu:translate(0x0000100000000000)
    assert.is_nil(gpa)
    assert.matches("not mapped", err)
  end)

  it("dumps registers", function()
    cpu.rax = 0xabc
    local d = cpu:dump()
    assert.matches("rax 0000000000000abc", d)
    assert.matches("%(real mode%)", d)
  end)
end)

describe("mode set-up", function()
  it("puts a cpu in each mode", function()
    for mode, text in pairs{ real = "real mode", protected = "32%-bit protected mode",
                             long = "64%-bit long mode" } do
      local vm <close> = vmm.vm{ memory = "1M" }
      vm:cpu(0):set_mode(mode)
      assert.matches(text, vm:cpu(0):dump())
    end
  end)

  it("builds identity page tables that reach the MMIO hole", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    vm:cpu(0):set_mode("long")
    assert.equal(0xd0000123, vm:cpu(0):translate(0xd0000123))
    assert.is_nil(vm:cpu(0):translate(0x100000000))
  end)

  it("rejects unknown modes and bad options", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.matches("unknown mode 'unreal'", H.error_of(vm:cpu(0).set_mode, vm:cpu(0), "unreal"))
    assert.matches("entry must be an integer",
                   H.error_of(vm:cpu(0).set_mode, vm:cpu(0), "long", { entry = "x" }))
    assert.matches("page_tables must be 4096%-aligned",
                   H.error_of(vm:cpu(0).set_mode, vm:cpu(0), "long", { page_tables = 0x1001 }))
  end)
end)
