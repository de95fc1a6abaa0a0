"""The Lua scripts of the agent store: each step of a run or a pool in one atomic call, so a worker killed between
two calls leaves a state the next step or the sweep can take on."""

TAKE = """
-- KEYS: pool list, pools by deadline, flushing
-- ARGV: pool, new job id, now, ticket key prefix
local tickets = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('ZREM', KEYS[2], ARGV[1])
if #tickets == 0 then return {} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[3], ARGV[2], cjson.encode({pool = ARGV[1], at = tonumber(ARGV[3]), tickets = tickets}))
for _, ticket in ipairs(tickets) do
  redis.call('SET', ARGV[4] .. ticket, ARGV[2], 'XX', 'KEEPTTL')
end
return tickets
"""

FLUSHED = """
-- KEYS: pool bodies, flushing, open pool jobs
-- ARGV: job id, now, tickets...
for i = 3, #ARGV, 500 do
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

RESUMED = """
-- KEYS: due runs
-- ARGV: pool job id, now, ticket key prefix, tickets...
local members = {}
for i = 4, #ARGV do
  local key = ARGV[3] .. ARGV[i]
  if redis.call('GET', key) == ARGV[1] then
    redis.call('SET', key, 'done:' .. ARGV[1], 'KEEPTTL')
    local job, index = string.match(ARGV[i], '^(.*)%-(%d+)%-%d+$')
    if job then
      redis.call('ZADD', KEYS[1], 'NX', ARGV[2], job .. ':' .. index)
      members[#members + 1] = job .. ':' .. index
    end
  end
end
return members
"""

UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_FINAL = "local final = {done = true, failed = true, cancelled = true}\n"

WAIT = (
    _FINAL
    + """
-- The end of a round that made a request: save the run waiting on it and put the request in its model's pool, in
-- one step, so a round is either saved with its request pooled or not at all (its retry pools its own request).
-- KEYS: run, job, due runs, ticket, pool list, pool bodies, pools by deadline, pool meta
-- ARGV: expected step, ticket, history, usage, tool calls added, member, now, input tokens added,
--       output tokens added, body, pool, deadline, ttl, model, endpoint, poll interval, group
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or final[state] then return {0, 0, 0} end
local step = tonumber(redis.call('HGET', KEYS[1], 'step') or '0')
if step ~= tonumber(ARGV[1]) then return {0, 0, 0} end
if not redis.call('SET', KEYS[4], 'q:' .. ARGV[11], 'NX', 'EX', ARGV[13]) then return {0, 0, 0} end
redis.call('HSET', KEYS[1], 'state', 'waiting', 'step', step + 1, 'ticket', ARGV[2])
redis.call('HSET', KEYS[1], 'history', ARGV[3], 'usage', ARGV[4])
if state == 'new' then
  redis.call('HINCRBY', KEYS[2], 'new', -1)
  redis.call('HINCRBY', KEYS[2], 'waiting', 1)
else
  redis.call('HINCRBY', KEYS[2], 'step:' .. step, -1)
end
redis.call('HINCRBY', KEYS[2], 'step:' .. (step + 1), 1)
redis.call('HINCRBY', KEYS[2], 'model_requests', 1)
redis.call('HINCRBY', KEYS[2], 'tool_calls', ARGV[5])
redis.call('HINCRBY', KEYS[2], 'input_tokens', ARGV[8])
redis.call('HINCRBY', KEYS[2], 'output_tokens', ARGV[9])
redis.call('ZREM', KEYS[3], ARGV[6])
redis.call('RPUSH', KEYS[5], ARGV[2])
redis.call('HSET', KEYS[6], ARGV[2], ARGV[10])
redis.call('HSET', KEYS[8], 'model', ARGV[14], 'endpoint', ARGV[15], 'poll_interval', ARGV[16], 'group', ARGV[17])
local current = redis.call('ZSCORE', KEYS[7], ARGV[11])
local sooner = 0
if (not current) or tonumber(current) > tonumber(ARGV[12]) then
  redis.call('ZADD', KEYS[7], ARGV[12], ARGV[11])
  sooner = 1
end
for i = 5, 8 do if i ~= 7 then redis.call('EXPIRE', KEYS[i], ARGV[13]) end end
return {1, redis.call('LLEN', KEYS[5]), sooner}
"""
)

FINISH = (
    _FINAL
    + """
-- KEYS: run, job
-- ARGV: expected step (-1: any), state, output, history, usage, error, tool calls added, input tokens added,
--       output tokens added, now
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or final[state] then return 0 end
local step = tonumber(redis.call('HGET', KEYS[1], 'step') or '0')
if ARGV[1] ~= '-1' and step ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'error', ARGV[6])
for i, name in ipairs({'output', 'history', 'usage'}) do  -- an empty one keeps what the run had
  if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[1], name, ARGV[i + 2]) end
end
if state == 'new' then
  redis.call('HINCRBY', KEYS[2], 'new', -1)
else
  redis.call('HINCRBY', KEYS[2], 'waiting', -1)
  redis.call('HINCRBY', KEYS[2], 'step:' .. step, -1)
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBY', KEYS[2], 'tool_calls', ARGV[7])
redis.call('HINCRBY', KEYS[2], 'input_tokens', ARGV[8])
redis.call('HINCRBY', KEYS[2], 'output_tokens', ARGV[9])
local job = redis.call('HMGET', KEYS[2], 'total', 'done', 'failed', 'cancelled', 'state')
local ended = tonumber(job[2] or '0') + tonumber(job[3] or '0') + tonumber(job[4] or '0')
if ended >= tonumber(job[1]) and job[5] == 'in_progress' then
  redis.call('HSET', KEYS[2], 'state', 'completed', 'completed_at', ARGV[10])
  return 2
end
if ended >= tonumber(job[1]) and job[5] == 'cancelled' and not redis.call('HGET', KEYS[2], 'completed_at') then
  redis.call('HSET', KEYS[2], 'completed_at', ARGV[10])
  return 2
end
return 1
"""
)

DELIVERED = """
-- KEYS: run, job, due runs
-- ARGV: member, whether the job's on_complete was sent too
redis.call('HSET', KEYS[1], 'delivered', '1')
if ARGV[2] == '1' then redis.call('HSET', KEYS[2], 'completion_sent', '1') end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

WITHDRAW = """
-- KEYS: ticket, pool list, pool bodies
-- ARGV: ticket, pool
if redis.call('GET', KEYS[1]) ~= 'q:' .. ARGV[2] then return 0 end
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
"""

FORGET_UNLESS_ANSWERED = """
-- KEYS: due runs, ticket; ARGV: member
local where = redis.call('GET', KEYS[2])
if where and string.sub(where, 1, 5) == 'done:' then return 0 end
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

CANCEL = """
-- KEYS: job. A job still running is marked cancelled; a finished one keeps its state.
if redis.call('HGET', KEYS[1], 'state') ~= 'in_progress' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'cancelled')
return 1
"""
