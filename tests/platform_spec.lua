-- The in-kernel irqchip and PIT, interrupt lines from Lua, INIT/SIPI.
local vmm = require "vmm"
local H = require "helper"
local u16, u32, u64 = H.u16, H.u32, H.u64

local LAPIC = 0xfee00000

describe("the in-kernel irqchip", function()
  it("delivers an interrupt line raised from Lua through the PIC", function()
    -- real mode: program the master PIC (vectors 0x20..), unmask IRQ5, point
    -- IVT[0x25] at an ISR, ask Lua for the interrupt, sti; hlt; then exit 7.
    local isr = 0x8040
    local code = "\xfa" .. "\xb0\x11\xe6\x20" .. "\xb0\x20\xe6\x21" .. "\xb0\x04\xe6\x21"
      .. "\xb0\x01\xe6\x21" .. "\xb0\xdf\xe6\x21"
      .. "\xc7\x06\x94\x00" .. u16(isr) .. "\xc7\x06\x96\x00\x00\x00"
      .. "\xe6\x80" .. "\xfb\xf4" .. "\xb0\x07\xe6\xf4" .. "\xeb\xfe"
    code = code .. string.rep("\x90", 0x40 - #code) .. "\xe6\x81\xb0\x20\xe6\x20\xcf"
    local vm <close> = vmm.vm{ memory = "1M", irqchip = true, pit = true }
    assert.is_true(vm.irqchip)
    vm.memory:write(0x8000, code)
    vm:cpu(0):set_mode("real")
    vm:debug_exit{}
    local log = {}
    vm:on_io(0x80, function() log[#log + 1] = "raise"; vm:irq(5, true) end)
    vm:on_io(0x81, function() log[#log + 1] = "isr"; vm:irq(5, false) end)
    local r = vm:run{ timeout = 5 }
    assert.equal("exit", r.reason)
    assert.equal(7, r.code)
    assert.same({ "raise", "isr" }, log)
    assert.is_false(vm:irq_level(5))
  end)

  it("keeps hlt in the kernel: the guest waits for an interrupt", function()
    local vm <close> = vmm.vm{ memory = "1M", irqchip = true }
    vm.memory:write(0x8000, "\xfa\xf4")
    vm:cpu(0):set_mode("real")
    assert.equal("timeout", vm:run{ timeout = 0.3 }.reason)
  end)

  it("starts application processors with INIT and SIPI from the BSP's LAPIC", function()
    local vm <close> = vmm.vm{ memory = "2M", cpus = 2, irqchip = true }
    assert.equal("runnable", vm:cpu(0):mp_state())
    assert.equal("uninitialized", vm:cpu(1):mp_state()) -- waiting for INIT/SIPI
    -- the AP, real mode from SIPI vector 8 (0x8000): report, set a flag, halt
    vm.memory:write(0x8000, "\xe6\x99\xb0\x01\xa2\x00\x70\xfa\xf4\xeb\xfd")
    -- the BSP, long mode: software-enable its LAPIC (SVR), INIT and SIPI to
    -- APIC ID 1, wait for the flag, exit 5
    local bsp = "\x48\xbb" .. u64(LAPIC) .. "\xc7\x83\xf0\x00\x00\x00" .. u32(0x1ff)
      .. "\xc7\x83\x10\x03\x00\x00" .. u32(1 << 24)
      .. "\xc7\x83\x00\x03\x00\x00" .. u32(0x4500)
      .. "\xc7\x83\x00\x03\x00\x00" .. u32(0x4608)
      .. "\x8a\x04\x25" .. u32(0x7000) .. "\x84\xc0\x74\xf5"
      .. "\xb0\x05\xe6\xf4\xeb\xfe"
    vm.memory:write(0x100000, bsp)
    vm:cpu(0):set_mode("long")
    vm:debug_exit{}
    local reported
    vm:on_io(0x99, function(cpu) reported = cpu.id end)
    local r = vm:run{ timeout = 10 }
    assert.equal("exit", r.reason)
    assert.equal(5, r.code)
    assert.equal(1, reported)
  end)

  it("lets an AP's state be set from Lua", function()
    local vm <close> = vmm.vm{ memory = "1M", cpus = 2, irqchip = true }
    vm:cpu(1):mp_state("init_received")
    assert.equal("init_received", vm:cpu(1):mp_state())
    assert.matches("unknown state 'asleep'", H.error_of(vm:cpu(1).mp_state, vm:cpu(1), "asleep"))
  end)

  it("refuses a PIT without an irqchip", function()
    assert.matches("the in%-kernel PIT needs the in%-kernel irqchip",
                   H.error_of(vmm.vm, { memory = "1M", pit = true }))
  end)
end)

describe("interrupt lines", function()
  it("are recorded without an irqchip", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.is_false(vm.irqchip)
    vm:irq(4, true)
    assert.is_true(vm:irq_level(4))
    vm:irq(4, 0)
    assert.is_false(vm:irq_level(4))
    vm:irq_pulse(3)
    assert.is_false(vm:irq_level(3))
  end)

  it("are checked", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.matches("interrupt lines are 0 to 23", H.error_of(vm.irq, vm, 24, 1))
    assert.matches("interrupt lines are 0 to 23", H.error_of(vm.irq_pulse, vm, -1))
  end)
end)
