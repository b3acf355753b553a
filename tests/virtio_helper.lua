-- What the virtio specs (virtio_spec, virtio_fastpath_spec,
-- virtio_console_spec) share: the test disk's contents as the guests write
-- them (guests/vtest.h), image files, and running one of the runtime's
-- virtio guests with its console collected.
--
-- The guests ask for their parameters with hypercall 0x30 (HC_PARAM) and
-- report with hypercall 0x31 (HC_CHECKPOINT).
local vmm = require "vmm"
local mode = require "vmm.mode"
local H = require "helper"

local V = {}

V.SECTOR = 512
V.MEMORY = 4 * 1024 * 1024
-- Every run has this limit: a guest polls with a bounded loop and fails
-- itself when the device does not answer in time.
V.TIMEOUT = 20
V.HC_PARAM, V.HC_CHECKPOINT = 0x30, 0x31

-- What sector s of a test disk holds.
local patterns = {}
function V.pattern(s)
  if patterns[s] == nil then
    local t = { string.format("sector %08x\n", s) }
    for i = 16, V.SECTOR - 1 do t[#t + 1] = string.char(((s * 7 + i) & 0xff) ~ 0xa5) end
    patterns[s] = table.concat(t)
  end
  return patterns[s]
end

V.ZERO = string.rep("\0", V.SECTOR)

-- The bytes of a disk of n sectors, sector s being content(s) (nil: zeroes).
function V.disk(n, content)
  local t = {}
  for s = 0, n - 1 do t[#t + 1] = content and content(s) or V.ZERO end
  return table.concat(t)
end

-- The disk virtio_blk64's round trip uses (guests/virtio_blk64.c), and what
-- it holds after the guest's write phase: the sectors in WRITTEN hold the
-- pattern, the rest stay zero.
V.DISK_SECTORS = 2048
V.WRITTEN = { 0, 1, 2, 8, 9, 10, 11, 12, 13, 14, 15, V.DISK_SECTORS - 1 }
function V.written_disk()
  local set = {}
  for _, s in ipairs(V.WRITTEN) do set[s] = true end
  return V.disk(V.DISK_SECTORS, function(s) return set[s] and V.pattern(s) or nil end)
end

-- The first sector where two disk images differ, for messages.
function V.first_difference(a, b)
  if #a ~= #b then return string.format("sizes %d and %d", #a, #b) end
  for s = 0, #a // V.SECTOR - 1 do
    if a:sub(s * V.SECTOR + 1, (s + 1) * V.SECTOR) ~= b:sub(s * V.SECTOR + 1, (s + 1) * V.SECTOR) then
      return "sector " .. s
    end
  end
  return "nothing"
end

function V.assert_image(path, want)
  local got = H.read_file(path)
  assert(got == want, "the image differs from what it should hold at "
         .. V.first_difference(got, want))
end

-- A VM in long mode running guest `name`, its console (port 0xE9)
-- collected into the returned table, the exit port a C device, parameters
-- answered from `params`. opts: memory, irqchip.
function V.guest_vm(name, params, opts)
  opts = opts or {}
  local vm = vmm.vm{ memory = opts.memory or V.MEMORY, irqchip = opts.irqchip }
  vm:load(H.guest(name), mode.layout.entry)
  vm:cpu(0):set_mode("long")
  local out = {}
  vm:on_io(0xe9, function(_, _, _, v) out[#out + 1] = string.char(v) end)
  vm:debug_exit{ port = 0xf4 }
  vm:on_hypercall(V.HC_PARAM, function(_, i) return params[i] or 0 end)
  return vm, out
end

-- Runs it; the result has the output and the time the run took (for
-- messages only).
function V.run(vm, out, opts)
  local t0 = vmm.now()
  local r = vm:run{ timeout = opts and opts.timeout or V.TIMEOUT, raise = false }
  r.seconds = vmm.now() - t0
  r.output = table.concat(out)
  return r
end

function V.assert_passed(r)
  assert(r.reason == "exit" and r.code == 0, string.format(
    "the guest ended with %s %s (%s) after %.2f s; it printed:\n%s", r.reason,
    tostring(r.code), tostring(r.message), r.seconds or 0, r.output))
end

return V
