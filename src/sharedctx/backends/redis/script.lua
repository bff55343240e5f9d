-- sharedctx: every operation on one session, atomically, in one script call.
--
-- KEYS: 1 "<namespace>:{<session>}:meta" (hash: epoch, rev, tick, expired, evicted).
-- The session's other keys are that name with another last part; they share its
-- hash tag, so they live in its cluster slot:
--   entries (hash key -> blob: "%08d" length of the metadata, metadata, value)
--   index (zset, score 0: keys, for prefix ranges)
--   deadlines (zset key -> expiry, ms of the server's clock)
--   recency (zset key -> tick of last use, for eviction)
--   tags (zset, score 0: members "%08d" .. #tag .. tag .. key)
--   events (stream; entry id "<revision>-0", fields a (action), k (key), e (blob))
-- ARGV: 1 operation, 2 the client's epoch ("" if it has none), 3 the revision after
--       which the caller wants the events back (-1: none), 4 stream cap,
--       5 max entries (-1: none), 6 eviction ("lru", "oldest", "reject"), 7.. arguments.
-- Reply: {status, epoch, events, result...}; status "ok", "lost" (the session's data is
-- gone since the client last saw it: nothing was done), "conflict", "full" or
-- "changed". Metadata is cmsgpack {version, created_ms, updated_ms, ttl_ms, expires_ms,
-- source, tags}, with -1 for "no ttl".

local META = KEYS[1]
local base = string.sub(META, 1, -5)  -- without "meta"
local ENTRIES, INDEX, DEADLINES, RECENCY, TAGS, EVENTS =
  base .. "entries", base .. "index", base .. "deadlines", base .. "recency",
  base .. "tags", base .. "events"
local op, client_epoch, since, cap = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local max_entries, eviction = tonumber(ARGV[5]), ARGV[6]
local KEEP = "\0keep"  -- source or tags not given: keep the entry's own

local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local epoch = redis.call("HGET", META, "epoch")
if not epoch then
  epoch = time[1] .. "." .. time[2]
  redis.call("HSET", META, "epoch", epoch, "rev", 0, "tick", 0)
end
if client_epoch ~= "" and client_epoch ~= epoch then
  return {"lost", epoch, {}}
end

local function tag_member(tag, key)
  return string.format("%08d", #tag) .. tag .. key
end

local function metadata(blob)
  return cmsgpack.unpack(string.sub(blob, 9, 8 + tonumber(string.sub(blob, 1, 8))))
end

local function emit(action, key, blob)
  local rev = redis.call("HINCRBY", META, "rev", 1)
  redis.call("XADD", EVENTS, "MAXLEN", "~", cap, rev .. "-0", "a", action, "k", key, "e", blob)
end

local function remove(key, blob, meta, action)
  redis.call("HDEL", ENTRIES, key)
  redis.call("ZREM", INDEX, key)
  redis.call("ZREM", DEADLINES, key)
  redis.call("ZREM", RECENCY, key)
  for _, tag in ipairs(meta[7]) do
    redis.call("ZREM", TAGS, tag_member(tag, key))
  end
  if action == "expire" or action == "evict" then
    redis.call("HINCRBY", META, action == "expire" and "expired" or "evicted", 1)
  end
  emit(action, key, blob)
end

-- The live blob and metadata of key, or nil (an expired entry is removed here).
local function live(key)
  local blob = redis.call("HGET", ENTRIES, key)
  if not blob then
    return nil
  end
  local meta = metadata(blob)
  if meta[5] >= 0 and meta[5] <= now then
    remove(key, blob, meta, "expire")
    return nil
  end
  return blob, meta
end

local function purge_due(limit)
  local purged = 0
  for _, key in ipairs(redis.call("ZRANGEBYSCORE", DEADLINES, "-inf", now, "LIMIT", 0, limit)) do
    if not live(key) then
      purged = purged + 1
    end
  end
  return purged
end

local function touch(key)
  if max_entries >= 0 and eviction ~= "reject" then
    redis.call("ZADD", RECENCY, redis.call("HINCRBY", META, "tick", 1), key)
  end
end

local function read(key)
  local blob = live(key)
  if blob and eviction == "lru" then
    touch(key)
  end
  return blob
end

-- Make room for `fresh` new keys, never evicting the `kept` keys in the set `keep`;
-- false if there is no room.
local function make_room(fresh, keep, kept)
  if max_entries < 0 or fresh == 0 then
    return true
  end
  if redis.call("HLEN", ENTRIES) + fresh > max_entries then
    purge_due(-1)
  end
  local overflow = redis.call("HLEN", ENTRIES) + fresh - max_entries
  if overflow <= 0 then
    return true
  end
  if eviction == "reject" or fresh > max_entries or kept > max_entries then
    return false
  end
  local victims, chosen = {}, {}
  local function choose(candidates)
    for _, key in ipairs(candidates) do
      if #victims < overflow and not keep[key] and not chosen[key] then
        victims[#victims + 1] = key
        chosen[key] = true
      end
    end
  end
  choose(redis.call("ZRANGE", RECENCY, 0, overflow + kept - 1))
  if #victims < overflow then
    -- Keys written by a context without max_entries have no recency: they count as
    -- least recent, in key order.
    local tracked = redis.call("ZCARD", RECENCY)
    if tracked < redis.call("HLEN", ENTRIES) then
      for _, key in ipairs(redis.call("ZRANGE", INDEX, 0, -1)) do
        if not redis.call("ZSCORE", RECENCY, key) then
          choose({key})
        end
      end
    end
    choose(redis.call("ZRANGE", RECENCY, 0, -1))
  end
  for _, key in ipairs(victims) do
    local blob = redis.call("HGET", ENTRIES, key)
    remove(key, blob, metadata(blob), "evict")
  end
  return true
end

-- Store one value over the live metadata `old` (or nil). Returns the new metadata.
local function put(key, value, old, ttl, source, tags)
  local version, created, expires = 1, now, -1
  if old then
    version, created = old[1] + 1, old[2]
  end
  if ttl == -2 then  -- KEEP_TTL
    ttl = old and old[4] or -1
    expires = old and old[5] or -1
  elseif ttl >= 0 then
    expires = now + ttl
  end
  if source == KEEP then
    source = old and old[6] or "unknown"
  end
  if tags == KEEP then
    tags = old and old[7] or {}
  end
  if old then
    for _, tag in ipairs(old[7]) do
      redis.call("ZREM", TAGS, tag_member(tag, key))
    end
  else
    redis.call("ZADD", INDEX, 0, key)
  end
  for _, tag in ipairs(tags) do
    redis.call("ZADD", TAGS, 0, tag_member(tag, key))
  end
  if expires >= 0 then
    redis.call("ZADD", DEADLINES, expires, key)
  elseif old and old[5] >= 0 then
    redis.call("ZREM", DEADLINES, key)
  end
  local packed = cmsgpack.pack({version, created, now, ttl, expires, source, tags})
  local blob = string.format("%08d", #packed) .. packed .. value
  redis.call("HSET", ENTRIES, key, blob)
  touch(key)
  emit("set", key, blob)
  return packed
end

-- ARGV from `at` on: a count and that many tags, or KEEP. Returns tags, next index.
local function read_tags(at)
  if ARGV[at] == KEEP then
    return KEEP, at + 1
  end
  local tags = {}
  for i = 1, tonumber(ARGV[at]) do
    tags[i] = ARGV[at + i]
  end
  return tags, at + 1 + #tags
end

-- {key, blob, key, blob...} of the live ones among keys.
local function entries(keys, reading)
  local found = {}
  for _, key in ipairs(keys) do
    local blob = reading and read(key) or live(key)
    if blob then
      found[#found + 1] = key
      found[#found + 1] = blob
    end
  end
  return found
end

local function live_keys(lo, hi)
  local keys = {}
  for _, key in ipairs(redis.call("ZRANGEBYLEX", INDEX, lo, hi)) do
    if live(key) then
      keys[#keys + 1] = key
    end
  end
  return keys
end

local function count()
  return redis.call("HLEN", ENTRIES) - redis.call("ZCOUNT", DEADLINES, "-inf", now)
end

local function reply(status, ...)
  local events = {}
  if since >= 0 and tonumber(redis.call("HGET", META, "rev")) > since then
    events = redis.call("XRANGE", EVENTS, (since + 1) .. "-0", "+")
  end
  return {status, epoch, events, ...}
end

local a = ARGV

if op == "get" then
  return reply("ok", read(a[7]) or "")
elseif op == "get_many" then
  local keys = {}
  for i = 7, #a do
    keys[#keys + 1] = a[i]
  end
  return reply("ok", entries(keys, true))
elseif op == "contains" then
  return reply("ok", live(a[7]) and 1 or 0)
elseif op == "write" then  -- key, value, ttl, if_version, source, tags...
  local key, value, ttl, if_version, source = a[7], a[8], tonumber(a[9]), tonumber(a[10]), a[11]
  local tags = read_tags(12)
  local _, old = live(key)
  local version = old and old[1] or 0
  if if_version >= 0 and if_version ~= version then
    return reply("conflict", version)
  end
  if not old and not make_room(1, {[key] = true}, 1) then
    return reply("full", redis.call("HLEN", ENTRIES))
  end
  return reply("ok", put(key, value, old, ttl, source, tags))
elseif op == "write_many" then  -- ttl, source, tags..., then key/value pairs
  local ttl, source = tonumber(a[7]), a[8]
  local tags, at = read_tags(9)
  local keep, old, fresh = {}, {}, 0
  for i = at, #a, 2 do
    keep[a[i]] = true
    local _, meta = live(a[i])
    old[a[i]] = meta
    if not meta then
      fresh = fresh + 1
    end
  end
  if not make_room(fresh, keep, (#a - at + 1) / 2) then
    return reply("full", redis.call("HLEN", ENTRIES))
  end
  local written = {}
  for i = at, #a, 2 do
    local packed = put(a[i], a[i + 1], old[a[i]], ttl, source, tags)
    written[#written + 1] = packed
    old[a[i]] = cmsgpack.unpack(packed)
  end
  return reply("ok", written)
elseif op == "delete" then
  local blob, meta = live(a[7])
  if blob then
    remove(a[7], blob, meta, "delete")
    return reply("ok", 1)
  end
  return reply("ok", 0)
elseif op == "expire" then  -- key, ttl (-1: none)
  local key, ttl = a[7], tonumber(a[8])
  local blob, meta = live(key)
  if not blob then
    return reply("ok", 0)
  end
  local value = string.sub(blob, 9 + tonumber(string.sub(blob, 1, 8)))
  meta[4], meta[5] = ttl, -1
  if ttl >= 0 then
    meta[5] = now + ttl
    redis.call("ZADD", DEADLINES, meta[5], key)
  else
    redis.call("ZREM", DEADLINES, key)
  end
  local packed = cmsgpack.pack(meta)
  redis.call("HSET", ENTRIES, key, string.format("%08d", #packed) .. packed .. value)
  return reply("ok", 1)
elseif op == "keys" then  -- lo, hi: the index range of the pattern's prefix
  return reply("ok", live_keys(a[7], a[8]), redis.call("HGET", META, "rev"))
elseif op == "find_range" then
  return reply("ok", entries(live_keys(a[7], a[8]), false))
elseif op == "find_keys" then  -- rev, keys...: entries if nothing changed since rev
  if redis.call("HGET", META, "rev") ~= a[7] then
    return reply("changed")
  end
  local keys = {}
  for i = 8, #a do
    keys[#keys + 1] = a[i]
  end
  return reply("ok", entries(keys, false))
elseif op == "find_tag" then
  local prefix = string.format("%08d", #a[7]) .. a[7]
  local keys = {}
  for _, member in ipairs(redis.call("ZRANGEBYLEX", TAGS, "[" .. prefix, "[" .. prefix .. "\255")) do
    keys[#keys + 1] = string.sub(member, #prefix + 1)
  end
  return reply("ok", entries(keys, false))
elseif op == "count" then
  return reply("ok", count())
elseif op == "purge" then
  return reply("ok", purge_due(-1))
elseif op == "clear" then
  local removed = 0
  for _, key in ipairs(redis.call("ZRANGE", INDEX, 0, -1)) do
    local blob, meta = live(key)  -- an expired entry goes as an expire event
    if blob then
      remove(key, blob, meta, "delete")
      removed = removed + 1
    end
  end
  return reply("ok", removed)
elseif op == "stats" then
  return reply("ok", count(), redis.call("HMGET", META, "expired", "evicted", "rev"))
elseif op == "revision" then
  return reply("ok", redis.call("HGET", META, "rev"))
end
return redis.error_reply("sharedctx: unknown operation " .. tostring(op))
