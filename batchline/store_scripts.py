"""The store's Lua scripts: each is one atomic step in Redis (see `store.Store` for what calls them)."""

# Store each new result, count it, add its token usage to the job's, and announce the chunk's new results in one
# stream entry, in one atomic step per chunk. A result comes as four values: its custom_id, its value tagged (its status
# letter first) by the client, since joining them here would copy every body once more inside Redis, and its input and
# output tokens. Only a result this step stores adds its tokens, so a fetch that runs again counts nothing twice. One
# entry per chunk, not per result, spares Redis a command per result.
ADD_RESULTS = """
local ok, bad, given, made, arrived = 0, 0, 0, 0, {}
for i = 3, #ARGV, 4 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    local tag = string.sub(ARGV[i + 1], 1, 1)
    arrived[#arrived + 1] = ARGV[i]
    arrived[#arrived + 1] = tag
    if tag == 's' then ok = ok + 1 else bad = bad + 1 end
    given = given + tonumber(ARGV[i + 2])
    made = made + tonumber(ARGV[i + 3])
  end
end
if #arrived > 0 then redis.call('XADD', KEYS[2], '*', unpack(arrived)) end
if ok > 0 then redis.call('HINCRBY', KEYS[3], 'succeeded', ok) end
if bad > 0 then redis.call('HINCRBY', KEYS[3], 'failed', bad) end
if given > 0 then redis.call('HINCRBY', KEYS[3], 'input_tokens', string.format('%d', given)) end
if made > 0 then redis.call('HINCRBY', KEYS[3], 'output_tokens', string.format('%d', made)) end
local ttl = tonumber(ARGV[1])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return ok + bad
"""

# The custom_ids of the list KEYS[2], from index ARGV[1] to ARGV[2], that have no field in the hash KEYS[1]: the ids
# never leave Redis, and the answer holds only the missing ones.
MISSING = """
local missing = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[2], ARGV[1], ARGV[2])) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 then missing[#missing + 1] = id end
end
return missing
"""

# Move a hash's `state` to ARGV[1] only from one of the ARGV[3] states that follow, setting the field/value pairs
# after them in the same step; answer whether it moved. Given a sorted set KEYS[2], a move also takes ARGV[2] out of
# it: a job that leaves `pending` leaves the sweep's list of jobs waiting for their submit in the same step.
TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'state')
local count = tonumber(ARGV[3])
for i = 4, 3 + count do
  if current == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1])
    for j = 4 + count, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1]) end
    if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[2]) end
    return 1
  end
end
return 0
"""

# A poll's record, in one step: count it, note its time for the sweep, and keep the provider's answer on the part
# while the part is still in state ARGV[3] (a poll that lost a race must not undo an ending).
POLLED = """
redis.call('HINCRBY', KEYS[1], 'polls', 1)
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[3] then return 0 end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
return 1
"""


# Allocate part ARGV[2]'s resubmission: a new pending part holding ARGV[5..], once, however often it is asked for.
ADD_PART = """
local existing = redis.call('HGET', KEYS[2], 'resubmitted_as')
if existing then return tonumber(existing) end
local n = redis.call('HINCRBY', KEYS[1], 'parts', 1) - 1
local part = ARGV[1] .. n
for i = 5, #ARGV, 1000 do
  redis.call('RPUSH', part .. ':ids', unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('HSET', part, 'state', 'pending', 'total', #ARGV - 4, 'generation', ARGV[3], 'resubmit_of', ARGV[2],
  'group', redis.call('HGET', KEYS[2], 'group') or '')
redis.call('EXPIRE', part, ARGV[4])
redis.call('EXPIRE', part .. ':ids', ARGV[4])
redis.call('HSET', KEYS[2], 'resubmitted_as', n)
return n
"""


# Give part KEYS[1]'s claim to ARGV[2] while it is ARGV[1] (empty: no claim yet; else the claim of a worker that gave
# up or died) and the part is still to be created: two workers taking over the same claim never both win, a part a
# cancel ended is never claimed to be created, and nothing is left half written.
TAKE_CLAIM = """
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
if (redis.call('HGET', KEYS[1], 'claim') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'claim', ARGV[2])
return 1
"""
