-- The smoke test of `make bench` (tests/bench/): the quick mode, with tiny
-- counts and one sample each, must print every row of the table and a
-- results.json that parses. It checks that the bench works, never what it
-- measures: no figure here is asserted. QEMU and gnuplot are used when
-- installed (the quick mode installs nothing) and the output says so when
-- they are not.
local H = require "helper"
local json = require "dkjson"

if not H.can_spawn then
  pending("make bench: " .. H.no_spawn_reason)
  return
end

-- The build the suite runs on: a sanitizer build is named after its
-- sanitizers (build/san-address-undefined for SANITIZE=address,undefined).
local function make_args()
  local san = H.build:match("^build/san%-(.+)$")
  if san then return "SANITIZE=" .. H.quote(san:gsub("%-", ",")) end
  if H.build ~= "build" then return "BUILD=" .. H.quote(H.build) end
  return ""
end

-- Every row of the table: the sections and the targets.
local SECTIONS = {
  "== 1. Exit round trip", "== 2. Tiny-VM lifecycle", "whole process, launch to exit",
  "== 3. Memory", "== 4. Serial output", "== 5. virtio-blk", "== Ratios and targets",
}
local ROWS = {
  "port I/O (out) exit: C handler / raw KVM", "port I/O (out) exit: Lua handler / C handler",
  "MMIO (write) exit: C handler / raw KVM", "MMIO (write) exit: Lua handler / C handler",
  "hypercall exit: C handler / raw KVM", "hypercall exit: Lua handler / C handler",
  "lifecycle in one process: luavmm / raw time per VM",
  "whole process: QEMU microvm / luavmm launch-to-exit time",
  "memory: luavmm peak RSS over bare lua5.4 (MiB)", "memory: luavmm / QEMU microvm peak RSS",
  "serial: luavmm debugcon / QEMU debugcon bytes per s",
  "serial: luavmm Lua handler / QEMU debugcon bytes per s",
  "virtio-blk 4 KiB read: fast path / pread, req/s",
  "virtio-blk 4 KiB write: fast path / pread, req/s",
  "virtio-blk 64 KiB read: fast path / pread, req/s",
  "virtio-blk 64 KiB write: fast path / pread, req/s",
  "virtio-blk exits per request, fast path (irq)",
  "virtio-blk fast path / exit path, requests per s (irq)",
}
local TARGET_IDS = {
  "exit_io_c_over_raw", "exit_io_lua_over_c", "exit_mmio_c_over_raw", "exit_mmio_lua_over_c",
  "exit_hypercall_c_over_raw", "exit_hypercall_lua_over_c", "lifecycle_in_process",
  "whole_process", "memory_overhead", "memory_vs_qemu", "serial_c", "serial_lua",
  "virtio_blk_read_4k", "virtio_blk_write_4k", "virtio_blk_read_64k", "virtio_blk_write_64k",
  "virtio_blk_exits", "virtio_blk_fast_over_exit",
}
local QEMU_ROWS = { whole_process = true, memory_vs_qemu = true, serial_c = true,
                    serial_lua = true }

