-- The luavmm program from the outside: options, scripts and their errors,
-- failing guests, /dev/kvm access, the example scripts (under the program and
-- under stock lua5.4), signals, `make install` and the module without its Lua
-- half. Every case runs a separate process and checks its stdout, stderr and
-- exit status.
local vmm = require "vmm"
local H = require "helper"
local q = H.quote

if not H.can_spawn then
  pending("the luavmm program: " .. H.no_spawn_reason)
  return
end

local LUAVMM = q(H.luavmm)
-- Stock lua5.4 with the module from the source tree.
local STOCK = H.stock_lua(H.abs_build .. "/?.so;;", H.lua_path)

local HLT = "\xf4"
local SPIN = "\235\254"                   -- jmp $

local dir -- a temporary folder for the whole file
setup(function() dir = H.tempdir() end)
teardown(function() H.remove_tree(dir) end)

-- Writes a script into the temporary folder; returns its path.
local function script(name, text)
  return H.write_file(dir .. "/" .. name, text)
end

-- Runs luavmm with the given (already quoted) arguments.
local function luavmm(args, opts)
  return H.sh(LUAVMM .. " " .. args, opts)
end

-- Lua source that builds a 1 MiB real-mode VM running `code` at 0x8000.
local function real_vm(code)
  return string.format('local vm = vmm.vm{ memory = "1M" }\n'
                       .. 'vm.memory:write(0x8000, %q)\n'
                       .. 'vm:cpu(0):set_mode("real")\n', code)
end

-- The same in long mode, code at 1 MiB.
local function long_vm(code)
  return string.format('local vm = vmm.vm{ memory = "2M" }\n'
                       .. 'vm.memory:write(0x100000, %q)\n'
                       .. 'vm:cpu(0):set_mode("long")\n', code)
end

