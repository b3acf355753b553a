-- The seccomp sandbox of vCPU threads (vm:run{ sandbox = true },
-- vm:start{ sandbox = true }; src/sandbox.c): guests whose devices are all
-- in C run under it as they run without it (debugcon, the exit port,
-- constant hypercalls, virtio-blk, SMP, pause and resume), a VM with Lua on
-- its exit path is refused with a message naming what, a Lua handler added
-- while a sandboxed VM runs stops it instead of running, and the sandbox
-- stays with the run, not the VM. That a call off the allow-list really
-- fails with EPERM on a vCPU thread is tested in C, where a device can be
-- made to make one (tests/c/sandbox_test.c).
local vmm = require "vmm"
local mode = require "vmm.mode"
local H = require "helper"

local TIMEOUT = 20
local SECTOR = 512

local function tmpfile(bytes) return H.tmpfile(bytes, finally) end

-- A long-mode guest whose console and exit port are C devices; hypercall
-- answers are constants (C too).
local function c_guest(name, opts)
  opts = opts or {}
  local vm = vmm.vm{ memory = opts.memory or "4M", cpus = opts.cpus }
  vm:load(H.guest(name), mode.layout.entry)
  for i = 0, (opts.cpus or 1) - 1 do vm:cpu(i):set_mode("long", { entry = mode.layout.entry }) end
  local console = tmpfile()
  vm:debugcon{ port = 0xe9, path = console }
  vm:debug_exit{ port = 0xf4 }
  return vm, console
end

-- Real-mode code at 0x8000 that writes port 0x80 forever: exits the
-- unhandled policy "ignore" answers in C.
local OUT_LOOP = "\xe6\x80\xeb\xfc" -- out 0x80, al; jmp $-2

describe("a sandboxed run", function()
  it("runs a guest with C devices: debugcon and the exit port", function()
    local vm <close>, console = c_guest("hello64.bin")
    local r = vm:run{ timeout = TIMEOUT, sandbox = true }
    assert.are.equal("exit", r.reason)
    assert.are.equal(0, r.code)
    assert.are.equal("Hello from 64-bit long mode!\n", H.read_file(console))
  end)

  it("does a virtio-blk round trip, checked in the image file", function()
    local sectors = 2048
    local image = tmpfile(string.rep("\0", sectors * SECTOR))
    local vm <close>, console = c_guest("virtio_blk64.bin")
    -- Parameter 0 for every question: mode 0 (the round trip), the
    -- default base, no optional features (guests/vtest.h).
    vm:on_hypercall(0x30, 0)
    vm:on_hypercall(0x31, 0)
    vm:virtio_blk{ addr = 0xd0000000, irq = 5, path = image }
    local r = vm:run{ timeout = TIMEOUT, sandbox = true, raise = false }
    local out = H.read_file(console)
    assert(r.reason == "exit" and r.code == 0, string.format("%s %s %s\n%s", r.reason,
           tostring(r.code), tostring(r.message), out))
    assert.truthy(out:find("all %d+ checks passed"))
    -- Sector 2047, written by the guest: "sector 000007ff\n", then the pattern.
    local disk = H.read_file(image)
    assert.are.equal("sector 000007ff\n", disk:sub(2047 * SECTOR + 1, 2047 * SECTOR + 16))
    assert.are.equal(string.rep("\0", SECTOR), disk:sub(3 * SECTOR + 1, 4 * SECTOR))
  end)

  it("runs every vCPU of an SMP guest sandboxed", function()
    local vm <close> = c_guest("smp64.bin", { cpus = 4, memory = "16M" })
    vm:on_hypercall(0x10, 0)
    vm:on_hypercall(0x11, 1)
    vm:on_hypercall(0x12, 0)
    local r = vm:run{ timeout = TIMEOUT, sandbox = true }
    assert.are.equal("hlt", r.reason)
    for i = 1, 4 do assert.are.equal("hlt", r.cpus[i].reason) end
  end)

  it("works in the background: start, pause, resume, stop", function()
    local vm <close> = H.real(OUT_LOOP, { unhandled = "ignore" })
    vm:start{ sandbox = true }
    assert.is_true(vm:pause())
    vm:resume()
    assert.is_nil((vm:wait{ timeout = 0.2 }))
    vm:stop()
    local r = vm:wait{ timeout = TIMEOUT }
    assert.are.equal("stop", r.reason)
  end)

  it("ends at its timeout", function()
    local vm <close> = H.real(OUT_LOOP, { unhandled = "ignore" })
    local r = vm:run{ timeout = 0.2, sandbox = true }
    assert.are.equal("timeout", r.reason)
  end)

  it("reports a fault of a sandboxed vCPU as it would any other", function()
    local vm <close> = H.real("\xe6\x80\xf4") -- out 0x80, al; hlt: unhandled, policy "stop"
    local r = vm:run{ timeout = TIMEOUT, sandbox = true, raise = false }
    assert.are.equal("fault", r.reason)
    assert.truthy(r.message:find("unhandled I/O write to port 0x80", 1, true))
  end)

  it("belongs to the run: the same VM runs Lua handlers unsandboxed afterwards", function()
    local vm <close> = H.real("\xb0\x2a\xe6\x80\xf4", { unhandled = "ignore" }) -- mov al, 42; out 0x80, al; hlt
    assert.are.equal("hlt", vm:run{ timeout = TIMEOUT, sandbox = true }.reason)
    local seen
    vm:on_io(0x80, function(_, _, _, v) seen = v end)
    vm:cpu(0):set{ rip = 0x8000 }
    assert.are.equal("hlt", vm:run{ timeout = TIMEOUT }.reason)
    assert.are.equal(42, seen)
  end)
end)

