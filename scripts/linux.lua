-- usage: luavmm scripts/linux.lua --kernel K [--initrd I] [--append S]
--          [--memory 256M] [--cpus N] [--timeout S] [--entry auto|64|pvh]
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
-- The command line is "console=ttyS0 earlyprintk=serial,ttyS0,115200
-- panic=-1" followed by --append. The run lasts until the guest stops (a
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
  .. "[--cpus N] [--timeout S] [--entry auto|64|pvh]"
local CMDLINE = "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1"
local TIMED_OUT = 3

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
  local opts = { memory = "256M", cpus = 1, entry = "auto" }
  local known = { kernel = true, initrd = true, append = true, memory = true, cpus = true,
                  timeout = true, entry = true }
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^%-%-([%a]+)=(.*)$")
    if name then
      i = i + 1
    else
      name, value = a:match("^%-%-([%a]+)$"), args[i + 1]
      i = i + 2
    end
    if not name or not known[name] then
      return nil, string.format("unexpected argument '%s'", a)
    end
    if value == nil then return nil, string.format("--%s needs a value", name) end
    opts[name] = value
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
  return opts
end

local function main(args)
  local opts, err = parse_args(args)
  if not opts then
    io.stderr:write("linux.lua: ", err, "\n", USAGE, "\n")
    return 2
  end
  local cmdline = CMDLINE .. (opts.append and (" " .. opts.append) or "")

  local m <close> = pc.new{ memory = opts.memory, cpus = opts.cpus, irqchip = true, pit = true,
                            unhandled = "ignore" }
  local vm = m.vm
  local has = function(name) return vmm.methods.vm[name] ~= nil end
  if has("serial") then
    vm:serial{ port = 0x3f8, irq = 4 }
  else
    linux.com1(vm, { port = 0x3f8 })
  end
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
