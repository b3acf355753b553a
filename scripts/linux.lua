-- usage: luavmm scripts/linux.lua --kernel K [--initrd I] [--append S]
--          [--memory 256M] [--cpus N] [--timeout S] [--entry auto|64|pvh]
--          [--disk PATH]... [--disk-ro PATH]... [--rng] [--virtio-console]
--
-- Boots a Linux kernel on a PC-shaped machine (vmm.pc): RAM with the e820
-- map of a PC, the in-kernel interrupt controllers and PIT, COM1 on the
-- terminal, the i8042 (its reset line ends the run), the RTC, and the ACPI
-- and MP tables. K is a bzImage (entered at its 64-bit entry) or an
-- uncompressed vmlinux (entered at startup_64, or with --entry pvh at its
-- Xen PVH entry); see lua/vmm/linux.lua. `make linux-guest` fetches
-- Debian's kernel and builds a busybox initramfs into build/linux/:
--
--   build/luavmm scripts/linux.lua --kernel build/linux/bzImage \
--     --initrd build/linux/initramfs.cpio.gz
--
-- Virtio devices on virtio-mmio, each in its own 4 KiB slot from 0xd0000000
-- up with its own interrupt line on the IOAPIC (5, 6, 7, 10, 11: none of
-- COM1, COM2, the i8042, the RTC or the PIT), in this order: --disk PATH a
-- virtio-blk disk on a raw image (--disk-ro PATH: read-only; both may be
-- repeated), --rng a virtio-rng, --virtio-console a virtio-console on the
-- terminal, which becomes the kernel's console (hvc0) and takes the
-- terminal's input, while COM1 keeps the early boot messages
-- (earlyprintk) and gets no input. The kernel learns of each device from a
-- `virtio_mmio.device=4K@0xd0000000:5` entry on its command line, which
-- needs a kernel built with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES and the
-- drivers built in (or in the initramfs): Debian's cloud kernel has
-- neither (VIRTIO_MMIO and the drivers are modules, without the command
-- line devices).
--
-- The command line is "console=ttyS0 earlyprintk=serial,ttyS0,115200
-- panic=-1" (console=hvc0 with --virtio-console), the devices' entries,
-- then --append. The run lasts until the guest stops (a
-- reset, a halt, a fault) or --timeout seconds pass; how it ended goes to
-- stderr. Exit status: 0 when the guest reset, shut down or halted; 3 on
-- the timeout; 1 when it faulted (the fault is printed: for a KVM internal
-- error, the decoded suberror, rip and the instruction bytes); 2 for bad
-- arguments.
--
-- Without the luavmm program, from the repository root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 scripts/linux.lua --kernel build/linux/vmlinux

local vmm = require "vmm"
local pc = require "vmm.pc"
local linux = require "vmm.linux"

local USAGE = "usage: linux.lua --kernel K [--initrd I] [--append S] [--memory 256M] "
  .. "[--cpus N] [--timeout S] [--entry auto|64|pvh] [--disk PATH]... [--disk-ro PATH]... "
  .. "[--rng] [--virtio-console]"
local EARLY = "earlyprintk=serial,ttyS0,115200 panic=-1"
local TIMED_OUT = 3

-- Where virtio devices go: a 4 KiB slot each in the PCI hole, and an
-- interrupt line no PC device uses (COM1 4, COM2 3, i8042 1 and 12, RTC 8,
-- PIT 0).
local VIRTIO_SLOTS = {
  { addr = 0xd0000000, irq = 5 }, { addr = 0xd0001000, irq = 6 },
  { addr = 0xd0002000, irq = 7 }, { addr = 0xd0003000, irq = 10 },
  { addr = 0xd0004000, irq = 11 },
}

local function say(fmt, ...)
  io.stdout:flush()
  io.stderr:write("linux.lua: ", string.format(fmt, ...), "\n")
end

