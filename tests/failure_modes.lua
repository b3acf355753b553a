-- The failure-mode matrix: what a hostile guest or a mistaken script can do,
-- and exactly what luavmm does about it. Each case runs and returns a
-- string; tests/failure_modes_spec.lua checks it against `expect` (a Lua
-- pattern), and README.md's "Failure modes" table is generated from this
-- list (`lua5.4 tests/failure_modes.lua` prints it; the spec checks that
-- the README holds exactly that).
--
-- A case: { side = "guest" | "script", what = "...", outcome = "...",
--           run = function() return text end, expect = "pattern" }

local vmm = require "vmm"
local H = require "helper"
local u16, u32, u64 = H.u16, H.u32, H.u64

local HLT = "\xf4"
local MMIO = 0xd0000000

-- Runs a guest and returns how it ended: the result's reason (and fault)
-- or the error message.
local function outcome(vm, opts)
  local ok, r = pcall(vm.run, vm, opts or { timeout = 10 })
  if not ok then return "error: " .. tostring(r) end
  return "result: " .. r.reason .. (r.fault and (" " .. r.fault) or "") ..
         (r.code and (" code " .. r.code) or "")
end

local function err(f, ...)
  return "error: " .. tostring(H.error_of(f, ...))
end

-- long mode: mov eax, nr; mov rdi, a; mov rsi, b; hypercall; mov [0x9000], rax; hlt
local function hypercall(nr, a, b)
  return "\xb8" .. u32(nr) .. "\x48\xbf" .. u64(a) .. "\x48\xbe" .. u64(b)
    .. "\x66\xba\xba\xab\xef\x48\x89\x04\x25" .. u32(0x9000) .. HLT
end

