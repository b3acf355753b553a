-- Runs the failure-mode matrix (tests/failure_modes.lua) and checks that
-- README.md's "Failure modes" table is generated from it.
local matrix = require "failure_modes"

describe("the failure-mode matrix", function()
  it("has at least 40 cases, guest and script", function()
    local guest, script = 0, 0
    for _, c in ipairs(matrix.cases) do
      if c.side == "guest" then guest = guest + 1 else script = script + 1 end
    end
    assert.is_true(#matrix.cases >= 40)
    assert.is_true(guest >= 15 and script >= 15)
  end)

  for i, c in ipairs(matrix.cases) do
    it(string.format("%d (%s): %s", i, c.side, c.what), function()
      local got = c.run()
      assert.matches(c.expect, got)
    end)
  end

  it("is the table in README.md", function()
    local f = assert(io.open("README.md"))
    local readme = f:read("a")
    f:close()
    local table_text = readme:match("<!%-%- failure%-modes:begin %-%->\n(.-)<!%-%- failure%-modes:end %-%->")
    assert.is_not_nil(table_text, "README.md has no failure-modes markers")
    assert.equal(matrix.markdown(), table_text)
  end)
end)
