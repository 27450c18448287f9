//! The breaker's Lua scripts: every change of a shared circuit happens on the Redis server, in
//! one script call, so instances never race on a read-modify-write.

/// Counts one outcome; opens, closes or reopens the circuit. Exactly one caller across the
/// fleet gets a change of state back (`from` ≥ 0). An outcome of an earlier generation (a
/// call admitted before the circuit opened, arriving after it closed) counts for nothing, as
/// in [`MemoryStore`](crate::breaker::MemoryStore); its answer tells the instance the current generation.
///
/// `KEYS`: the circuit's hash, the hash of the circuits that are not closed. `ARGV`: the
/// circuit's name, probe (0/1), the permit's generation (`-1 - age` when unknown: a closed
/// permit of a view that has not learned it, issued `age` ms ago, counted in the current
/// closed period if that began before), the outcome (0 success, 1 failure,
/// 2 abandoned), consecutive failures to open, failure rate, min calls, window (ms),
/// cool-down (ms), TTL (ms), the probe's slot id (0 for a closed permit), the most circuits
/// listed in the second hash ([`MAX_VIEWS`](super::MAX_VIEWS)). Answers `{state,
/// generation, ms until the cool-down ends, from}` (states: 0 closed, 1 open, 2 half-open;
/// `from` -1: no change).
pub(super) const RECORD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = math.floor(tonumber(ARGV[10]))
local cool_down = math.floor(tonumber(ARGV[9]))
local window = math.floor(tonumber(ARGV[8]))
local h = {}
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do h[raw[i]] = tonumber(raw[i + 1]) end
local st = h.st or 0
local gen = h.gen or 0
local outcome = ARGV[4]
local from = -1
-- Sets the hash to these fields only: the write that may be refused (out of memory) first,
-- so that a refused script has written nothing.
local function reset(fields)
  redis.call('HSET', KEYS[1], unpack(fields))
  local keep, drop = {}, {}
  for i = 1, #fields, 2 do keep[fields[i]] = true end
  for i = 1, #raw, 2 do
    if not keep[raw[i]] then drop[#drop + 1] = raw[i] end
  end
  if #drop > 0 then redis.call('HDEL', KEYS[1], unpack(drop)) end
end
local function open(f)
  from = f
  st = 1
  gen = gen + 1
  local ends = now + cool_down
  -- Listed for the refreshes while the list has room (a flood of circuits cannot make every
  -- refresh ship and check all of them); a circuit left out is still open, and an instance
  -- learns it from its own outcome's answer.
  local listed = redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1
    or redis.call('HLEN', KEYS[2]) < tonumber(ARGV[12])
  reset({'st', 1, 'gen', gen, 'until', ends})
  if listed then redis.call('HSET', KEYS[2], ARGV[1], '1:' .. gen .. ':' .. ends) end
end
local pgen = tonumber(ARGV[3])
if pgen < 0 then
  -- A closed permit from a view made afresh (a circuit new to the instance, or its view
  -- evicted): counted in the current closed period if it was issued after that began
  -- (`since`, set when a probe closed the circuit).
  local issued = now + pgen + 1
  if ARGV[2] == '0' and (h.since == nil or issued >= h.since) then pgen = gen end
end
if ARGV[2] == '0' and st == 0 and pgen > gen then
  -- The hash expired (or the server lost it) while instances still know a later
  -- generation: adopt it, so that generations never go back.
  gen = pgen
end
if ARGV[2] == '0' and st == 0 and pgen == gen then
  if outcome ~= '2' then
    local failed = outcome == '1'
    local consec = 0
    if failed then consec = (h.consec or 0) + 1 end
    local slot_len = math.max(1, math.floor(window / 10))
    local num = math.floor(now / slot_len)
    local i = num % 10
    if h['n' .. i] ~= num then
      h['n' .. i] = num
      h['c' .. i] = 0
      h['f' .. i] = 0
    end
    h['c' .. i] = h['c' .. i] + 1
    if failed then h['f' .. i] = h['f' .. i] + 1 end
    local calls, fails = 0, 0
    for j = 0, 9 do
      local n = h['n' .. j]
      if n and n > num - 10 and n <= num then
        calls = calls + h['c' .. j]
        fails = fails + h['f' .. j]
      end
    end
    local threshold = tonumber(ARGV[5])
    if (threshold > 0 and consec >= threshold)
        or (calls >= tonumber(ARGV[7]) and fails / calls >= tonumber(ARGV[6])) then
      open(0)
    else
      redis.call('HSET', KEYS[1], 'st', 0, 'gen', gen, 'consec', consec,
        'n' .. i, num, 'c' .. i, h['c' .. i], 'f' .. i, h['f' .. i])
    end
  end
elseif ARGV[2] == '1' and st == 2 and pgen == gen then
  if outcome == '0' then
    from = 2
    st = 0
    gen = gen + 1
    reset({'st', 0, 'gen', gen, 'since', now})
    redis.call('HDEL', KEYS[2], ARGV[1])
  elseif outcome == '1' then
    open(2)
  else
    -- Abandoned: frees this probe's own slot (a slot that expired meanwhile, and may have
    -- been granted again under another id, is not touched).
    redis.call('HDEL', KEYS[1], 'p:' .. ARGV[11])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ttl) end