local cases = {
  -- ---- the guest ----
  { side = "guest", what = "byte write to a port nobody handles",
    outcome = "run stops: `unhandled I/O write to port 0x80 (1 byte, value 0x12)`, registers, rip",
    expect = "^error: cpu 0: unhandled I/O write to port 0x80 %(1 byte, value 0x12%).*rip ",
    run = function() local vm <close> = H.real("\xb0\x12\xe6\x80" .. HLT); return outcome(vm) end },
  { side = "guest", what = "word and dword reads from unhandled ports",
    outcome = "run stops naming port, size and direction",
    expect = "unhandled I/O read from port 0x60 %(2 bytes%)",
    run = function() local vm <close> = H.real("\xba\x60\x00\xed" .. HLT); return outcome(vm) end },
  { side = "guest", what = "unhandled ports under the ignore policy",
    outcome = "writes dropped, reads all-ones; the run goes on",
    expect = "^result: hlt 0xffffffff$",
    run = function()
      local vm <close> = H.real("\xba\x60\x00\x66\xed\x66\xa3\x00\x05" .. HLT, { unhandled = "ignore" })
      local r = outcome(vm)
      return r .. string.format(" 0x%x", vm.memory:u32(0x500))
    end },
  { side = "guest", what = "an access that straddles the end of a handler's range",
    outcome = "treated as unhandled (the whole access must fit)",
    expect = "unhandled I/O read from port 0x62 %(4 bytes%)",
    run = function()
      local vm <close> = H.real("\xba\x62\x00\x66\xed" .. HLT)
      vm:on_io(0x60, 4, function() return 0 end)
      return outcome(vm)
    end },
  { side = "guest", what = "MMIO reads of 1, 2, 4 and 8 bytes with no handler",
    outcome = "run stops: `unhandled MMIO read at 0x... (8 bytes)`",
    expect = "unhandled MMIO read at 0xd0000000 %(8 bytes%)",
    run = function() local vm <close> = H.long("\x48\xa1" .. u64(MMIO) .. HLT); return outcome(vm) end },
  { side = "guest", what = "MMIO write into a read-only memory region",
    outcome = "run stops: `write to read-only memory region 'rom' at ...`",
    expect = "write to read%-only memory region 'rom' at 0x200000 %(4 bytes, value 0x1%)",
    run = function()
      local vm <close> = H.long("\xc7\x04\x25" .. u32(0x200000) .. u32(1) .. HLT)
      vm.memory:map{ gpa = 0x200000, size = 4096, name = "rom", readonly = true }
      return outcome(vm)
    end },
  { side = "guest", what = "`rep outsb` with a count of 65535",
    outcome = "every item reaches the handler, port fixed; the run ends normally",
    expect = "^result: hlt items 65535$",
    run = function()
      local vm <close> = H.real("\xbe\x00\x00\xb9\xff\xff\xba\x80\x00\xf3\x6e" .. HLT, { memory = "1M" })
      local n = 0
      vm:on_io(0x80, function() n = n + 1 end)
      return outcome(vm, { timeout = 60 }) .. " items " .. n
    end },
  { side = "guest", what = "`rep insb` into addresses outside guest memory",
    outcome = "the stores become MMIO writes nobody handles: run stops naming the address",
    expect = "^error: cpu 0: unhandled MMIO write at 0x1eff0",
    run = function()
      -- 64 KiB of RAM; es:di = 0xf00:0xfff0 = 0x1eff0, beyond it
      local code = "\xb8\x00\x0f\x8e\xc0\xbf\xf0\xff\xb9\x20\x00\xba\x60\x00\xf3\x6c" .. HLT
      local vm <close> = vmm.vm{ memory = 0x10000 }
      vm.memory:write(0x8000, code)
      vm:cpu(0):set_mode("real")
      vm:on_io(0x60, function() return 0x5a end)
      return outcome(vm)
    end },
  { side = "guest", what = "triple fault (an exception with no IDT)",
    outcome = "run stops: `triple fault (KVM_EXIT_SHUTDOWN)`, registers, code bytes",
    expect = "triple fault %(KVM_EXIT_SHUTDOWN%).*code at rip",
    run = function() local vm <close> = H.long("\x0f\x0b"); return outcome(vm) end },
  { side = "guest", what = "jump into unmapped guest memory",
    outcome = "run stops: `KVM_EXIT_INTERNAL_ERROR, suberror 1: emulation failure`, code `not in guest memory`",
    expect = "KVM_EXIT_INTERNAL_ERROR, suberror 1: emulation failure.*not in guest memory",
    run = function()
      local vm <close> = H.long("\x48\xb8" .. u64(0x40000000) .. "\xff\xe0")
      return outcome(vm)
    end },
  { side = "guest", what = "jump to a non-canonical address",
    outcome = "run stops: triple fault, decoded",
    expect = "triple fault",
    run = function()
      local vm <close> = H.long("\x48\xb8" .. u64(0x0000800000000000) .. "\xff\xe0")
      return outcome(vm)
    end },
  { side = "guest", what = "spinning forever without an exit",
    outcome = "the run's timeout ends it: reason `timeout`",
    expect = "^result: timeout$",
    run = function() local vm <close> = H.real("\xeb\xfe"); return outcome(vm, { timeout = 0.2 }) end },
  { side = "guest", what = "unknown hypercall number 0xffffffff",
    outcome = "run stops: `unknown hypercall 4294967295`; under ignore, rax = -38 (ENOSYS)",
    expect = "unknown hypercall 4294967295",
    run = function() local vm <close> = H.long(hypercall(0xffffffff, 0, 0)); return outcome(vm) end },
  { side = "guest", what = "hypercall passing an absurd guest address to a handler that reads it",
    outcome = "the handler's memory:read refuses the address; run stops with that error and rip",
    expect = "Lua handler for hypercall 1 failed:.*address must not be negative",
    run = function()
      local vm <close> = H.long(hypercall(1, -16, 1 << 40))
      vm:on_hypercall(1, function(_, addr, len) return #vm.memory:read(addr, len) end)
      return outcome(vm)
    end },
  { side = "guest", what = "hypercall made with `out dx, al` (one byte)",
    outcome = "the number is the byte written; the handler runs",
    expect = "^result: hlt 7$",
    run = function()
      local code = "\xb0\x07\x66\xba\xba\xab\xee\x48\x89\x04\x25" .. u32(0x9000) .. HLT
      local vm <close> = H.long(code)
      vm:on_hypercall(7, function() return 7 end)
      return outcome(vm) .. " " .. vm.memory:u64(0x9000)
    end },
  { side = "guest", what = "a handler that raises an error",
    outcome = "run stops: `Lua handler for ... failed:` with the error, traceback, registers",
    expect = "Lua handler for I/O write to port 0x80.*failed:.*boom.*stack traceback",
    run = function()
      local vm <close> = H.real("\xe6\x80" .. HLT)
      vm:on_io(0x80, function() error("boom") end)
      return outcome(vm)
    end },
  { side = "guest", what = "a read handler that returns a string",
    outcome = "run stops: `returned a string; a read handler returns an integer`",
    expect = "returned a string; a read handler returns an integer",
    run = function()
      local vm <close> = H.real("\xe4\x60" .. HLT)
      vm:on_io(0x60, function() return "x" end)
      return outcome(vm)
    end },
  { side = "guest", what = "a handler that never returns",
    outcome = "ended 100 ms after the run's timeout asks the VM to stop: reason `timeout`",
    expect = "^result: timeout$",
    run = function()
      local vm <close> = H.real("\xe6\x80" .. HLT)
      vm:on_io(0x80, function() while true do end end)
      return outcome(vm, { timeout = 0.2 })
    end },
  { side = "guest", what = "a handler that yields",
    outcome = "run stops: `attempt to yield across a C-call boundary`",
    expect = "attempt to yield",
    run = function()
      local vm <close> = H.real("\xe6\x80" .. HLT)
      vm:on_io(0x80, function() coroutine.yield() end)
      return outcome(vm)
    end },
  { side = "guest", what = "console output flooding a pipe nobody reads",
    outcome = "the run still ends at its timeout (or `vm:stop`, Ctrl-C): C devices wait for room in `poll`, where a stop is seen, and drop what is left",
    expect = "^result: timeout$",
    run = function()
      local dir = H.tempdir()
      local fifo = dir .. "/fifo"
      assert(os.execute("mkfifo " .. H.quote(fifo)))
      local reader <close> = assert(io.open(fifo, "r+")) -- open, never read
      local vm <close> = H.real("\xb0\x78\xe6\xe9\xeb\xfa") -- out 0xe9, al in a loop
      vm:debugcon{ path = fifo }
      local r = outcome(vm, { timeout = 0.5 })
      vm:close()
      H.remove_tree(dir)
      return r
    end },
  { side = "guest", what = "one vCPU of four faults",
    outcome = "every vCPU stops; the result names the one that faulted, the others `peer`",
    expect = "^result: fault unhandled cpu 3 peer$",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M", cpus = 4 }
      vm.memory:write(0x8000, "\xeb\xfe")
      vm.memory:write(0x9000, "\xe6\x99\xeb\xfe")
      for i = 0, 3 do vm:cpu(i):set_mode("real", { entry = i == 3 and 0x9000 or 0x8000 }) end
      local r = vm:run{ timeout = 10, raise = false }
      return "result: " .. r.reason .. " " .. r.fault .. " cpu " .. r.cpu .. " " .. r.cpus[1].reason
    end },

  -- ---- the script ----
  { side = "script", what = "a memory size given as a table",
    outcome = "`vmm.vm: memory must be a size (\"64M\", bytes) or false, not table`",
    expect = "memory must be a size %(\"64M\", bytes%) or false, not table",
    run = function() return err(vmm.vm, { memory = {} }) end },
  { side = "script", what = "a negative memory size",
    outcome = "`memory must be a non-negative integer`",
    expect = "memory must be a non%-negative integer",
    run = function() return err(vmm.vm, { memory = -4096 }) end },
  { side = "script", what = "memory the host cannot allocate (16T)",
    outcome = "`cannot allocate 16384 GiB of guest memory for region 'ram'`",
    expect = "cannot allocate 16384 GiB of guest memory for region 'ram'",
    run = function() return err(vmm.vm, { memory = "16T" }) end },
  { side = "script", what = "more vCPUs than KVM allows",
    outcome = "`cpus must be between 1 and N (KVM's limit here)`",
    expect = "cpus must be",
    run = function() return err(vmm.vm, { memory = "1M", cpus = 100000 }) end },
  { side = "script", what = "an unknown option",
    outcome = "`vmm.vm: unknown option 'memroy'`",
    expect = "unknown option 'memroy'",
    run = function() return err(vmm.vm, { memroy = "1M" }) end },
  { side = "script", what = "reading at an address near 2^63",
    outcome = "`memory:read: [...) is not inside guest memory` (no wrap-around)",
    expect = "is not inside guest memory",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.memory.read, vm.memory, math.maxinteger - 1, 4)
    end },
  { side = "script", what = "a negative length",
    outcome = "`length must not be negative`",
    expect = "length must not be negative",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.memory.read, vm.memory, 0, -1)
    end },
  { side = "script", what = "writing a table into guest memory",
    outcome = "`bad argument #2 to 'write' (string expected, got table)`",
    expect = "string expected, got table",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.memory.write, vm.memory, 0, {})
    end },
  { side = "script", what = "a value too big for u16",
    outcome = "`value does not fit in 2 bytes`",
    expect = "value does not fit in 2 bytes",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.memory.u16, vm.memory, 0, 0x10000)
    end },
  { side = "script", what = "overlapping memory regions",
    outcome = "both regions named with their ranges",
    expect = "region 'x' %[0x80000, 0x180000%) overlaps region 'ram' %[0x0, 0x100000%)",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.memory.map, vm.memory, { gpa = 0x80000, size = "1M", name = "x" })
    end },
  { side = "script", what = "overlapping port handlers",
    outcome = "both ranges named, with where each handler was defined",
    expect = "port range %[0x62, 0x63%) for 'Lua handler .-' overlaps %[0x60, 0x64%) of 'Lua handler",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      vm:on_io(0x60, 4, function() end)
      return err(vm.on_io, vm, 0x62, 1, function() end)
    end },
  { side = "script", what = "a port range past 0xffff",
    outcome = "`port range 0xffff+0x2 is outside the address space`",
    expect = "outside the address space",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.on_io, vm, 0xffff, 2, function() end)
    end },
  { side = "script", what = "an MMIO handler over RAM",
    outcome = "`overlaps memory region 'ram' ...; the guest's accesses there go to RAM`",
    expect = "overlaps memory region 'ram'",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.on_mmio, vm, 0x1000, 16, function() end)
    end },
  { side = "script", what = "a handler that is not a function, integer or nil",
    outcome = "`function, integer or nil expected, got string`",
    expect = "function, integer or nil expected, got string",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.on_io, vm, 0x80, 1, "x")
    end },
  { side = "script", what = "an unknown register name",
    outcome = "`cpu:set: unknown register 'rzx'`",
    expect = "unknown register 'rzx'",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm:cpu(0).set, vm:cpu(0), { rzx = 1 })
    end },
  { side = "script", what = "a register given as a string",
    outcome = "`cpu:set: rax must be an integer, not string`",
    expect = "rax must be an integer, not string",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm:cpu(0).set, vm:cpu(0), { rax = "1" })
    end },
  { side = "script", what = "register state KVM refuses (paging without protection)",
    outcome = "`KVM rejected the segment and control registers (Invalid argument): cr0=...`; nothing changes",
    expect = "KVM rejected the segment and control registers %(Invalid argument%): cr0=0x80000010",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm:cpu(0).set, vm:cpu(0), { cr0 = 0x80000010 })
    end },
  { side = "script", what = "an MSR KVM does not know",
    outcome = "`cpu:msr: cannot read MSR 0xdeadbeef: KVM does not support it`",
    expect = "cannot read MSR 0xdeadbeef",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm:cpu(0).msr, vm:cpu(0), 0xdeadbeef)
    end },
  { side = "script", what = "loading a file that does not exist",
    outcome = "`cannot load PATH: No such file or directory`",
    expect = "cannot load /nonexistent/guest.bin: No such file or directory",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.load, vm, "/nonexistent/guest.bin", 0)
    end },
  { side = "script", what = "loading a file that does not fit",
    outcome = "`cannot load PATH (N bytes) at ADDR: [...) is not inside guest memory`",
    expect = "is not inside guest memory",
    run = function()
      local path = H.tmpfile(string.rep("x", 8192))
      local vm <close> = vmm.vm{ memory = "1M" }
      local r = err(vm.load, vm, path, (1 << 20) - 4096)
      os.remove(path)
      return r
    end },
  { side = "script", what = "closing a VM twice",
    outcome = "the second close does nothing",
    expect = "^ok$",
    run = function()
      local vm = vmm.vm{ memory = "1M" }
      vm:close()
      vm:close()
      return vm.closed and "ok" or "not closed"
    end },
  { side = "script", what = "using a VM, its cpu or its memory after close",
    outcome = "`the VM is closed` / `the VM of this cpu is closed` / `... memory is closed`",
    expect = "the VM is closed; the VM of this cpu is closed; the VM of this memory is closed",
    run = function()
      local vm = vmm.vm{ memory = "1M" }
      local cpu, mem = vm:cpu(0), vm.memory
      vm:close()
      return H.error_of(vm.run, vm):match("the VM is closed") .. "; "
        .. H.error_of(function() return cpu.rax end):match("the VM of this cpu is closed") .. "; "
        .. H.error_of(mem.read, mem, 0, 1):match("the VM of this memory is closed")
    end },
  { side = "script", what = "running a VM from inside its own handler",
    outcome = "`the VM is already running` raised in the handler",
    expect = "already running",
    run = function()
      local vm <close> = H.real("\xe6\x80" .. HLT)
      local e
      vm:on_io(0x80, function() e = H.error_of(vm.run, vm) end)
      vm:run()
      return tostring(e)
    end },
  { side = "script", what = "starting a VM that runs in the background",
    outcome = "`vm:start: the VM is already running`",
    expect = "vm:start: the VM is already running",
    run = function()
      local vm <close> = H.real("\xeb\xfe")
      vm:start()
      local e = H.error_of(vm.start, vm)
      vm:stop()
      vm:wait()
      return e
    end },
  { side = "script", what = "closing a VM from its own handler",
    outcome = "`cannot close a running VM from its own handler; call vm:stop()`",
    expect = "cannot close a running VM from its own handler",
    run = function()
      local vm <close> = H.real("\xe6\x80" .. HLT)
      local e
      vm:on_io(0x80, function() e = H.error_of(vm.close, vm) end)
      vm:run()
      return tostring(e)
    end },
  { side = "script", what = "reading registers of a vCPU running in the background",
    outcome = "`cpu 0 is running; stop or pause the VM before using its registers`",
    expect = "cpu 0 is running; stop or pause the VM",
    run = function()
      local vm <close> = H.real("\xeb\xfe")
      vm:start()
      local e = H.error_of(function() return vm:cpu(0).rip end)
      vm:stop()
      vm:wait()
      return e
    end },
  { side = "script", what = "waiting for a VM that was never started",
    outcome = "`vm:wait: the VM is not running in the background (see vm:start)`",
    expect = "not running in the background",
    run = function() local vm <close> = H.real(HLT); return err(vm.wait, vm) end },
  { side = "script", what = "a timeout that is not a positive number",
    outcome = "`timeout must be a positive number of seconds`",
    expect = "timeout must be a positive number of seconds",
    run = function() local vm <close> = H.real(HLT); return err(vm.run, vm, { timeout = -1 }) end },
  { side = "script", what = "a constant hypercall above 255",
    outcome = "`constant hypercalls are numbered 0 to 255`",
    expect = "constant hypercalls are numbered 0 to 255",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.on_hypercall, vm, 256, 1)
    end },
  { side = "script", what = "a trace that cannot be written",
    outcome = "`vm:trace: cannot record a trace to PATH: No such file or directory`",
    expect = "cannot record a trace to /nonexistent/t: No such file or directory",
    run = function()
      local vm <close> = vmm.vm{ memory = "1M" }
      return err(vm.trace, vm, "/nonexistent/t")
    end },
}

-- The README table.
local function markdown()
  local lines = {
    "| | what happens | what luavmm does |",
    "|---|---|---|",
  }
  for _, c in ipairs(cases) do
    lines[#lines + 1] = string.format("| %s | %s | %s |", c.side, c.what, c.outcome)
  end
  return table.concat(lines, "\n") .. "\n"
end

if arg and arg[0] and arg[0]:match("failure_modes%.lua$") and not package.loaded.busted then
  io.write(markdown())
  return
end

return { cases = cases, markdown = markdown }