describe("sandbox = true is refused", function()
  local function refusal(vm, how)
    local err = H.error_of(function()
      if how == "start" then vm:start{ sandbox = true } else vm:run{ sandbox = true } end
    end)
    assert.is_string(err)
    assert.truthy(err:find("sandbox = true needs every device of the VM in C", 1, true), err)
    assert.is_false(vm.running)
    return err
  end

  it("for a VM with a Lua port handler, naming the port", function()
    local vm <close> = H.real("\xf4")
    vm:on_io(0x3f8, 8, function() end)
    local err = refusal(vm)
    assert.truthy(err:find("port 0x3f8 has a Lua handler", 1, true), err)
    assert.truthy(refusal(vm, "start"):find("vm:start:", 1, true))
    -- Without it, the run is accepted.
    vm:on_io(0x3f8, 8, nil)
    assert.are.equal("hlt", vm:run{ timeout = TIMEOUT, sandbox = true }.reason)
  end)

  it("for a Lua MMIO handler", function()
    local vm <close> = H.real("\xf4")
    vm:on_mmio(0xd0000000, 0x1000, function() end)
    assert.truthy(refusal(vm):find("MMIO address 0xd0000000 has a Lua handler", 1, true))
  end)

  it("for a hypercall answered by a Lua function, not for a constant", function()
    local vm <close> = H.real("\xf4")
    vm:on_hypercall(0x30, 7)
    assert.are.equal("hlt", vm:run{ timeout = TIMEOUT, sandbox = true }.reason)
    vm:on_hypercall(0x31, function() return 1 end)
    assert.truthy(refusal(vm):find("hypercall 0x31 has a Lua handler", 1, true))
  end)

  it("for a Lua catch-all, and not once the policy is back in C", function()
    local vm <close> = H.real("\xf4")
    vm:on_unhandled(function() end)
    assert.truthy(refusal(vm):find("vm:on_unhandled has a Lua function", 1, true))
    vm:on_unhandled("ignore")
    assert.are.equal("hlt", vm:run{ timeout = TIMEOUT, sandbox = true }.reason)
  end)

  it("for a virtio device written in Lua", function()
    local vm <close> = H.real("\xf4")
    vm:virtio{ addr = 0xd0000000, irq = 5, device_id = 4, queues = { 8 },
                notify = function() end }
    assert.truthy(refusal(vm):find("a device written in Lua is attached", 1, true))
  end)
end)

describe("a Lua handler added while a sandboxed VM runs", function()
  it("stops the VM with a fault instead of running", function()
    local vm <close> = H.real(OUT_LOOP, { unhandled = "ignore" })
    vm:start{ sandbox = true }
    local called = false
    vm:on_io(0x80, function() called = true end)
    local r = vm:wait{ timeout = TIMEOUT, raise = false }
    assert.are.equal("fault", r.reason)
    assert.truthy(r.message:find("which a sandboxed vCPU cannot enter", 1, true), r.message)
    assert.is_false(called)
  end)
end)