local ends = tonumber(redis.call('HGET', KEYS[1], 'until')) or now
return {st, gen, math.max(0, ends - now), from}
";

/// Asks for a probe slot: moves an open circuit whose cool-down is over to half-open (once
/// across the fleet: `from` 1 for that one caller) and grants at most `probes` slots at once
/// fleet-wide; a slot not handed back within the lease (its instance died, or its call is
/// slower than the lease) is forgotten. Each slot has its own id (a field `p:<id>` of the
/// circuit's hash holding its expiry), so a late release frees only its own slot.
///
/// `KEYS`: as [`RECORD`]. `ARGV`: the circuit's name, probes, lease (ms), TTL (ms). Answers
/// `{state, generation, ms until the cool-down ends, from, granted slot id or 0}`.
pub(super) const PROBE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local probes = tonumber(ARGV[2])
local lease_ms = math.floor(tonumber(ARGV[3]))
local ttl = math.floor(tonumber(ARGV[4]))
local st = tonumber(redis.call('HGET', KEYS[1], 'st')) or 0
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0
local from = -1
if st == 0 then return {0, gen, 0, -1, 0} end
if st == 1 then
  local ends = tonumber(redis.call('HGET', KEYS[1], 'until')) or 0
  if now < ends then return {1, gen, ends - now, -1, 0} end
  st = 2
  gen = gen + 1
  from = 1
  redis.call('HSET', KEYS[1], 'st', 2, 'gen', gen)
  if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[1], '2:' .. gen .. ':0')
  end
end
local live, expired = 0, {}
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do
  if string.sub(raw[i], 1, 2) == 'p:' then
    if tonumber(raw[i + 1]) > now then live = live + 1 else expired[#expired + 1] = raw[i] end
  end
end
local granted = 0
if live < probes then
  granted = redis.call('HINCRBY', KEYS[1], 'seq', 1) % 2147483647 + 1
  redis.call('HSET', KEYS[1], 'p:' .. granted, now + lease_ms)
end
if #expired > 0 then redis.call('HDEL', KEYS[1], unpack(expired)) end
redis.call('PEXPIRE', KEYS[1], ttl)
return {2, gen, 0, from, granted}
";

/// The circuits that are not closed, with the server's time: `{now ms, name, 'st:gen:until',
/// ...}`; drops the entries whose circuit expired. `KEYS[1]`: that hash; `KEYS[2]`: a key
/// written on every refresh, so that a Redis refusing writes (out of memory, a read-only
/// replica) fails the refresh as it fails the outcomes, instead of answering it and making
/// the store flap; `ARGV[1]`: the circuits' key prefix.
pub(super) const REFRESH: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], now, 'PX', 60000)
local raw = redis.call('HGETALL', KEYS[1])
local out = {tostring(now)}
for i = 1, #raw, 2 do
  if redis.call('EXISTS', ARGV[1] .. raw[i]) == 1 then
    out[#out + 1] = raw[i]
    out[#out + 1] = raw[i + 1]
  else
    redis.call('HDEL', KEYS[1], raw[i])
  end
end
return out
";
