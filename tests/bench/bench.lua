-- usage: luavmm tests/bench/bench.lua [--build DIR] [--quick] [--repeat N] [--no-qemu]
--
-- `make bench`: measures luavmm against a minimal raw KVM program
-- (tests/bench/raw_kvm.c, the floor on this machine) and against QEMU, side
-- by side in this one run, and prints a table of the ratios with the
-- targets of DESIGN.md. Every figure is the median of repeated samples
-- taken in turns (raw, C, Lua, raw, C, Lua, ...), so drift on a noisy
-- machine hits all sides alike; no number from another run is ever used.
--
--   1. exit round trip, ns per exit, for port I/O, MMIO and hypercalls:
--      raw KVM vs luavmm with the exit answered in C (a constant register,
--      vm:on_io(port, 1, 0) and friends) vs luavmm with a Lua function.
--      Same guest (exits64.S) in all three.
--   2. tiny-VM lifecycle: create VM + memory + vCPU, run to the first exit
--      (hlt), destroy, in one process (raw vs vmm.vm from Lua); and whole
--      processes from launch to exit: luavmm tests/bench/tiny.lua vs QEMU
--      running the same 64 KiB guest (tiny16.S) as its firmware (-bios).
--   3. memory: the peak RSS of those processes (64 MiB guests) and of bare
--      lua5.4 and luavmm processes.
--   4. serial throughput: the same guest writing N more bytes to port 0xE9,
--      luavmm's vm:debugcon (C) and a Lua handler vs QEMU's -debugcon; bytes
--      per second of the difference between the runs with and without the
--      N bytes, so start-up cancels out.
--   5. virtio-blk: the same sequential requests (4 KiB and 64 KiB, reads
--      and writes, one at a time) made by a guest (blk64.c, from guest user
--      mode) through vm:virtio_blk with the fast path (ioeventfd + irqfd)
--      and without it (fastpath = false), and by a plain pread/pwrite loop
--      (blkref.c) on the same image file: MB/s, requests/s, the ratio to
--      the loop, and exits per request (vm:stats()). The guest waits for
--      each request's interrupt, as a kernel's driver does, or polls its
--      used ring.
--
-- Writes DIR/bench/results.json (and .csv) and, when gnuplot is there,
-- DIR/bench/ratios.png (in DIR/bench/quick/ with --quick). Exits 0 whether
-- the targets are met or not; 1 only when the bench itself broke (a guest
-- misbehaved, a tool failed). Run it from the repository root (make does).
--
-- --quick: tiny counts and one sample each, for the smoke test
-- (tests/bench_spec.lua); QEMU and gnuplot are used only if installed.
-- --no-qemu: leave QEMU out. --repeat N: N samples instead of the default.

local json = require "dkjson"
local vmm = rawget(_G, "vmm") or require "vmm"

-- ---- options ----

local USAGE = "usage: bench.lua [--build DIR] [--quick] [--repeat N] [--no-qemu]"

local function parse_args(args)
  local o = { build = "build", quick = false, qemu = true }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--build" then
      o.build = args[i + 1] or error(USAGE, 0)
      i = i + 1
    elseif a == "--quick" then
      o.quick = true
    elseif a == "--no-qemu" then
      o.qemu = false
    elseif a == "--repeat" then
      o["repeat"] = math.tointeger(tonumber(args[i + 1]))
      if not o["repeat"] or o["repeat"] < 1 then error(USAGE, 0) end
      i = i + 1
    elseif a == "--help" or a == "-h" then
      print(USAGE)
      os.exit(0)
    else
      error(string.format("bench.lua: unknown argument '%s'\n%s", a, USAGE), 0)
    end
    i = i + 1
  end
  return o
end

local opt = parse_args(arg or {})
-- This script's folder: tiny.lua is beside it.
local HERE = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
local OUT = opt.build .. "/bench"
-- Where the results go: the quick mode's must not replace a real run's.
local RESULTS = opt.quick and OUT .. "/quick" or OUT

-- Iteration counts: the real run takes about 40 seconds on a 2-core
-- nested machine; the quick one about two.
local N = opt.quick and {
  exit_passes = 32, exit_samples = 1,
  lifecycle_vms = 10, lifecycle_samples = 1,
  launch_samples = 1,
  serial_bytes = 4096, serial_samples = 1,
  blk_small = 16, blk_large = 4, blk_samples = 1, blk_disk_mib = 1,
} or {
  exit_passes = 1024, exit_samples = 31,
  lifecycle_vms = 100, lifecycle_samples = 21,
  launch_samples = 21,
  serial_bytes = 65536, serial_samples = 9,
  blk_small = 1000, blk_large = 250, blk_samples = 7, blk_disk_mib = 16,
}
if opt["repeat"] then
  N.exit_samples, N.lifecycle_samples = opt["repeat"], opt["repeat"]
  N.launch_samples, N.serial_samples = opt["repeat"], opt["repeat"]
  N.blk_samples = opt["repeat"]
end

-- Must match raw_kvm.c and the guests.
local EXITS_PER_PASS = 8
local GUEST64_AT = 0x100000
local ENTRY = { io = 0x000, mmio = 0x100, hypercall = 0x200 }
local IO_PORT, MMIO_ADDR, HYPERCALL_PORT, HYPERCALL_NR = 0x80, 0x10000000, 0xabba, 7
local EXIT_MEMORY = "2M"
local LIFECYCLE_MEMORY = 1 << 20
local GUEST16_AT = 0x8000
local TINY_COUNT_OFFSET = 0xffe0
local TINY_GREETING = "Hello from the bench guest\n"
local TINY_MEMORY_MIB = 64

local KINDS = { "io", "mmio", "hypercall" }
local KIND_NAME = { io = "port I/O (out)", mmio = "MMIO (write)", hypercall = "hypercall" }

local F = {
  raw_kvm = OUT .. "/raw_kvm",
  runproc = OUT .. "/runproc",
  blkref = OUT .. "/blkref",
  blk64 = OUT .. "/blk64.bin",
  exits64 = OUT .. "/exits64.bin",
  halt16 = OUT .. "/halt16.bin",
  tiny16 = OUT .. "/tiny16.bin",
  luavmm = opt.build .. "/luavmm",
  tiny_lua = HERE .. "/tiny.lua",
  hello_lua = HERE .. "/../../scripts/hello.lua",
  json = RESULTS .. "/results.json",
  csv = RESULTS .. "/results.csv",
  dat = RESULTS .. "/ratios.dat",
  gp = RESULTS .. "/ratios.gp",
  png = RESULTS .. "/ratios.png",
}

-- ---- small helpers ----

-- Scratch files are private to this run (another bench may be running, the
-- smoke test of a `make test`): os.tmpname's, removed at the end.
local scratch = {}

