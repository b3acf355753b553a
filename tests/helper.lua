-- Shared helpers for the busted specs: tiny guests assembled by hand.
local vmm = require "vmm"

local H = {}

H.build = os.getenv("LUAVMM_BUILD") or "build"

function H.guest(name)
  return H.build .. "/guests/" .. name
end

-- A VM whose real-mode code is at 0x8000 (cs = 0), stack at 0x7c00.
function H.real(code, opts)
  opts = opts or {}
  local vm = vmm.vm{ memory = opts.memory or "1M", unhandled = opts.unhandled }
  vm.memory:write(0x8000, code)
  vm:cpu(0):set_mode("real")
  return vm
end

-- A VM in 64-bit long mode with code at 1 MiB.
function H.long(code, opts)
  opts = opts or {}
  local vm = vmm.vm{ memory = opts.memory or "2M", unhandled = opts.unhandled }
  vm.memory:write(0x100000, code)
  vm:cpu(0):set_mode("long")
  return vm
end

-- Little-endian immediates for hand-assembled code.
function H.u16(v) return string.pack("<I2", v) end
function H.u32(v) return string.pack("<I4", v) end
function H.u64(v) return string.pack("<i8", v) end

-- The error a failing call raises, as a string (nil if it did not fail).
function H.error_of(f, ...)
  local ok, err = pcall(f, ...)
  if ok then return nil end
  return tostring(err)
end

-- ---- Running the luavmm program and other commands (cli_spec, repl_spec) ----

-- s quoted for sh.
function H.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The repository root (the specs run from there) and the build folder as an
-- absolute path. H.can_spawn: whether this process can start others at all;
-- with a TSan runtime preloaded into lua5.4 (make test SANITIZE=thread),
-- /bin/sh crashes as it starts, and io.popen and os.execute with it.
do
  local p = io.popen("pwd 2>/dev/null")
  H.root = p:read("l")
  p:close()
  H.can_spawn = H.root ~= nil
  H.root = H.root or os.getenv("PWD") or "."
end
H.no_spawn_reason = "this lua5.4 cannot start processes (/bin/sh crashes under the preloaded "
  .. "LD_PRELOAD=" .. tostring(os.getenv("LD_PRELOAD")) .. "), so the luavmm program cannot be run"
H.abs_build = H.build:sub(1, 1) == "/" and H.build or H.root .. "/" .. H.build
H.luavmm = H.abs_build .. "/luavmm"
-- The Lua half of the module in this tree, for LUA_PATH.
H.lua_path = H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;"
-- A sanitizer build's runtime, which stock lua5.4 must preload before it
-- loads vmm.so (see the Makefile); nil for a plain build.
H.preload = os.getenv("LUAVMM_PRELOAD")
if H.preload == "" then H.preload = nil end
-- ThreadSanitizer delivers a signal only when the thread next enters the C
-- library, so Ctrl-C cannot interrupt a pure-Lua loop under it.
H.tsan = H.preload ~= nil and H.preload:match("libtsan") ~= nil
H.tsan_reason = "under ThreadSanitizer a signal waits for the next libc call, which a pure-Lua "
  .. "loop never makes"

-- Shell text that sets up a command's environment: LUA_CPATH, LUA_INIT*
-- and LD_PRELOAD unset, LUA_PATH set to this tree's Lua library (bare:
-- unset too, for a program that must find its library by itself).
function H.env(bare)
  return "unset LUA_CPATH LUA_INIT LUA_INIT_5_4 LD_PRELOAD && "
    .. (bare and "unset LUA_PATH && " or "export LUA_PATH=" .. H.quote(H.lua_path) .. " && ")
end

-- Stock lua5.4 with the given LUA_CPATH and LUA_PATH, as a command prefix.
function H.stock_lua(cpath, path)
  return (H.preload and "LD_PRELOAD=" .. H.quote(H.preload) .. " " or "")
    .. "LUA_CPATH=" .. H.quote(cpath) .. " LUA_PATH=" .. H.quote(path) .. " lua5.4"
end

-- A new empty folder under /tmp; remove it with H.remove_tree.
function H.tempdir()
  local p = io.popen("mktemp -d /tmp/luavmm-test.XXXXXXXX")
  local dir = p:read("l")
  p:close()
  assert(dir and dir:match("^/tmp/luavmm%-test%.%w+$"), "mktemp -d failed")
  return dir
end

function H.remove_tree(dir)
  if dir and dir:match("^/tmp/luavmm%-test%.%w+$") then
    os.execute("rm -rf " .. H.quote(dir))
  end
end

function H.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function H.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- A temporary file holding `content` (empty without it); os.tmpname needs no
-- shell, and the specs also run where none can start. Pass busted's finally
-- (a global of the spec files, not of this module) to have it removed when
-- the test ends; without it the caller removes it.
function H.tmpfile(content, finally)
  local path = os.tmpname()
  if content then H.write_file(path, content) end
  if finally then finally(function() os.remove(path) end) end
  return path
end