describe("luavmm options", function()
  it("-v prints the version and exits 0", function()
    local r = luavmm("-v")
    assert.equal(0, r.rc)
    assert.matches("^luavmm 0%.1%.0 %(Lua 5%.4%.%d+%)\n$", r.out)
    assert.equal("", r.err)
  end)

  it("-e runs statements in order, with vmm as a global", function()
    local r = luavmm("-e 'x = 20' -e 'print(x + 22, type(vmm.vm), vmm == require \"vmm\")'")
    assert.equal(0, r.rc)
    assert.equal("42\tfunction\ttrue\n", r.out)
    assert.equal("", r.err)
  end)

  it("-l loads a module into a global, or into g with g=mod", function()
    script("lvtmod.lua", "return { value = 7 }\n")
    local path = "LUA_PATH=" .. q(dir .. "/?.lua;" .. H.lua_path) .. " "
    local r = H.sh(path .. LUAVMM .. " -l lvtmod -e 'print(lvtmod.value)'")
    assert.equal(0, r.rc)
    assert.equal("7\n", r.out)
    r = H.sh(path .. LUAVMM .. " -l g=lvtmod -e 'print(g.value, lvtmod)'")
    assert.equal(0, r.rc)
    assert.equal("7\tnil\n", r.out)
    r = luavmm("-l nosuchmodule")
    assert.equal(1, r.rc)
    assert.matches("^luavmm: .*module 'nosuchmodule' not found", r.err)
  end)

  it("handles --, - and the arg table the way lua does", function()
    -- Prints every entry of arg but the lowest (the program's name) and `...`.
    local args = script("args.lua", [[
local lo = 0
while arg[lo - 1] ~= nil do lo = lo - 1 end
local parts = {}
for i = lo + 1, #arg do parts[#parts + 1] = i .. "=" .. tostring(arg[i]) end
print("arg: " .. table.concat(parts, " "))
print("...: " .. select("#", ...) .. " " .. table.concat({ ... }, " "))
print("lowest: " .. arg[lo])
]])
    local a = q(args)
    local cases = {
      { a .. " one two", "arg: 0=" .. args .. " 1=one 2=two\n...: 2 one two\n" },
      { "-- " .. a .. " -x y", "arg: -1=-- 0=" .. args .. " 1=-x 2=y\n...: 2 -x y\n" },
      { "-e 'x=1' " .. a .. " --", "arg: -2=-e -1=x=1 0=" .. args .. " 1=--\n...: 1 --\n" },
      { "- p q <" .. a, "arg: 0=- 1=p 2=q\n...: 2 p q\n" },
    }
    for _, c in ipairs(cases) do
      local ours = H.sh(LUAVMM .. " " .. c[1])
      local stock = H.sh("lua5.4 " .. c[1])
      assert.equal(0, ours.rc)
      assert.equal("", ours.err)
      assert.equal(c[2] .. "lowest: " .. H.luavmm .. "\n", ours.out)
      assert.equal(c[2] .. "lowest: lua5.4\n", stock.out)
    end
    -- After -e, stdin is not read unless "-" asks for it; "--" alone
    -- changes nothing.
    H.write_file(dir .. "/stdin.lua", 'print("stdin ran")\n')
    for _, c in ipairs({ { "-e 'print(2)' --", "2\n" }, { "--", "stdin ran\n" },
                         { "-e 'print(2)' -", "2\nstdin ran\n" } }) do
      local ours = H.sh(LUAVMM .. " " .. c[1], { stdin = dir .. "/stdin.lua" })
      local stock = H.sh("lua5.4 " .. c[1], { stdin = dir .. "/stdin.lua" })
      assert.equal(c[2], ours.out)
      assert.equal(stock.out, ours.out)
      assert.equal(0, ours.rc)
    end
  end)

  it("finds its Lua library beside the build folder without LUA_PATH", function()
    local r = H.sh(LUAVMM .. " -e 'print(package.searchpath(\"vmm\", package.path))'",
                   { dir = dir, bare = true })
    assert.equal("", r.err)
    assert.equal(0, r.rc)
    assert.equal(H.root .. "/lua/vmm/init.lua\n", r.out)
  end)

  it("rejects a bad option with the usage on stderr and exit 1", function()
    local usage = "usage: luavmm [options] [script [args]]\n"
    local r = luavmm("-x")
    assert.equal(1, r.rc)
    assert.equal("", r.out)
    assert.equal(1, r.err:find("luavmm: unrecognized option '-x'\n" .. usage, 1, true))
    assert.matches("%-%-stats", r.err)
    r = luavmm("--bogus")
    assert.equal(1, r.rc)
    assert.matches("^luavmm: unrecognized option '%-%-bogus'\nusage: ", r.err)
    r = luavmm("-e")
    assert.equal(1, r.rc)
    assert.matches("^luavmm: '%-e' needs an argument\nusage: ", r.err)
  end)
end)

describe("a script that fails", function()
  it("is reported when it is missing: exit 1", function()
    local r = luavmm("nosuch.lua", { dir = dir })
    assert.equal(1, r.rc)
    assert.equal("luavmm: cannot open nosuch.lua: No such file or directory\n", r.err)
  end)

  it("names the file and line of a syntax error: exit 1", function()
    local path = script("syntax.lua", "local a = 1\nlocal b = 2\nx = = 3\n")
    local r = luavmm(q(path))
    assert.equal(1, r.rc)
    assert.equal("luavmm: " .. path .. ":3: unexpected symbol near '='\n", r.err)
  end)

  it("prints a runtime error with a traceback: exit 1", function()
    local path = script("runtime.lua", "local t = {}\nerror('boom: ' .. #t)\n")
    local r = luavmm(q(path))
    assert.equal(1, r.rc)
    assert.matches("^luavmm: " .. path:gsub("%p", "%%%0") .. ":2: boom: 0\nstack traceback:\n",
                   r.err)
  end)
end)

describe("a failing guest", function()
  it("reports a port handler's error with file:line, traceback and rip", function()
    local path = script("handler.lua", real_vm("\xb0\x41\xe6\x80" .. HLT) .. [[
vm:on_io(0x80, function()
  error("device on fire")
end)
vm:run()
]])
    local r = luavmm(q(path))
    assert.not_equal(0, r.rc)
    assert.equal("", r.out)
    local name = path:gsub("%p", "%%%0")
    assert.matches("^luavmm: " .. name .. ":7: cpu 0: Lua handler for I/O write to port 0x80 "
                   .. "%(1 byte, value 0x41%) failed:\n" .. name .. ":5: device on fire\n", r.err)
    assert.matches("stack traceback:", r.err)
    assert.matches("\n  rip 0000000000008004 rflags ", r.err)
    assert.matches("\n  rax 0000000000000041 ", r.err)
  end)

  it("decodes a triple fault with the registers", function()
    local path = script("shutdown.lua", long_vm("\x0f\x0b") .. "vm:run()\n") -- ud2, no IDT
    local r = luavmm(q(path))
    assert.not_equal(0, r.rc)
    assert.matches(":4: cpu 0: triple fault %(KVM_EXIT_SHUTDOWN%)", r.err)
    assert.matches("\n  rip 0000000000100000 rflags ", r.err)
    for _, reg in ipairs({ "rax", "rsp", "r15", "cs ", "cr0", "cr3", "efer" }) do
      assert.matches("\n  [^\n]*" .. reg .. " ", r.err)
    end
    assert.matches("%(64%-bit long mode%)", r.err)
  end)

  it("decodes a jump into unmapped memory", function()
    -- mov rax, 0x40000000; jmp rax
    local path = script("unmapped.lua", long_vm("\x48\xb8" .. H.u64(0x40000000) .. "\xff\xe0")
                        .. "vm:run()\n")
    local r = luavmm(q(path))
    assert.not_equal(0, r.rc)
    assert.matches(":4: cpu 0: KVM_EXIT_INTERNAL_ERROR, suberror 1: emulation failure", r.err)
    assert.matches("\n  rip 0000000040000000 rflags ", r.err)
    assert.matches("\n  rax 0000000040000000 rbx ", r.err)
    assert.matches("code at rip %(guest physical 0x40000000%): %(not in guest memory%)", r.err)
  end)

  it("names port, size and direction of an unhandled access", function()
    local path = script("unhandled-out.lua", real_vm("\xb0\x12\xe6\x80" .. HLT) .. "vm:run()\n")
    local r = luavmm(q(path))
    assert.not_equal(0, r.rc)
    assert.matches(":4: cpu 0: unhandled I/O write to port 0x80 %(1 byte, value 0x12%); ", r.err)
    assert.matches("\n  rip 0000000000008004 ", r.err)
    -- mov dx, 0x61; in ax, dx
    path = script("unhandled-in.lua", real_vm("\xba\x61\x00\xed" .. HLT) .. "vm:run()\n")
    r = luavmm(q(path))
    assert.not_equal(0, r.rc)
    assert.matches(":4: cpu 0: unhandled I/O read from port 0x61 %(2 bytes%); ", r.err)
  end)

  it("names both ranges of overlapping handlers and memory regions", function()
    local r = luavmm("-e " .. q('local vm = vmm.vm{ memory = "1M" }; '
      .. 'vm:on_io(0x60, 4, function() end); vm:on_io(0x62, 1, function() end)'))
    assert.equal(1, r.rc)
    assert.matches("^luavmm: %(command line%):1: on_io: port range %[0x62, 0x63%) for "
                   .. "'Lua handler %(command line%):1' overlaps %[0x60, 0x64%) of", r.err)
    r = luavmm("-e " .. q('local vm = vmm.vm{ memory = "1M" }; '
      .. 'vm.memory:map{ gpa = 0x200000, size = 0x2000, name = "a" }; '
      .. 'vm.memory:map{ gpa = 0x201000, size = 0x2000, name = "b" }'))
    assert.equal(1, r.rc)
    assert.matches("memory region 'b' %[0x201000, 0x203000%) overlaps region 'a' "
                   .. "%[0x200000, 0x202000%)", r.err)
  end)

  it("says so clearly when its memory cannot be allocated", function()
    local r = luavmm("-e " .. q('vmm.vm{ memory = "16T" }'))
    assert.equal(1, r.rc)
    assert.matches("^luavmm: %(command line%):1: vmm%.vm: cannot allocate 16384 GiB of guest "
                   .. "memory for region 'ram'", r.err)
  end)
end)

describe("/dev/kvm", function()
  it("that the user may not open is named, with the kvm group fix", function()
    local p = io.popen("id -u")
    local uid = tonumber(p:read("l"))
    p:close()
    local cmd
    if uid == 0 then
      -- As nobody. The build tree must be readable by that user: if this
      -- checkout is not, copy what hello.lua needs, in the layout the
      -- program expects (lua/ beside build/, guests in build/guests/).
      local nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups "
      if H.sh(nobody .. "sh -c 'test -r /dev/kvm && test -w /dev/kvm'").rc == 0 then
        pending("/dev/kvm is open to every user here: no user lacks access")
        return
      end
      -- (hello.lua looks for its guest in <repo>/build/guests.)
      local files = { "build/luavmm", "lua/vmm/init.lua", "scripts/hello.lua",
                      "build/guests/hello16.bin" }
      local tests = {}
      for i, f in ipairs(files) do tests[i] = "test -r " .. q(H.root .. "/" .. f) end
      local run_dir = H.root
      if H.abs_build ~= H.root .. "/build"
         or H.sh(nobody .. "sh -c " .. q(table.concat(tests, " && ")), { dir = "/" }).rc ~= 0 then
        run_dir = dir .. "/nobody"
        local copy = table.concat({
          "mkdir -p " .. q(run_dir .. "/build/guests") .. " " .. q(run_dir .. "/lua/vmm")
            .. " " .. q(run_dir .. "/scripts"),
          "cp " .. LUAVMM .. " " .. q(run_dir .. "/build/"),
          "cp " .. q(H.root .. "/lua/vmm/") .. "*.lua " .. q(run_dir .. "/lua/vmm/"),
          "cp scripts/hello.lua " .. q(run_dir .. "/scripts/"),
          "cp " .. q(H.abs_build .. "/guests/hello16.bin") .. " " .. q(run_dir .. "/build/guests/"),
          "chmod -R a+rX " .. q(dir),
        }, " && ")
        assert.equal(0, H.sh(copy).rc)
        cmd = nobody .. "build/luavmm scripts/hello.lua"
      else
        cmd = nobody .. LUAVMM .. " scripts/hello.lua"
      end
      local r = H.sh(cmd, { dir = run_dir })
      assert.not_equal(0, r.rc)
      assert.equal("", r.out)
      assert.matches("cannot open /dev/kvm: Permission denied%. Add your user to the kvm group "
                     .. "%(sudo usermod %-aG kvm %$USER, then log in again%) or run as root", r.err)
      return
    end
    if H.sh("test -r /dev/kvm && test -w /dev/kvm").rc == 0 then
      pending("not root and /dev/kvm is accessible: cannot run as a user without access")
      return
    end
    local r = luavmm("scripts/hello.lua")
    assert.not_equal(0, r.rc)
    assert.matches("cannot open /dev/kvm: Permission denied%. Add your user to the kvm group",
                   r.err)
  end)

  it("that does not exist is named, with the modprobe advice", function()
    local r = H.sh("LUAVMM_KVM_DEVICE=/nonexistent/kvm " .. LUAVMM .. " scripts/hello.lua")
    assert.equal(1, r.rc)
    assert.equal("", r.out)
    assert.matches("^luavmm: scripts/hello%.lua:%d+: cannot open /nonexistent/kvm: No such file or "
                   .. "directory%. KVM is not available: load the module %(modprobe kvm_intel or "
                   .. "modprobe kvm_amd%)", r.err)
  end)
end)

describe("the example scripts", function()
  -- Runs scripts/<args> under luavmm and under stock lua5.4; both must
  -- print `out` exactly, with an empty stderr (unless err is given) and exit
  -- status rc.
  local function same(args, rc, out, err)
    for _, prog in ipairs({ LUAVMM, STOCK }) do
      local r = H.sh(prog .. " scripts/" .. args)
      assert.equal(out, r.out)
      assert.equal(err or "", r.err)
      assert.equal(rc, r.rc)
    end
  end

  it("hello.lua greets from each mode", function()
    same("hello.lua", 0, "Hello from real mode!\n")
    same("hello.lua --mode real", 0, "Hello from real mode!\n")
    same("hello.lua --mode protected", 0, "Hello from 32-bit protected mode!\n")
    same("hello.lua --mode=long", 0, "Hello from 64-bit long mode!\n")
  end)

  it("hello.lua exits 2 for a bad --mode", function()
    same("hello.lua --mode bad", 2, "",
         "hello.lua: unknown mode 'bad'\nusage: hello.lua [--mode real|protected|long]\n")
  end)

  it("says which guest is missing and how to build it: exit 1", function()
    -- A copy of the script in a folder with no build/ beside it.
    local dir = H.tempdir()
    finally(function() H.remove_tree(dir) end)
    assert(os.execute("mkdir " .. H.quote(dir .. "/scripts") .. " && cp scripts/smp.lua "
                      .. H.quote(dir .. "/scripts/")))
    for _, prog in ipairs({ LUAVMM, STOCK }) do
      local r = H.sh(prog .. " " .. H.quote(dir .. "/scripts/smp.lua"))
      assert.equal(1, r.rc)
      assert.equal("", r.out)
      assert.equal("smp.lua: " .. dir .. "/scripts/../build/guests/smp64.bin is missing; build it "
                   .. "with `make guests`\n", r.err)
    end
  end)

  it("hypercall.lua gets every answer right", function()
    same("hypercall.lua", 0, "sum(1..6) = 21\nfib(50) = 12586269025\n"
         .. "upper: HELLO FROM THE GUEST\nhypercall64: all answers right\n")
  end)

  it("mmio-device.lua passes every check of the guest", function()
    same("mmio-device.lua", 0, 'id      = 0x4c554131 "LUA1"\nscratch = 0xdeadbeef\n'
         .. "count   = 43\ncrc     = 0x414fa339 (device), 0x414fa339 (guest)\n"
         .. "mmio64: everything matched\n")
  end)

  it("spin.lua --timeout 1 is stopped by the timeout: exit 3", function()
    local r = luavmm("scripts/spin.lua --timeout 1")
    assert.equal(3, r.rc)
    assert.equal("spinning\n", r.out)
    assert.matches("^spin%.lua: stopped by the 1 s timeout at rip 0x%x+ %(after [%d.]+ s%)\n$",
                   r.err)
  end)

  it("smp.lua --cpus 4 counts to 4000", function()
    local r = luavmm("scripts/smp.lua --cpus 4")
    assert.equal(0, r.rc)
    assert.equal("", r.err)
    for i = 0, 3 do
      assert.matches(string.format("\ncpu %d: 1000 increments %%(host saw 1000%%), CPUID index %d, "
                                   .. "0 not growing\n", i, i), r.out)
    end
    assert.matches("\ncounter = 4000 %(expected 4 x 1000 = 4000%)\n", r.out)
  end)

  it("step.lua prints the first exits one by one", function()
    local r = luavmm("scripts/step.lua")
    assert.equal(0, r.rc)
    assert.equal("", r.err)
    local want = {}
    for n, c in ipairs({ "H", "e", "l", "l", "o", " ", "f", "r" }) do
      want[n] = string.format("exit %d: io out port 0xe9 size 1 value 0x%x '%s' at rip 0x8011", n,
                              c:byte(), c)
    end
    want[#want + 1] = 'guest output: "Hello from real mode!\\n"'
    want[#want + 1] = "run ended: hlt at rip 0x8014"
    assert.equal(table.concat(want, "\n") .. "\n", r.out)
  end)

  it("--stats prints the statistics on stderr", function()
    local r = luavmm("--stats scripts/hypercall.lua")
    assert.equal(0, r.rc)
    assert.matches("hypercall64: all answers right\n$", r.out)
    assert.matches("luavmm statistics for vmm%.vm [^\n]*: %d+ exits\n", r.err)
    assert.matches("\n  ports: [^\n]*0xabba 3", r.err)
    assert.matches("\n  hypercalls: 1 1, 2 1, 3 1\n", r.err)
  end)
end)

describe("signals", function()
  -- Starts luavmm on a script in the background: stdout and stderr go to
  -- files, the exit status to <tag>.rc once it has exited. Returns the
  -- paths and the program's pid.
  local function spawn(tag, path, options)
    local p = { out = dir .. "/" .. tag .. ".out", err = dir .. "/" .. tag .. ".err",
                rc = dir .. "/" .. tag .. ".rc", pid = dir .. "/" .. tag .. ".pid" }
    local inner = string.format(
      "%s %s >%s 2>%s </dev/null & echo $! >%s.tmp && mv %s.tmp %s; wait $!; "
        .. "echo $? >%s.tmp && mv %s.tmp %s",
      LUAVMM .. (options or ""), q(path), q(p.out), q(p.err), q(p.pid), q(p.pid), q(p.pid),
      q(p.rc), q(p.rc), q(p.rc))
    assert.is_true(os.execute("cd " .. q(H.root) .. " && " .. H.env() .. "sh -c " .. q(inner)
                              .. " >/dev/null 2>&1 </dev/null &"))
    p.n = tonumber(H.wait_for(function() return H.read_file(p.pid) end, "the pid of " .. tag))
    return p
  end

  -- Sends sig once the program has printed "running", and returns its
  -- exit status and stderr; checks that no luavmm is left.
  local function interrupt(tag, path, sig, options)
    local p = spawn(tag, path, options)
    finally(function() if H.alive(p.n) then os.execute("kill -KILL " .. p.n) end end)
    H.wait_for(function() return (H.read_file(p.out) or ""):find("running\n", 1, true) end,
               "the script to print 'running'", 30,
               function() return H.read_file(p.err) or "" end)
    vmm.sleep(0.2)
    assert.is_true(os.execute("kill -" .. sig .. " " .. p.n))
    local rc = H.wait_for(function() return H.read_file(p.rc) end, "luavmm to exit after SIG"
                          .. sig, 30)
    assert.is_false(H.alive(p.n))
    -- No process runs this script any more ("[x]" keeps pgrep's own shell
    -- from matching).
    local pattern = path:gsub("/([^/])([^/]*)$", "/[%1]%2")
    assert.equal(1, H.sh("pgrep -f " .. q(pattern)).rc)
    return tonumber(rc), H.read_file(p.err)
  end

  -- `out 0x80, al` then `jmp $`: the handler of the one exit prints
  -- "running", so the signal comes while vm:run spins in the guest.
  local spinning = real_vm("\xe6\x80" .. SPIN) .. [[
vm:on_io(0x80, function() print("running"); io.stdout:flush() end)
vm:run()
print("not reached")
]]

  it("SIGINT stops a spinning guest: exit 130, 'interrupted'", function()
    local rc, err = interrupt("int-guest", script("int-guest.lua", spinning), "INT")
    assert.equal(130, rc)
    assert.matches("^luavmm: [^\n]*int%-guest%.lua:5: interrupted\n", err)
    assert.equal("running\n", H.read_file(dir .. "/int-guest.out"))
  end)

  it("SIGINT stops a Lua loop: exit 130, 'interrupted'", function()
    if H.tsan then return pending(H.tsan_reason) end
    local path = script("int-lua.lua", 'print("running")\nio.stdout:flush()\nwhile true do end\n')
    local rc, err = interrupt("int-lua", path, "INT")
    assert.equal(130, rc)
    assert.matches("^luavmm: interrupted!\nstack traceback:\n", err)
  end)

  it("SIGTERM stops a spinning guest and closes the state: exit 143", function()
    local rc, err = interrupt("term-guest", script("term-guest.lua", spinning), "TERM", " --stats")
    assert.equal(143, rc)
    assert.matches("^luavmm: [^\n]*term%-guest%.lua:5: terminated\nstack traceback:\n", err)
    -- --stats prints when the VM is closed, as the state is on the way out.
    assert.matches("\nluavmm statistics for vmm%.vm [^\n]*: %d+ exits\n", err)
    assert.matches("\n  ports: 0x80 1\n", err)
    assert.equal("running\n", H.read_file(dir .. "/term-guest.out"))
  end)
end)

describe("make install", function()
  it("installs a program and a module that work from elsewhere", function()
    local prefix = dir .. "/prefix"
    -- It inherits the flags of a `make test` that runs it (SANITIZE=...
    -- included), so it installs what that built.
    local r = H.sh("make -s install PREFIX=" .. q(prefix), { limit = 600 })
    assert.equal(0, r.rc, r.err)
    r = H.sh(q(prefix .. "/bin/luavmm") .. " -e 'print(vmm.version, package.searchpath(\"vmm\", "
             .. "package.path))'", { dir = dir, bare = true })
    assert.equal("", r.err)
    assert.equal(0, r.rc)
    local lib = prefix .. "/share/lua/5.4/"
    assert.equal("luavmm 0.1.0\t" .. lib .. "vmm/init.lua\n", r.out)
    local code = 'local vmm = require "vmm"\n' .. real_vm(HLT)
      .. "print(vm:run().reason, package.searchpath('vmm', package.path))"
    r = H.sh(H.stock_lua(prefix .. "/lib/lua/5.4/?.so;;", lib .. "?.lua;" .. lib .. "?/init.lua;;")
             .. " -e " .. q(code), { dir = dir })
    assert.equal("", r.err)
    assert.equal(0, r.rc)
    assert.equal("hlt\t" .. lib .. "vmm/init.lua\n", r.out)
  end)
end)

describe("the C module without its Lua half", function()
  it("points at LUA_PATH", function()
    local r = H.sh(H.stock_lua(H.abs_build .. "/?.so;;", "") .. " -e " .. q('require "vmm"'))
    assert.equal(1, r.rc)
    assert.matches("^lua5%.4: vmm: found the C core %(vmm%.so%) but not the Lua library "
                   .. "vmm/init%.lua; add its folder to LUA_PATH, for example "
                   .. "LUA_PATH='lua/%?%.lua;lua/%?/init%.lua;;' in the source tree, or run "
                   .. "'make install'\n", r.err)
  end)
end)