-- A name for the instructions hosts that emulate guest kernel code (KVM
-- nested on PVM) are known to stop at, from a fault message's bytes.
local function known_instruction(message)
  local hex = message:match("instruction bytes: ([%x ]+)")
  if not hex then return nil end
  local b = {}
  for byte in hex:gmatch("%x%x") do b[#b + 1] = tonumber(byte, 16) end
  local i = 1
  local lock = b[i] == 0xf0
  if lock then i = i + 1 end
  if b[i] and b[i] & 0xf0 == 0x40 then i = i + 1 end            -- REX
  if b[i] == 0xcc then return "int3" end
  if b[i] == 0x0f and b[i + 1] == 0xc7 and b[i + 2] and (b[i + 2] >> 3) & 7 == 1 then
    return (lock and "lock " or "") .. ((b[i - 1] or 0) & 0xf8 == 0x48 and "cmpxchg16b" or "cmpxchg8b")
  end
  if b[i] == 0x0f and b[i + 1] == 0xae and b[i + 2] and b[i + 2] < 0xc0 then
    return ({ [0] = "fxsave", "fxrstor", nil, nil, "xsave", "xrstor" })[(b[i + 2] >> 3) & 7]
  end
end

local function parse_args(args)
  local opts = { memory = "256M", cpus = 1, entry = "auto", disks = {} }
  local known = { kernel = true, initrd = true, append = true, memory = true, cpus = true,
                  timeout = true, entry = true, disk = true, ["disk-ro"] = true }
  local flags = { rng = true, ["virtio-console"] = true }
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^%-%-(%a[%a%-]*)=(.*)$")
    if name then
      i = i + 1
    else
      name = a:match("^%-%-(%a[%a%-]*)$")
      i = i + 1
      if name and known[name] then
        value = args[i]
        i = i + 1
      end
    end
    if name and flags[name] and value == nil then
      opts[name] = true
    elseif not name or not known[name] then
      return nil, string.format("unexpected argument '%s'", a)
    elseif value == nil then
      return nil, string.format("--%s needs a value", name)
    elseif name == "disk" or name == "disk-ro" then
      opts.disks[#opts.disks + 1] = { path = value, readonly = name == "disk-ro" }
    else
      opts[name] = value
    end
  end
  if not opts.kernel then return nil, "--kernel is required" end
  local ok, size = pcall(vmm.parse_size, opts.memory)
  if not ok or size < 64 << 20 then
    return nil, string.format("--memory must be a size of at least 64M, not '%s'", opts.memory)
  end
  local cpus = math.tointeger(tonumber(opts.cpus))
  if not cpus or cpus < 1 or cpus > 64 then
    return nil, string.format("--cpus must be a whole number from 1 to 64, not '%s'", opts.cpus)
  end
  opts.cpus = cpus
  if opts.timeout then
    local t = tonumber(opts.timeout)
    if not t or t <= 0 or t > 1e6 then
      return nil, string.format("--timeout must be a positive number of seconds, not '%s'",
                                opts.timeout)
    end
    opts.timeout = t
  end
  if opts.entry ~= "auto" and opts.entry ~= "64" and opts.entry ~= "pvh" then
    return nil, string.format("--entry must be auto, 64 or pvh, not '%s'", opts.entry)
  end
  local devices = #opts.disks + (opts.rng and 1 or 0) + (opts["virtio-console"] and 1 or 0)
  if devices > #VIRTIO_SLOTS then
    return nil, string.format("at most %d virtio devices (disks, --rng, --virtio-console), "
                              .. "not %d", #VIRTIO_SLOTS, devices)
  end
  return opts
end

-- The virtio devices the options ask for, each in the next slot; returns
-- their command-line entries and a line saying what went where.
local function add_virtio(vm, opts)
  local entries, said, n = {}, {}, 0
  local function place(what, make)
    n = n + 1
    local slot = VIRTIO_SLOTS[n]
    local dev = make(slot)
    entries[#entries + 1] = dev:cmdline()
    said[#said + 1] = string.format("%s at 0x%x (irq %d)", what, slot.addr, slot.irq)
  end
  for _, d in ipairs(opts.disks) do
    place(string.format("virtio-blk%s %s", d.readonly and " (read-only)" or "", d.path),
          function(slot)
            return vm:virtio_blk{ addr = slot.addr, irq = slot.irq, path = d.path,
                                  readonly = d.readonly }
          end)
  end
  if opts.rng then
    place("virtio-rng", function(slot) return vm:virtio_rng{ addr = slot.addr, irq = slot.irq } end)
  end
  if opts["virtio-console"] then
    place("virtio-console (hvc0)", function(slot)
      return vm:virtio_console{ addr = slot.addr, irq = slot.irq }
    end)
  end
  return entries, table.concat(said, ", ")
end

local function main(args)
  local opts, err = parse_args(args)
  if not opts then
    io.stderr:write("linux.lua: ", err, "\n", USAGE, "\n")
    return 2
  end
  local m <close> = pc.new{ memory = opts.memory, cpus = opts.cpus, irqchip = true, pit = true,
                            unhandled = "ignore" }
  local vm = m.vm
  local has = function(name) return vmm.methods.vm[name] ~= nil end
  local hvc = opts["virtio-console"]
  if has("serial") then
    local com1 = { port = 0x3f8, irq = 4 }
    -- With the console on virtio, the terminal's input is the virtio one's.
    if hvc then com1.input = false end
    vm:serial(com1)
  else
    linux.com1(vm, { port = 0x3f8 })
  end
  local entries, placed_virtio = add_virtio(vm, opts)
  local cmdline = table.concat({ hvc and "console=hvc0" or "console=ttyS0", EARLY,
                                 table.unpack(entries) }, " ")
    .. (opts.append and (" " .. opts.append) or "")
  if has("i8042") then vm:i8042{} end
  if has("rtc") then vm:rtc{} end
  local rsdp
  if m.install_firmware then
    local fw = m:install_firmware{ cmdline = cmdline, i8042 = has("i8042"), rtc = has("rtc") }
    rsdp = fw.acpi and fw.acpi.rsdp
  end

  local placed = linux.boot(m, { kernel = opts.kernel, initrd = opts.initrd, cmdline = cmdline,
                                 entry = opts.entry, rsdp = rsdp })
  say("%s %s, %s entry at 0x%x; kernel [0x%x, 0x%x)%s; command line at 0x%x",
      placed.format == "elf" and "vmlinux" or "bzImage" .. " " .. placed.kernel.version,
      opts.kernel, placed.entry == "pvh" and "PVH" or "64-bit", placed.rip, placed.kernel.addr,
      placed.kernel.top,
      placed.initrd and string.format("; initrd %d bytes at 0x%x", placed.initrd.size,
                                      placed.initrd.addr) or "",
      placed.cmdline.addr)
  if #entries > 0 then say("%s", placed_virtio) end

  local started = vmm.now()
  local r = vm:run{ timeout = opts.timeout, raise = false }
  local took = vmm.now() - started
  if r.reason == "fault" then
    say("the guest faulted after %.1f s:\n%s", took, r.message)
    local insn = r.fault == "internal_error" and known_instruction(r.message)
    if insn then
      say("the instruction is %s, which KVM on this host could not emulate: hosts that "
          .. "emulate guest kernel code (KVM nested on PVM) stop here; with VT-x or AMD-V the "
          .. "kernel runs on", insn)
    end
    return 1
  elseif r.reason == "timeout" then
    say("stopped by the %g s timeout at rip 0x%x", opts.timeout, r.rip)
    return TIMED_OUT
  elseif r.reason == "reset" or r.reason == "hlt" or r.reason == "system_event"
         or r.reason == "quit" then
    say("the guest ended (%s%s) after %.1f s", r.reason,
        r.event and (" " .. r.event) or "", took)
    return 0
  end
  say("the run ended: %s at rip 0x%x after %.1f s", r.reason, r.rip, took)
  return 1
end

os.exit(main(arg or {}))