-- Runs a shell command line with sh in opts.dir (default: the repository
-- root), stdin from opts.stdin (default /dev/null), under `timeout` (opts.limit
-- seconds, default 120: a hang fails with rc 124 or 137 rather than blocking
-- the suite), in the environment H.env(opts.bare) sets up. Returns
-- { rc =, out =, err = }.
function H.sh(cmd, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local line = string.format(
    "cd %s && %stimeout -k 10 %d sh -c %s <%s >%s 2>%s; echo $?",
    H.quote(opts.dir or H.root), H.env(opts.bare), opts.limit or 120, H.quote(cmd),
    H.quote(opts.stdin or "/dev/null"), H.quote(out), H.quote(err))
  local p = io.popen(line)
  local rc = tonumber(p:read("a"):match("(%d+)%s*$"))
  p:close()
  local r = { rc = rc, out = H.read_file(out) or "", err = H.read_file(err) or "" }
  os.remove(out)
  os.remove(err)
  return r
end

-- Polls pred() every 50 ms until it returns a true value, which it returns;
-- fails after `timeout` seconds (default 15) with `what` and, if given,
-- describe() of the state it last saw.
function H.wait_for(pred, what, timeout, describe)
  local deadline = vmm.now() + (timeout or 15)
  while true do
    local v = pred()
    if v then return v end
    if vmm.now() > deadline then
      error(string.format("timed out after %g s waiting for %s%s", timeout or 15, what,
                          describe and (":\n" .. describe()) or ""), 2)
    end
    vmm.sleep(0.05)
  end
end

-- A FIFO with a reader that never reads (a pager left open): once the
-- pipe is full, a blocking write to it sleeps until the reader goes. The
-- reader is this process, which opens it for reading and writing (Linux
-- lets a FIFO be opened so without waiting for the other end) and never
-- reads; the FIFO goes when the calling test ends: pass busted's finally
-- (a global of the spec files, not of this module).
function H.stalled_fifo(finally)
  local dir = H.tempdir()
  local path = dir .. "/fifo"
  assert(os.execute("mkfifo " .. H.quote(path)))
  local reader = assert(io.open(path, "r+"))
  finally(function()
    reader:close()
    H.remove_tree(dir)
  end)
  return path
end

-- A terminal for a test: a detached tmux session, on a private socket in
-- dir, whose pane runs the shell command `command` in dir between two
-- `stty -g` (saved in dir/before and dir/after), then prints rc=N and
-- stays. t:close() kills the server and removes dir.
local Terminal = {}
Terminal.__index = Terminal

function H.terminal(dir, command)
  local t = setmetatable({ dir = dir, session = "t" }, Terminal)
  -- A sanitizer runtime preloaded into the specs stays out of tmux.
  t.tmux = "env -u LD_PRELOAD tmux -S " .. H.quote(dir .. "/tmux.sock") .. " "
  H.write_file(dir .. "/pane.sh", table.concat({
    "cd " .. H.quote(dir) .. " || exit 1",
    H.env() .. "unset TMUX",
    "stty -g >before",
    command,
    "echo \"rc=$?\"",
    "stty -g >after.tmp && mv after.tmp after",
    "exec sleep 3600",
  }, "\n") .. "\n")
  assert(os.execute(t.tmux .. "-f /dev/null new-session -d -x 100 -y 30 -s t "
                    .. H.quote("sh " .. H.quote(dir .. "/pane.sh"))), "cannot start tmux")
  return t
end

-- What the pane shows, scrollback included.
function Terminal:text()
  local p = io.popen(self.tmux .. "capture-pane -p -J -S - -t t 2>/dev/null")
  local s = p:read("a")
  p:close()
  return s
end

-- Waits until the pane shows pattern (plain: a plain string).
function Terminal:wait_text(pattern, what, plain)
  return H.wait_for(function() return self:text():find(pattern, 1, plain) end, what, 20,
                    function() return self:text() end)
end

-- Types keys (tmux key names, or text).
function Terminal:keys(...)
  local args = {}
  for i, k in ipairs{ ... } do args[i] = H.quote(k) end
  assert(os.execute(self.tmux .. "send-keys -t t " .. table.concat(args, " ")), "tmux send-keys")
end

-- `stty -a` of the pane's terminal, now.
function Terminal:stty()
  local p = io.popen(self.tmux .. "display -p -t t '#{pane_tty}'")
  local tty = p:read("l")
  p:close()
  p = io.popen("stty -a -F " .. H.quote(tty))
  local s = p:read("a")
  p:close()
  return s
end

-- Waits for the command to end; returns the `stty -g` before and after it.
function Terminal:finished()
  H.wait_for(function() return H.read_file(self.dir .. "/after") end, "the pane's script to end",
             20, function() return self:text() end)
  return H.read_file(self.dir .. "/before"), H.read_file(self.dir .. "/after")
end

function Terminal:close()
  os.execute(self.tmux .. "kill-server >/dev/null 2>&1")
  H.remove_tree(self.dir)
end

-- Is process pid still there (a zombie counts as gone)?
function H.alive(pid)
  local stat = H.read_file("/proc/" .. math.tointeger(pid) .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

return H
