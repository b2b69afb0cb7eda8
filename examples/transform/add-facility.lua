-- add-facility.lua: an Isthmus Lua transformer (docs/lua-transformers.md).
--
-- * drops test traffic (MSH-11 = "T"), recording why;
-- * stamps a sending facility (MSH-4.1) on messages that lack one;
-- * copies it into the visit's assigned location (PV1-3.4) when that is empty;
-- * upper-cases the assigning authority (PID-3.4) of every patient identifier;
-- * leaves a note (NTE) saying what it changed.
-- Run by src/mapping/lua/lua_transformer_test.cc, so this file cannot rot.

local DEFAULT_FACILITY = "GENHOSP"

-- Globals and upvalues live as long as the worker's Lua state: a counter here counts the
-- messages this worker has seen, not all of them. Do not rely on it for anything but statistics.
local seen = 0

function transform(msg)
  seen = seen + 1

  if msg:get("MSH-11.1") == "T" then
    return false, "test message from " .. (msg:get("MSH-3.1") or "an unknown sender")
  end

  local changes = {}

  local facility = msg:get("MSH-4.1")
  if facility == nil then
    facility = DEFAULT_FACILITY
    msg:set("MSH-4.1", facility)
    changes[#changes + 1] = "MSH-4.1"
  end

  if msg:count("PV1") > 0 and msg:get("PV1-3.4") == nil then
    msg:set("PV1-3.4", facility)
    changes[#changes + 1] = "PV1-3.4"
  end

  for i = 1, msg:repetitions("PID-3") do
    local path = "PID-3[" .. i .. "].4"
    local authority = msg:get(path)
    if authority ~= nil and authority ~= authority:upper() then
      msg:set(path, authority:upper())
      changes[#changes + 1] = path
    end
  end

  if #changes > 0 then
    -- set() escapes delimiters in text; add_segment() takes raw ER7, so build it with care.
    local n = msg:count("NTE") + 1
    msg:add_segment("NTE|" .. n .. "|L|")
    msg:set("NTE[" .. n .. "]-3", "isthmus set " .. table.concat(changes, ", "))
  end
  -- Returning nothing continues with the (modified) message.
end
