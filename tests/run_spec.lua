-- Running guests: every exit kind, every access size, handlers written in
-- Lua, and every way a run can end or fail. Guests are hand-assembled.
local vmm = require "vmm"
local H = require "helper"
local u16, u32, u64 = H.u16, H.u32, H.u64

local HLT = "\xf4"
local MMIO = 0xd0000000

-- long mode: mov eax, nr; mov rdi..r9, args; mov dx, 0xabba; out dx, eax;
-- mov [0x9000], rax; hlt
local function hypercall_code(nr, a)
  return "\xb8" .. u32(nr) .. "\x48\xbf" .. u64(a[1]) .. "\x48\xbe" .. u64(a[2])
    .. "\x48\xb9" .. u64(a[3]) .. "\x49\xba" .. u64(a[4]) .. "\x49\xb8" .. u64(a[5])
    .. "\x49\xb9" .. u64(a[6]) .. "\x66\xba\xba\xab\xef" .. "\x48\x89\x04\x25" .. u32(0x9000)
    .. HLT
end

describe("a run", function()
  it("ends at hlt with the rip after it", function()
    local vm <close> = H.real(HLT)
    local r = vm:run()
    assert.equal("hlt", r.reason)
    assert.equal(0x8001, r.rip)
    assert.equal(0, r.cpu)
    assert.is_true(r.exits >= 1)
  end)

  it("passes port writes of every size to a Lua handler", function()
    local vm <close> = H.real("\xba\x80\x00" .. "\xb0\x11\xee" .. "\xb8\x33\x22\xef"
      .. "\x66\xb8\x77\x66\x55\x44\x66\xef" .. HLT)
    local seen = {}
    vm:on_io(0x80, 4, function(cpu, offset, size, value)
      seen[#seen + 1] = { offset, size, value, cpu.id }
    end)
    assert.equal("hlt", vm:run().reason)
    assert.same({ { 0, 1, 0x11, 0 }, { 0, 2, 0x2233, 0 }, { 0, 4, 0x44556677, 0 } }, seen)
  end)

  it("gives handlers the offset from their base", function()
    local vm <close> = H.real("\xb0\x01\xe6\x72\xe6\x70" .. HLT)
    local offsets = {}
    vm:on_io(0x70, 4, function(_, offset) offsets[#offsets + 1] = offset end)
    vm:run()
    assert.same({ 2, 0 }, offsets)
  end)

  it("returns port reads of every size, masked to the size", function()
    local vm <close> = H.real("\xba\x60\x00" .. "\xec\xa2\x00\x05" .. "\xed\xa3\x02\x05"
      .. "\x66\xed\x66\xa3\x04\x05" .. HLT)
    local sizes = {}
    vm:on_io(0x60, 4, function(_, _, size, value)
      assert.is_nil(value)
      sizes[#sizes + 1] = size
      return 0x1122334455
    end)
    vm:run()
    assert.same({ 1, 2, 4 }, sizes)
    assert.equal(0x55, vm.memory:u8(0x500))
    assert.equal(0x4455, vm.memory:u16(0x502))
    assert.equal(0x22334455, vm.memory:u32(0x504))
  end)

  it("reads 0 when a read handler returns nothing", function()
    local vm <close> = H.real("\xb0\x99\xe4\x60\xa2\x00\x05" .. HLT)
    vm:on_io(0x60, function() end)
    vm:run()
    assert.equal(0, vm.memory:u8(0x500))
  end)

  it("keeps the port fixed and advances the data for rep outs and rep ins", function()
    local vm <close> = H.real("\xbe\x00\x06\xb9\x05\x00\xba\xe9\x00\xf3\x6e"  -- rep outsb
      .. "\xbe\x10\x06\xb9\x02\x00\xf3\x6f"                                      -- rep outsw
      .. "\xbf\x00\x07\xb9\x04\x00\xba\x60\x00\xf3\x6c" .. HLT)                   -- rep insb
    vm.memory:write(0x600, "hello")
    vm.memory:write(0x610, "abcd")
    local out, words, n = {}, {}, 0
    vm:on_io(0xe9, 2, function(_, offset, size, value)
      assert.equal(0, offset)
      if size == 1 then out[#out + 1] = string.char(value) else words[#words + 1] = value end
    end)
    vm:on_io(0x60, function() n = n + 1; return n end)
    vm:run()
    assert.equal("hello", table.concat(out))
    assert.same({ 0x6261, 0x6463 }, words)
    assert.equal("\1\2\3\4", vm.memory:read(0x700, 4))
  end)

  it("passes MMIO reads and writes of 1, 2, 4 and 8 bytes", function()
    local code = "\xa0" .. u64(MMIO) .. "\xa2" .. u64(MMIO + 8)
      .. "\x66\xa1" .. u64(MMIO) .. "\x66\xa3" .. u64(MMIO + 8)
      .. "\xa1" .. u64(MMIO) .. "\xa3" .. u64(MMIO + 8)
      .. "\x48\xa1" .. u64(MMIO) .. "\x48\xa3" .. u64(MMIO + 8) .. HLT
    local vm <close> = H.long(code)
    local writes = {}
    vm:on_mmio(MMIO, 0x1000, function(_, offset, size, value)
      if value == nil then
        assert.equal(0, offset)
        return 0x1122334455667788
      end
      assert.equal(8, offset)
      writes[#writes + 1] = { size, value }
    end)
    vm:run()
    assert.same({ { 1, 0x88 }, { 2, 0x7788 }, { 4, 0x55667788 }, { 8, 0x1122334455667788 } },
                writes)
  end)

  it("calls hypercalls with six arguments and returns rax", function()
    local vm <close> = H.long(hypercall_code(42, { 1, 2, 3, 4, 5, -6 }))
    local got
    vm:on_hypercall(42, function(cpu, ...)
      got = { ... }
      assert.equal(42, cpu.rax)
      return 1000
    end)
    vm:run()
    assert.same({ 1, 2, 3, 4, 5, -6 }, got)
    assert.equal(1000, vm.memory:u64(0x9000))
  end)

  it("returns 64-bit and negative hypercall results", function()
    local vm <close> = H.long(hypercall_code(1, { 0, 0, 0, 0, 0, 0 }))
    vm:on_hypercall(1, function() return -2 end)
    vm:run()
    assert.equal(-2, vm.memory:u64(0x9000))
  end)

  it("stops when a handler calls vm:stop", function()
    local vm <close> = H.real("\xe6\x80\xeb\xfc") -- out 0x80, al; jmp back
    local n = 0
    vm:on_io(0x80, function() n = n + 1; if n == 3 then vm:stop(77) end end)
    local r = vm:run()
    assert.equal("stop", r.reason)
    assert.equal(77, r.code)
    assert.equal(3, n)
  end)

  it("can run again after it stopped, from where it was", function()
    local vm <close> = H.real("\xe6\x80\xeb\xfc")
    local n = 0
    vm:on_io(0x80, function() n = n + 1; if n % 2 == 0 then vm:stop() end end)
    vm:run()
    vm:run()
    assert.equal(4, n)
  end)

  it("ends on its timeout while the guest spins without exits", function()
    local vm <close> = H.real("\xeb\xfe")
    local r = vm:run{ timeout = 0.3 }
    assert.equal("timeout", r.reason)
    assert.equal(0x8000, r.rip)
  end)

  it("ends on its timeout while a handler never returns", function()
    local vm <close> = H.real("\xe6\x80" .. HLT)
    vm:on_io(0x80, function() while true do end end)
    assert.equal("timeout", vm:run{ timeout = 0.3 }.reason)
  end)

  it("rejects a bad timeout", function()
    local vm <close> = H.real(HLT)
    assert.matches("timeout must be a positive number", H.error_of(vm.run, vm, { timeout = -1 }))
    assert.matches("timeout must be a positive number", H.error_of(vm.run, vm, { timeout = "x" }))
  end)

  it("stops with the isa-debug-exit code", function()
    local vm <close> = H.real("\xb0\x2a\xe6\xf4" .. HLT)
    vm:debug_exit{ port = 0xf4 }
    local r = vm:run()
    assert.equal("exit", r.reason)
    assert.equal(42, r.code)
  end)

  it("writes debugcon output to a file", function()
    local path = os.tmpname()
    local vm <close> = H.real("\xb0\x4f\xe6\xe9\xb0\x4b\xe6\xe9\xe4\xe9\xa2\x00\x05" .. HLT)
    vm:debugcon{ port = 0xe9, path = path }
    vm:run()
    local f = assert(io.open(path))
    assert.equal("OK", f:read("a"))
    f:close()
    os.remove(path)
    assert.equal(0xe9, vm.memory:u8(0x500)) -- reads identify debugcon
  end)

  it("lets a run end at its timeout while nobody reads the output", function()
    local vm <close> = H.real("\xb0\x78\xe6\xe9\xeb\xfa") -- mov al, 'x'; out 0xe9, al; jmp back
    vm:debugcon{ path = H.stalled_fifo(finally) }
    local r = vm:run{ timeout = 1, raise = false }
    assert.equal("timeout", r.reason)
  end)

  it("refuses misspelt options of the debug ports and a path that is not a string", function()
    local vm <close> = H.real(HLT)
    assert.matches("debug_exit: unknown option 'prot' %(known: port, width%)",
                   H.error_of(vm.debug_exit, vm, { prot = 0xf4 }))
    assert.matches("debugcon: unknown option 'file' %(known: port, path%)",
                   H.error_of(vm.debugcon, vm, { file = "x" }))
    assert.matches("debugcon: path must be a string %(got number%)",
                   H.error_of(vm.debugcon, vm, { path = 1 }))
  end)
end)

describe("unhandled accesses", function()
  it("stop the run by default, naming port, size, direction, value and rip", function()
    local vm <close> = H.real("\xb0\x12\xe6\x80" .. HLT)
    local err = H.error_of(vm.run, vm)
    assert.matches("cpu 0: unhandled I/O write to port 0x80 %(1 byte, value 0x12%)", err)
    assert.matches("rip 00000000000080", err)
    assert.matches("rax 0000000000000012", err)
    assert.matches("%(real mode%)", err)
  end)

  it("name MMIO reads", function()
    local vm <close> = H.long("\x8b\x04\x25" .. u32(0x300000) .. HLT) -- mov eax, [0x300000]
    assert.matches("unhandled MMIO read at 0x300000 %(4 bytes%)", H.error_of(vm.run, vm))
  end)

  it("read all-ones and drop writes under the ignore policy", function()
    local vm <close> = H.real("\xe6\x80\xe4\x60\xa2\x00\x05\xba\x60\x00\xed\xa3\x02\x05" .. HLT,
                              { unhandled = "ignore" })
    assert.equal("hlt", vm:run().reason)
    assert.equal(0xff, vm.memory:u8(0x500))
    assert.equal(0xffff, vm.memory:u16(0x502))
  end)

  it("go to a Lua catch-all when one is set", function()
    local vm <close> = H.real("\xb0\x05\xe6\x80\xe4\x61\xa2\x00\x05" .. HLT)
    local seen = {}
    vm:on_unhandled(function(_, kind, addr, size, value)
      seen[#seen + 1] = { kind, addr, size, value }
      if value == nil then return 0x42 end
    end)
    vm:run()
    assert.same({ { "io", 0x80, 1, 5 }, { "io", 0x61, 1 } }, seen)
    assert.equal(0x42, vm.memory:u8(0x500))
  end)

  it("include writes to read-only memory, named as such", function()
    local vm <close> = H.long("\xc6\x04\x25" .. u32(0x200000) .. "\x01" .. HLT) -- mov byte [0x200000], 1
    vm.memory:map{ gpa = 0x200000, size = 4096, name = "rom", readonly = true }
    assert.matches("write to read%-only memory region 'rom' at 0x200000 %(1 byte, value 0x1%)",
                   H.error_of(vm.run, vm))
  end)

  it("reach an MMIO handler placed over read-only memory", function()
    local vm <close> = H.long("\xc6\x04\x25" .. u32(0x200010) .. "\x07" .. HLT)
    vm.memory:map{ gpa = 0x200000, size = 4096, name = "flash", readonly = true }
    local got
    vm:on_mmio(0x200000, 4096, function(_, offset, size, value) got = { offset, size, value } end)
    vm:run()
    assert.same({ 0x10, 1, 7 }, got)
  end)

  it("include unknown hypercalls", function()
    local vm <close> = H.long(hypercall_code(9, { 1, 2, 0, 0, 0, 0 }))
    assert.matches("unknown hypercall 9 %(rdi 0x1, rsi 0x2%)", H.error_of(vm.run, vm))
    local ignoring <close> = H.long(hypercall_code(9, { 1, 2, 0, 0, 0, 0 }), { unhandled = "ignore" })
    ignoring:run()
    assert.equal(-38, ignoring.memory:u64(0x9000)) -- -ENOSYS
  end)
end)

describe("a failing handler", function()
  it("stops the run with its message, traceback, the access and rip", function()
    local vm <close> = H.real("\xb0\x41\xe6\x80" .. HLT)
    vm:on_io(0x80, function() error("device on fire") end)
    local err = H.error_of(vm.run, vm)
    assert.matches("cpu 0: Lua handler for I/O write to port 0x80 %(1 byte, value 0x41%) failed:", err)
    assert.matches("run_spec.lua:%d+: device on fire", err)
    assert.matches("stack traceback:", err)
    assert.matches("rip 0000000000008", err)
  end)

  it("is reported when a read returns something that is not an integer", function()
    local vm <close> = H.real("\xe4\x60" .. HLT)
    vm:on_io(0x60, function() return "yes" end)
    assert.matches("Lua handler for I/O read from port 0x60 %(1 byte%) returned a string",
                   H.error_of(vm.run, vm))
  end)

  it("fails when it yields", function()
    local vm <close> = H.real("\xe6\x80" .. HLT)
    vm:on_io(0x80, function() coroutine.yield() end)
    assert.matches("attempt to yield", H.error_of(vm.run, vm))
  end)

  it("cannot run or close the VM it is running in", function()
    local vm <close> = H.real("\xe6\x80\xe6\x81" .. HLT)
    local errs = {}
    vm:on_io(0x80, function() errs[1] = H.error_of(vm.run, vm) end)
    vm:on_io(0x81, function() errs[2] = H.error_of(vm.close, vm) end)
    vm:run()
    assert.matches("already running", errs[1])
    assert.matches("cannot close a running VM", errs[2])
  end)

  it("can be returned instead of raised", function()
    local vm <close> = H.real("\xe6\x80" .. HLT)
    vm:on_io(0x80, function() error("nope") end)
    local r = vm:run{ raise = false }
    assert.equal("fault", r.reason)
    assert.equal("handler", r.fault)
    assert.matches("nope", r.message)
  end)
end)

describe("guest faults", function()
  it("decode a triple fault with registers", function()
    local vm <close> = H.long("\x0f\x0b") -- ud2 with an empty IDT
    local err = H.error_of(vm.run, vm)
    assert.matches("cpu 0: triple fault %(KVM_EXIT_SHUTDOWN%)", err)
    assert.matches("cr0 0000000080010033", err)
    assert.matches("%(64%-bit long mode%)", err)
  end)

  it("decode running off into unmapped memory", function()
    local vm <close> = H.long("\x48\xb8" .. u64(0x40000000) .. "\xff\xe0") -- jmp 0x40000000
    local err = H.error_of(vm.run, vm)
    assert.matches("KVM_EXIT_INTERNAL_ERROR, suberror 1: emulation failure", err)
    assert.matches("rip 0000000040000000", err)
    assert.matches("not in guest memory", err)
  end)

  it("come back as a result with raise = false", function()
    local vm <close> = H.long("\x0f\x0b")
    local r = vm:run{ raise = false }
    assert.equal("fault", r.reason)
    assert.equal("shutdown", r.fault)
  end)
end)

describe("handlers", function()
  it("are replaced in place, keeping the range", function()
    local vm <close> = H.real("\xe6\x80\xe6\x80" .. HLT)
    local log = {}
    vm:on_io(0x80, function() log[#log + 1] = "old"; vm:on_io(0x80, function() log[#log + 1] = "new" end) end)
    vm:run()
    assert.same({ "old", "new" }, log)
  end)

  it("are removed with nil, after which the port is unhandled", function()
    local vm <close> = H.real("\xe6\x80" .. HLT)
    vm:on_io(0x80, function() end)
    vm:on_io(0x80, nil)
    assert.matches("unhandled I/O write to port 0x80", H.error_of(vm.run, vm))
    assert.matches("no handler covers exactly", H.error_of(vm.on_io, vm, 0x80, nil))
  end)

  it("may not overlap, and the message names the other one", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    vm:on_io(0x60, 4, function() end)
    assert.matches("port range %[0x62, 0x63%) for 'Lua handler .*run_spec.lua:%d+' overlaps %[0x60, 0x64%) of 'Lua handler .*run_spec.lua:%d+'",
                   H.error_of(vm.on_io, vm, 0x62, 1, function() end))
    assert.matches("overlaps %[0xabba, 0xabbe%) of 'hypercall'",
                   H.error_of(vm.on_io, vm, 0xabbb, 1, function() end))
    vm:on_mmio(MMIO, 0x1000, function() end)
    assert.matches("MMIO range .* overlaps", H.error_of(vm.on_mmio, vm, MMIO + 0x800, 0x1000, function() end))
    vm:debugcon{ port = 0xe9 }
    assert.matches("belongs to 'debugcon', which is not a Lua handler",
                   H.error_of(vm.on_io, vm, 0xe9, 1, function() end))
  end)

  it("are checked for range and type", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.matches("outside the address space", H.error_of(vm.on_io, vm, 0xffff, 2, function() end))
    assert.matches("must not be negative", H.error_of(vm.on_io, vm, -1, 1, function() end))
    assert.matches("length must be a positive integer", H.error_of(vm.on_io, vm, 0x80, 0, function() end))
    assert.matches("function, integer or nil expected, got string", H.error_of(vm.on_io, vm, 0x80, 1, "x"))
    assert.matches("overlaps memory region 'ram'", H.error_of(vm.on_mmio, vm, 0x1000, 16, function() end))
    assert.matches("hypercall numbers are 0 to 2%^32%-1", H.error_of(vm.on_hypercall, vm, -1, function() end))
  end)
end)

describe("stepping", function()
  it("returns each exit before its handler sees it", function()
    local vm <close> = H.real("\xb0\x48\xe6\xe9\xe4\x60\xa2\x00\x05" .. HLT)
    local handled = {}
    vm:on_io(0xe9, function(_, _, _, v) handled[#handled + 1] = v end)
    vm:on_io(0x60, function() return 0x33 end)
    local cpu = vm:cpu(0)
    local e = cpu:step()
    assert.same({ reason = "io", dir = "out", write = true, port = 0xe9, size = 1, count = 1,
                  value = 0x48, cpu = 0, rip = e.rip }, e)
    assert.same({}, handled)
    e = cpu:step()
    assert.same({ 0x48 }, handled)
    assert.equal("in", e.dir)
    assert.equal(0x60, e.port)
    cpu:reply(0x77)   -- answer the read ourselves; the handler never runs
    e = cpu:step()
    assert.equal("hlt", e.reason)
    assert.equal(0x77, vm.memory:u8(0x500))
    assert.equal("hlt", vm:run().reason)
  end)

  it("refuses a reply when no I/O exit is pending", function()
    local vm <close> = H.real(HLT)
    assert.matches("no I/O or MMIO exit is pending", H.error_of(vm:cpu(0).reply, vm:cpu(0), 1))
  end)
end)

describe("constant registers", function()
  it("answer port, MMIO and hypercall reads in C, without Lua", function()
    local code = "\xe4\x60\x88\x04\x25" .. u32(0x9010)                    -- in al, 0x60
      .. "\xa1" .. u64(MMIO) .. "\x89\x04\x25" .. u32(0x9008)             -- mov eax, [MMIO]
      .. "\xb8\x05\x00\x00\x00\x66\xba\xba\xab\xef\x48\x89\x04\x25" .. u32(0x9000) -- hypercall 5
      .. "\xe6\x60" .. HLT                                                 -- a write: ignored
    local vm <close> = H.long(code)
    vm:on_io(0x60, 0x5a)
    vm:on_mmio(MMIO, 0x1000, 0xabcdef)
    vm:on_hypercall(5, 12345)
    assert.equal("hlt", vm:run().reason)
    assert.equal(0x5a, vm.memory:u8(0x9010))
    assert.equal(0xabcdef, vm.memory:u32(0x9008))
    assert.equal(12345, vm.memory:u64(0x9000))
    local s = vm:stats()
    assert.equal(4, s.handlers.c.calls)
    assert.equal(0, s.handlers.lua.calls)
  end)

  it("change value in place, and swap with a Lua handler either way", function()
    local vm <close> = H.real("\xe4\x60\xa2\x00\x05" .. HLT)
    vm:on_io(0x60, 1)
    vm:on_io(0x60, 2)
    vm:run()
    assert.equal(2, vm.memory:u8(0x500))
    vm:on_io(0x60, function() return 3 end)
    vm:cpu(0).rip = 0x8000
    vm:run()
    assert.equal(3, vm.memory:u8(0x500))
    vm:on_io(0x60, 4)
    vm:cpu(0).rip = 0x8000
    vm:run()
    assert.equal(4, vm.memory:u8(0x500))
    vm:on_io(0x60, nil)
    vm:cpu(0).rip = 0x8000
    assert.matches("unhandled I/O read from port 0x60", H.error_of(vm.run, vm))
  end)

  it("limit constant hypercalls to numbers below 256", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.matches("constant hypercalls are numbered 0 to 255",
                   H.error_of(vm.on_hypercall, vm, 256, 1))
  end)
end)
