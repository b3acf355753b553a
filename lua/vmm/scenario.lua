-- Test scenarios against a guest, exit by exit. A scenario wraps a VM,
-- captures what the guest prints, steps it to the exits you expect, and
-- fails with a message that shows what it expected and what happened.
--
--   local scenario = require "vmm.scenario"
--   local s <close> = scenario.new{ guest = "build/guests/hello64.bin", mode = "long" }
--   s:expect_output("Hello from 64-bit long mode!\n")
--   s:expect_exit{ reason = "io", port = 0xf4, value = 0 }
--   s:expect_register("rip", function(v) return v > 0x100000 end)
--
-- Every expect_* raises an error (level 2: the caller's line) on a
-- mismatch; busted specs and plain scripts treat it alike.

local vmm = require "vmm"
local mode = require "vmm.mode"

local M = {}
local Scenario = {}
Scenario.__index = Scenario

local DEFAULT_TIMEOUT = 10

local function hex(v)
  if math.type(v) == "integer" then return string.format("0x%x", v) end
  return tostring(v)
end

-- A readable rendering of an exit record or expectation, keys sorted.
local function show(t)
  if type(t) ~= "table" then return tostring(t) end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    parts[#parts + 1] = k .. "=" .. (type(v) == "string" and string.format("%q", v) or hex(v))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.show = show

--- Does a value match an expectation? An expectation is a value (equal),
--- a function (true when it returns true) or a string pattern when the
--- value is a string and the expectation starts with "~".
local function matches(actual, expected)
  if type(expected) == "function" then return expected(actual) == true end
  return actual == expected
end

--- An exit record matches when every field of the expectation matches.
function M.exit_matches(exit, expected)
  for k, v in pairs(expected) do
    if not matches(exit[k], v) then return false, k end
  end
  return true
end

--- scenario.new{ guest = path, mode = "real"|"protected"|"long",
---   entry = addr, memory = "16M", cpus = 1, console = 0xe9 (false: none),
---   exit_port = 0xf4 (false: none), unhandled = "stop" }
--- or scenario.new(vm, { console =, exit_port = }) for a VM set up already.
function M.new(opts, extra)
  local self = setmetatable({ output = {}, exits = {}, owns = false }, Scenario)
  if getmetatable(opts) and tostring(opts):match("^vmm%.vm") then
    self.vm = opts
    opts = extra or {}
  else
    opts = opts or {}
    self.vm = vmm.vm{ memory = opts.memory or "16M", cpus = opts.cpus, unhandled = opts.unhandled }
    self.owns = true
    local m = opts.mode or "long"
    local entry = opts.entry or (m == "real" and mode.layout.real_entry or mode.layout.entry)
    if opts.guest then self.vm:load(opts.guest, entry) end
    for i = 0, self.vm.cpus - 1 do self.vm:cpu(i):set_mode(m, { entry = entry }) end
  end
  self.cpu = self.vm:cpu(0)
  local console = opts.console == nil and 0xe9 or opts.console
  if console then
    self.vm:on_io(console, function(_, _, _, value)
      if value == nil then return 0xe9 end
      self.output[#self.output + 1] = string.char(value & 0xff)
    end)
  end
  -- The guest runtime's exit port: the code written ends the run with
  -- { reason = "stop", code = code }.
  local exit_port = opts.exit_port == nil and 0xf4 or opts.exit_port
  if exit_port then
    self.vm:on_io(exit_port, function(_, _, _, value)
      if value ~= nil then self.vm:stop(value) end
    end)
  end
  return self
end

function Scenario:close()
  if self.owns then self.vm:close() end
end
Scenario.__close = Scenario.close

--- Everything the guest printed so far.
function Scenario:text()
  return table.concat(self.output)
end

--- Steps to the next exit and returns it (handlers have not seen it yet;
--- the following step hands it on).
function Scenario:step(opts)
  local e = self.cpu:step{ timeout = opts and opts.timeout or DEFAULT_TIMEOUT }
  self.exits[#self.exits + 1] = e
  return e
end

--- Steps until pred(exit) is true; returns that exit. Fails on a timeout,
--- after `max` exits, or when the run ends first.
function Scenario:run_until(pred, opts)
  opts = opts or {}
  local deadline = vmm.now() + (opts.timeout or DEFAULT_TIMEOUT)
  local max = opts.max or math.maxinteger
  for n = 1, max do
    local left = deadline - vmm.now()
    if left <= 0 then break end
    local e = self:step{ timeout = left }
    if pred(e) then return e end
    if e.reason ~= "io" and e.reason ~= "mmio" then
      error(string.format("scenario: the guest stopped (%s) before the condition held, after %d "
                          .. "exits; output so far: %q", show(e), n, self:text()), 2)
    end
  end
  error(string.format("scenario: the condition did not hold within %s; last exit %s; output so "
                      .. "far: %q", opts.max and (opts.max .. " exits") or "the time limit",
                      show(self.exits[#self.exits]), self:text()), 2)
end

--- Steps until the guest has printed `text` (a plain string; or a Lua
--- pattern with opts.pattern = true) since the scenario began.
function Scenario:expect_output(text, opts)
  opts = opts or {}
  local function found()
    return self:text():find(text, 1, not opts.pattern) ~= nil
  end
  if found() then return end
  local ok, err = pcall(self.run_until, self, function()
    -- The exit is still pending; its byte is not in the output yet.
    local e = self.exits[#self.exits]
    if e.reason == "io" and e.port == (opts.port or 0xe9) and e.write then
      self.cpu:reply()
      self.output[#self.output + 1] = string.char(e.value & 0xff)
    end
    return found()
  end, opts)
  if not ok then
    error(string.format("expected the guest to print %q; it printed %q (%s)", text, self:text(),
                        (tostring(err):gsub("^.-scenario: ", ""))), 2)
  end
end

--- Steps to the next exit and checks its fields ({ reason = "io", port =
--- 0xf4, value = 0 }). Returns the exit.
function Scenario:expect_exit(expected, opts)
  local e = self:step(opts)
  local ok, field = M.exit_matches(e, expected)
  if not ok then
    error(string.format("expected exit %s, got %s (field %s differs) at rip 0x%x",
                        show(expected), show(e), field, e.rip or 0), 2)
  end
  return e
end

--- Checks a register: a value, or a predicate function.
function Scenario:expect_register(name, expected, cpu)
  local c = cpu and self.vm:cpu(cpu) or self.cpu
  local actual = c[name]
  if not matches(actual, expected) then
    local wanted = type(expected) == "function" and "a value the predicate accepts"
                   or hex(expected)
    error(string.format("expected %s = %s on cpu %d, got %s", name, wanted, c.id, hex(actual)), 2)
  end
end

--- Checks guest memory: a string at gpa, or an integer of opts.size bytes.
function Scenario:expect_memory(gpa, expected, size)
  local m = self.vm.memory
  local actual
  if type(expected) == "string" then
    actual = m:read(gpa, #expected)
  else
    local readers = { [1] = m.u8, [2] = m.u16, [4] = m.u32, [8] = m.u64 }
    actual = readers[size or 8](m, gpa)
  end
  if actual ~= expected then
    error(string.format("expected memory at 0x%x to hold %s, found %s", gpa,
                        type(expected) == "string" and string.format("%q", expected) or hex(expected),
                        type(actual) == "string" and string.format("%q", actual) or hex(actual)), 2)
  end
end

--- Runs to the end and checks how it ended ({ reason = "stop", code = 0 }
--- for a guest that wrote 0 to the exit port).
function Scenario:finish(expected, opts)
  opts = opts or {}
  local r = self.vm:run{ timeout = opts.timeout or DEFAULT_TIMEOUT, raise = false }
  if expected then
    local ok, field = M.exit_matches(r, expected)
    if not ok then
      error(string.format("expected the run to end with %s, it ended with %s (field %s differs)%s",
                          show(expected), show({ reason = r.reason, code = r.code, rip = r.rip,
                                                 fault = r.fault }), field,
                          r.message and ("\n" .. r.message) or ""), 2)
    end
  end
  return r
end

return M
