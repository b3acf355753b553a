-- The test runner behind `make test`: busted specs (module-level, run by
-- lua5.4 against build/vmm.so), C-level tests (TAP programs in build/tests/)
-- and scenario scripts (tests/scenarios/*.lua run by build/luavmm, passing
-- when they exit 0). Ends with the line "N passed, N failed".
--
--   lua5.4 tests/run.lua [pattern]    -- only files whose name contains pattern

local build = os.getenv("BUILD") or "build"
local filter = arg[1]
local passed, failed, skipped, failures = 0, 0, 0, {}

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function list(dir, suffix)
  local files = {}
  local p = io.popen("ls " .. sh_quote(dir) .. " 2>/dev/null")
  for name in p:lines() do
    if name:sub(-#suffix) == suffix and (not filter or name:find(filter, 1, true)) then
      files[#files + 1] = dir .. "/" .. name
    end
  end
  p:close()
  table.sort(files)
  return files
end

-- Reads TAP lines ("ok N - name", "not ok N - name", the plan "1..N")
-- from a command. A run that dies before its plan (a crash, a sanitizer
-- aborting it) counts as one more failure, so it cannot pass by omission.
local function run_tap(cmd, label)
  local p = io.popen(cmd .. " 2>&1")
  local seen, plan = 0, nil
  for line in p:lines() do
    io.write(line, "\n")
    if line:match("^ok %d+.*# SKIP") then
      skipped, seen = skipped + 1, seen + 1 -- busted's pending: not a pass
    elseif line:match("^ok %d+") then
      passed, seen = passed + 1, seen + 1
    elseif line:match("^not ok %d+") then
      failed, seen = failed + 1, seen + 1
      failures[#failures + 1] = label .. ": " .. line
    elseif line:match("^1%.%.%d+$") then
      plan = tonumber(line:match("%d+$"))
    end
  end
  local _, how, code = p:close()
  if plan == nil or plan ~= seen then
    failed = failed + 1
    failures[#failures + 1] = string.format("%s: stopped after %d of %s tests (%s %s)", label,
                                            seen, plan or "?", how, code)
  end
  io.stdout:flush()
end

-- A fixed mmap threshold: glibc otherwise raises it after a large block is
-- freed, and later allocations land on the heap, which makes the RSS checks
-- of the stress specs depend on what ran before them.
local env = "MALLOC_MMAP_THRESHOLD_=131072 LUA_CPATH=" .. sh_quote(build .. "/?.so;;")
  .. " LUA_PATH=" .. sh_quote("lua/?.lua;lua/?/init.lua;tests/?.lua;;")
  .. " LUAVMM_BUILD=" .. sh_quote(build)

-- With a sanitizer build (LUAVMM_PRELOAD names its runtime), the specs run
-- in that build's luavmm, which has the runtime linked in: preloading it
-- into lua5.4 instead would pass it on to every child process, and /bin/sh
-- does not survive the TSan runtime. Specs that start stock lua5.4 give it
-- the runtime themselves (helper.lua's H.stock_lua).
local preload = os.getenv("LUAVMM_PRELOAD")
local lua = (preload and preload ~= "") and sh_quote(build .. "/luavmm") or "lua5.4"

print("== busted specs")
local specs = list("tests", "_spec.lua")
if #specs > 0 then
  local quoted = {}
  for i, f in ipairs(specs) do quoted[i] = sh_quote(f) end
  run_tap(env .. " " .. lua .. " /usr/bin/busted --output=TAP " .. table.concat(quoted, " "),
          "busted")
end

print("== C tests")
for _, f in ipairs(list(build .. "/tests", "_test")) do
  run_tap(env .. " " .. sh_quote(f), f)
end

print("== scenarios")
for _, f in ipairs(list("tests/scenarios", ".lua")) do
  local p = io.popen(env .. " " .. sh_quote(build .. "/luavmm") .. " " .. sh_quote(f) .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  if ok then
    passed = passed + 1
    print("ok - " .. f)
  else
    failed = failed + 1
    failures[#failures + 1] = f
    print("not ok - " .. f)
    io.write(out)
  end
end

if #failures > 0 then
  print("\nFailures:")
  for _, f in ipairs(failures) do print("  " .. f) end
end
-- Skipped tests are neither passes nor failures: their count comes on a
-- line of its own, before the summary line CI reads.
print(string.format("%d skipped", skipped))
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
