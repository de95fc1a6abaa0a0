"""The response cache's Lua scripts: each is one atomic step in Redis (see `store.CacheStore` for what calls them).

Keys they share: KEYS[1] the job's results hash, KEYS[2] its arrival stream, KEYS[3] its record, KEYS[4] its set of
requests answered without being sent, KEYS[5] its request keys (leader -> key), KEYS[6] its duplicates (leader -> JSON
list of followers). An answer given to a request that has none yet is counted, announced and marked as shared, as
`store_scripts.ADD_RESULTS` does for the provider's own; one given twice is ignored, so every step may run again.
"""

# Store `value` (a tagged result) for `id` unless it has one; what it stores is counted and announced by FLUSH.
_GIVE = """
local arrived, ok, bad, shared = {}, 0, 0, 0
local function announce()
  if #arrived > 0 then redis.call('XADD', KEYS[2], '*', unpack(arrived)) end
  arrived = {}
end
local function give(id, value)
  if redis.call('HSETNX', KEYS[1], id, value) == 1 then
    local tag = string.sub(value, 1, 1)
    arrived[#arrived + 1] = id
    arrived[#arrived + 1] = tag
    if tag == 's' then ok = ok + 1 else bad = bad + 1 end
    if redis.call('SADD', KEYS[4], id) == 1 then shared = shared + 1 end
    if #arrived >= 2000 then announce() end  -- Lua's stack takes a few thousand values to unpack
  end
end
local function give_followers(id, value)
  local fans = redis.call('HGET', KEYS[6], id)
  if fans then
    for _, follower in ipairs(cjson.decode(fans)) do give(follower, value) end
  end
end
"""

_FLUSH = """
announce()
if ok > 0 then redis.call('HINCRBY', KEYS[3], 'succeeded', ok) end
if bad > 0 then redis.call('HINCRBY', KEYS[3], 'failed', bad) end
if shared > 0 then redis.call('HINCRBY', KEYS[3], 'cached', shared) end
for i = 1, 4, 1 do
  if i ~= 3 then redis.call('EXPIRE', KEYS[i], job_ttl) end
end
"""

# Before a part is sent: each request (ARGV[5..]) with a cached answer gets it, and so do its followers ('h'); one
# whose in-flight marker is free, this job's (ARGV[1]), or left by a job that has ended, takes the marker and goes
# ('s'); one whose marker a live job holds waits ('w'). ARGV[2] is the cache's key prefix, ARGV[3] the jobs' key prefix,
# ARGV[4] the job keys' TTL. Answers one letter per request.
SERVE_OR_CLAIM = (
    """
local me, cache, jobs, job_ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ended = {completed = true, failed = true, cancelled = true, expired = true}
"""
    + _GIVE
    + """
local classes = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local key = redis.call('HGET', KEYS[5], id)
  local class = 's'
  if key then
    local body = redis.call('GET', cache .. 'res:' .. key)
    if body then
      class = 'h'
      give(id, 's' .. body)
      give_followers(id, 's' .. body)
    else
      local fly = cache .. 'fly:' .. key
      local owner = redis.call('GET', fly)
      if owner and owner ~= me then
        local state = redis.call('HGET', jobs .. owner, 'state')
        if state and not ended[state] then class = 'w' end
      end
      if class == 's' then redis.call('SET', fly, me, 'EX', job_ttl) end
    end
  end
  classes[#classes + 1] = class
end
"""
    + _FLUSH
    + """
return table.concat(classes)
"""
)

# Once a part's results are stored: each request (ARGV[5..]) with a result shares it with its followers; a success
# the provider gave (not one the cache gave) goes into the cache for ARGV[3] seconds, and the request's in-flight
# marker is let go if this job (ARGV[1]) holds it, so a job waiting for it reads the answer or, after a failure, sends
# the request itself. ARGV[2] is the cache's key prefix, ARGV[4] the job keys' TTL.
SETTLE = (
    """
local me, cache, cache_ttl, job_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
"""
    + _GIVE
    + """
for i = 5, #ARGV do
  local id = ARGV[i]
  local value = redis.call('HGET', KEYS[1], id)
  if value then
    local key = redis.call('HGET', KEYS[5], id)
    if key then
      if string.sub(value, 1, 1) == 's' and redis.call('SISMEMBER', KEYS[4], id) == 0 then
        redis.call('SET', cache .. 'res:' .. key, string.sub(value, 2), 'EX', cache_ttl)
      end
      local fly = cache .. 'fly:' .. key
      if redis.call('GET', fly) == me then redis.call('DEL', fly) end
    end
    give_followers(id, value)
  end
end
"""
    + _FLUSH
)

# Split a screened part (KEYS[1], its ids KEYS[2], its job's record KEYS[3]) once its requests are sorted: it keeps the
# ARGV[7] ids that follow, the rest go to a new part of the same group. ARGV[1] is `first` (a part never screened: it
# keeps what goes now, those that wait move to a new waiting part) or `wait` (a waiting part: it keeps what still
# waits, what goes now moves to a new part that is sent). ARGV[2] is the part's `screens` count the sorting started
# from: if another step changed the part since, or it was claimed (a cancel, a create), nothing happens (answer -2).
# ARGV[3] is the job's part key prefix, ARGV[4] the TTL, ARGV[5] how many of its requests the cache answered this time,
# ARGV[6] '1' when its ids list changes. A part left with nothing is stored. Answers the new part, or -1.
COMMIT = """
local part, first, ttl, k = KEYS[1], ARGV[1] == 'first', tonumber(ARGV[4]), tonumber(ARGV[7])
local status = redis.call('HGET', part, 'provider_status') or ''
if redis.call('HGET', part, 'state') ~= 'pending' or redis.call('HEXISTS', part, 'claim') == 1
  or status ~= (first and '' or 'waiting') or (redis.call('HGET', part, 'screens') or '0') ~= ARGV[2] then
  return -2
end
local cached = redis.call('HINCRBY', part, 'cached', ARGV[5])
redis.call('HINCRBY', part, 'screens', 1)
if ARGV[6] == '1' then
  redis.call('DEL', KEYS[2])
  for i = 8, 7 + k, 1000 do redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, 7 + k))) end
  redis.call('EXPIRE', KEYS[2], ttl)
end
if k > 0 then
  redis.call('HSET', part, 'total', k, 'provider_status', first and 'screened' or 'waiting')
else
  redis.call('HSET', part, 'state', 'stored', 'total', cached, 'completed', cached, 'provider_state', 'completed',
    'provider_status', cached > 0 and 'cached' or 'moved')
end
if #ARGV == 7 + k then return -1 end
local new = redis.call('HINCRBY', KEYS[3], 'parts', 1) - 1
local key = ARGV[3] .. new
for i = 8 + k, #ARGV, 1000 do redis.call('RPUSH', key .. ':ids', unpack(ARGV, i, math.min(i + 999, #ARGV))) end
redis.call('HSET', key, 'state', 'pending', 'total', #ARGV - 7 - k, 'group', redis.call('HGET', part, 'group') or '',
  'generation', redis.call('HGET', part, 'generation') or 0, 'provider_status', first and 'waiting' or 'screened')
redis.call('EXPIRE', key, ttl)
redis.call('EXPIRE', key .. ':ids', ttl)
return new
"""
