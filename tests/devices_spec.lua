-- The platform devices in C: the 16550A UART (vm:serial), the i8042 (vm:i8042)
-- and the CMOS/RTC (vm:rtc). A real-mode guest (guests/portscript16.S) does
-- the port I/O a script tells it to and stores what it reads; the specs
-- build the scripts, run them and look at the results, the interrupt lines,
-- the files the UART wrote and the terminal it leaves behind.
local vmm = require "vmm"
local H = require "helper"

local COM1, COM2, COM3 = 0x3f8, 0x2f8, 0x3e8
local RBR, IER, IIR, LCR, MCR, LSR, MSR, SCR = 0, 1, 2, 3, 4, 5, 6, 7
local FCR, THR, DLL, DLM = 2, 0, 0, 1
local SCRIPT, RESULTS, NEXT_RESULT = 0xa000, 0xc000, 0x9ff0

-- ---- scripts for portscript16 ----

local function op(code, size, port, value)
  return string.pack("<BBI2I4", code, size, port, value & 0xffffffff)
end

local S = {}
function S.out(port, value, size) return op(1, size or 1, port, value) end
function S.inp(port, size) return op(2, size or 1, port, 0) end
function S.poll(port, mask, expect) return op(3, 1, port, mask | expect << 8) end
-- rep outs of count items of size bytes from segment seg, offset 0
function S.outs(port, seg, count, size) return op(4, size or 1, port, count | seg << 16) end
function S.wait() return op(5, 0, 0, 0) end
function S.pic(irq, uart) return op(6, 0, uart, irq) end
function S.delay(n) return op(7, 0, 0, n) end
function S.echo(uart, last) return op(8, 0, uart, last:byte()) end
function S.readn(uart, n) return op(9, 0, uart, n) end
-- a write to port 0x80, where the specs put a Lua handler that looks around
function S.mark(n) return S.out(0x80, n or 0) end

-- A VM running the script (a list of operations; END is appended) with
-- the debug-exit port the script ends at. opts: memory, irqchip, unhandled.
local function guest(ops, opts)
  opts = opts or {}
  local vm = vmm.vm{ memory = opts.memory or "1M", irqchip = opts.irqchip,
                     unhandled = opts.unhandled }
  vm:load(H.guest("portscript16.bin"), 0x8000)
  vm.memory:write(SCRIPT, table.concat(ops) .. op(0, 0, 0, 0))
  vm:cpu(0):set_mode("real")
  vm:debug_exit{}
  return vm
end

