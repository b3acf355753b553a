-- The REPL of the luavmm program: driven from a pipe, and typed at through a
-- pseudo-terminal with tmux (a private server per test, its socket in a
-- temporary folder, a fixed window size, HOME in that folder).
local vmm = require "vmm"
local H = require "helper"
local q = H.quote

if not H.can_spawn then
  pending("the REPL: " .. H.no_spawn_reason)
  return
end

local LUAVMM = q(H.luavmm)

describe("the REPL on a pipe", function()
  local dir
  setup(function() dir = H.tempdir() end)
  teardown(function() H.remove_tree(dir) end)

  -- Runs `luavmm -i` with `input` on stdin.
  local function repl(input)
    local path = H.write_file(dir .. "/input.lua", input)
    return H.sh(LUAVMM .. " -i", { stdin = path, dir = dir })
  end

  it("prints what print prints, and nothing else", function()
    local r = repl("print(1+1)\n")
    assert.equal("2\n", r.out)
    assert.equal("", r.err)
    assert.equal(0, r.rc)
  end)

  it("prints the values of an expression line", function()
    local r = repl("1 + 2\n'a', 2, nil\n=3 * 3\n")
    assert.equal("3\na\t2\tnil\n9\n", r.out)
    assert.equal(0, r.rc)
  end)

  it("reads a statement over several lines", function()
    local r = repl("for i = 1, 3 do\n  io.write(i, ',')\nend\nprint()\n")
    assert.equal("1,2,3,\n", r.out)
    assert.equal("", r.err)
  end)

  it("reports an error and goes on with the next line", function()
    local r = repl("error('bad line')\nprint('still here')\nx = = 1\nprint('and here')\n")
    assert.equal("still here\nand here\n", r.out)
    assert.matches("^stdin:1: bad line\nstack traceback:\n", r.err)
    assert.matches("\nstdin:1: unexpected symbol near '='\n", r.err)
    assert.equal(0, r.rc)
  end)

  it("creates and runs a VM", function()
    local r = repl('vm = vmm.vm{ memory = "1M" }\n'
                   .. 'do vm.memory:write(0x8000, "\\244"); vm:cpu(0):set_mode("real") end\n'
                   .. "r = vm:run()\nprint(r.reason, r.rip)\n")
    assert.equal("", r.err)
    assert.equal("hlt\t32769\n", r.out)
    assert.equal(0, r.rc)
  end)
end)

-- ---- through a terminal ----

local PROMPT, MORE = "luavmm>", ">>" -- as captured: trailing spaces dropped

-- A luavmm REPL in a detached tmux session of its own. The pane runs a
-- little shell script: it records luavmm's pid, runs it, then prints its
-- exit status and saves `stty -a` of the terminal it leaves behind.
local Term = {}
Term.__index = Term

local function start_term()
  local dir = H.tempdir()
  local t = setmetatable({ dir = dir, pidfile = dir .. "/pid", sttyfile = dir .. "/stty",
                           home = dir .. "/home" }, Term)
  -- The server's socket is in the folder: private, and gone with it.
  -- (A sanitizer runtime preloaded into the specs stays out of tmux.)
  t.tmux = "env -u LD_PRELOAD tmux -S " .. q(dir .. "/tmux.sock") .. " "
  assert.is_true(os.execute("mkdir " .. q(t.home)))
  H.write_file(dir .. "/pane.sh", table.concat({
    "cd " .. q(H.root) .. " || exit 1",
    H.env() .. "unset TMUX",
    "export HOME=" .. q(t.home),
    "sh -c 'echo $$ >\"$0.tmp\" && mv \"$0.tmp\" \"$0\" && exec \"$1\"' " .. q(t.pidfile) .. " "
      .. LUAVMM,
    'echo "luavmm exited with $?"',
    "stty -a >" .. q(t.sttyfile .. ".tmp") .. " && mv " .. q(t.sttyfile .. ".tmp") .. " "
      .. q(t.sttyfile),
    "exec sleep 3600",
  }, "\n") .. "\n")
  local ok = os.execute(t.tmux .. "-f /dev/null new-session -d -x 120 -y 50 -s repl "
                        .. q("sh " .. q(dir .. "/pane.sh")))
  if not ok then
    t:close()
    error("cannot start tmux")
  end
  local got, pid = pcall(H.wait_for, function() return H.read_file(t.pidfile) end, "luavmm's pid")
  if not got then
    t:close()
    error(pid)
  end
  t.pid = tonumber(pid)
  return t
end

