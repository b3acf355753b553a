-- The guests we build (guests/*.c and *.S, into build/guests/ by make),
-- found from the scripts that run them: build/guests/ sits beside the
-- calling script's folder (scripts/), whatever the current folder is.
local M = {}

--- guests.find(name) -> path, or nil and a message that says how to build
--- it. The path is relative to where the calling script was loaded from.
function M.find(name)
  local info = debug.getinfo(2, "S")
  local source = info and info.source or ""
  local file = source:sub(1, 1) == "@" and source:sub(2) or (arg and arg[0]) or "."
  local dir = file:match("^(.*)/[^/]*$") or "."
  local path = dir .. "/../build/guests/" .. name
  local f = io.open(path, "rb")
  if not f then return nil, path .. " is missing; build it with `make guests`" end
  f:close()
  return path
end

return M
