-- Debian's real kernel (build/linux/, from `make linux-guest`, which
-- `make test` runs once): what the kernel itself prints about what
-- vmm.linux gave it. Early boot only, from the uncompressed vmlinux, so no
-- decompressor runs: the banner, our command line echoed (with the
-- virtio-mmio devices' entries), the e820 map as we built it and the
-- initrd where we put it, then the VM is stopped. The kernel would parse
-- the virtio_mmio.device= entries much later (at device initcalls), and
-- only with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, which Debian's cloud kernel
-- lacks: the echoed command line is what can be checked.
--
-- The whole boot, bzImage and busybox initramfs to a shell, needs a host
-- with hardware virtualization: on KVM nested on PVM the kernel stops long
-- before init at an instruction the host cannot emulate (lock cmpxchg16b in
-- SLUB, half a minute in), and there that test is pending. What the user
-- sees of that failure is tested instead.
--
-- LUAVMM_LINUX=1: the kernel must be there (fetched here if missing): no
-- test here may be skipped for want of it. LUAVMM_LINUX=0: skip them all.
-- LUAVMM_LINUX_DIR: somewhere else than build/linux.
local vmm = require "vmm"
local pc = require "vmm.pc"
local linux = require "vmm.linux"
local H = require "helper"

local DIR = os.getenv("LUAVMM_LINUX_DIR") or (H.root .. "/build/linux")
local WANT = os.getenv("LUAVMM_LINUX")
local VMLINUX, BZIMAGE, INITRD = DIR .. "/vmlinux", DIR .. "/bzImage", DIR .. "/initramfs.cpio.gz"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function have_kernel()
  return exists(VMLINUX) and exists(BZIMAGE) and exists(INITRD)
end

if WANT == "1" and not have_kernel() and H.can_spawn then
  H.sh("scripts/fetch-linux.sh " .. H.quote(DIR), { limit = 900 })
end

-- nil when the kernel tests can run, else why not (a pending's reason).
local function missing()
  if WANT == "0" then return "LUAVMM_LINUX=0" end
  if have_kernel() then return nil end
  assert(WANT ~= "1", "LUAVMM_LINUX=1 but " .. DIR .. " has no kernel and initramfs: run "
         .. "`scripts/fetch-linux.sh " .. DIR .. "` to see why")
  return "no Linux kernel in " .. DIR .. ": `make linux-guest` fetches it (`make test` does, "
    .. "unless LUAVMM_LINUX=0)"
end

-- KVM on hardware virtualization, or nested on PVM (which emulates guest
-- kernel code and cannot run a stock kernel to the end).
local function host_kind()
  local cpuinfo = H.read_file("/proc/cpuinfo") or ""
  local pvm = io.open("/sys/module/kvm_pvm")
  if pvm then pvm:close() end
  if pvm or not (cpuinfo:find("%f[%w]vmx%f[%W]") or cpuinfo:find("%f[%w]svm%f[%W]")) then
    return "pvm"
  end
  return "hardware"
end
local HOST = host_kind()
local PVM_REASON = "this host runs KVM nested on PVM (no vmx/svm in /proc/cpuinfo, or "
  .. "/sys/module/kvm_pvm): it emulates guest kernel code and stops a stock kernel at an "
  .. "instruction it cannot emulate (lock cmpxchg16b) long before init"

-- The console lines without their "[    0.000000] " timestamps.
local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do
    out[#out + 1] = (line:gsub("\r$", ""):gsub("^%[%s*[%d%.]+%] ", ""))
  end
  return out
end

local function index_of(lines, text, from)
  for i = from or 1, #lines do
    if lines[i] == text then return i end
  end
end

-- What Linux makes of a memory map (e820__update_table): where entries
-- overlap the larger type wins; neighbours of one type merge.
local function sanitize(map)
  local points = {}
  for _, e in ipairs(map) do
    points[#points + 1] = e.addr
    points[#points + 1] = e.addr + e.size
  end
  table.sort(points)
  local out = {}
  for i = 1, #points - 1 do
    local a, b = points[i], points[i + 1]
    local t = 0
    for _, e in ipairs(map) do
      if b > a and e.addr <= a and e.addr + e.size >= b then t = math.max(t, e.type) end
    end
    local last = out[#out]
    if t > 0 and last and last.type == t and last.addr + last.size == a then
      last.size = last.size + (b - a)
    elseif t > 0 then
      out[#out + 1] = { addr = a, size = b - a, type = t }
    end
  end
  return out
end

-- Boots the vmlinux until it has printed its RAMDISK line; returns the
-- console lines, what linux.boot placed and the command line.
local function early_boot(entry)
  local m <close> = pc.new{ memory = "256M", irqchip = true, pit = true, unhandled = "ignore" }
  -- virtio devices as scripts/linux.lua places them, idle: the kernel only
  -- echoes their entries this early
  local image = H.tmpfile(string.rep("\0", 4096), finally)
  local devices = {
    m.vm:virtio_blk{ addr = 0xd0000000, irq = 5, path = image },
    m.vm:virtio_rng{ addr = 0xd0001000, irq = 6 },
    m.vm:virtio_console{ addr = 0xd0002000, irq = 7, input = false, output = false },
  }
  local entries = {}
  for i, dev in ipairs(devices) do entries[i] = dev:cmdline() end
  assert.equal("virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6 "
               .. "virtio_mmio.device=4K@0xd0002000:7", table.concat(entries, " "))
  local cmdline = "console=ttyS0 earlyprintk=serial,ttyS0,115200 luavmm.test=" .. entry
    .. " panic=-1 " .. table.concat(entries, " ")
  local placed = linux.boot(m, { kernel = VMLINUX, initrd = INITRD, cmdline = cmdline,
                                 entry = entry })
  local text, line = {}, {}
  linux.com1(m.vm, { output = function(c)
    text[#text + 1] = c
    if c ~= "\n" then line[#line + 1] = c; return end
    if table.concat(line):find("RAMDISK: [mem ", 1, true) then m.vm:stop(0) end
    line = {}
  end })
  local started = vmm.now()
  local r = m.vm:run{ timeout = 300, raise = false }
  local console = table.concat(text)
  print(string.format("# %s entry: the RAMDISK line after %.1f s, %d console bytes, %d exits",
                      entry, vmm.now() - started, #console, r.exits))
  assert(r.reason == "stop", string.format("the kernel did not reach its RAMDISK line: %s%s "
    .. "after %.1f s; the console said:\n%s", r.reason, r.message and (":\n" .. r.message) or "",
    vmm.now() - started, console))
  return lines_of(console), placed, cmdline
end

-- The checks common to both entries.
local function check_early(lines, placed, cmdline, e820)
  assert.truthy(lines[1]:match("^Linux version 6%.%d+"), "first line: " .. tostring(lines[1]))
  assert.truthy(index_of(lines, "Command line: " .. cmdline),
                "no 'Command line: " .. cmdline .. "' in:\n" .. table.concat(lines, "\n"))
  local at = index_of(lines, "BIOS-provided physical RAM map:")
  assert.truthy(at, "no RAM map in:\n" .. table.concat(lines, "\n"))
  local got = {}
  for i = at + 1, #lines do
    if not lines[i]:match("^BIOS%-e820: ") then break end
    got[#got + 1] = lines[i]
  end
  assert.same(linux.e820_lines(e820), got)
  local rd = placed.initrd
  local rd_end = (rd.addr + rd.size + 0xfff) // 0x1000 * 0x1000
  assert.truthy(index_of(lines, string.format("RAMDISK: [mem %#010x-%#010x]", rd.addr,
                                              rd_end - 1)),
                "no RAMDISK line for " .. string.format("0x%x", rd.addr))
end

describe("Debian's kernel", function()
  it("reports the command line, the e820 map and the initrd we gave it (64-bit entry)",
     function()
    local why = missing()
    if why then return pending(why) end
    local lines, placed, cmdline = early_boot("64")
    assert.equal("elf", placed.format)
    -- the zero page's e820 table, exactly as built
    check_early(lines, placed, cmdline, placed.e820)
  end)

  it("does the same from the PVH entry, with the ISA hole it adds itself", function()
    local why = missing()
    if why then return pending(why) end
    local lines, placed, cmdline = early_boot("pvh")
    -- Linux's PVH start-up appends 0xa0000..0xfffff as reserved to the map
    -- from hvm_start_info, then sorts and merges it with the rest.
    local map = { table.unpack(placed.e820) }
    map[#map + 1] = { addr = 0xa0000, size = 0x60000, type = pc.E820_RESERVED }
    check_early(lines, placed, cmdline, sanitize(map))
  end)

  it("boots the bzImage with the busybox initramfs to init and a shell", function()
    local why = missing()
    if why then return pending(why) end
    if HOST == "pvm" then return pending(PVM_REASON) end
    local m <close> = pc.new{ memory = "256M", irqchip = true, pit = true, unhandled = "ignore" }
    local vm = m.vm
    local dir = H.tempdir()
    local out = dir .. "/console"
    if vmm.methods.vm.serial then
      vm:serial{ port = 0x3f8, irq = 4, input = false, output = out }
    else
      local f = assert(io.open(out, "wb"))
      linux.com1(vm, { output = function(c) f:write(c); f:flush() end })
    end
    if vmm.methods.vm.i8042 then vm:i8042{} end
    if vmm.methods.vm.rtc then vm:rtc{} end
    linux.boot(m, { kernel = BZIMAGE, initrd = INITRD,
                    cmdline = "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1" })
    vm:start()
    local ok, err = pcall(H.wait_for, function()
      local text = H.read_file(out) or ""
      return text:find("LUAVMM-SHELL-OK 42", 1, true) or not vm.running
    end, "the shell's marker", 600)
    vm:stop()
    local r = vm:wait{ timeout = 10 }
    local text = H.read_file(out) or ""
    H.remove_tree(dir)
    assert(ok, tostring(err) .. "\n" .. text)
    assert.truthy(text:find("LUAVMM-INIT-OK 6%.%d"), text)
    assert.truthy(text:find("LUAVMM-SHELL-OK 42", 1, true),
                  (r and r.message or "") .. "\n" .. text)
  end)
end)

describe("scripts/linux.lua", function()
  local function script(args, limit)
    return H.sh(H.quote(H.luavmm) .. " scripts/linux.lua " .. args, { limit = limit })
  end

  it("explains bad arguments and a missing kernel", function()
    if not H.can_spawn then return pending(H.no_spawn_reason) end
    local r = script("")
    assert.equal(2, r.rc)
    assert.equal("linux.lua: --kernel is required\n" .. "usage: linux.lua --kernel K [--initrd I] "
                 .. "[--append S] [--memory 256M] [--cpus N] [--timeout S] [--entry auto|64|pvh] "
                 .. "[--disk PATH]... [--disk-ro PATH]... [--rng] [--virtio-console]\n", r.err)
    r = script("--kernel k --memory 1M")
    assert.equal(2, r.rc)
    assert.truthy(r.err:find("--memory must be a size of at least 64M, not '1M'", 1, true))
    r = script("--kernel k --entry 32")
    assert.equal(2, r.rc)
    assert.truthy(r.err:find("--entry must be auto, 64 or pvh, not '32'", 1, true))
    r = script("--kernel k --disk")
    assert.equal(2, r.rc)
    assert.truthy(r.err:find("linux.lua: --disk needs a value\n", 1, true), r.err)
    r = script("--kernel k --rng=yes")
    assert.equal(2, r.rc)
    assert.truthy(r.err:find("linux.lua: unexpected argument '--rng=yes'\n", 1, true), r.err)
    r = script("--kernel k --disk a --disk-ro b --disk c --disk d --rng --virtio-console")
    assert.equal(2, r.rc)
    assert.truthy(r.err:find("linux.lua: at most 5 virtio devices (disks, --rng, "
                             .. "--virtio-console), not 6\n", 1, true), r.err)
    r = script("--kernel k --disk /nonexistent/disk.img")
    assert.equal(1, r.rc)
    assert.truthy(r.err:find("virtio_blk: virtio-blk: cannot open /nonexistent/disk.img: No such "
                             .. "file or directory", 1, true), r.err)
    r = script("--kernel /nonexistent/vmlinuz --timeout 5")
    assert.equal(1, r.rc)
    assert.truthy(r.err:find("linux: the kernel: cannot open /nonexistent/vmlinuz: No such file "
                             .. "or directory", 1, true), r.err)
  end)

  it("shows where this host's emulation stops the kernel, decoded, and exits 1", function()
    local why = missing()
    if why then return pending(why) end
    if not H.can_spawn then return pending(H.no_spawn_reason) end
    if HOST ~= "pvm" then
      return pending("this host has hardware virtualization: the kernel boots to init "
                     .. "instead of stopping at an emulation failure")
    end
    -- With virtio devices: the console on hvc0, the early messages on COM1.
    local image = H.tmpfile(string.rep("\0", 4096), finally)
    local r = script("--kernel " .. H.quote(VMLINUX) .. " --initrd " .. H.quote(INITRD)
                     .. " --disk-ro " .. H.quote(image) .. " --rng --virtio-console"
                     .. " --timeout 400", 500)
    assert.equal(1, r.rc, r.err)
    assert.truthy(r.out:find("Linux version 6%.%d"), r.out)
    local out = r.out:gsub("\r\n", "\n") -- the serial console's line ends
    assert.truthy(out:find("] Command line: console=hvc0 earlyprintk=serial,ttyS0,115200 "
                           .. "panic=-1 virtio_mmio.device=4K@0xd0000000:5 "
                           .. "virtio_mmio.device=4K@0xd0001000:6 "
                           .. "virtio_mmio.device=4K@0xd0002000:7\n", 1, true), r.out)
    assert.truthy(r.err:find("linux.lua: virtio-blk (read-only) " .. image .. " at 0xd0000000 "
                             .. "(irq 5), virtio-rng at 0xd0001000 (irq 6), virtio-console "
                             .. "(hvc0) at 0xd0002000 (irq 7)\n", 1, true), r.err)
    assert.truthy(r.err:find("linux.lua: vmlinux " .. VMLINUX .. ", 64-bit entry at 0x1000000",
                             1, true), r.err)
    assert.truthy(r.err:find("linux.lua: the guest faulted after [%d.]+ s:\ncpu 0: "
                             .. "KVM_EXIT_INTERNAL_ERROR, suberror 1: emulation failure"), r.err)
    assert.truthy(r.err:find("instruction bytes: %x%x %x%x"), r.err)
    assert.truthy(r.err:find("\n  rip ffffffff8%x+ rflags", 1), r.err)
    assert.truthy(r.err:find("code at rip %(guest physical 0x%x+%): %x%x"), r.err)
  end)
end)
