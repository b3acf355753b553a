-- vmm.vm creation, options, closing.
local vmm = require "vmm"
local H = require "helper"

describe("vmm.vm", function()
  it("creates a VM with default memory and one cpu", function()
    local vm <close> = vmm.vm()
    assert.equal(1, vm.cpus)
    assert.equal(64 * 1024 * 1024, #vm.memory)
    assert.is_false(vm.running)
    assert.matches("^vmm.vm %(64 MiB, 1 cpu, stopped%)", tostring(vm))
  end)

  it("accepts sizes as strings and integers", function()
    for spec, bytes in pairs{ ["1M"] = 1 << 20, ["512K"] = 512 << 10, ["2MiB"] = 2 << 20,
                              [8192] = 8192 } do
      local vm <close> = vmm.vm{ memory = spec }
      assert.equal(bytes, #vm.memory)
    end
  end)

  it("can have no memory at all", function()
    local vm <close> = vmm.vm{ memory = false }
    assert.equal(0, #vm.memory)
    assert.same({}, vm.memory:regions())
  end)

  it("rejects a size it cannot parse", function()
    assert.matches("cannot parse memory size '64X'", H.error_of(vmm.vm, { memory = "64X" }))
    assert.matches("memory must be", H.error_of(vmm.vm, { memory = {} }))
    assert.matches("memory must be a non%-negative", H.error_of(vmm.vm, { memory = -4096 }))
  end)

  it("rejects a size that is not a page multiple", function()
    assert.matches("multiples of 4096", H.error_of(vmm.vm, { memory = 1000 }))
  end)

  it("reports memory the host cannot allocate", function()
    local err = H.error_of(vmm.vm, { memory = "16T" })
    assert.matches("cannot allocate 16384 GiB of guest memory for region 'ram'", err)
  end)

  it("rejects unknown options and bad cpu counts", function()
    assert.matches("unknown option 'memroy'", H.error_of(vmm.vm, { memroy = "1M" }))
    assert.matches("cpus must be an integer from 1", H.error_of(vmm.vm, { cpus = 0 }))
    assert.matches("cpus must be an integer from 1", H.error_of(vmm.vm, { cpus = "two" }))
  end)

  it("rejects an unknown unhandled policy", function()
    assert.matches("expected \"stop\", \"ignore\" or a function, got 'maybe'",
                   H.error_of(vmm.vm, { unhandled = "maybe" }))
  end)

  it("closes idempotently and refuses use after close", function()
    local vm = vmm.vm{ memory = "1M" }
    local cpu, mem = vm:cpu(0), vm.memory
    vm:close()
    vm:close()
    assert.is_true(vm.closed)
    assert.matches("closed", tostring(vm))
    assert.matches("the VM is closed", H.error_of(vm.run, vm))
    assert.matches("the VM of this cpu is closed", H.error_of(function() return cpu.rax end))
    assert.matches("the VM of this memory is closed", H.error_of(mem.read, mem, 0, 1))
  end)

  it("closes at the end of a to-be-closed scope", function()
    local outer
    do
      local vm <close> = vmm.vm{ memory = "1M" }
      outer = vm
    end
    assert.is_true(outer.closed)
  end)

  it("names unknown fields", function()
    local vm <close> = vmm.vm{ memory = "1M" }
    assert.matches("vm has no field or method 'frobnicate'",
                   H.error_of(function() return vm.frobnicate end))
  end)

  it("returns its cpus and rejects a cpu it does not have", function()
    local vm <close> = vmm.vm{ memory = "1M", cpus = 2 }
    assert.equal(0, vm:cpu(0).id)
    assert.equal(1, vm:cpu(1).id)
    assert.equal(vm, vm:cpu(1).vm)
    assert.matches("no vCPU 2", H.error_of(vm.cpu, vm, 2))
  end)

  it("releases its file descriptors when collected", function()
    local function fds()
      local n = 0
      for _ in io.popen("ls /proc/self/fd"):lines() do n = n + 1 end
      return n
    end
    collectgarbage()
    local before = fds()
    for _ = 1, 50 do vmm.vm{ memory = "1M", cpus = 2 } end
    collectgarbage()
    collectgarbage()
    assert.equal(before, fds())
  end)
end)

describe("vmm module", function()
  it("reports its version and capabilities", function()
    assert.matches("^luavmm %d+%.%d+", vmm.version)
    local caps = vmm.capabilities()
    assert.is_true(caps.max_vcpus >= 1)
    assert.is_boolean(caps.readonly_memory)
    assert.is_true(vmm.available())
  end)

  it("lists the CPUID KVM supports", function()
    local leaves = vmm.supported_cpuid()
    assert.is_true(#leaves > 0)
    assert.equal(0, leaves[1].leaf)
  end)

  it("parses sizes", function()
    assert.equal(64 << 20, vmm.parse_size("64M"))
    assert.equal(1 << 30, vmm.parse_size("1G"))
    assert.equal(4096, vmm.parse_size(4096))
    assert.matches("cannot parse size", H.error_of(vmm.parse_size, "lots"))
  end)
end)
