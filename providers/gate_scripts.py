"""The gate's Lua scripts: admission over every deployment that can serve a line, the
unlimited deployments' cool-down read, and release.  What they decide is described in
:mod:`providers.gate`, which runs them."""

from __future__ import annotations

__all__ = ["ACQUIRE_LUA", "NOW_MS", "OPEN_LUA", "RELEASE_LUA"]

NOW_MS = """
local function now_ms(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""
"""Milliseconds on the clock the caller gives (Redis's, as the worker carries it:
:mod:`providers.clock`; or a test's), else Redis's ``TIME`` (every script starts with it)."""

ACQUIRE_LUA = (
    NOW_MS
    + """
local now = now_ms(ARGV[1])
local lease_id, lease_ttl, poll_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local reserve_ms = tonumber(ARGV[5])
local best, best_wait, best_load, best_tats, best_streak, min_wait = -1, nil, nil, nil, 0, nil
for i = 6, #ARGV, 8 do
  local prefix = ARGV[i]
  local t_req, tau_req = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local t_tok, tau_tok = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local max_conc, cost_req, cost_tok = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
  -- one read of everything a deployment keeps (Redis counts one command, not four)
  local got = redis.call('MGET', prefix .. ':cool', prefix .. ':req', prefix .. ':tok', prefix .. ':fails')
  -- cool-downs and full concurrency block; a rate wait can be reserved ahead
  local blocked = math.max(tonumber(got[1] or now) - now, 0)
  local tat_req = math.max(tonumber(got[2] or now), now)
  local tat_tok = math.max(tonumber(got[3] or now), now)
  local wait = 0
  if t_req > 0 then wait = math.max(wait, tat_req - now - tau_req) end
  if t_tok > 0 then wait = math.max(wait, tat_tok - now - tau_tok) end
  if max_conc > 0 then
    redis.call('ZREMRANGEBYSCORE', prefix .. ':leases', '-inf', now)
    if redis.call('ZCARD', prefix .. ':leases') >= max_conc then blocked = math.max(blocked, poll_ms) end
  end
  if blocked <= 0 and wait <= reserve_ms then
    local load = 0
    if t_req > 0 then load = (tat_req - now) / (tau_req + t_req) end
    if best < 0 or wait < best_wait or (wait == best_wait and load < best_load) then
      best, best_wait, best_load = i, wait, load
      best_streak = got[4] and 1 or 0
      -- this request arrives at now + wait: that, not the stale arrival time, is what it adds to
      best_tats = {
        math.max(tat_req, now + wait) + t_req * cost_req,
        math.max(tat_tok, now + wait) + t_tok * cost_tok,
      }
    end
  else
    local total = math.max(blocked, wait)
    if min_wait == nil or total < min_wait then min_wait = total end
  end
end
if best < 0 then
  return {-1, math.ceil(min_wait), 0}
end
local prefix = ARGV[best]
local keep = 120000
if tonumber(ARGV[best + 1]) > 0 then
  redis.call('SET', prefix .. ':req', tostring(best_tats[1]), 'PX', math.ceil(best_tats[1] - now + keep))
end
if tonumber(ARGV[best + 3]) > 0 then
  redis.call('SET', prefix .. ':tok', tostring(best_tats[2]), 'PX', math.ceil(best_tats[2] - now + keep))
end
if tonumber(ARGV[best + 5]) > 0 then
  redis.call('ZADD', prefix .. ':leases', now + best_wait + lease_ttl, lease_id)
  redis.call('PEXPIRE', prefix .. ':leases', best_wait + lease_ttl + keep)
end
-- the third answer: whether a failure streak runs there (only then must a success be reported)
return {(best - 6) / 8, math.ceil(math.max(best_wait, 0)), best_streak}
"""
)

OPEN_LUA = (
    NOW_MS
    + """
local now = now_ms(ARGV[1])
local found = {}
for i = 2, #ARGV do
  local got = redis.call('MGET', ARGV[i] .. ':cool', ARGV[i] .. ':fails')
  found[#found + 1] = math.ceil(math.max(tonumber(got[1] or now) - now, 0))
  found[#found + 1] = got[2] and 1 or 0
end
return found
"""
)

RELEASE_LUA = (
    NOW_MS
    + """
local prefix, lease_id, outcome = ARGV[1], ARGV[2], ARGV[3]
local cool_ms, threshold, failure_cool_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREM', prefix .. ':leases', lease_id)
-- the cool-down holds its end time on the limiter's clock (the key's TTL only cleans up); the
-- clock is read only here: a success or a permanent error needs no TIME call
local function cool(ms)
  if ms <= 0 then return end
  local until_ms = now_ms(ARGV[7]) + ms
  if tonumber(redis.call('GET', prefix .. ':cool') or 0) < until_ms then
    redis.call('SET', prefix .. ':cool', tostring(until_ms), 'PX', ms + 120000)
  end
end
if outcome == 'ok' then
  redis.call('DEL', prefix .. ':fails')
elseif outcome == 'throttled' then
  cool(cool_ms)
elseif outcome == 'failed' then
  local fails = redis.call('INCR', prefix .. ':fails')
  redis.call('PEXPIRE', prefix .. ':fails', 60000)
  if fails >= threshold then
    cool(failure_cool_ms)
    return 2  -- a streak of failures cooled the deployment down (the caller reports it)
  end
end
return 1
"""
)