local function scratch_file()
  local path = os.tmpname()
  scratch[#scratch + 1] = path
  return path
end

local function remove_scratch()
  for _, path in ipairs(scratch) do os.remove(path) end
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- A command's whole stdout, failing if it failed.
local function capture(cmd)
  local p = io.popen(cmd, "r")
  local out = p:read("a")
  local ok, how, code = p:close()
  if not ok then
    error(string.format("bench: `%s` failed (%s %s):\n%s", cmd, how, code, out), 0)
  end
  return out
end

local function exists(cmd)
  return os.execute("command -v " .. quote(cmd) .. " >/dev/null 2>&1") == true
end

local function median(xs)
  local s = {}
  for i, v in ipairs(xs) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

local function summary(xs)
  local s = {}
  for i, v in ipairs(xs) do s[i] = v end
  table.sort(s)
  return { median = median(s), min = s[1], max = s[#s], samples = xs }
end

-- The interquartile range of xs (linear interpolation), as { lo, hi }.
local function iqr(xs)
  local s = {}
  for i, v in ipairs(xs) do s[i] = v end
  table.sort(s)
  local function at(q)
    local pos = 1 + q * (#s - 1)
    local lo = math.floor(pos)
    local hi = math.min(lo + 1, #s)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
  end
  return { at(0.25), at(0.75) }
end

-- f(a[i], b[i]) for samples taken in the same round: their spread shows how
-- far the noise of this machine moves a ratio.
local function paired(a, b, f)
  local r = {}
  for i = 1, math.min(#a, #b) do r[i] = f and f(a[i], b[i]) or a[i] / b[i] end
  return r
end

-- A ratio measured side by side: a[i] / b[i] for each round, whose
-- contenders ran back to back, then the median over the rounds (and the
-- interquartile range). Slow changes in the machine's load cancel out in
-- each round, which the ratio of two separate medians would not do.
local function ratio(a, b)
  local r = paired(a, b)
  return median(r), iqr(r)
end

local function say(fmt, ...)
  io.write(string.format(fmt, ...), "\n")
  io.stdout:flush()
end

-- Progress goes to stderr, and only to a terminal: a log gets the table.
local show_progress = os.execute("test -t 2") == true

local function progress(fmt, ...)
  if show_progress then io.stderr:write(string.format(fmt, ...), "\n") end
end

-- The order of the contenders rotates from one sample to the next.
local function rotated(list, k)
  local r = {}
  for i = 1, #list do r[i] = list[(i + k - 1) % #list + 1] end
  return r
end

-- ---- the machine ----

-- The 1-minute load average: other work on the machine moves every figure.
local function load_average()
  return tonumber((read_file("/proc/loadavg") or ""):match("^(%S+)"))
end

local function machine()
  local cpuinfo = read_file("/proc/cpuinfo") or ""
  local cores = 0
  for _ in cpuinfo:gmatch("\nprocessor%s*:") do cores = cores + 1 end
  if cpuinfo:match("^processor%s*:") then cores = cores + 1 end
  local m = {
    cpu = cpuinfo:match("model name%s*:%s*([^\n]+)") or "unknown",
    cores = cores,
    kernel = (read_file("/proc/sys/kernel/osrelease") or "unknown"):gsub("%s+$", ""),
    pvm = os.execute("test -d /sys/module/kvm_pvm") == true,
    hypervisor_flag = cpuinfo:match("flags%s*:[^\n]* hypervisor") ~= nil,
    date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    luavmm = vmm.version,
    build = opt.build,
    sanitized = opt.build:match("/san%-") ~= nil,
    load_at_start = load_average(),
  }
  return m
end

-- ---- 1. exit round trip ----

local function raw_exits(kind, passes)
  local out = capture(string.format("%s exits %s %s %d", quote(F.raw_kvm), kind,
                                    quote(F.exits64), passes))
  local exits, ns = out:match("exits (%d+) ns (%d+)")
  assert(exits, "raw_kvm said: " .. out)
  return tonumber(ns) / tonumber(exits)
end

local function luavmm_exits(kind, variant, passes)
  local vm <close> = vmm.vm{ memory = EXIT_MEMORY }
  vm:load(F.exits64, GUEST64_AT)
  local cpu = vm:cpu(0)
  cpu:set_mode("long", { entry = GUEST64_AT + ENTRY[kind] })
  cpu:set{ rcx = passes, rdx = kind == "hypercall" and HYPERCALL_PORT or IO_PORT,
           rbx = MMIO_ADDR, r8 = HYPERCALL_NR, rdi = 1, rsi = 2 }
  -- An integer is a constant register answered in C; a function is Lua.
  local handler
  if variant == "c" then
    handler = 0
  elseif kind == "hypercall" then
    handler = function(cpu_, a1, a2) return 0 end
  else
    handler = function(cpu_, offset, size, value) end
  end
  if kind == "io" then
    vm:on_io(IO_PORT, 1, handler)
  elseif kind == "mmio" then
    vm:on_mmio(MMIO_ADDR, 0x1000, handler)
  else
    vm:on_hypercall(HYPERCALL_NR, handler)
  end
  local t0 = vmm.now()
  local result = vm:run{ timeout = 120 }
  local t1 = vmm.now()
  local expected = passes * EXITS_PER_PASS
  local stats = vm:stats()
  local seen = kind == "mmio" and stats.reasons.mmio or stats.reasons.io
  if result.reason ~= "hlt" or seen ~= expected then
    error(string.format("bench: luavmm %s exits (%s): %s after %s exits, expected hlt after %d",
                        kind, variant, result.reason, tostring(seen), expected), 0)
  end
  return (t1 - t0) * 1e9 / expected
end

local function bench_exits(results)
  local passes = N.exit_passes
  say("== 1. Exit round trip: ns per exit (median of %d samples of %d exits each)",
      N.exit_samples, passes * EXITS_PER_PASS)
  local samples = {}
  for _, kind in ipairs(KINDS) do samples[kind] = { raw = {}, c = {}, lua = {} } end
  for s = 1, N.exit_samples do
    for _, kind in ipairs(KINDS) do
      for _, who in ipairs(rotated({ "raw", "c", "lua" }, s)) do
        local ns = who == "raw" and raw_exits(kind, passes) or luavmm_exits(kind, who, passes)
        table.insert(samples[kind][who], ns)
      end
    end
    progress("  exits: sample %d/%d", s, N.exit_samples)
  end
  say("  %-16s %10s %10s %11s %8s %8s %8s", "", "raw KVM", "luavmm C", "luavmm Lua",
      "C/raw", "Lua/C", "Lua/raw")
  results.exits = {}
  for _, kind in ipairs(KINDS) do
    local r = {
      raw = summary(samples[kind].raw),
      c = summary(samples[kind].c),
      lua = summary(samples[kind].lua),
    }
    local sk = samples[kind]
    r.c_over_raw, r.c_over_raw_iqr = ratio(sk.c, sk.raw)
    r.lua_over_c, r.lua_over_c_iqr = ratio(sk.lua, sk.c)
    r.lua_over_raw, r.lua_over_raw_iqr = ratio(sk.lua, sk.raw)
    results.exits[kind] = r
    say("  %-16s %10.0f %10.0f %11.0f %7.2fx %7.2fx %7.2fx", KIND_NAME[kind], r.raw.median,
        r.c.median, r.lua.median, r.c_over_raw, r.lua_over_c, r.lua_over_raw)
  end
  -- Other work on the machine only ever adds time: the fastest sample of
  -- each is the least disturbed one, a cross-check on a busy machine.
  say("  fastest samples:")
  for _, kind in ipairs(KINDS) do
    local r = results.exits[kind]
    r.c_over_raw_best = r.c.min / r.raw.min
    r.lua_over_c_best = r.lua.min / r.c.min
    r.lua_over_raw_best = r.lua.min / r.raw.min
    say("  %-16s %10.0f %10.0f %11.0f %7.2fx %7.2fx %7.2fx", KIND_NAME[kind], r.raw.min,
        r.c.min, r.lua.min, r.c_over_raw_best, r.lua_over_c_best, r.lua_over_raw_best)
  end
  say("  (ns: the median of each, then the fastest sample of each; ratios: the median of the")
  say("  ratios within each round, then of the fastest samples. The guest makes %d exits per",
      EXITS_PER_PASS)
  say("  loop pass; raw answers hypercalls through the synced registers as luavmm does)")
end

-- ---- 2a. lifecycle in one process ----

local function raw_lifecycle(count, cpuid)
  local out = capture(string.format("%s lifecycle %s %d %d%s", quote(F.raw_kvm), quote(F.halt16),
                                    count, LIFECYCLE_MEMORY, cpuid and " --cpuid" or ""))
  local vms, ns = out:match("vms (%d+) ns (%d+)")
  assert(vms, "raw_kvm said: " .. out)
  return tonumber(ns) / tonumber(vms)
end

-- One VM more than counted: the first, untimed, warms up as raw_kvm's does.
local function luavmm_lifecycle(count)
  local t0
  for i = 0, count do
    if i == 1 then t0 = vmm.now() end
    local vm = vmm.vm{ memory = LIFECYCLE_MEMORY }
    vm:load(F.halt16, GUEST16_AT)
    vm:cpu(0):set{ cs = 0, rip = GUEST16_AT }
    local result = vm:run{}
    vm:close()
    if result.reason ~= "hlt" then
      error("bench: the lifecycle guest ended with " .. result.reason .. ", not hlt", 0)
    end
  end
  return (vmm.now() - t0) * 1e9 / count
end

-- Processes other than this one that have a KVM VM open, by their fds.
local function other_vm_processes()
  local p = io.popen("sh -c 'echo $PPID; find /proc/[0-9]*/fd -lname anon_inode:kvm-vm "
                       .. "2>/dev/null'")
  local self = p:read("l")
  local pids = {}
  for line in p:lines() do
    local pid = line:match("^/proc/(%d+)/")
    if pid and pid ~= self then pids[pid] = true end
  end
  p:close()
  local n = 0
  for _ in pairs(pids) do n = n + 1 end
  return n
end

local function lifecycle_rounds(samples)
  local s = { raw = {}, raw_cpuid = {}, luavmm = {} }
  for i = 1, samples do
    for _, who in ipairs(rotated({ "raw", "raw_cpuid", "luavmm" }, i)) do
      local ns
      if who == "luavmm" then
        collectgarbage()
        ns = luavmm_lifecycle(N.lifecycle_vms)
      else
        ns = raw_lifecycle(N.lifecycle_vms, who == "raw_cpuid")
      end
      table.insert(s[who], ns)
    end
    progress("  lifecycle: sample %d/%d", i, samples)
  end
  local r = { raw = summary(s.raw), raw_cpuid = summary(s.raw_cpuid), luavmm = summary(s.luavmm) }
  r.luavmm_over_raw, r.luavmm_over_raw_iqr = ratio(s.luavmm, s.raw)
  r.luavmm_over_raw_cpuid = ratio(s.luavmm, s.raw_cpuid)
  say("  %-44s %9s %9s %14s", "", "median", "fastest", "")
  local function row(name, x)
    say("  %-44s %6.0f us %6.0f us  %6.0f VMs/s", name, x.median / 1e3, x.min / 1e3,
        1e9 / x.median)
  end
  row("raw KVM", r.raw)
  row("raw KVM + KVM_SET_CPUID2 (as luavmm does)", r.raw_cpuid)
  row("luavmm: vmm.vm{}/load/set/run/close from Lua", r.luavmm)
  say("  luavmm / raw time per VM: %.2fx (median of the rounds' ratios); / raw + CPUID: %.2fx",
      r.luavmm_over_raw, r.luavmm_over_raw_cpuid)
  return r
end

-- pin: the VM main() holds open (see there). The rounds run once with it,
-- for the target, and once without it, as a process that is the only one
-- with a VM would see it: then every create and destroy also patches kernel
-- code, for both sides alike, unless another process on the machine
-- happens to have a VM open (counted and reported).
local function bench_lifecycle(results, pin)
  say("")
  say("== 2. Tiny-VM lifecycle")
  say("  in one process: create VM + %d KiB + vCPU, run to the first exit (hlt), destroy;",
      LIFECYCLE_MEMORY >> 10)
  say("  median of %d samples of %d VMs, with another VM open (the steady state):",
      N.lifecycle_samples, N.lifecycle_vms)
  results.lifecycle = lifecycle_rounds(N.lifecycle_samples)
  pin:close()
  local before = other_vm_processes()
  say("")
  say("  the same with no other VM open in this process (%d other processes on the machine",
      before)
  say("  had one), so KVM's static keys flip on every create and destroy (not a target):")
  local alone = lifecycle_rounds(N.lifecycle_samples)
  alone.other_vm_processes = { before = before, after = other_vm_processes() }
  results.lifecycle_alone = alone
end

-- ---- 2b, 3, 4: whole processes ----

local launch_err

-- Runs argv under runproc; returns { wall_ns, maxrss_kib, status, timeout, err }.
local function launch(argv, out_path, limit)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = quote(a) end
  launch_err = launch_err or scratch_file()
  local err_path = launch_err
  local line = capture(string.format("%s -o %s -e %s -t %d -- %s", quote(F.runproc),
                                     quote(out_path), quote(err_path), limit or 60,
                                     table.concat(parts, " ")))
  local wall, rss, status = line:match("wall_ns (%d+) maxrss_kib (%d+) status (%d+)")
  assert(wall, "runproc said: " .. line)
  return { wall_ns = tonumber(wall), maxrss_kib = tonumber(rss), status = tonumber(status),
           timeout = line:match("timeout") ~= nil, err = read_file(err_path) or "" }
end

local QEMU = "qemu-system-x86_64"

local function qemu_argv(machine_type, image)
  return { QEMU, "-accel", "kvm", "-M", machine_type, "-cpu", "host",
           "-m", TINY_MEMORY_MIB .. "M", "-nodefaults", "-nographic", "-no-reboot",
           "-bios", image, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01",
           "-debugcon", "stdio" }
end

-- The contenders of the whole-process runs: how to start each with a given
-- image, and the exit status that means the guest finished. QEMU's
-- isa-debug-exit exits with (value << 1) | 1: 1 for the guest's 0.
local function contenders(with_qemu)
  local c = {
    { id = "luavmm", name = "luavmm tiny.lua (debugcon in C)", status = 0,
      argv = function(img) return { F.luavmm, F.tiny_lua, img } end },
    { id = "luavmm_lua", name = "luavmm tiny.lua --lua (Lua console)", status = 0,
      argv = function(img) return { F.luavmm, F.tiny_lua, img, "--lua" } end },
  }
  if with_qemu then
    table.insert(c, { id = "qemu_microvm", name = "QEMU -M microvm -bios", status = 1,
                      argv = function(img) return qemu_argv("microvm", img) end })
    table.insert(c, { id = "qemu_pc", name = "QEMU -M pc -bios", status = 1,
                      argv = function(img) return qemu_argv("pc", img) end })
  end
  return c
end

-- Processes that run no guest of ours: the baselines for memory, and the
-- repository's own hello script.
local function baselines()
  return {
    { id = "lua_bare", name = "lua5.4 -e ''", status = 0,
      argv = { "lua5.4", "-e", "" } },
    { id = "luavmm_bare", name = "luavmm -e ''", status = 0,
      argv = { F.luavmm, "-e", "" } },
    { id = "hello_lua", name = "luavmm scripts/hello.lua (Lua handlers)", status = 0,
      argv = { F.luavmm, F.hello_lua } },
  }
end

-- A copy of tiny16 that writes `count` more bytes.
local function serial_image(count)
  assert(count % 64 == 0, "the serial byte count must be a multiple of 64")
  local image = assert(read_file(F.tiny16), F.tiny16 .. " is missing")
  assert(#image == 0x10000, "tiny16.bin is not 64 KiB")
  local path = scratch_file()
  write_file(path, image:sub(1, TINY_COUNT_OFFSET) .. string.pack("<I4", count)
                     .. image:sub(TINY_COUNT_OFFSET + 5))
  return path
end

local function serial_expected(count)
  local dots = {}
  for i = 1, count do dots[i] = (i % 64 == 0) and "\n" or "." end
  return TINY_GREETING .. table.concat(dots)
end

local function check_launch(who, r, expected_status, out_path, expected_out)
  if r.timeout or r.status ~= expected_status then
    error(string.format("bench: %s ended with status %d%s (expected %d); its stderr:\n%s",
                        who, r.status, r.timeout and " (timed out)" or "", expected_status,
                        r.err), 0)
  end
  if expected_out then
    local got = read_file(out_path) or ""
    if got ~= expected_out then
      error(string.format("bench: %s printed %d bytes, not the %d expected (first: %q)",
                          who, #got, #expected_out, got:sub(1, 80)), 0)
    end
  end
end

local function bench_processes(results, with_qemu)
  say("")
  say("  whole process, launch to exit (fork+exec to reaping, median of %d launches);",
      N.launch_samples)
  say("  the same 64 KiB real-mode guest (tiny16.S) prints %d bytes to port 0xE9 and writes",
      #TINY_GREETING)
  say("  0 to port 0xF4; QEMU takes it as its firmware, so neither side runs a BIOS")
  local who = contenders(with_qemu)
  local base = baselines()
  local out_path = scratch_file()
  local s = {}
  for _, c in ipairs(who) do s[c.id] = { wall = {}, rss = {} } end
  for _, b in ipairs(base) do s[b.id] = { wall = {}, rss = {} } end
  local all = {}
  for _, c in ipairs(who) do all[#all + 1] = c end
  for _, b in ipairs(base) do all[#all + 1] = b end
  for i = 1, N.launch_samples do
    for _, c in ipairs(rotated(all, i)) do
      local argv = type(c.argv) == "function" and c.argv(F.tiny16) or c.argv
      local r = launch(argv, out_path)
      -- Our guest must have said exactly its greeting; the others need
      -- only to succeed.
      check_launch(c.name, r, c.status, out_path,
                   type(c.argv) == "function" and TINY_GREETING or nil)
      table.insert(s[c.id].wall, r.wall_ns)
      table.insert(s[c.id].rss, r.maxrss_kib)
    end
    progress("  processes: launch %d/%d", i, N.launch_samples)
  end
  results.processes = {}
  for _, c in ipairs(all) do
    results.processes[c.id] = { name = c.name, wall_ns = summary(s[c.id].wall),
                                maxrss_kib = summary(s[c.id].rss) }
    say("  %-44s %9.1f ms  peak RSS %6.1f MiB", c.name, median(s[c.id].wall) / 1e6,
        median(s[c.id].rss) / 1024)
  end
  local p = results.processes
  if with_qemu then
    p.qemu_over_luavmm, p.qemu_over_luavmm_iqr = ratio(s.qemu_microvm.wall, s.luavmm.wall)
    p.qemu_pc_over_luavmm = ratio(s.qemu_pc.wall, s.luavmm.wall)
    say("  QEMU microvm / luavmm: %.1fx; QEMU pc / luavmm: %.1fx", p.qemu_over_luavmm,
        p.qemu_pc_over_luavmm)
  end

  say("")
  say("== 3. Memory: peak RSS (VmHWM, from wait4) with a %d MiB guest that touches 64 KiB",
      TINY_MEMORY_MIB)
  local mem = {
    luavmm_mib = p.luavmm.maxrss_kib.median / 1024,
    lua_bare_mib = p.lua_bare.maxrss_kib.median / 1024,
    luavmm_bare_mib = p.luavmm_bare.maxrss_kib.median / 1024,
  }
  local overhead = paired(s.luavmm.rss, s.lua_bare.rss, function(a, b) return (a - b) / 1024 end)
  mem.overhead_over_lua_mib, mem.overhead_over_lua_mib_iqr = median(overhead), iqr(overhead)
  mem.overhead_over_luavmm_bare_mib = mem.luavmm_mib - mem.luavmm_bare_mib
  say("  luavmm running the guest %.1f MiB; bare lua5.4 %.1f MiB; bare luavmm -e '' %.1f MiB",
      mem.luavmm_mib, mem.lua_bare_mib, mem.luavmm_bare_mib)
  say("  luavmm's own overhead: %.2f MiB over lua5.4, %.2f MiB over luavmm -e ''",
      mem.overhead_over_lua_mib, mem.overhead_over_luavmm_bare_mib)
  if with_qemu then
    mem.qemu_mib = p.qemu_microvm.maxrss_kib.median / 1024
    mem.luavmm_over_qemu, mem.luavmm_over_qemu_iqr = ratio(s.luavmm.rss, s.qemu_microvm.rss)
    say("  QEMU microvm %.1f MiB (pc: %.1f MiB); luavmm / QEMU = %.3f", mem.qemu_mib,
        p.qemu_pc.maxrss_kib.median / 1024, mem.luavmm_over_qemu)
  end
  results.memory = mem
end

local function bench_serial(results, with_qemu)
  local count = N.serial_bytes
  say("")
  say("== 4. Serial output to stdout (a file): %d bytes through port 0xE9, median of %d",
      count, N.serial_samples)
  local image = serial_image(count)
  local expected = serial_expected(count)
  local who = {}
  for _, c in ipairs(contenders(with_qemu)) do
    if c.id ~= "qemu_pc" then who[#who + 1] = c end
  end
  local s = {}
  for _, c in ipairs(who) do s[c.id] = {} end
  local out_path = scratch_file()
  for i = 1, N.serial_samples do
    for _, c in ipairs(rotated(who, i)) do
      local r = launch(c.argv(image), out_path, 300)
      check_launch(c.name, r, c.status, out_path, expected)
      table.insert(s[c.id], r.wall_ns)
    end
    progress("  serial: sample %d/%d", i, N.serial_samples)
  end
  -- The bytes per second of the N bytes alone: the run without them (the
  -- lifecycle launches above, same image size and contender) is subtracted.
  results.serial = { bytes = count }
  for _, c in ipairs(who) do
    local with = median(s[c.id])
    local without = results.processes[c.id].wall_ns.median
    local extra = with - without
    local r = { name = c.name, wall_ns = summary(s[c.id]), extra_ns = extra,
                bytes_per_s = extra > 0 and count / (extra / 1e9) or nil,
                whole_process_bytes_per_s = count / (with / 1e9) }
    results.serial[c.id] = r
    if r.bytes_per_s then
      say("  %-44s %9.1f ms  %8.0f KiB/s (whole process: %.0f KiB/s)", c.name, with / 1e6,
          r.bytes_per_s / 1024, r.whole_process_bytes_per_s / 1024)
    else
      say("  %-44s %9.1f ms  too fast to tell from start-up at this count", c.name, with / 1e6)
    end
  end
  local sr = results.serial
  if with_qemu and sr.qemu_microvm.bytes_per_s then
    if sr.luavmm.bytes_per_s then
      sr.luavmm_over_qemu = sr.luavmm.bytes_per_s / sr.qemu_microvm.bytes_per_s
    end
    if sr.luavmm_lua.bytes_per_s then
      sr.luavmm_lua_over_qemu = sr.luavmm_lua.bytes_per_s / sr.qemu_microvm.bytes_per_s
    end
  end
end

-- ---- 5. virtio-blk ----

-- Must match blk64.c.
local BLK = { base = 0xd0000000, irq = 5, mark = 0xd0100000, done = 0xffff, failed = 0x10000,
              hc_param = 0x40, memory = "4M" }
-- The phases every contender runs, in this order.
local BLK_PHASES = {
  { id = "read_4k", label = "4 KiB read", short = "4K read", write = false, bytes = 4096 },
  { id = "write_4k", label = "4 KiB write", short = "4K write", write = true, bytes = 4096 },
  { id = "read_64k", label = "64 KiB read", short = "64K read", write = false, bytes = 65536 },
  { id = "write_64k", label = "64 KiB write", short = "64K write", write = true, bytes = 65536 },
}
-- The luavmm contenders: the fast path or not, the guest waiting for
-- interrupts or polling.
local BLK_VMM = {
  { id = "fast", label = "luavmm fast path, irq", fastpath = true, poll = false },
  { id = "exit", label = "luavmm exit path, irq", fastpath = false, poll = false },
  { id = "fast_poll", label = "luavmm fast path, poll", fastpath = true, poll = true },
  { id = "exit_poll", label = "luavmm exit path, poll", fastpath = false, poll = true },
}

local function blk_count(phase)
  return phase.bytes >= 65536 and N.blk_large or N.blk_small
end

-- ns per request of each phase for the pread/pwrite loop.
local function blk_reference(path)
  local ns = {}
  for _, ph in ipairs(BLK_PHASES) do
    local count = blk_count(ph)
    local out = capture(string.format("%s %s %s %d %d", quote(F.blkref), quote(path),
                                      ph.write and "write" or "read", ph.bytes, count))
    local n, t = out:match("requests (%d+) ns (%d+)")
    assert(n, "blkref said: " .. out)
    ns[ph.id] = tonumber(t) / tonumber(n)
  end
  return ns
end

-- One luavmm contender: a VM running blk64 through every phase. The guest
-- marks the start and end of each phase (an MMIO write); the handler
-- stops the VM there, so the clock and the statistics of the run between
-- cover one phase exactly (its exits, plus the end mark's). Returns ns per
-- request and exits per request for each phase, and the device's status.
local function blk_luavmm(path, c)
  local vm <close> = vmm.vm{ memory = BLK.memory, irqchip = true }
  vm:load(F.blk64, GUEST64_AT)
  vm:cpu(0):set_mode("long", { entry = GUEST64_AT })
  local console = {}
  vm:on_io(0xe9, function(_, _, _, v) console[#console + 1] = string.char(v) end)
  local params = { [0] = BLK.base, [1] = c.poll and 1 or 0, [2] = BLK.irq,
                   [3] = N.blk_disk_mib * 2048, [4] = #BLK_PHASES }
  for k, ph in ipairs(BLK_PHASES) do
    local at = 8 + 4 * (k - 1)
    params[at], params[at + 1], params[at + 2] = ph.write and 1 or 0, ph.bytes, blk_count(ph)
  end
  vm:on_hypercall(BLK.hc_param, function(_, i) return params[i] or 0 end)
  vm:on_mmio(BLK.mark, 0x1000, function(_, _, _, v)
    if v then vm:stop(v) end
  end)
  local dev = vm:virtio_blk{ addr = BLK.base, irq = BLK.irq, path = path, fastpath = c.fastpath }
  local function run_to(mark)
    local r = vm:run{ timeout = 120, raise = false }
    if r.reason ~= "stop" or r.code ~= mark then
      error(string.format("bench: blk64 (%s) ended with %s %s (%s), expected mark 0x%x; it "
                          .. "printed:\n%s", c.label, r.reason, tostring(r.code),
                          tostring(r.message), mark, table.concat(console)), 0)
    end
  end
  local out = {}
  for k, ph in ipairs(BLK_PHASES) do
    run_to(2 * (k - 1))
    vm:reset_stats()
    local t0 = vmm.now()
    run_to(2 * (k - 1) + 1)
    local t1 = vmm.now()
    local count = blk_count(ph)
    out[ph.id] = { ns = (t1 - t0) * 1e9 / count, exits = (vm:stats().exits - 1) / count }
  end
  run_to(BLK.done)
  return out, dev:status()
end

local function bench_virtio_blk(results)
  say("")
  say("== 5. virtio-blk: sequential requests, one at a time, against a pread/pwrite loop")
  say("  on the same %d MiB image (median of %d samples of %d 4 KiB and %d 64 KiB requests",
      N.blk_disk_mib, N.blk_samples, N.blk_small, N.blk_large)
  say("  per direction). The guest (blk64.c) makes them from user mode; it waits for each")
  say("  request's interrupt (irq: the handler reads and ACKs InterruptStatus) or polls the")
  say("  used ring (poll). Fast path: notifications through ioeventfd, interrupts through")
  say("  irqfd; exit path: vm:virtio_blk{ fastpath = false }.")
  local path = scratch_file()
  write_file(path, string.rep("\0", N.blk_disk_mib << 20))
  local ids = { "pread" }
  for _, c in ipairs(BLK_VMM) do ids[#ids + 1] = c.id end
  local s, status = {}, {}
  for _, id in ipairs(ids) do
    s[id] = {}
    for _, ph in ipairs(BLK_PHASES) do s[id][ph.id] = { ns = {}, exits = {} } end
  end
  for i = 1, N.blk_samples do
    for _, id in ipairs(rotated(ids, i)) do
      local got
      if id == "pread" then
        got = {}
        for ph, ns in pairs(blk_reference(path)) do got[ph] = { ns = ns } end
      else
        for _, c in ipairs(BLK_VMM) do
          if c.id == id then got, status[id] = blk_luavmm(path, c) end
        end
      end
      for ph, v in pairs(got) do
        table.insert(s[id][ph].ns, v.ns)
        if v.exits then table.insert(s[id][ph].exits, v.exits) end
      end
    end
    progress("  virtio-blk: sample %d/%d", i, N.blk_samples)
  end

  local r = { counts = { small = N.blk_small, large = N.blk_large, samples = N.blk_samples,
                         disk_mib = N.blk_disk_mib }, phases = {} }
  local st = status.fast
  r.fast_path = { ioeventfd = st.ioeventfd, irqfd = st.irqfd, error = st.fastpath_error,
                  notifies_ioeventfd = st.notifies_ioeventfd, notifies_mmio = st.notifies_mmio,
                  interrupts_irqfd = st.interrupts_irqfd, interrupts_line = st.interrupts_line }
  say("  %-38s %10s %10s %11s %10s", "", "MB/s", "requests/s", "vs pread", "exits/req")
  for _, ph in ipairs(BLK_PHASES) do
    local p = {}
    for _, id in ipairs(ids) do
      local x = s[id][ph.id]
      local ns = median(x.ns)
      p[id] = { ns_per_request = summary(x.ns), requests_per_s = 1e9 / ns,
                mb_per_s = ph.bytes * 1e3 / ns }
      if id ~= "pread" then
        -- Throughput over the loop's, paired within each round.
        p[id].over_pread, p[id].over_pread_iqr = ratio(s.pread[ph.id].ns, x.ns)
        p[id].exits_per_request = median(x.exits)
      end
    end
    p.fast_over_exit, p.fast_over_exit_iqr = ratio(s.exit[ph.id].ns, s.fast[ph.id].ns)
    r.phases[ph.id] = p
    for j, id in ipairs(ids) do
      local x = p[id]
      local name = id == "pread" and "pread/pwrite loop" or BLK_VMM[j - 1].label
      say("  %-13s %-24s %10.1f %10.0f %11s %10s", j == 1 and ph.label .. ":" or "", name,
          x.mb_per_s, x.requests_per_s,
          x.over_pread and string.format(x.over_pread < 0.1 and "%.4fx" or "%.3fx", x.over_pread)
            or "", x.exits_per_request and string.format("%.2f", x.exits_per_request) or "")
    end
  end
  -- Over the four phases: the worst exits per request of the fast path
  -- (interrupt-driven), and the fast path's throughput over the exit
  -- path's, per round (the mean of the four phases' ratios), then the
  -- median of the rounds.
  local worst = 0
  for _, ph in ipairs(BLK_PHASES) do
    worst = math.max(worst, r.phases[ph.id].fast.exits_per_request)
  end
  r.fast_exits_per_request = worst
  local per_round = {}
  for i = 1, N.blk_samples do
    local sum = 0
    for _, ph in ipairs(BLK_PHASES) do sum = sum + s.exit[ph.id].ns[i] / s.fast[ph.id].ns[i] end
    per_round[i] = sum / #BLK_PHASES
  end
  r.fast_over_exit, r.fast_over_exit_iqr = median(per_round), iqr(per_round)
  say("  fast path in use: ioeventfd %s, irqfd %s%s; fast path / exit path throughput %.2fx",
      tostring(st.ioeventfd), tostring(st.irqfd),
      st.fastpath_error and (" (" .. st.fastpath_error .. ")") or "", r.fast_over_exit)
  say("  (exits per request: those of the run that made the phase's requests, less the")
  say("  end mark's; the interrupt handler's two are in the irq rows)")
  results.virtio_blk = r
end

-- ---- targets ----

-- op "<=": met when ratio <= target; ">=" and ">" likewise; "<" strict.
local function verdict(ratio, op, target)
  if ratio == nil then return nil, nil end
  local met
  if op == "<=" then met = ratio <= target
  elseif op == "<" then met = ratio < target
  elseif op == ">=" then met = ratio >= target
  else met = ratio > target end
  -- How far from the target, as a fraction of it, in the direction that
  -- matters: positive is room to spare, negative is by how much it missed.
  local margin
  if op == "<=" or op == "<" then margin = 1 - ratio / target else margin = ratio / target - 1 end
  return met, margin
end

local function targets(results, qemu_note)
  local t = {}
  local function add(id, label, ratio, op, target, unit, why_missing, spread)
    local met, margin = verdict(ratio, op, target)
    t[#t + 1] = { id = id, label = label, ratio = ratio, op = op, target = target,
                  unit = unit or "x", met = met, margin = margin,
                  iqr = ratio ~= nil and spread or nil,
                  status = ratio == nil and ("skipped: " .. (why_missing or "not measured"))
                    or (met and "met" or "missed") }
  end
  for _, kind in ipairs(KINDS) do
    local e = results.exits[kind]
    add("exit_" .. kind .. "_c_over_raw", KIND_NAME[kind] .. " exit: C handler / raw KVM",
        e.c_over_raw, "<=", 1.1, "x", nil, e.c_over_raw_iqr)
    add("exit_" .. kind .. "_lua_over_c", KIND_NAME[kind] .. " exit: Lua handler / C handler",
        e.lua_over_c, "<=", 1.3, "x", nil, e.lua_over_c_iqr)
  end
  add("lifecycle_in_process", "lifecycle in one process: luavmm / raw time per VM",
      results.lifecycle.luavmm_over_raw, "<=", 1.2, "x", nil,
      results.lifecycle.luavmm_over_raw_iqr)
  local p, m, s = results.processes, results.memory, results.serial
  add("whole_process", "whole process: QEMU microvm / luavmm launch-to-exit time",
      p.qemu_over_luavmm, ">=", 10, "x", qemu_note, p.qemu_over_luavmm_iqr)
  add("memory_overhead", "memory: luavmm peak RSS over bare lua5.4 (MiB)",
      m.overhead_over_lua_mib, "<", 4, "MiB", nil, m.overhead_over_lua_mib_iqr)
  add("memory_vs_qemu", "memory: luavmm / QEMU microvm peak RSS", m.luavmm_over_qemu, "<=",
      0.25, "x", qemu_note, m.luavmm_over_qemu_iqr)
  add("serial_c", "serial: luavmm debugcon / QEMU debugcon bytes per s", s.luavmm_over_qemu, ">",
      1, "x", qemu_note or "too few bytes to measure")
  add("serial_lua", "serial: luavmm Lua handler / QEMU debugcon bytes per s",
      s.luavmm_lua_over_qemu, ">", 1, "x", qemu_note or "too few bytes to measure")
  local vb = results.virtio_blk
  for _, ph in ipairs(BLK_PHASES) do
    local p = vb.phases[ph.id]
    t[#t + 1] = { id = "virtio_blk_" .. ph.id,
                  label = "virtio-blk " .. ph.label .. ": fast path / pread, req/s",
                  ratio = p.fast.over_pread, iqr = p.fast.over_pread_iqr, unit = "x",
                  status = "no target" }
  end
  add("virtio_blk_exits", "virtio-blk exits per request, fast path (irq)",
      vb.fast_exits_per_request, "<=", 2, "exits")
  add("virtio_blk_fast_over_exit", "virtio-blk fast path / exit path, requests per s (irq)",
      vb.fast_over_exit, ">=", 1, "x", nil, vb.fast_over_exit_iqr)
  return t
end

local function fmt_ratio(r, unit)
  if unit == "MiB" then return string.format("%.2f MiB", r) end
  if unit == "exits" then return string.format("%.2f", r) end
  if r >= 10 then return string.format("%.1fx", r) end
  if r < 0.01 then return string.format("%.4fx", r) end
  if r < 0.1 then return string.format("%.3fx", r) end
  return string.format("%.2fx", r)
end

local function fmt_target(op, target, unit)
  local sym = ({ ["<="] = "<=", ["<"] = "<", [">="] = ">=", [">"] = ">" })[op]
  if unit == "exits" then return sym .. " " .. target end
  return sym .. " " .. (unit == "MiB" and (target .. " MiB") or (target .. "x"))
end

local function fmt_iqr(row)
  if not row.iqr then return "" end
  local lo, hi = fmt_ratio(row.iqr[1], row.unit), fmt_ratio(row.iqr[2], row.unit)
  return (lo:gsub("[x ].*$", "")) .. "-" .. hi
end

local function print_targets(t)
  say("")
  say("== Ratios and targets (DESIGN.md, \"Figures we hold ourselves to\", and the bench issue)")
  say("  (each ratio is the median over the rounds of the ratio within a round, whose")
  say("  contenders ran back to back; 'rounds' is its interquartile range: how far this")
  say("  machine's noise moves it. Serial: the ratio of the two throughputs.)")
  local line = "  %-56s %9s %9s %13s  %s"
  say(line, "", "measured", "target", "rounds", "")
  for _, row in ipairs(t) do
    if row.ratio ~= nil and not row.target then
      say(line, row.label, fmt_ratio(row.ratio, row.unit), "-", fmt_iqr(row), row.status)
    elseif row.ratio ~= nil then
      local how
      local pct = math.abs(row.margin * 100)
      pct = string.format(pct < 10 and "%.1f%%" or "%.0f%%", pct)
      how = row.met and ("met (" .. pct .. " to spare)") or ("MISSED by " .. pct)
      if row.iqr and row.iqr[1] <= row.target and row.target <= row.iqr[2] then
        how = how .. ", within the noise"
      end
      say(line, row.label, fmt_ratio(row.ratio, row.unit), fmt_target(row.op, row.target, row.unit),
          fmt_iqr(row), how)
    elseif row.target then
      say(line, row.label, "-", fmt_target(row.op, row.target, row.unit), "", row.status)
    else
      say(line, row.label, "-", "-", "", row.status)
    end
  end
end

-- ---- the chart ----

local CHART_LABEL = {
  exit_io_c_over_raw = "I/O exit\\nC / raw", exit_io_lua_over_c = "I/O exit\\nLua / C",
  exit_mmio_c_over_raw = "MMIO exit\\nC / raw", exit_mmio_lua_over_c = "MMIO exit\\nLua / C",
  exit_hypercall_c_over_raw = "hypercall\\nC / raw",
  exit_hypercall_lua_over_c = "hypercall\\nLua / C",
  lifecycle_in_process = "lifecycle\\nluavmm / raw", whole_process = "process\\nQEMU / luavmm",
  memory_overhead = "overhead\\nMiB", memory_vs_qemu = "RSS\\nluavmm / QEMU",
  serial_c = "serial C\\nvs QEMU", serial_lua = "serial Lua\\nvs QEMU",
  virtio_blk_exits = "virtio-blk\\nexits/req", virtio_blk_fast_over_exit = "virtio-blk\\nfast / exit",
}

-- Two panels: the ratios whose targets lie near 1 (exits, lifecycle,
-- serial) on a linear scale, where a few per cent show; the others
-- (whole process, memory) on a log scale.
local function chart_rows(t, near_one)
  local lines = {}
  local lo_all, hi_all = math.huge, 0
  for _, row in ipairs(t) do
    local near = row.target and row.target >= 0.5 and row.target <= 2
    if row.ratio ~= nil and row.ratio > 0 and near == near_one then
      local color = row.met and "0x2e8b57" or "0xcc3333"
      local target = fmt_target(row.op, row.target, row.unit):gsub(" MiB", "")
      local text = fmt_ratio(row.ratio, row.unit):gsub(" MiB", "")
      local lo, hi = row.ratio, row.ratio
      if row.iqr then lo, hi = math.max(row.iqr[1], 1e-3), math.max(row.iqr[2], 1e-3) end
      lo_all = math.min(lo_all, lo, row.target)
      hi_all = math.max(hi_all, hi, row.target)
      lines[#lines + 1] = { row = row, text = string.format(
        "%d \"%s\\n(%s)\" %.6g %.6g %s \"%s\" %%s %.6g %.6g", #lines, CHART_LABEL[row.id],
        target, row.ratio, row.target, color, text, lo, hi), lo = lo, hi = hi }
    end
  end
  return lines, lo_all, hi_all
end

-- The third panel: virtio-blk's throughput over the pread/pwrite loop's,
-- fast path and exit path side by side for each phase (no target).
local function chart_virtio(vb)
  local lines = {}
  local lo_all = math.huge
  for _, ph in ipairs(BLK_PHASES) do
    for _, c in ipairs({ { "fast", "fast", "0x3a6fb0" }, { "exit", "exit", "0x9a9a9a" } }) do
      local x = vb.phases[ph.id][c[1]]
      if x.over_pread and x.over_pread > 0 then
        local lo, hi = x.over_pread, x.over_pread
        if x.over_pread_iqr then lo, hi = x.over_pread_iqr[1], x.over_pread_iqr[2] end
        lo_all = math.min(lo_all, lo)
        lines[#lines + 1] = string.format("%d \"%s\\n%s\" %.6g %.6g %s \"%s\" %.6g %.6g %.6g",
          #lines, ph.short, c[2], x.over_pread, x.over_pread, c[3],
          fmt_ratio(x.over_pread, "x"), lo / 1.6, math.max(lo, 1e-6), math.max(hi, 1e-6))
      end
    end
  end
  return lines, lo_all
end

local function chart(t, m, results)
  local near, near_lo, near_hi = chart_rows(t, true)
  local far, far_lo, far_hi = chart_rows(t, false)
  local virtio_lines, virtio_lo = chart_virtio(results.virtio_blk)
  if #near + #far == 0 then return nil, "no ratios were measured" end
  -- Each panel's range, and its value labels above the bars (below those
  -- that hang down from 1).
  local ranges = {
    { lines = near, lo = math.min(0.8, near_lo - 0.1), hi = math.max(1.5, near_hi + 0.15),
      log = false },
    { lines = far, lo = math.min(0.5, far_lo / 2), hi = math.max(2, far_hi * 2), log = true },
  }
  local blocks = {}
  for i, r in ipairs(ranges) do
    local text = {}
    for j, l in ipairs(r.lines) do
      local y
      if r.log then
        y = l.row.ratio >= 1 and math.max(l.hi, l.row.target) * 1.3
          or math.min(l.lo, l.row.target) / 1.35
      else
        y = l.row.ratio >= 1 and math.max(l.hi, l.row.target) + (r.hi - r.lo) * 0.04
          or math.min(l.lo, l.row.target) - (r.hi - r.lo) * 0.04
      end
      text[j] = string.format(l.text, string.format("%.6g", y))
    end
    blocks[i] = #text > 0 and table.concat(text, "\n") or "0 \"\" 1 1 0xffffff \"\" 1 1 1"
  end
  blocks[3] = #virtio_lines > 0 and table.concat(virtio_lines, "\n")
    or "0 \"\" 1 1 0xffffff \"\" 1 1 1"
  write_file(F.dat, "# index label value target color text label_y iqr_low iqr_high\n"
                      .. "# block 0: targets near 1 (linear scale); block 1: the others (log);\n"
                      .. "# block 2: virtio-blk over the pread/pwrite loop (log, no target)\n"
                      .. blocks[1] .. "\n\n\n" .. blocks[2] .. "\n\n\n" .. blocks[3] .. "\n")
  local title = string.format("luavmm make bench, %s%s: measured (bars; whiskers: interquartile "
                                .. "range of per-round ratios) vs target (black lines); "
                                .. "green met, red missed", m.date:sub(1, 10),
                              m.pvm and ", nested KVM on PVM" or "")
  local gp = {
    "set terminal pngcairo size 1900,650 font 'DejaVu Sans,10'",
    string.format("set output '%s'", F.png),
    "set multiplot",
    string.format("set label 1 \"%s\" at screen 0.5, screen 0.97 center font ',11'", title),
    "set grid ytics",
    "set key off",
    "set style fill solid 0.8 border -1",
    "set xtics nomirror font ',9'",
    "set errorbars 0.5",
    "set tmargin 4",
    "set bmargin 6",
  }
  local panels = {
    { index = 0, r = ranges[1], left = 0.0, width = 0.5,
      ylabel = "ratio (linear scale)" },
    { index = 1, r = ranges[2], left = 0.5, width = 0.22,
      ylabel = "ratio, or overhead in MiB (log scale)" },
  }
  for _, p in ipairs(panels) do
    local n = #p.r.lines
    if n > 0 then
      local d = string.format("'%s' index %d", F.dat, p.index)
      for _, l in ipairs({
        string.format("set origin %.2f, 0", p.left),
        string.format("set size %.2f, 0.95", p.width),
        p.r.log and "set logscale y" or "unset logscale y",
        string.format("set yrange [%.6g:%.6g]", p.r.lo, p.r.hi),
        string.format("set ylabel '%s'", p.ylabel),
        string.format("set xrange [-0.6:%f]", n - 0.4),
        string.format("plot %s using 1:(1):($1-0.35):($1+0.35):(($3<1)?$3:1):(($3<1)?1:$3):5:"
                        .. "xtic(2) with boxxyerror lc rgb variable, \\", d),
        string.format("  %s using ($1-0.45):4:(0.9):(0) with vectors nohead lw 3 "
                        .. "lc rgb 'black', \\", d),
        string.format("  %s using 1:3:8:9 with yerrorbars lc rgb '#333333' pt 7 ps 0.4 "
                        .. "lw 1.5, \\", d),
        string.format("  %s using 1:7:6 with labels font ',9'", d),
        "unset label 1",
      }) do gp[#gp + 1] = l end
    end
  end
  if #virtio_lines > 0 then
    local d = string.format("'%s' index 2", F.dat)
    for _, l in ipairs({
      "set origin 0.72, 0",
      "set size 0.28, 0.95",
      "set xtics nomirror font ',8'",
      "set logscale y",
      string.format("set yrange [%.6g:2]", math.min(0.5, virtio_lo / 4)),
      "set ylabel 'virtio-blk requests/s over pread/pwrite (log scale)'",
      string.format("set xrange [-0.6:%f]", #virtio_lines - 0.4),
      "set label 2 'blue: fast path, grey: exit path (irq); no target' at graph 0.02, "
        .. "graph 0.95 font ',9'",
      string.format("plot %s using 1:(1):($1-0.35):($1+0.35):3:(1):5:xtic(2) with boxxyerror "
                      .. "lc rgb variable, \\", d),
      string.format("  %s using 1:3:8:9 with yerrorbars lc rgb '#333333' pt 7 ps 0.4 lw 1.5, "
                      .. "\\", d),
      string.format("  %s using 1:7:6 with labels font ',9'", d),
      "unset label 1",
      "unset label 2",
    }) do gp[#gp + 1] = l end
  end
  gp[#gp + 1] = "unset multiplot"
  write_file(F.gp, table.concat(gp, "\n") .. "\n")
  local ok = os.execute("gnuplot " .. quote(F.gp) .. " 2>" .. quote(RESULTS .. "/gnuplot.err"))
  if not ok then
    return nil, "gnuplot failed: " .. (read_file(RESULTS .. "/gnuplot.err") or "")
  end
  return F.png
end

-- ---- files ----

-- The keys of results.json in reading order (others follow, sorted).
local JSON_ORDER = {
  "bench", "format", "quick", "machine", "counts", "results", "targets", "chart",
  "duration_s", "id", "label", "name", "ratio", "op", "target", "unit", "status", "met",
  "margin", "iqr", "median", "min", "max", "samples",
}

-- The targets again as CSV, one row each.
local function write_csv(t)
  local rows = { "id,label,measured,op,target,unit,status,iqr_low,iqr_high" }
  for _, row in ipairs(t) do
    local function num(v) return v and string.format("%.6g", v) or "" end
    rows[#rows + 1] = string.format("%s,\"%s\",%s,%s,%s,%s,\"%s\",%s,%s", row.id, row.label,
                                    num(row.ratio), row.op or "", num(row.target),
                                    row.unit or "", row.status, num(row.iqr and row.iqr[1]),
                                    num(row.iqr and row.iqr[2]))
  end
  write_file(F.csv, table.concat(rows, "\n") .. "\n")
end

-- ---- main ----

local function main()
  local started = vmm.now()
  for _, f in ipairs({ F.raw_kvm, F.runproc, F.blkref, F.exits64, F.halt16, F.tiny16, F.blk64,
                       F.luavmm }) do
    if not read_file(f) then
      error("bench: " .. f .. " is missing; run `make bench`, which builds it", 0)
    end
  end
  os.execute("mkdir -p " .. quote(RESULTS))
  local m = machine()
  local with_qemu, qemu_note = opt.qemu, nil
  if not opt.qemu then
    qemu_note = "QEMU left out (--no-qemu)"
  elseif not exists(QEMU) then
    with_qemu = false
    qemu_note = QEMU .. " is not installed"
  end
  if with_qemu then
    m.qemu = capture(QEMU .. " --version"):match("^[^\n]*")
  end

  say("luavmm benchmarks%s, %s", opt.quick and " (QUICK MODE: tiny counts; "
        .. "figures are not meaningful)" or "", m.date)
  say("machine: %s, %d cores, Linux %s, %s", m.cpu, m.cores, m.kernel,
      m.pvm and "KVM nested on PVM (kvm_pvm is loaded)" or "kvm_pvm not loaded")
  say("luavmm: %s (%s)%s", m.luavmm, F.luavmm,
      m.sanitized and "; a SANITIZER build: its figures are not representative" or "")
  say("QEMU: %s", with_qemu and m.qemu or ("not measured: " .. qemu_note))
  say("counts: exits %d x %d samples; lifecycle %d VMs x %d; launches x %d; "
        .. "serial %d bytes x %d; virtio-blk %d + %d requests x %d",
      N.exit_passes * EXITS_PER_PASS, N.exit_samples, N.lifecycle_vms, N.lifecycle_samples,
      N.launch_samples, N.serial_bytes, N.serial_samples, N.blk_small, N.blk_large,
      N.blk_samples)
  local busy = (m.load_at_start or 0) >= 0.5
  say("a VM with one vCPU stays open meanwhile, so no create or destroy flips KVM's static keys")
  say("every figure is a median of samples taken in turns in this run; load average at the "
        .. "start %.2f%s", m.load_at_start or -1,
      busy and " (the machine was busy in the last minute: expect noisy figures)" or "")
  say("")

  -- A VM with a vCPU stays open through the whole run. KVM counts vCPUs
  -- with local APICs in static keys shared by the whole host: when the
  -- count goes from 0 to 1 or back, creating or destroying a vCPU patches
  -- kernel code, which here costs a few hundred microseconds. Whether
  -- that happens would otherwise depend on whether anything else on the
  -- machine has a VM open; held open, every contender runs in the same,
  -- steady state (that of a host that runs VMs).
  local pin <close> = vmm.vm{ memory = false }
  local results = {}
  bench_exits(results)
  bench_lifecycle(results, pin)
  local pin_again <close> = vmm.vm{ memory = false }
  bench_processes(results, with_qemu)
  bench_serial(results, with_qemu)

  bench_virtio_blk(results)

  local t = targets(results, qemu_note)
  print_targets(t)

  local png, why = nil, "gnuplot is not installed"
  if exists("gnuplot") then png, why = chart(t, m, results) end
  local duration = vmm.now() - started
  m.load_at_end = load_average()
  local doc = {
    bench = "luavmm make bench",
    format = 1,
    quick = opt.quick,
    machine = m,
    counts = N,
    results = results,
    targets = t,
    chart = png,
    duration_s = duration,
  }
  write_file(F.json, json.encode(doc, { indent = true, keyorder = JSON_ORDER }) .. "\n")
  write_csv(t)
  say("")
  say("results: %s (and %s)", F.json, F.csv)
  say("chart: %s", png or ("not drawn: " .. why))
  say("took %.1f s; load average at the end %.2f", duration, m.load_at_end or -1)
end

local ok, err = pcall(main)
remove_scratch()
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