-- What the guest read, in order.
local function results(vm)
  local out = {}
  for a = RESULTS, vm.memory:u16(NEXT_RESULT) - 4, 4 do out[#out + 1] = vm.memory:u32(a) end
  return out
end

-- Runs to the end of the script and returns the results.
local function run(vm, timeout)
  local r = vm:run{ timeout = timeout or 10 }
  assert.equal("exit", r.reason)
  return results(vm)
end

local function hex(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = string.format("0x%x", v) end
  return table.concat(t, " ")
end

-- ---- the UART ----

describe("the 16550A UART", function()
  local files = {}
  local function file(content)
    local p = H.tmpfile(content)
    files[#files + 1] = p
    return p
  end
  after_each(function()
    for _, p in ipairs(files) do os.remove(p) end
    files = {}
  end)

  it("keeps the scratch register and reads back LCR, MCR and IER", function()
    local vm <close> = guest{
      S.out(COM1 + SCR, 0x5a), S.inp(COM1 + SCR), S.out(COM1 + SCR, 0xa5), S.inp(COM1 + SCR),
      S.out(COM1 + LCR, 0x1b), S.inp(COM1 + LCR),
      S.out(COM1 + MCR, 0x0b), S.inp(COM1 + MCR), S.out(COM1 + MCR, 0xff), S.inp(COM1 + MCR),
      S.out(COM1 + IER, 0xff), S.inp(COM1 + IER), S.out(COM1 + IER, 0), S.inp(COM1 + IER),
    }
    vm:serial{ output = false, input = false }
    -- MCR keeps its five bits, IER its four (Linux's probe checks both)
    assert.same({ 0x5a, 0xa5, 0x1b, 0x0b, 0x1f, 0x0f, 0 }, run(vm))
  end)

  it("latches the divisor behind DLAB and keeps it apart from THR and IER", function()
    local out = file()
    local vm <close> = guest{
      S.inp(COM1 + LCR),
      S.out(COM1 + LCR, 0x83), S.inp(COM1 + DLL), S.inp(COM1 + DLM), -- 9600 baud at reset
      S.out(COM1 + DLL, 0x01), S.out(COM1 + DLM, 0x02), S.inp(COM1 + DLL), S.inp(COM1 + DLM),
      S.out(COM1 + LCR, 0x03), S.inp(COM1 + IER), S.out(COM1 + THR, 0x41), S.out(COM1 + IER, 5),
      S.out(COM1 + LCR, 0x83), S.inp(COM1 + DLL), S.inp(COM1 + DLM), S.inp(COM1 + LCR),
      S.out(COM1 + LCR, 0x03), S.inp(COM1 + IER),
    }
    vm:serial{ output = out, input = false }
    assert.same({ 0, 12, 0, 1, 2, 0, 1, 2, 0x83, 5 }, run(vm))
    assert.equal("A", H.read_file(out)) -- the divisor writes sent nothing
  end)

  it("shows THRE and TEMT in LSR before and after a write", function()
    local vm <close> = guest{ S.inp(COM1 + LSR), S.out(COM1 + THR, 0x41), S.inp(COM1 + LSR) }
    vm:serial{ output = false, input = false }
    assert.same({ 0x60, 0x60 }, run(vm))
  end)

  it("writes what the guest sends to a file, in order", function()
    local out = file()
    local text = "Hello, UART!\nno newline at the end"
    local vm <close> = guest{ S.outs(COM1, 0x2000, #text) }
    vm.memory:write(0x20000, text)
    vm:serial{ output = out, input = false }
    run(vm)
    assert.equal(text, H.read_file(out))
  end)

  it("loses nothing of thousands of bytes written in a burst", function()
    local out = file()
    local chunk = {}
    for i = 0, 19999 do chunk[#chunk + 1] = string.char(32 + i % 95) end
    chunk = table.concat(chunk)
    -- 20000 bytes, then 3 x 20000 more as words and dwords: every byte counts
    local vm <close> = guest{ S.outs(COM1, 0x2000, #chunk), S.outs(COM1, 0x2000, #chunk // 2, 2),
                              S.outs(COM1, 0x2000, #chunk // 4, 4) }
    vm.memory:write(0x20000, chunk)
    vm:serial{ output = out, input = false }
    run(vm, 60)
    -- each word and dword is split over THR and the registers after it:
    -- only the low byte of each reaches the output
    local words, dwords = {}, {}
    for i = 1, #chunk, 2 do words[#words + 1] = chunk:sub(i, i) end
    for i = 1, #chunk, 4 do dwords[#dwords + 1] = chunk:sub(i, i) end
    local got = H.read_file(out)
    assert.equal(#chunk + #chunk // 2 + #chunk // 4, #got)
    assert.is_true(got == chunk .. table.concat(words) .. table.concat(dwords),
                   "the output differs from what the guest wrote")
  end)

  it("loops a byte back to RBR in loopback mode and sends nothing out", function()
    local out = file()
    local vm <close> = guest{
      S.out(COM1 + MCR, 0x10), S.out(COM1 + THR, 0x42),
      S.inp(COM1 + LSR), S.inp(COM1 + RBR), S.inp(COM1 + LSR),
    }
    vm:serial{ output = out, input = false }
    assert.same({ 0x61, 0x42, 0x60 }, run(vm))
    assert.equal("", H.read_file(out))
  end)

  it("reflects MCR in MSR in loopback, with the delta bits, and a live line otherwise", function()
    local vm <close> = guest{
      S.inp(COM1 + MSR),                                 -- DCD, DSR, CTS present
      S.out(COM1 + MCR, 0x10), S.inp(COM1 + MSR), S.inp(COM1 + MSR), -- all three dropped
      S.out(COM1 + MCR, 0x13), S.inp(COM1 + MSR), S.inp(COM1 + MSR), -- DTR, RTS -> DSR, CTS
      S.out(COM1 + MCR, 0x1c), S.inp(COM1 + MSR),         -- OUT1, OUT2 -> RI, DCD
      S.out(COM1 + MCR, 0x18), S.inp(COM1 + MSR),         -- RI falls: TERI
      S.out(COM1 + MCR, 0x00), S.inp(COM1 + MSR), S.inp(COM1 + MSR),
    }
    vm:serial{ output = false, input = false }
    assert.equal(hex{ 0xb0, 0x0b, 0x00, 0x33, 0x30, 0xcb, 0x84, 0xb3, 0xb0 }, hex(run(vm)))
  end)

  it("reports an overrun when the receive FIFO overflows, and keeps the first 16", function()
    local bytes = ""
    for i = 1, 17 do bytes = bytes .. string.char(i) end
    local ops = { S.out(COM1 + FCR, 0x01), S.out(COM1 + MCR, 0x10), S.outs(COM1, 0x2000, 17),
                  S.inp(COM1 + LSR), S.inp(COM1 + LSR) }
    for _ = 1, 16 do ops[#ops + 1] = S.inp(COM1 + RBR) end
    ops[#ops + 1] = S.inp(COM1 + LSR)
    local vm <close> = guest(ops)
    vm.memory:write(0x20000, bytes)
    vm:serial{ output = false, input = false }
    local r = run(vm)
    assert.same({ 0x63, 0x61 }, { r[1], r[2] }) -- OE, then cleared by the read
    for i = 1, 16 do assert.equal(i, r[2 + i]) end
    assert.equal(0x60, r[19])
  end)

  it("overwrites the unread byte without FIFOs, and reports the overrun", function()
    local vm <close> = guest{ S.out(COM1 + MCR, 0x10), S.out(COM1 + THR, 0x61),
                              S.out(COM1 + THR, 0x62), S.inp(COM1 + LSR), S.inp(COM1 + RBR),
                              S.inp(COM1 + LSR) }
    vm:serial{ output = false, input = false }
    assert.same({ 0x63, 0x62, 0x60 }, run(vm))
  end)

  it("identifies interrupts in IIR by priority, with the FIFO bits when FIFOs are on", function()
    local bytes = string.rep("x", 17)
    local vm <close> = guest{
      S.inp(COM1 + IIR),                                   -- 0x01: nothing, FIFOs off
      S.out(COM1 + FCR, 0xc7), S.inp(COM1 + IIR),          -- 0xc1: FIFOs on (trigger 14)
      S.out(COM1 + MCR, 0x10),                             -- loopback: modem deltas
      S.out(COM1 + IER, 0x0f),                             -- THR empty, raised at once
      S.inp(COM1 + IIR), S.inp(COM1 + IIR),                -- 0xc2 over 0xc0; reading acks
      S.inp(COM1 + MSR), S.inp(COM1 + IIR),                -- deltas read: 0xc1
      S.out(COM1 + THR, 0x41), S.inp(COM1 + IIR),          -- data below trigger: 0xcc
      S.inp(COM1 + RBR), S.inp(COM1 + IIR), S.inp(COM1 + IIR), -- then THR empty, then none
      S.outs(COM1, 0x2000, 17), S.inp(COM1 + IIR),         -- overrun: line status, 0xc6
      S.inp(COM1 + LSR), S.inp(COM1 + IIR),                -- 16 at trigger 14: 0xc4
      S.inp(COM1 + RBR), S.inp(COM1 + RBR), S.inp(COM1 + RBR), S.inp(COM1 + IIR), -- 13: 0xcc
      S.out(COM1 + FCR, 0x03), S.inp(COM1 + IIR), S.inp(COM1 + IIR), -- cleared: THRE, none
      S.out(COM1 + FCR, 0x00), S.inp(COM1 + IIR),          -- FIFOs off: 0x01
    }
    vm.memory:write(0x20000, bytes)
    vm:serial{ output = false, input = false }
    assert.equal(hex{ 0x01, 0xc1, 0xc2, 0xc0, 0x0b, 0xc1, 0xcc, 0x41, 0xc2, 0xc1,
                      0xc6, 0x63, 0xc4, 0x78, 0x78, 0x78, 0xcc, 0xc2, 0xc1, 0x01 },
                 hex(run(vm)))
  end)

  it("drives its interrupt line from IER, OUT2 and what is pending", function()
    local levels = {}
    local vm <close> = guest{
      S.mark(),                                          -- low
      S.out(COM1 + IER, 0x02), S.mark(),                  -- THR empty pending, OUT2 off: low
      S.out(COM1 + MCR, 0x08), S.mark(),                  -- OUT2: high
      S.inp(COM1 + IIR), S.mark(),                        -- acknowledged: low
      S.out(COM1 + IER, 0x00), S.out(COM1 + IER, 0x02), S.mark(), -- enabled again: high
      S.out(COM1 + IER, 0x00), S.mark(),                  -- disabled: low
      S.out(COM1 + IER, 0x02), S.mark(),                  -- high
      S.out(COM1 + MCR, 0x18), S.mark(),                  -- loopback closes the OUT2 gate: low
      S.out(COM1 + MCR, 0x08), S.mark(),                  -- high
      S.inp(COM1 + IIR), S.out(COM1 + THR, 0x41), S.mark(), -- THR written: empty again, high
      S.out(COM1 + IER, 0x01), S.mark(),                  -- only "data": low
      S.out(COM1 + MCR, 0x18), S.out(COM1 + THR, 0x41), S.out(COM1 + MCR, 0x08), S.mark(), -- high
      S.inp(COM1 + RBR), S.mark(),                        -- low
    }
    vm:serial{ output = false, input = false }
    vm:on_io(0x80, function() levels[#levels + 1] = vm:irq_level(4) end)
    run(vm)
    assert.same({ false, false, true, false, true, false, true, false, true, true, false, true,
                  false }, levels)
    assert.is_false(vm.irqchip)
  end)

  it("shares a line with another UART as a wired OR", function()
    local levels = {}
    local vm <close> = guest{
      S.out(COM1 + MCR, 0x08), S.out(COM1 + IER, 0x02), S.mark(), -- COM1 up
      S.out(COM3 + MCR, 0x08), S.out(COM3 + IER, 0x02), S.mark(), -- both
      S.out(COM1 + IER, 0x00), S.mark(),                          -- COM3 still holds it
      S.out(COM3 + IER, 0x00), S.mark(),                          -- low
    }
    vm:serial{ output = false, input = false }
    vm:serial{ port = COM3, output = false, input = false } -- IRQ 4 too
    vm:serial{ port = COM2, output = false, input = false } -- IRQ 3
    vm:on_io(0x80, function() levels[#levels + 1] = { vm:irq_level(4), vm:irq_level(3) } end)
    run(vm)
    assert.same({ { true, false }, { true, false }, { true, false }, { false, false } }, levels)
  end)

  it("delivers 'THR empty' through the in-kernel PIC to the guest's handler", function()
    local vm <close> = guest({
      S.pic(4, COM1), S.out(COM1 + MCR, 0x08), S.out(COM1 + IER, 0x02),
      S.wait(), S.inp(COM1 + SCR),
    }, { irqchip = true })
    vm:serial{ output = false, input = false }
    -- the handler: IIR says THR empty (which acknowledges it), then nothing
    assert.equal(hex{ 0x102, 0x101, 0 }, hex(run(vm)))
    assert.is_false(vm:irq_level(4))
  end)

  -- Turning the FIFOs on empties them, so a guest that does it while input
  -- arrives loses what came before, as on hardware. These specs turn them
  -- on from Lua before the run instead, and the input thread starts with
  -- the run.
  local function fifo_on(vm, fcr)
    vm:dispatch{ kind = "io", addr = COM1 + FCR, size = 1, value = fcr }
  end

  it("delivers received data through the in-kernel PIC to the guest's handler", function()
    local input = file("hi")
    local vm <close> = guest({
      S.pic(4, COM1), S.out(COM1 + MCR, 0x08), S.out(COM1 + IER, 0x01), S.wait(),
      S.inp(COM1 + LSR),
    }, { irqchip = true })
    vm:serial{ output = false, input = input }
    fifo_on(vm, 0x07)
    -- data available (FIFO bits on), both bytes, then no interrupt
    assert.equal(hex{ 0x1c4, 0x268, 0x269, 0x1c1, 0x60 }, hex(run(vm)))
  end)

  it("delivers a byte received without FIFOs to the guest's handler", function()
    local input = file("h")
    local vm <close> = guest({
      S.pic(4, COM1), S.out(COM1 + MCR, 0x08), S.out(COM1 + IER, 0x01), S.wait(),
      S.inp(COM1 + LSR),
    }, { irqchip = true })
    vm:serial{ output = false, input = input }
    assert.equal(hex{ 0x104, 0x268, 0x101, 0x60 }, hex(run(vm)))
  end)

  it("feeds input from a file through the FIFO without losing a byte", function()
    local data = {}
    for i = 1, 1000 do data[i] = string.char(i * 7 % 256) end
    data = table.concat(data)
    local input = file(data)
    local vm <close> = guest{
      S.delay(100000), S.inp(COM1 + LSR), S.readn(COM1, #data), S.inp(COM1 + LSR),
    }
    vm:serial{ output = false, input = input, escape = false }
    fifo_on(vm, 0x07)
    local r = run(vm, 60)
    assert.equal(0x61, r[1]) -- data, and no overrun: the thread waited for room
    local got = {}
    for i = 2, #data + 1 do got[#got + 1] = string.char(r[i]) end
    assert.is_true(table.concat(got) == data, "the guest read something else")
    assert.equal(0x60, r[#r])
  end)

  it("waits while the guest reads nothing, stops at the timeout, and goes on next run", function()
    local data = string.rep("0123456789", 50)
    local input = file(data)
    local go = false
    local vm <close> = guest{ S.poll(0x81, 0x01, 0x01), S.inp(COM1 + LSR), S.readn(COM1, #data) }
    vm:on_io(0x81, function() return go and 1 or 0 end)
    vm:serial{ output = false, input = input, escape = false }
    fifo_on(vm, 0x01)
    local r = vm:run{ timeout = 0.5 }
    assert.equal("timeout", r.reason) -- the input thread did not hold the run up
    go = true
    local got = run(vm, 60)
    assert.equal(0x61, got[1])
    local text = {}
    for i = 2, #got do text[#text + 1] = string.char(got[i]) end
    assert.equal(data, table.concat(text))
  end)

  it("passes Ctrl-A Ctrl-A as one Ctrl-A, and Ctrl-A with anything else as both", function()
    local input = file("ab\1\1c\1zq")
    local vm <close> = guest{ S.readn(COM1, 7) }
    vm:serial{ output = false, input = input }
    assert.same({ 0x61, 0x62, 0x01, 0x63, 0x01, 0x7a, 0x71 }, run(vm))
  end)

  it("ends the run with reason 'quit' at Ctrl-A x in its input", function()
    local input = file("ab\1xcd")
    local vm <close> = guest{ S.readn(COM1, 10) }
    vm:serial{ output = false, input = input }
    local r = vm:run{ timeout = 10 }
    assert.equal("quit", r.reason)
    -- the guest may have read some of what came before, nothing after
    local got = results(vm)
    assert.is_true(#got <= 2)
    for i, b in ipairs(got) do assert.equal(("ab"):byte(i), b) end
  end)

  it("takes no escape when told so", function()
    local input = file("\1x")
    local vm <close> = guest{ S.readn(COM1, 2) }
    vm:serial{ output = false, input = input, escape = false }
    assert.same({ 0x01, 0x78 }, run(vm))
  end)

  it("splits wider accesses into byte registers, as an ISA bus does", function()
    local out = file()
    local vm <close> = guest{
      S.out(COM1, 0x0541, 2), S.inp(COM1 + IER),                  -- THR 'A', IER 5
      S.out(COM1 + MCR, 0x7700c803, 4), S.inp(COM1 + MCR, 4),     -- MCR 3, SCR 0x77
      S.inp(COM1 + LSR, 2),                                       -- LSR, MSR
      S.out(COM1 + 2, 0x8300, 2), S.inp(COM1, 4),                 -- DLAB: DLL, DLM, IIR, LCR
    }
    vm:serial{ output = out, input = false }
    local r = run(vm)
    assert.equal(hex{ 0x05, 0x77b06003, 0xb060, 0x8301000c }, hex(r))
    assert.equal("A", H.read_file(out))
  end)

  it("leaves an access that runs past its last register to the unhandled policy", function()
    local vm <close> = guest{ S.out(COM1 + SCR, 0x12), S.inp(COM1 + SCR, 2) }
    vm:serial{ output = false, input = false }
    local r = vm:run{ timeout = 5, raise = false }
    assert.equal("fault", r.reason)
    assert.matches("unhandled I/O read from port 0x3ff %(2 bytes%)", r.message)

    local vm2 <close> = guest({ S.out(COM1 + SCR, 0x12), S.inp(COM1 + SCR, 2),
                                S.out(COM1 + SCR, 0x3456, 2), S.inp(COM1 + SCR) },
                              { unhandled = "ignore" })
    vm2:serial{ output = false, input = false }
    assert.same({ 0xffff, 0x12 }, run(vm2))
  end)

  it("is driven from Lua with vm:dispatch too", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    vm:serial{ output = false, input = false }
    vm:dispatch{ kind = "io", addr = COM1 + SCR, size = 1, value = 0x99 }
    assert.equal(0x99, vm:dispatch{ kind = "io", addr = COM1 + SCR, size = 1 })
    assert.equal(0x60, vm:dispatch{ kind = "io", addr = COM1 + LSR, size = 1 })
  end)
end)

describe("vm:serial", function()
  it("checks its options", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.matches("serial: unknown option 'baud' %(known: port, irq, input, output, escape%)",
                   H.error_of(vm.serial, vm, { baud = 9600 }))
    assert.matches("serial: port must be an integer from 0 to 65528",
                   H.error_of(vm.serial, vm, { port = 0xfffc }))
    assert.matches("serial: irq must be an integer from 0 to 23",
                   H.error_of(vm.serial, vm, { irq = 24 }))
    assert.matches("serial: input must be \"stdin\", false or a path, not number",
                   H.error_of(vm.serial, vm, { input = 0 }))
    assert.matches("serial: output must be \"stdout\", \"stderr\", false or a path, not boolean",
                   H.error_of(vm.serial, vm, { output = true }))
    assert.matches("serial: cannot open output /nonexistent/out: No such file or directory",
                   H.error_of(vm.serial, vm, { output = "/nonexistent/out", input = false }))
    assert.matches("serial: cannot open input /nonexistent/in: No such file or directory",
                   H.error_of(vm.serial, vm, { output = false, input = "/nonexistent/in" }))
  end)

  it("refuses a port range that is taken, naming both", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    vm:serial{ output = false, input = false }
    assert.matches("serial: port range %[0x3fc, 0x404%) for 'serial' overlaps %[0x3f8, 0x400%) "
                   .. "of 'serial'", H.error_of(vm.serial, vm, { port = 0x3fc, output = false,
                                                                 input = false }))
    vm:on_io(0x2f8, function() end)
    assert.matches("overlaps %[0x2f8, 0x2f9%)", H.error_of(vm.serial, vm, { port = 0x2f8,
                                                                           output = false,
                                                                           input = false }))
  end)

  it("lets only one UART read stdin", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    vm:serial{ input = "stdin", output = false }
    assert.matches("serial: stdin is already the input of the UART at port 0x3f8",
                   H.error_of(vm.serial, vm, { port = 0x2f8, input = "stdin", output = false }))
    vm:close()
    local vm2 <close> = vmm.vm{ memory = "1M" } -- closing the VM gave stdin back
    vm2:serial{ input = "stdin", output = false }
  end)

  it("cannot be added while the VM runs", function()
    local vm <close> = guest{ S.mark() }
    local err
    vm:on_io(0x80, function() err = H.error_of(vm.serial, vm, { port = 0x2f8 }) end)
    run(vm)
    assert.matches("serial: the VM is running; add devices before running it", err)
  end)
end)

-- ---- the i8042 ----

describe("the i8042", function()
  it("answers the status register, the self-test and the command byte", function()
    local vm <close> = guest{
      S.inp(0x64),                                  -- system flag, unlocked
      S.out(0x64, 0xaa), S.inp(0x64), S.inp(0x60), S.inp(0x64), -- self-test: 0x55
      S.out(0x64, 0x20), S.inp(0x60),               -- the command byte
      S.out(0x64, 0x60), S.out(0x60, 0x07), S.out(0x64, 0x20), S.inp(0x60), -- written back
      S.out(0x64, 0xad), S.out(0x64, 0xa7), S.out(0x64, 0x20), S.inp(0x60), -- both disabled
      S.out(0x64, 0xae), S.out(0x64, 0xa8), S.out(0x64, 0x20), S.inp(0x60), -- enabled
      S.out(0x64, 0xab), S.inp(0x60), S.out(0x64, 0xa9), S.inp(0x60),       -- port tests
      S.out(0x64, 0xd0), S.inp(0x60),               -- the output port: not in reset, A20
      S.out(0x64, 0xd2), S.out(0x60, 0x5a), S.inp(0x64), S.inp(0x60),
      S.out(0x64, 0xd3), S.out(0x60, 0xa5), S.inp(0x64), S.inp(0x60), S.inp(0x64),
    }
    vm:i8042{}
    assert.equal(hex{ 0x14, 0x1d, 0x55, 0x1c, 0x45, 0x07, 0x37, 0x07, 0x00, 0x00, 0x03,
                      0x15, 0x5a, 0x35, 0xa5, 0x14 }, hex(run(vm)))
  end)

  it("ends the run with reason 'reset' at command 0xfe", function()
    local vm <close> = guest{ S.inp(0x64), S.out(0x64, 0xfe), S.inp(0x64) }
    vm:i8042{}
    local r = vm:run{ timeout = 5 }
    assert.equal("reset", r.reason)
    assert.equal(0, r.cpu)
    assert.is_nil(r.code)
    assert.same({ 0x14 }, results(vm)) -- nothing after it ran
  end)

  it("resets when the output port's bit 0 is written low, and only then", function()
    local vm <close> = guest{ S.out(0x64, 0xd1), S.out(0x60, 0x03), S.inp(0x64),
                              S.out(0x64, 0xd1), S.out(0x60, 0x02), S.inp(0x64) }
    vm:i8042{}
    assert.equal("reset", vm:run{ timeout = 5 }.reason)
    assert.same({ 0x14 }, results(vm))
  end)

  it("ends a run of several vCPUs for all of them", function()
    local vm <close> = vmm.vm{ memory = "1M", cpus = 2 }
    vm:load(H.guest("portscript16.bin"), 0x8000)
    vm.memory:write(SCRIPT, S.out(0x64, 0xfe) .. op(0, 0, 0, 0))
    vm:cpu(0):set_mode("real")
    vm:cpu(1):set{ rip = 0x9000, cs = 0 }
    vm.memory:write(0x9000, "\xeb\xfe") -- the other vCPU spins
    vm:i8042{}
    local r = vm:run{ timeout = 10 }
    assert.equal("reset", r.reason)
    assert.equal(0, r.cpu)
    assert.equal("peer", r.cpus[2].reason)
  end)

  it("leaves a wider access to the unhandled policy", function()
    local vm <close> = guest({ S.inp(0x64, 2), S.inp(0x60, 4) }, { unhandled = "ignore" })
    vm:i8042{}
    assert.same({ 0xffff, 0xffffffff }, run(vm))
  end)

  it("takes no options and refuses a second one", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.matches("i8042: unknown option 'port' %(it takes none%)",
                   H.error_of(vm.i8042, vm, { port = 0x60 }))
    vm:i8042()
    assert.matches("i8042: port range %[0x60, 0x61%) for 'i8042' overlaps",
                   H.error_of(vm.i8042, vm, {}))
  end)
end)

-- ---- the RTC ----

-- 1700000000 is Tuesday 2023-11-14 22:13:20 UTC.
local T = 1700000000

local function clock_ops()
  local ops = {}
  for _, reg in ipairs{ 0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32, 0x0a, 0x0b, 0x0c, 0x0d } do
    ops[#ops + 1] = S.out(0x70, reg)
    ops[#ops + 1] = S.inp(0x71)
  end
  return ops
end

local function with(...)
  local all = {}
  for _, list in ipairs{ ... } do
    for _, o in ipairs(list) do all[#all + 1] = o end
  end
  return all
end

describe("the CMOS/RTC", function()
  it("reads a fixed time in BCD and 24-hour form by default", function()
    local vm <close> = guest(clock_ops())
    vm:rtc{ time = T }
    assert.equal(hex{ 0x20, 0x13, 0x22, 0x03, 0x14, 0x11, 0x23, 0x20, 0x26, 0x02, 0x00, 0x80 },
                 hex(run(vm)))
  end)

  it("reads it in binary when register B says so", function()
    local vm <close> = guest(with({ S.out(0x70, 0x0b), S.out(0x71, 0x06) }, clock_ops()))
    vm:rtc{ time = T }
    assert.equal(hex{ 20, 13, 22, 3, 14, 11, 23, 20, 0x26, 0x06, 0x00, 0x80 }, hex(run(vm)))
  end)

  it("reads hours in 12-hour form with the PM bit", function()
    local vm <close> = guest{
      S.out(0x70, 0x0b), S.out(0x71, 0x00), S.out(0x70, 0x04), S.inp(0x71), -- BCD 10 PM
      S.out(0x70, 0x0b), S.out(0x71, 0x04), S.out(0x70, 0x04), S.inp(0x71), -- binary
    }
    vm:rtc{ time = T }
    assert.same({ 0x90, 0x8a }, run(vm))

    local noon <close> = guest{ S.out(0x70, 0x0b), S.out(0x71, 0x00), S.out(0x70, 0x04),
                                S.inp(0x71) }
    noon:rtc{ time = 12 * 3600 } -- 1970-01-01 12:00:00
    assert.same({ 0x92 }, run(noon))
    local midnight <close> = guest{ S.out(0x70, 0x0b), S.out(0x71, 0x00), S.out(0x70, 0x04),
                                    S.inp(0x71), S.out(0x70, 0x32), S.inp(0x71) }
    midnight:rtc{ time = 0 }
    assert.same({ 0x12, 0x19 }, run(midnight))
  end)

  it("keeps the NMI mask out of the index", function()
    local vm <close> = guest{ S.out(0x70, 0x84), S.inp(0x71), S.out(0x70, 0x80), S.inp(0x71),
                              S.inp(0x70) }
    vm:rtc{ time = T }
    assert.same({ 0x22, 0x20, 0xff }, run(vm)) -- the index port reads nothing
  end)

  it("stores the other bytes, and keeps registers C and D read-only", function()
    local vm <close> = guest{
      S.out(0x70, 0x40), S.out(0x71, 0x99), S.out(0x70, 0x7f), S.out(0x71, 0x42),
      S.out(0x70, 0x40), S.inp(0x71), S.out(0x70, 0xff), S.inp(0x71),
      S.out(0x70, 0x0c), S.out(0x71, 0xff), S.inp(0x71), S.out(0x70, 0x0d), S.out(0x71, 0),
      S.inp(0x71), S.out(0x70, 0x0a), S.out(0x71, 0xff), S.inp(0x71),
    }
    vm:rtc{ time = T }
    assert.same({ 0x99, 0x42, 0x00, 0x80, 0x7f }, run(vm)) -- UIP never shows
  end)

  it("lets the guest set the clock, and survives nonsense", function()
    local vm <close> = guest{
      S.out(0x70, 0x09), S.out(0x71, 0x24), S.out(0x70, 0x04), S.out(0x71, 0x07),
      S.out(0x70, 0x08), S.out(0x71, 0xff), S.out(0x70, 0x32), S.out(0x71, 0x9a),
      S.out(0x70, 0x06), S.out(0x71, 0x01),
      S.out(0x70, 0x09), S.inp(0x71), S.out(0x70, 0x04), S.inp(0x71), S.out(0x70, 0x06),
      S.inp(0x71), S.out(0x70, 0x32), S.inp(0x71),
    }
    vm:rtc{ time = T }
    -- 2024-11-14 07:13:20 is a Thursday; month 0xff and century 0x9a (not
    -- BCD) were refused, and so was the weekday
    assert.equal(hex{ 0x24, 0x07, 0x05, 0x20 }, hex(run(vm)))
  end)

  it("reads the host's clock", function()
    local vm <close> = guest(clock_ops())
    vm:rtc{}
    local before = os.date("!*t")
    local r = run(vm)
    local after = os.date("!*t")
    local function bcd(v) return (v >> 4) * 10 + (v & 15) end
    local year = bcd(r[8]) * 100 + bcd(r[7])
    assert.is_true(year == before.year or year == after.year)
    assert.is_true(bcd(r[3]) == before.hour or bcd(r[3]) == after.hour)
  end)

  it("splits a 2-byte access into index and data, and leaves wider ones alone", function()
    local vm <close> = guest({ S.out(0x70, 0x5540, 2), S.out(0x70, 0x40), S.inp(0x71),
                               S.inp(0x70, 2), S.inp(0x70, 4) }, { unhandled = "ignore" })
    vm:rtc{ time = T }
    assert.equal(hex{ 0x55, 0x55ff, 0xffffffff }, hex(run(vm)))
  end)

  it("checks its options", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.matches("rtc: unknown option 'tz' %(known: time, utc%)",
                   H.error_of(vm.rtc, vm, { tz = "UTC" }))
    assert.matches("rtc: time must be \"host\" or whole seconds", H.error_of(vm.rtc, vm,
                                                                            { time = "now" }))
    assert.matches("rtc: time must be", H.error_of(vm.rtc, vm, { time = -1 }))
    assert.matches("rtc: time must be", H.error_of(vm.rtc, vm, { time = 1.5 }))
    vm:rtc{ time = "host", utc = false }
    assert.matches("rtc: port range %[0x70, 0x72%) for 'rtc' overlaps", H.error_of(vm.rtc, vm))
  end)
end)

-- ---- the UART on a real stdin ----

if not H.can_spawn then
  pending("the UART on stdin: " .. H.no_spawn_reason)
  return
end

-- A script for the luavmm program: a UART on stdin (its default when stdin is
-- a terminal), the guest prints a prompt without a newline and echoes what
-- it receives until 'q'; the result's reason goes to the file named by arg 1.
local CONSOLE = [[
local vm <close> = vmm.vm{ memory = "1M" }
vm:load(%q, 0x8000)
vm.memory:write(0xa000, %q)
vm.memory:write(0x20000, "login: ")
vm:cpu(0):set_mode("real")
vm:debug_exit{}
vm:serial(%s)
local r
if arg[2] == "crash" then
  -- a fatal signal in the middle of a background run: the terminal is raw
  vm:start()
  os.execute("stty -a >during")
  os.execute("kill -SEGV " .. io.open("/proc/self/stat"):read("n"))
  vmm.sleep(30)
  r = { reason = "alive" }
else
  r = vm:run{ timeout = tonumber(arg[2]) or 60 }
end
local f = io.open(arg[1], "w")
f:write(r.reason)
f:close()
]]

local function console_script(dir, serial_opts)
  local code = S.outs(COM1, 0x2000, 7) .. S.echo(COM1, "q") .. op(0, 0, 0, 0)
  return H.write_file(dir .. "/console.lua", CONSOLE:format(H.abs_build
    .. "/guests/portscript16.bin", code, serial_opts or "{}"))
end

describe("the UART on a pipe", function()
  local dir
  before_each(function() dir = H.tempdir() end)
  after_each(function() H.remove_tree(dir) end)

  it("stops on vm:stop while nobody reads its output", function()
    -- mov al, 'x'; mov dx, 0x3f8; out dx, al; jmp back
    local vm <close> = H.real("\xb0\x78\xba\xf8\x03\xee\xeb\xf8")
    vm:serial{ port = 0x3f8, output = H.stalled_fifo(finally), input = false }
    vm:start()
    vmm.sleep(0.5)
    vm:stop(5)
    local r = vm:wait{ timeout = 20 }
    assert.is_table(r, "the VM did not stop")
    assert.equal("stop", r.reason)
    assert.equal(5, r.code)
  end)

  it("reads stdin when asked, and echoes through stdout", function()
    console_script(dir, '{ input = "stdin" }')
    local r = H.sh("printf 'abcq' | " .. H.quote(H.luavmm) .. " console.lua result",
                   { dir = dir, limit = 60 })
    assert.equal(0, r.rc, r.err)
    assert.equal("login: abcq", r.out)
    assert.equal("exit", H.read_file(dir .. "/result"))
    assert.not_matches("Ctrl%-A", r.err) -- no terminal, no hint
  end)

  it("reads a FIFO as its writer writes, without blocking on opening it", function()
    local fifo = dir .. "/fifo"
    assert.is_true(os.execute("mkfifo " .. H.quote(fifo)))
    local vm <close> = guest{ S.readn(COM1, 3) }
    vm:serial{ output = false, input = fifo } -- no writer yet
    os.execute("(sleep 0.3; printf abc) >" .. H.quote(fifo) .. " &")
    assert.same({ 0x61, 0x62, 0x63 }, run(vm))
  end)

  it("does not take a pipe as input by default", function()
    console_script(dir)
    local r = H.sh("printf 'q' | " .. H.quote(H.luavmm) .. " console.lua result 1",
                   { dir = dir, limit = 60 })
    assert.equal(0, r.rc, r.err)
    assert.equal("login: ", r.out)
    assert.equal("timeout", H.read_file(dir .. "/result"))
  end)
end)

describe("the UART on a terminal", function()
  local t

  -- A terminal (H.terminal) whose pane runs the console script under
  -- luavmm.
  local function start(how)
    local dir = H.tempdir()
    console_script(dir)
    t = H.terminal(dir, H.quote(H.luavmm) .. " console.lua result " .. (how or ""))
  end

  after_each(function()
    if t then
      t:close()
      t = nil
    end
  end)

  local function text() return t:text() end
  local function wait_text(pattern, what) return t:wait_text(pattern, what) end
  local function keys(...) t:keys(...) end
  local function pane_stty() return t:stty() end
  local function finished()
    local before, after = t:finished()
    return before, after, H.read_file(t.dir .. "/result")
  end

  it("takes the terminal raw for the run and gives it back cooked", function()
    start()
    wait_text("login: ", "the prompt") -- no newline: the periodic flush shows it
    assert.matches("%(Ctrl%-A x quits%)", text())
    local during = pane_stty()
    assert.matches("%-icanon", during)
    assert.matches("%-echo ", during)
    assert.matches("%-isig", during)
    keys("abc")
    wait_text("login: abc", "the echo")
    keys("q")
    local before, after, result = finished()
    assert.equal("exit", result)
    assert.equal(before, after)
    assert.matches("rc=0", text())
    assert.matches(" icanon", pane_stty())
  end)

  it("gives the terminal back after Ctrl-A x", function()
    start()
    wait_text("login: ", "the prompt")
    keys("x")
    wait_text("login: x", "the echo")
    keys("C-a", "C-a", "y") -- one Ctrl-A for the guest (echoed, and invisible), then y
    wait_text("login: xy", "the echo of y")
    keys("C-a", "x")
    local before, after, result = finished()
    assert.equal("quit", result)
    assert.equal(before, after)
    assert.matches(" icanon", pane_stty())
  end)

  it("gives the terminal back when a fatal signal ends the program", function()
    start("crash")
    local before, after, result = finished()
    assert.is_nil(result)
    assert.matches("%-icanon", H.read_file(t.dir .. "/during"))
    assert.not_matches("rc=0", text())
    assert.equal(before, after)
  end)
end)
