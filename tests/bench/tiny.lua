-- usage: luavmm tests/bench/tiny.lua IMAGE [--lua] [--memory SIZE]
--
-- The luavmm side of the whole-process, memory and serial benchmarks: runs
-- tiny16.bin (or a copy with a byte count patched in) the way QEMU runs it
-- as its firmware. The image goes to 0xf0000 and the vCPU starts at its
-- reset vector, cs = 0xf000, ip = 0xfff0; the guest prints to port 0xE9
-- and leaves through port 0xF4.
--
-- The console is vm:debugcon (C, buffered) unless --lua asks for a Lua
-- handler writing each byte with io.write. The exit port is vm:debug_exit.
-- Exits with the guest's exit code (0), or 1 if the guest did not finish.
-- Runs under build/luavmm, which has already loaded the module as `vmm`.

local image, lua_console, memory = nil, false, "64M"
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--lua" then
    lua_console = true
  elseif a == "--memory" then
    i = i + 1
    memory = arg[i]
  elseif not image then
    image = a
  else
    io.stderr:write("tiny.lua: unexpected argument '", a, "'\n")
    os.exit(2)
  end
  i = i + 1
end
if not image then
  io.stderr:write("usage: luavmm tests/bench/tiny.lua IMAGE [--lua] [--memory SIZE]\n")
  os.exit(2)
end

local vm <close> = vmm.vm{ memory = memory }
vm:load(image, 0xf0000)
vm:cpu(0):set{ cs = 0xf000, rip = 0xfff0 }
if lua_console then
  local write, char = io.write, string.char
  vm:on_io(0xe9, function(cpu, offset, size, value)
    if value == nil then return 0xe9 end
    write(char(value & 0xff))
  end)
else
  vm:debugcon{ port = 0xe9 }
end
vm:debug_exit{ port = 0xf4 }

local result = vm:run{}
io.stdout:flush()
if result.reason ~= "exit" then
  io.stderr:write(string.format("tiny.lua: the guest did not finish: %s at rip 0x%x\n",
                                result.reason, result.rip))
  os.exit(1)
end
os.exit(result.code)