describe("make bench", function()
  local r, doc

  setup(function()
    -- MAKEFLAGS would hand the nested make a jobserver it cannot reach.
    r = H.sh("unset MAKEFLAGS MFLAGS MAKELEVEL; make --no-print-directory bench BENCH_QUICK=1 "
               .. make_args(), { limit = 600 })
    local path = r.out:match("\nresults: (%S+)")
    local text = path and H.read_file(path:sub(1, 1) == "/" and path or H.root .. "/" .. path)
    doc = text and json.decode(text)
  end)

  it("runs in quick mode and exits 0", function()
    assert.are.equal(0, r.rc, "stdout:\n" .. r.out .. "\nstderr:\n" .. r.err)
    assert.truthy(r.out:find("QUICK MODE", 1, true), r.out)
  end)

  it("prints the machine, the counts and every row of the table", function()
    assert.truthy(r.out:find("\nmachine: [^\n]+cores, Linux "), r.out)
    assert.truthy(r.out:find("\ncounts: exits %d+ x 1 samples"), r.out)
    for _, s in ipairs(SECTIONS) do
      assert.truthy(r.out:find(s, 1, true), "no '" .. s .. "' in:\n" .. r.out)
    end
    for _, row in ipairs(ROWS) do
      local line = r.out:match("\n  (" .. row:gsub("%p", "%%%0") .. "[^\n]*)")
      assert.truthy(line, "no row '" .. row .. "' in:\n" .. r.out)
      assert.truthy(line:find(" met") or line:find(" MISSED by") or line:find(" skipped: ")
                      or line:find(" no target$"), line)
    end
  end)

  it("says whether QEMU was measured, and skips its rows only when it was not", function()
    local installed = os.execute("command -v qemu-system-x86_64 >/dev/null 2>&1") == true
    if installed then
      assert.truthy(r.out:find("\nQEMU: QEMU emulator version"), r.out)
    else
      assert.truthy(r.out:find("\nQEMU: not measured: qemu%-system%-x86_64 is not installed"),
                    r.out)
    end
    assert.truthy(doc, "results.json is missing or does not parse")
    for _, t in ipairs(doc.targets) do
      if QEMU_ROWS[t.id] and not installed then
        assert.truthy(t.status:find("^skipped: "), t.id .. ": " .. t.status)
      elseif t.id ~= "serial_c" and t.id ~= "serial_lua" then
        -- (serial rows may be too fast to tell apart from start-up at the
        -- quick count)
        assert.is_number(t.ratio, t.id)
      end
    end
  end)

  it("writes a results.json with the machine, the counts, the results and the targets",
     function()
    assert.truthy(doc, "results.json is missing or does not parse")
    assert.is_true(doc.quick)
    assert.is_string(doc.machine.cpu)
    assert.is_string(doc.machine.kernel)
    assert.is_boolean(doc.machine.pvm)
    assert.is_string(doc.machine.date)
    assert.are.equal(1, doc.counts.exit_samples)
    for _, kind in ipairs({ "io", "mmio", "hypercall" }) do
      local e = doc.results.exits[kind]
      assert.is_number(e.raw.median, kind)
      assert.is_number(e.c.median, kind)
      assert.is_number(e.lua.median, kind)
    end
    assert.is_number(doc.results.lifecycle.raw.median)
    assert.is_number(doc.results.lifecycle.luavmm.median)
    assert.is_number(doc.results.lifecycle_alone.luavmm.median)
    assert.is_number(doc.results.memory.luavmm_mib)
    local ids = {}
    for i, t in ipairs(doc.targets) do ids[i] = t.id end
    assert.are.same(TARGET_IDS, ids)
    -- virtio-blk: every phase of every contender, and the exits the
    -- fast path's runs made.
    local vb = doc.results.virtio_blk
    for _, ph in ipairs({ "read_4k", "write_4k", "read_64k", "write_64k" }) do
      for _, who in ipairs({ "pread", "fast", "exit", "fast_poll", "exit_poll" }) do
        assert.is_number(vb.phases[ph][who].mb_per_s, ph .. " " .. who)
        assert.is_number(vb.phases[ph][who].requests_per_s, ph .. " " .. who)
      end
      assert.is_number(vb.phases[ph].fast.exits_per_request, ph)
      assert.is_number(vb.phases[ph].exit.over_pread, ph)
    end
    assert.is_boolean(vb.fast_path.ioeventfd)
    assert.is_number(vb.fast_over_exit)
  end)

  it("draws the chart when gnuplot is installed, and says so when not", function()
    if os.execute("command -v gnuplot >/dev/null 2>&1") == true then
      local png = r.out:match("\nchart: (%S+%.png)")
      assert.truthy(png, r.out)
      local data = H.read_file(png:sub(1, 1) == "/" and png or H.root .. "/" .. png)
      assert.truthy(data and data:sub(1, 8) == "\137PNG\r\n\26\n", "not a PNG: " .. png)
    else
      assert.truthy(r.out:find("\nchart: not drawn: gnuplot is not installed", 1, true), r.out)
    end
  end)
end)
