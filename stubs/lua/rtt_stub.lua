-- RTT stub for Lua 5.4 (LuaSocket's socket.unix for the socket): serves a `process` endpoint over a UDS lane
-- (docs/stub-protocol.md).
local socket = require("socket")
local unix = require("socket.unix")

local M = { MAX_PAYLOAD = 65536, F_NO_PAYLOAD_CRC = 1, F_RESPONSE = 2, F_ERROR = 4, F_PROBE = 8 }

local TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if c & 1 == 1 then c = (c >> 1) ~ 0x82F63B78 else c = c >> 1 end
  end
  TABLE[i] = c
end

--- CRC-32C (Castagnoli) of s[i..j]; crc continues an earlier result.
function M.crc32c(s, crc, i, j)
  local c = (crc or 0) ~ 0xFFFFFFFF
  local t = TABLE
  for k = i or 1, j or #s do
    c = t[(c ~ s:byte(k)) & 0xFF] ~ (c >> 8)
  end
  return c ~ 0xFFFFFFFF
end

function M.frame(flags, route, id, payload)
  local head = string.pack("<c4I2I2I4I4I4", "RTT1", flags, 0, route, id, #payload)
  local crc = M.crc32c(head)
  if flags & M.F_NO_PAYLOAD_CRC == 0 then crc = M.crc32c(payload, crc) end
  return head .. string.pack("<I4", crc) .. payload
end

--- A handler raises M.failure(code, message) (or any error) to answer with an error frame.
function M.failure(code, message) return { rtt_code = code, message = message } end

local function answer(handler, flags, route, id, payload)
  if flags & M.F_PROBE ~= 0 then return M.frame(M.F_RESPONSE | M.F_PROBE, route, id, payload) end
  local ok, out = pcall(handler, payload)
  if ok and #out > M.MAX_PAYLOAD then ok, out = false, M.failure("RTT-CALL-004", "the answer is longer than 65536 bytes") end
  if ok then return M.frame(M.F_RESPONSE, route, id, out) end
  local text
  if type(out) == "table" and out.rtt_code then text = out.rtt_code .. " " .. out.message
  else text = "RTT-CALL-004 the service failed: " .. tostring(out) end
  return M.frame(M.F_RESPONSE | M.F_ERROR, route, id, text:sub(1, M.MAX_PAYLOAD))
end

--- Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code.
function M.serve(handler)
  local path = os.getenv("RTT_SERVICE_SOCKET")
  if not path or path == "" then
    io.stderr:write("RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service\n")
    return 2
  end
  local s = unix()
  local ok, err = s:connect(path)
  if not ok then
    io.stderr:write("RTT-LANE-002: cannot connect to " .. path .. ": " .. tostring(err) .. "\n")
    return 1
  end
  local name = "rtt-service"
  s:send(string.pack("<c4BBI2", "RTTQ", 2, 1, #name) .. name)
  local reply = s:receive(16)
  if not reply then io.stderr:write("RTT-LANE-002: the host closed the socket during attach\n") return 1 end
  local magic, status, _, kind = string.unpack("<c4i4I4i4", reply)
  if magic ~= "RTTR" or status ~= 0 or kind ~= 1 then
    io.stderr:write("RTT-LANE-002: attach refused (status " .. status .. ")\n")
    return 1
  end
  local buf = ""
  while true do
    socket.select({ s }, nil) -- wait until readable, then take what is there
    s:settimeout(0)
    local chunk, e, partial = s:receive(1 << 20)
    s:settimeout(nil)
    chunk = chunk or partial
    if chunk and #chunk > 0 then buf = buf .. chunk end
    if e == "closed" and (not chunk or #chunk == 0) then return 0 end -- the host closed the lane
    if e and e ~= "timeout" and e ~= "closed" then return 0 end
    local pos, out = 1, {}
    while #buf - pos + 1 >= 24 do
      local m, flags, _, route, id, len, crc = string.unpack("<c4I2I2I4I4I4I4", buf, pos)
      local bad = m ~= "RTT1" or len > M.MAX_PAYLOAD
      if not bad then
        if #buf - pos + 1 < 24 + len then break end
        local c = M.crc32c(buf, 0, pos, pos + 19)
        if flags & M.F_NO_PAYLOAD_CRC == 0 then c = M.crc32c(buf, c, pos + 24, pos + 23 + len) end
        bad = c ~= crc
      end
      if bad then
        local nxt = buf:find("RTT1", pos + 1, true)
        pos = nxt or math.max(pos + 1, #buf - 2)
      else
        local payload = buf:sub(pos + 24, pos + 23 + len)
        pos = pos + 24 + len
        if flags & M.F_RESPONSE == 0 then out[#out + 1] = answer(handler, flags, route, id, payload) end
      end
    end
    buf = buf:sub(pos)
    if #out > 0 then
      local data = table.concat(out)
      local i = 1
      while i <= #data do
        local sent, se, last = s:send(data, i)
        if not sent then
          if se == "closed" then return 0 end
          i = (last or i - 1) + 1
        else
          i = sent + 1
        end
      end
    end
    if e == "closed" then return 0 end
  end
end

return M