-- Ends luavmm with Ctrl-D if it is at a prompt, kills the tmux server (and
-- with it the pane), makes sure luavmm is gone and removes the folder.
function Term:close()
  if self.pid and H.alive(self.pid) then
    local lines = self:lines()
    if lines[#lines] == PROMPT then
      os.execute(self.tmux .. "send-keys -t repl C-d >/dev/null 2>&1")
      pcall(H.wait_for, function() return not H.alive(self.pid) end, "luavmm to exit", 5)
    end
  end
  os.execute(self.tmux .. "kill-server >/dev/null 2>&1")
  if self.pid and H.alive(self.pid) then
    pcall(H.wait_for, function() return not H.alive(self.pid) end, "luavmm to go", 5)
    if H.alive(self.pid) then os.execute("kill -KILL " .. self.pid) end
  end
  H.remove_tree(self.dir)
end

-- The pane's text, history included, as lines without trailing blanks;
-- empty lines at the end are dropped.
function Term:lines()
  local p = io.popen(self.tmux .. "capture-pane -p -J -S - -t repl 2>/dev/null")
  local text = p:read("a")
  p:close()
  local lines = {}
  for l in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = (l:gsub("%s+$", "")) end
  while #lines > 0 and lines[#lines] == "" do lines[#lines] = nil end
  return lines
end

function Term:text()
  return table.concat(self:lines(), "\n")
end

-- Waits until pred(lines) is true; returns the lines.
function Term:wait(pred, what)
  local lines
  H.wait_for(function()
    lines = self:lines()
    return pred(lines)
  end, what, 15, function() return self:text() end)
  return lines
end

-- Types text literally (no Enter).
function Term:type(text)
  -- tmux takes an argument ending in ';' for a command separator.
  assert(not text:match(";$"), "a line typed must not end with ';'")
  assert.is_true(os.execute(self.tmux .. "send-keys -t repl -l " .. q(text)))
end

-- Presses a key: Enter, C-c, C-d.
function Term:key(name)
  assert.is_true(os.execute(self.tmux .. "send-keys -t repl " .. name))
end

-- Waits for a prompt (`prompt`, default "luavmm>") on the last line;
-- returns the number of that line.
function Term:prompt(prompt)
  prompt = prompt or PROMPT
  return #self:wait(function(l) return l[#l] == prompt end, "the prompt " .. prompt)
end

-- Types a line at the prompt and waits for the next prompt (next, default
-- "luavmm>"); returns what was printed in between.
function Term:line(text, next)
  local lines = self:lines()
  local at, prompt = #lines, lines[#lines]
  assert(prompt == PROMPT or prompt == MORE, "not at a prompt")
  self:type(text)
  self:key("Enter")
  lines = self:wait(function(l) return #l > at and l[#l] == (next or PROMPT) end,
                    "the prompt after " .. text)
  assert.equal(prompt .. " " .. text, lines[at])
  return table.concat(lines, "\n", at + 1, #lines - 1)
end

-- Presses Ctrl-C while something typed at the prompt on line `at` runs
-- (after a moment, so it is surely running), waits for the next prompt and
-- returns what was printed in between.
function Term:interrupt(at)
  vmm.sleep(0.2)
  self:key("C-c")
  local lines = self:wait(function(l) return #l > at + 1 and l[#l] == PROMPT end,
                          "the prompt after Ctrl-C")
  return table.concat(lines, "\n", at + 2, #lines - 1)
end

-- Runs test(term) with a fresh REPL, closing it whatever happens.
local function with_term(test)
  return function()
    local t = start_term()
    finally(function() t:close() end)
    t:prompt()
    test(t)
  end
end

describe("the REPL on a terminal", function()
  it("shows the banner and evaluates statements and expressions", with_term(function(t)
    local lines = t:lines()
    assert.matches("^luavmm 0%.1%.0 %(Lua 5%.4%.%d+%) .* vmm is loaded; Ctrl%-D to quit$", lines[1])
    assert.equal(PROMPT, lines[2])
    assert.equal("", t:line("x = 6*7"))
    assert.equal("42", t:line("x"))
    assert.equal("table", t:line("type(vmm)"))
    assert.equal("", t:line("for i = 1, 3 do", MORE))
    assert.equal("", t:line("print(i * 10)", MORE))
    assert.equal("10\n20\n30", t:line("end"))
    assert.matches("^stdin:1: oops\nstack traceback:\n", t:line("error('oops')"))
    assert.equal("still 42", t:line("'still ' .. x"))
  end))

  it("drops the line typed so far on Ctrl-C at the prompt", with_term(function(t)
    local at = #t:lines()
    t:type("print('dropped')")
    t:wait(function(l) return l[#l] == PROMPT .. " print('dropped')" end, "the typed text")
    t:key("C-c")
    t:wait(function(l) return #l > at and l[#l] == PROMPT end, "a fresh prompt")
    assert.equal("fresh", t:line("print('fresh')"))
    -- ... and in the middle of a statement.
    assert.equal("", t:line("if true then", MORE))
    at = #t:lines()
    t:key("C-c")
    t:wait(function(l) return #l > at and l[#l] == PROMPT end, "a fresh prompt")
    assert.equal("3", t:line("1 + 2"))
  end))

  it("interrupts a running chunk with Ctrl-C", H.tsan and function() pending(H.tsan_reason) end
                                                   or with_term(function(t)
    local at = t:prompt()
    t:type("print('looping'); while true do end")
    t:key("Enter")
    t:wait(function(l) return l[#l] == "looping" end, "the loop to start")
    local out = t:interrupt(at)
    assert.matches("interrupted!\nstack traceback:\n", out)
    assert.equal("2", t:line("1 + 1"))
  end))

  it("runs a VM in the background while it evaluates", with_term(function(t)
    assert.equal("", t:line('vm = vmm.vm{ memory = "1M" }'))
    assert.equal("", t:line('do vm.memory:write(0x8000, "\\235\\254"); '
                            .. 'vm:cpu(0):set_mode("real") end'))
    assert.matches("^vmm%.vm %(1 MiB, 1 cpu, running%)", t:line("vm:start()"))
    assert.equal("2", t:line("1+1"))
    assert.equal("running", t:line("vm.state"))
    assert.equal("true", t:line("vm:pause()"))
    assert.equal("paused", t:line("vm.state"))
    assert.equal("32768", t:line("vm:cpu(0).rip"))
    assert.equal("", t:line("vm:resume()"))
    assert.equal("running", t:line("vm.state"))
    assert.equal("true", t:line("vm:stop()"))
    assert.equal("", t:line("r = vm:wait()"))
    assert.equal("table", t:line("type(r)"))
    assert.equal("stop", t:line("r.reason"))
    assert.equal("stopped", t:line("vm.state"))
    -- and again
    assert.matches("^vmm%.vm %(1 MiB, 1 cpu, running%)", t:line("vm:start()"))
    assert.equal("running", t:line("vm.state"))
    assert.equal("stop", t:line("vm:stop(); print(vm:wait().reason)"))
    assert.equal("stopped", t:line("vm.state"))
  end))

  it("stops a foreground vm:run with Ctrl-C", with_term(function(t)
    -- `out 0x80, al` then the spinning `jmp $`: the handler of the one exit
    -- shows that the run has begun.
    assert.equal("", t:line('vm = vmm.vm{ memory = "1M" }'))
    assert.equal("", t:line('do vm.memory:write(0x8000, "\\230\\128\\235\\254"); '
                            .. 'vm:cpu(0):set_mode("real") end'))
    assert.equal("", t:line('vm:on_io(0x80, function() print("in the guest") end)'))
    local at = t:prompt()
    t:type("vm:run()")
    t:key("Enter")
    t:wait(function(l) return l[#l] == "in the guest" end, "the guest to run")
    local out = t:interrupt(at)
    assert.matches("stdin:1: interrupted\nstack traceback:\n", out)
    assert.matches("in method 'run'", out)
    assert.equal("stopped", t:line("vm.state"))
    assert.equal("32770", t:line("vm:cpu(0).rip"))
  end))

  it("exits on Ctrl-D, restores the terminal and keeps the history", with_term(function(t)
    assert.equal("", t:line("x = 6*7"))
    t:key("C-d")
    t:wait(function(l) return l[#l] == "luavmm exited with 0" end, "luavmm to exit")
    assert.is_false(H.alive(t.pid))
    local stty = H.wait_for(function() return H.read_file(t.sttyfile) end, "stty -a")
    local modes = {}
    for word in stty:gmatch("%S+") do modes[word] = true end
    assert.is_true(modes.icanon, stty)
    assert.is_true(modes.echo, stty)
    assert.is_nil(modes["-icanon"])
    assert.is_nil(modes["-echo"])
    local history = H.read_file(t.home .. "/.luavmm_history")
    assert.is_not_nil(history)
    assert.matches("x\\040=\\0406%*7", history)
  end))
end)
