-- Leaks and stress: thousands of VMs, vCPUs started and stopped under load,
-- a handler failing on every exit. Each test asserts that file
-- descriptors, threads and memory come back to where they were.
local vmm = require "vmm"
local H = require "helper"

-- The open fds of this process: ls lists /proc/<our pid>/fd, so its own
-- fds are not counted; the pipe to it is, the same each time.
local function count_fds()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  local n = 0
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null")
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

local function status_field(name)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match(name .. ":%s+(%d+)"))
end

local function rss_kib() return status_field("VmRSS") end

-- Under a sanitizer, freed memory sits in quarantine and shadow memory
-- grows with every allocation: RSS says nothing about leaks there (ASan's
-- leak checker does that job), so only the plain build asserts it.
local SANITIZED = H.preload ~= nil
local function assert_rss_flat(before, after, what)
  if SANITIZED then return end
  assert.is_true(after - before < 1024,
                 string.format("RSS grew by %d KiB over %s", after - before, what))
end
local function threads() return status_field("Threads") end

-- The thread count once it is back to `before`, or what it still is after
-- 5 s. pthread_join returns when the kernel clears the thread's id, a
-- little before the process stops counting that thread, so a count taken
-- right after the last join can be one too many; a thread that leaked
-- stays counted.
local function threads_after(before)
  local deadline = vmm.now() + 5
  local n = threads()
  while n > before and vmm.now() < deadline do
    vmm.sleep(0.01)
    n = threads()
  end
  return n
end

local function settle()
  collectgarbage()
  collectgarbage()
end

-- out 0x80; hlt: one Lua exit, then the end.
local GUEST = "\xe6\x80\xf4"

local function lifecycle(n)
  for _ = 1, n do
    local vm <close> = vmm.vm{ memory = "1M" }
    vm.memory:write(0x8000, GUEST)
    vm:cpu(0):set_mode("real")
    vm:on_io(0x80, function() end)
    local r = vm:run{ timeout = 10 }
    assert(r.reason == "hlt", r.reason)
  end
end

describe("2,000 VMs created, run and destroyed", function()
  it("leave file descriptors and memory where they were", function()
    lifecycle(200) -- warm up: allocator pools, Lua's own tables
    settle()
    local fds, rss = count_fds(), rss_kib()
    local t0 = vmm.now()
    lifecycle(2000)
    local elapsed = vmm.now() - t0
    settle()
    local fds_after, rss_after = count_fds(), rss_kib()
    print(string.format("# 2000 VMs in %.2f s (%.0f per second); fds %d -> %d; RSS %d -> %d KiB",
                        elapsed, 2000 / elapsed, fds, fds_after, rss, rss_after))
    -- <= rather than ==: a file an earlier spec left to the collector may
    -- close meanwhile; what must not happen is growth.
    -- (A sanitizer's runtime may open a file of its own meanwhile.)
    assert.is_true(fds_after <= fds + (SANITIZED and 1 or 0),
                   string.format("fds grew from %d to %d", fds, fds_after))
    -- Guest memory is unmapped with each VM; what remains must not grow
    -- with the number of VMs (a leak of even 1 KiB per VM would be 2 MiB).
    assert_rss_flat(rss, rss_after, "2000 VMs")
  end)

  it("leave no thread behind when they had several vCPUs", function()
    settle()
    local before = threads()
    for _ = 1, 50 do
      local vm <close> = vmm.vm{ memory = "1M", cpus = 4 }
      vm.memory:write(0x8000, GUEST)
      for i = 0, 3 do vm:cpu(i):set_mode("real") end
      vm:on_io(0x80, function() end)
      assert.equal("hlt", vm:run{ timeout = 10 }.reason)
    end
    settle()
    -- the kernel may keep one worker thread of its own per VM
    -- (kvm-nx-lpage-recovery) until the VM's fd is closed; by now all are
    local after = threads_after(before)
    -- growth is a leak; a kernel or sanitizer thread of its own may go away
    assert.is_true(after <= before, string.format("threads grew from %d to %d", before, after))
  end)
end)

describe("vCPUs stopped and started under load", function()
  it("stop and start cleanly many times while handlers run", function()
    local vm <close> = vmm.vm{ memory = "1M", cpus = 4 }
    vm.memory:write(0x8000, "\xe6\x80\xeb\xfc") -- out 0x80; jmp back
    for i = 0, 3 do vm:cpu(i):set_mode("real") end
    local n = 0
    vm:on_io(0x80, function() n = n + 1 end)
    -- The kernel adds a worker thread of its own (kvm-nx-lpage-recovery) to
    -- the process once a VM has run, until the VM is closed: count after.
    vm:run{ timeout = 0.01 }
    for i = 0, 3 do vm:cpu(i).rip = 0x8000 end
    local before = threads()
    for round = 1, 30 do
      vm:start()
      vmm.sleep(0.005 * (round % 4))
      if round % 3 == 0 then
        vm:pause()
        vm:resume()
      end
      vm:stop(round)
      local r = vm:wait{ timeout = 10 }
      assert.equal("stop", r.reason)
      assert.equal(round, r.code)
      for i = 0, 3 do vm:cpu(i).rip = 0x8000 end
    end
    assert.is_true(n > 0)
    local after = threads_after(before)
    -- growth is a leak; a kernel or sanitizer thread of its own may go away
    assert.is_true(after <= before, string.format("threads grew from %d to %d", before, after))
  end)
end)

describe("a handler raising on every exit", function()
  it("fails each run cleanly, run after run, without leaking", function()
    local vm <close> = H.real("\xe6\x80\xeb\xfc")
    vm:on_io(0x80, function() error("always") end)
    settle()
    local rss = rss_kib()
    for _ = 1, 2000 do
      local r = vm:run{ raise = false, timeout = 10 }
      assert(r.reason == "fault" and r.fault == "handler", r.reason)
    end
    settle()
    assert_rss_flat(rss, rss_kib(), "2000 failing runs")
  end)

  it("fails every vCPU's run the same way under SMP", function()
    local vm <close> = vmm.vm{ memory = "1M", cpus = 4 }
    vm.memory:write(0x8000, "\xe6\x80\xeb\xfc")
    for i = 0, 3 do vm:cpu(i):set_mode("real") end
    vm:on_io(0x80, function() error("always") end)
    for _ = 1, 100 do
      for i = 0, 3 do vm:cpu(i).rip = 0x8000 end
      local r = vm:run{ raise = false, timeout = 10 }
      assert.equal("fault", r.reason)
      assert.equal("handler", r.fault)
    end
  end)
end)
