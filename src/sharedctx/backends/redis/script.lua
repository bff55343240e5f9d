#!lua name=__LIBRARY__
-- sharedctx: every operation on one session, atomically, in one function call.
--
-- A Redis Functions library: its helpers are defined once, when it is loaded (on each
-- master; replicas get it by replication), and each call runs ``call`` below, which
-- first sets the call's state (the locals just after this header), then works with
-- the helpers. Calls never overlap, so that state is the call's alone. The client
-- names the library and its function ``sharedctx_`` and the hash of this text, so a
-- changed library is loaded next to the old one rather than over it.
--
-- KEYS: the session's keys, "<namespace>:{<session>}:<part>", all in one cluster slot:
--   1 meta      hash: epoch, rev (last revision), tick (recency clock), expired,
--               evicted (counters), floor (events up to this revision may have been
--               trimmed from the stream), bytes (size of the entries), written (ms),
--               refreshed (ms: the events' expiry last moved), requests (cursor);
--               a sealed session's data key: dkid (its 8-byte id), dk (its record:
--               the key wrapped by the client's key ring, opaque here), dk0 (the
--               record of the one before it while rotate_data_key runs), set with the
--               first write of a sealed value. Deleted with the session: what its
--               values were sealed with goes with them.
--   2 entries   hash: key -> blob ("%08d" length of the metadata, metadata, value)
--   3 index     zset, score 0: the keys, for prefix ranges
--   4 deadlines zset: key -> expiry (ms of the server's clock)
--   5 recency   zset: key -> tick of last use, for eviction
--   6 tags      zset, score 0: "%08d" .. #tag .. tag .. key
--   7 events    stream: id "<revision>-0"; a (action), k (key), m (the metadata), t
--               (ms), and c (the traceparent of a traced call's set or delete) if any:
--               every change, without values, for watchers that resume
--   8 values    hash: revision of a set event -> the value it set, while the event is
--               in the stream and its key lives (a value must not outlive its key);
--               "p" .. revision -> the revision of the key's set before it (0: none),
--               the chain by which a removed key's values are found
--   9 requests  hash: request id -> outcome of a write: cmsgpack {ms, status, result...}
--               (no value), forgotten by the sweeps after the window
--  10 leases    hash: key -> holder .. " " .. expiry ms (get_or_set across processes)
--  11 history   hash: the past versions of keys and the records of removed keys (see
--               "History" below), once a store with history versions has written
--  12 aging     zset: key -> the earliest ms at which something of its history goes
--  13 channel   (not a key) the sharded pub/sub channel of the session: the changes of
--               each call are published there, with their values, to the processes
--               listening now: one message, a msgpack array of [revision, action,
--               key, metadata, value] (and a traced set's or delete's traceparent)
-- ARGV: the store's settings, the same on every call: 1 stream cap, 2 max entries
--   (-1: none), 3 eviction ("lru", "oldest", "reject"), 4 session ttl ms (-1: none),
--   5 event retention ms, 6 how long a request id is remembered (ms), 7 history
--   versions (past versions of a key to keep), 8 history retention ms, 9 "1" if the
--   server counts every process that listens to a session (a single server: then a
--   change is published only if one listens; see listened), else "0"; then the
--   call's: 10 operation, 11 the client's epoch ("" if it has none), 12 the revision
--   after which the caller wants the events back (-1: none), 13 request id of a write
--   ("" for a read; a traced write's is followed by a space and its W3C
--   traceparent), 14 the data key the client seals with: its 8-byte id; or, from a
--   client with a key ring that knows of none for the session, the record of a new
--   one it proposes (the session takes it with its first write, in that call: of two
--   clients that start a sealed session at once, the second is told the first's key;
--   a read or a refused write leaves nothing); "" from a client without a key ring.
--   15.. the operation's arguments. (operations.py builds them: Settings.arguments
--   1 to 9, arguments() 10 on.)
-- Reply: {status, epoch, events, floor, result...}. status: "ok", "lost" (the
-- session's data is gone since the client last saw it: nothing was done), "keys"
-- (the session's data key is not the one the client named: nothing was done; the
-- result is the records dk and dk0), "plain" (a key ring's client met a session that
-- holds values written without one: nothing was done), "conflict", "full", "changed",
-- "wait", "lead". Metadata is cmsgpack {version, revision, created_ms, updated_ms,
-- ttl_ms, expires_ms, source, tags}, -1 for "none"; the events of a fork carry two
-- more: the session forked from, and its revision.

local META, ENTRIES, INDEX, DEADLINES, RECENCY, TAGS, EVENTS, VALUES, REQUESTS, LEASES,
  HISTORY, AGING, CHANNEL
local KEYS, ARGV  -- the call's keys and arguments
local cap, max_entries, eviction, session_ttl, retention, window
local counted  -- whether the server counts every process that listens (ARGV 9)
local hversions, hretention  -- the store's history settings
local tracking, hfloor, hsnap, hbytes, hcount, hrefreshed  -- the session's history (META)
local hchecked  -- whether this call made sure the history is there
local HISTORY_OPS  -- operation -> its function (see "History's operations")
local op, client_epoch, since, request
local trace  -- the traceparent of a traced write, or nil
local time, now, epoch
local rev, floor_rev, bytes, refreshed  -- the session's counters (META), kept here
local stream_length  -- of the event stream, once read in this call
local changed  -- whether this call changed the session's keys
local wrote  -- whether a caller's write changed its data (not an expiry, a lease, a
             -- sweep): that moves "written", and with a session ttl the session lives on
local touched  -- whether it recorded a read for eviction (in the recency zset)
local fresh  -- whether the session did not exist: it comes to exist if this call writes
local leased  -- whether this call took a lease (which a session must hold too)
local proposal  -- the record of a data key for a sealed session that has none, or nil:
                -- it becomes the session's if this call writes (see reply)
local DATA = 12  -- KEYS[1..DATA] are the session's keys; the rest is not
local CHUNK = 1000  -- most arguments a buffered command is flushed with at once
local KEEP = "\0keep"  -- source or tags not given: keep the entry's own
local FIRST = 15  -- the operation's first argument
local EVENT_BATCH = 1000  -- most events returned by one call

local function blob_meta(blob)
  return cmsgpack.unpack(string.sub(blob, 9, 8 + tonumber(string.sub(blob, 1, 8))))
end

local function blob_of(packed, value)
  return string.format("%08d", #packed) .. packed .. value
end

local function tag_member(tag, key)
  return string.format("%08d", #tag) .. tag .. key
end

-- Send a command once per CHUNK arguments of list (none if it is empty).
local function send(command, key, list)
  for first = 1, #list, CHUNK do
    redis.call(command, key, unpack(list, first, math.min(first + CHUNK - 1, #list)))
  end
end

-- The revision of an event of the stream (from XRANGE).
local function revision_of(event)
  return tonumber(string.match(event[1], "^(%d+)"))
end

-- The revision of the stream's oldest event, or nil if it has none.
local function oldest_event()
  local oldest = redis.call("XRANGE", EVENTS, "-", "+", "COUNT", 1)[1]
  return oldest and revision_of(oldest)
end

-- Forget the values of the events from revision `first` through `last`, just trimmed
-- from the stream: a watcher behind them has lost events.
-- Values were deleted: if none is left, the hash is gone, and the next one starts
-- it again without an expiry; have the session's keys' expiry moved then.
local function values_forgotten()
  if redis.call("EXISTS", VALUES) == 0 then
    refreshed = 0
  end
end

local function forget_events(first, last)
  local fields = {}
  for trimmed = first, last do
    fields[#fields + 1] = trimmed
    fields[#fields + 1] = "p" .. trimmed
  end
  send("HDEL", VALUES, fields)
  values_forgotten()
  floor_rev = math.max(floor_rev, last)
end

-- Writes of many values are buffered and sent as one command each (a set_multiple
-- of 1000 keys is not 5000 calls): the new entries, their values, index and
-- deadlines (as argument pairs), and the changes to publish. `flush` sends them; it
-- runs before anything reads those keys again, and before the reply.
local pending = {entries = {}, values = {}, index = {}, deadlines = {}}
local published = {}  -- {revision, action, key, metadata, value} of each change
local listening  -- whether a process may listen to the session now (nil: not asked yet)
local buffered = false

local function buffer(list, first, second)
  list[#list + 1] = first
  list[#list + 1] = second
  buffered = true
end

local function empty_buffers()
  for name, list in pairs(pending) do
    if #list > 0 then
      pending[name] = {}
    end
  end
  published = {}
  buffered = false
end

-- Whether a process may listen to the session's channel now. A process that starts
-- listening later reads what it missed from the stream once it listens (the follower
-- subscribes, then catches up), so nothing is published when nobody listens, where the
-- server counts every listener (`counted`: a single server; a cluster's node does not
-- count those that a replica of its slots serves).
local function listened()
  if not counted then
    return true
  end
  local found = redis.pcall("PUBSUB", "SHARDNUMSUB", CHANNEL)
  return found.err ~= nil or found[2] > 0  -- (a user who may not ask: publish)
end

local function flush()
  if not buffered then
    return
  end
  send("HSET", ENTRIES, pending.entries)
  send("HSET", VALUES, pending.values)
  send("ZADD", INDEX, pending.index)
  send("ZADD", DEADLINES, pending.deadlines)
  if #published > 0 then
    redis.call("SPUBLISH", CHANNEL, cmsgpack.pack(published))
  end
  empty_buffers()
end

-- Record a change: in the stream (metadata), its value (for a set, linked to the
-- key's set before it, `previous`) while the event is kept, and on the channel (with
-- the value) for the processes listening now: one message per call, a msgpack array
-- of the call's changes.
local function emit(action, key, packed, value, previous)
  rev = rev + 1
  if action ~= "expire" then  -- an entry that expires was written when it was set
    wrote = true
  end
  if not stream_length then
    stream_length = redis.call("XLEN", EVENTS)
  end
  if stream_length == 0 and rev > 1 then
    -- The stream expired (nothing happened for the retention time): what it held is
    -- gone for a watcher behind it.
    floor_rev = rev - 1
  end
  local context = (action == "set" or action == "delete") and trace or nil
  if context then
    redis.call("XADD", EVENTS, rev .. "-0", "a", action, "k", key, "m", packed, "t", now,
      "c", context)
  else
    redis.call("XADD", EVENTS, rev .. "-0", "a", action, "k", key, "m", packed, "t", now)
  end
  stream_length = stream_length + 1
  if action == "set" then
    buffer(pending.values, rev, value)
    buffer(pending.values, "p" .. rev, previous)
  end
  if listening == nil then
    listening = listened()
  end
  if listening then
    published[#published + 1] = {rev, action, key, packed, value, context}
  end
  buffered = true
  local over = stream_length - cap
  if over > 0 and over >= math.max(1, math.floor(cap / 16)) then
    flush()  -- what is trimmed may be buffered still
    local first = oldest_event()
    redis.call("XTRIM", EVENTS, "MAXLEN", stream_length - over)
    stream_length = stream_length - over
    forget_events(first, (oldest_event() or rev + 1) - 1)
  end
  changed = true
  return rev
end

-- Delete the values the session's set events of a removed key hold (`meta`: its
-- last metadata), following their chain: a value must not outlive its key (the
-- events stay, without them).
local function forget_values(meta)
  flush()
  local fields, set_rev = {}, meta[2]
  while set_rev > floor_rev do
    local previous = redis.call("HGET", VALUES, "p" .. set_rev)
    if not previous then
      break
    end
    fields[#fields + 1] = set_rev
    fields[#fields + 1] = "p" .. set_rev
    set_rev = tonumber(previous)
  end
  if #fields > 0 then
    send("HDEL", VALUES, fields)
    values_forgotten()
  end
end

-- == History ============================================================================
-- Kept once a store with history versions has called (`tracking`, with META's
-- hfloor, hsnap, hbytes, hcount). HISTORY holds, for each key of which something is
-- kept, a header: field "k" .. key -> cmsgpack {removed, removed_until, rev, until,
-- size, version, rev, until, size, version...}: the revision of the key's last
-- removal (0: none) and the ms until which that record is kept, then its past
-- versions, oldest first, each with the ms until which it is kept, its value's size
-- and its version; the past version of revision r is "v" .. r (its value) and "m" ..
-- r (its metadata). Field "s" says history is kept: without it (HISTORY expired, as
-- nobody swept for the retention time), nothing earlier is known. AGING: key -> the
-- earliest ms at which something of its header goes. hfloor: below it, a key of which
-- nothing is kept is unknown; hsnap: below it, some key is (the floor of snapshots);
-- hbytes, hcount: the size and number of the past versions kept.
-- A past version goes when its time is up (with every older one of its key), when
-- its key has more than the writer's history versions, and with its key.

local function track()
  tracking, hfloor, hsnap, hbytes, hcount, hrefreshed = true, rev, rev, 0, 0, 0
  hchecked = true
  redis.call("HSET", HISTORY, "s", 1)
  redis.call("ZADD", AGING, "+inf", "")  -- (so that the key is there from now on)
  changed = true
end

-- Is the history still there? Asked once per call, before the history is used (a plain
-- read does not): if it expired (nobody swept for the retention time), nothing earlier
-- is known, and it starts again.
local function check_history()
  if not hchecked then
    hchecked = true
    if redis.call("HEXISTS", HISTORY, "s") == 0 then
      track()
    end
  end
end

local function header(key)
  check_history()
  local packed = redis.call("HGET", HISTORY, "k" .. key)
  return packed and cmsgpack.unpack(packed) or {0, 0}
end

-- The earliest deadline in header h (nil: none).
local function earliest(h)
  local found = h[1] ~= 0 and h[2] or nil
  for i = 4, #h, 4 do
    if not found or h[i] < found then
      found = h[i]
    end
  end
  return found
end

-- Forget the past versions h[3..last] of header h, their fields added to `gone` (to
-- be deleted); the rest of it.
local function drop_past(h, last, gone)
  local kept = {h[1], h[2]}
  for i = 3, last, 4 do
    gone[#gone + 1] = "v" .. h[i]
    gone[#gone + 1] = "m" .. h[i]
    hcount, hbytes = hcount - 1, hbytes - h[i + 2]
  end
  for i = last + 1, #h do
    kept[#kept + 1] = h[i]
  end
  return kept
end

-- Store header h of key, with more `fields` to set, and delete the fields `gone`.
-- AGING scores each key no later than its earliest deadline (earlier is harmless: a
-- sweep then finds nothing due, and scores it again): `score` is a deadline to score
-- it by if it is earlier (LT), or true to score it exactly.
local function save_header(key, h, fields, gone, score)
  if #h == 2 and h[1] == 0 then
    gone[#gone + 1] = "k" .. key
    redis.call("ZREM", AGING, key)
  else
    fields[#fields + 1] = "k" .. key
    fields[#fields + 1] = cmsgpack.pack(h)
    if score == true then
      redis.call("ZADD", AGING, earliest(h), key)
    elseif score then
      redis.call("ZADD", AGING, "LT", score, key)
    end
  end
  send("HDEL", HISTORY, gone)
  send("HSET", HISTORY, fields)
  changed = true
end

local function live_revision(key)  -- (0: it is being removed)
  local blob = redis.call("HGET", ENTRIES, key)
  return blob and blob_meta(blob)[2] or 0
end

-- Drop what is due in header h of key (their fields added to `gone`); the header,
-- and whether it changed.
local function age(key, h, gone)
  local changed_h, last = false, 0
  if h[1] ~= 0 and h[2] <= now then
    hfloor, h[1], h[2], changed_h = math.max(hfloor, h[1]), 0, 0, true
  end
  for i = 3, #h, 4 do
    if h[i + 1] <= now then
      last = i + 3
    end
  end
  if last > 0 then
    h = drop_past(h, last, gone)
    hsnap = math.max(hsnap, #h > 2 and h[3] or live_revision(key))
    changed_h = true
  end
  return h, changed_h
end

-- Drop whatever of the session's history is due.
local function drop_due_history()
  if not tracking then
    return
  end
  check_history()
  for _, key in ipairs(redis.call("ZRANGEBYSCORE", AGING, "-inf", now)) do
    local gone = {}
    save_header(key, (age(key, header(key), gone)), {}, gone, true)
  end
end

-- The live version `old` of key (stored as `old_blob`) was replaced at revision `at`:
-- one read of its header and one write (two, with a version to drop), as a rule.
local function retire(key, old_blob, old, at)
  local gone, fields = {}, {}
  local h, changed_h = age(key, header(key), gone)
  local before = earliest(h)
  local until_ms = now + hretention
  local dropped = hversions == 0
  if not dropped then
    local size = tonumber(string.sub(old_blob, 1, 8))
    local value = string.sub(old_blob, 9 + size)
    fields = {"v" .. old[2], value, "m" .. old[2], string.sub(old_blob, 9, 8 + size)}
    for _, field in ipairs({old[2], until_ms, #value, old[1]}) do
      h[#h + 1] = field
    end
    hcount, hbytes, changed_h = hcount + 1, hbytes + #value, true
  end
  local over = (#h - 2) / 4 - hversions
  if over > 0 then
    h, dropped, changed_h = drop_past(h, 2 + 4 * over, gone), true, true
  end
  if dropped then
    hsnap = math.max(hsnap, #h > 2 and h[3] or at)
  end
  if changed_h then
    save_header(key, h, fields, gone, (not before or until_ms < before) and until_ms)
  end
end

-- Key was removed at revision `at`: its past versions go, the removal is recorded.
local function forget_history(key, at)
  local gone = {}
  local h = age(key, header(key), gone)  -- (a record of an earlier removal may be due)
  local before = earliest(h)
  h = drop_past(h, #h, gone)
  h[1], h[2] = at, now + hretention
  hsnap = math.max(hsnap, at)
  save_header(key, h, {}, gone, (not before or h[2] < before) and h[2])
end

-- The oldest revision at which the state of key is known (`meta`: its live
-- metadata, or nil; h: its header).
local function floor_of(meta, h)
  if not tracking then
    return rev
  end
  local floor = math.max(hfloor, h[1])
  local oldest_rev, oldest_version
  if #h > 2 then
    oldest_rev, oldest_version = h[3], h[6]
  elseif meta then
    oldest_rev, oldest_version = meta[2], meta[1]
  else
    return floor
  end
  if oldest_version > 1 then
    return oldest_rev  -- its earlier versions were dropped
  end
  return math.min(oldest_rev, floor)  -- created then: absent before it, back to floor
end

-- The blob of key just after revision r (nil: absent then), from its live blob and
-- metadata (or nil) and header h.
local function blob_at(r, blob, meta, h)
  if meta and meta[2] <= r then
    return blob
  end
  for i = #h - 3, 3, -4 do
    if h[i] <= r then
      local found = redis.call("HMGET", HISTORY, "m" .. h[i], "v" .. h[i])
      return blob_of(found[1], found[2])
    end
  end
  return nil
end

-- == Removal =============================================================================

local function remove(key, blob, meta, action)
  redis.call("HDEL", ENTRIES, key)
  redis.call("ZREM", INDEX, key)
  redis.call("ZREM", DEADLINES, key)
  redis.call("ZREM", RECENCY, key)
  for _, tag in ipairs(meta[8]) do
    redis.call("ZREM", TAGS, tag_member(tag, key))
  end
  bytes = bytes - #blob
  if action == "expire" or action == "evict" then
    redis.call("HINCRBY", META, action == "expire" and "expired" or "evicted", 1)
  end
  forget_values(meta)
  local at = emit(action, key, cmsgpack.pack(meta), "")
  if tracking then
    forget_history(key, at)
  end
end

-- The blob and metadata of key stored as `blob` (false if none), or nil if it is
-- not live (an expired entry is removed here).
local function alive(key, blob)
  if not blob then
    return nil
  end
  local meta = blob_meta(blob)
  if meta[6] >= 0 and meta[6] <= now then
    remove(key, blob, meta, "expire")
    return nil
  end
  return blob, meta
end

-- The live blob and metadata of key, or nil.
local function live(key)
  return alive(key, redis.call("HGET", ENTRIES, key))
end

-- The live blobs and metadata of keys (false for none), read together.
local function live_many(keys)
  flush()
  if #keys == 1 then
    local blob, meta = live(keys[1])
    return {blob or false}, {meta or false}
  end
  local blobs, metas, seen_blob, seen_meta = {}, {}, {}, {}
  for first = 1, #keys, CHUNK do
    local last = math.min(first + CHUNK - 1, #keys)
    local stored = redis.call("HMGET", ENTRIES, unpack(keys, first, last))
    for n = first, last do
      local key = keys[n]
      if seen_blob[key] == nil then  -- a key that comes again may have been removed since
        local blob, meta = alive(key, stored[n - first + 1])
        seen_blob[key], seen_meta[key] = blob or false, meta or false
      end
      blobs[n], metas[n] = seen_blob[key], seen_meta[key]
    end
  end
  return blobs, metas
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
    touched = true
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
    remove(key, blob, blob_meta(blob), "evict")
  end
  return true
end

-- Store one value over the live blob and metadata `old` (or nil). Returns the new
-- metadata, packed.
local function put(key, value, old_blob, old, ttl, source, tags)
  local version, created, expires = 1, now, -1
  if old then
    version, created = old[1] + 1, old[3]
  end
  if ttl == -2 then  -- KEEP_TTL
    ttl = old and old[5] or -1
    expires = old and old[6] or -1
  elseif ttl >= 0 then
    expires = now + ttl
  end
  if source == KEEP then
    source = old and old[7] or "unknown"
  end
  if tags == KEEP then
    tags = old and old[8] or {}
  end
  if old then
    for _, tag in ipairs(old[8]) do
      redis.call("ZREM", TAGS, tag_member(tag, key))
    end
    bytes = bytes - #old_blob
  else
    buffer(pending.index, 0, key)
  end
  for _, tag in ipairs(tags) do
    redis.call("ZADD", TAGS, 0, tag_member(tag, key))
  end
  if expires >= 0 then
    buffer(pending.deadlines, expires, key)
  elseif old and old[6] >= 0 then
    redis.call("ZREM", DEADLINES, key)
  end
  local packed = cmsgpack.pack({version, rev + 1, created, now, ttl, expires, source, tags})
  local blob = blob_of(packed, value)
  buffer(pending.entries, key, blob)
  bytes = bytes + #blob
  touch(key)
  local at = emit("set", key, packed, value, old and old[2] or 0)
  if old and tracking then
    retire(key, old_blob, old, at)
  end
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
  for n, blob in ipairs((live_many(keys))) do
    if blob then
      if reading and eviction == "lru" then
        touch(keys[n])
      end
      found[#found + 1] = keys[n]
      found[#found + 1] = blob
    end
  end
  return found
end

local function same(member)
  return member
end

local function every()
  return true
end

-- Up to `limit` (-1: all) live members of the lexicographic range [lo, hi] of zset
-- `set`, as `name(member)` gives them; expired keys met on the way are removed.
-- `is_live`: whether a key is live (by default live(), which reads its entry).
local function live_range(set, lo, hi, limit, name, is_live)
  if is_live == every and name == same then  -- nothing is due: the range as it is
    if limit < 0 then
      return redis.call("ZRANGEBYLEX", set, lo, hi)
    end
    return redis.call("ZRANGEBYLEX", set, lo, hi, "LIMIT", 0, limit)
  end
  is_live = is_live or live
  local found = {}
  local batch = limit < 0 and -1 or limit
  while true do
    local members
    if batch < 0 then
      members = redis.call("ZRANGEBYLEX", set, lo, hi)
    else
      members = redis.call("ZRANGEBYLEX", set, lo, hi, "LIMIT", 0, batch)
    end
    for _, member in ipairs(members) do
      local key = name(member)
      if is_live(key) then
        found[#found + 1] = key
        if #found == limit then
          return found
        end
      end
    end
    if batch < 0 or #members < batch then
      return found
    end
    lo = "(" .. members[#members]
  end
end

-- A test of liveness that reads no entry: a key is live unless the deadlines hold it
-- as due now (every entry with an expiry is there, by its expiry); a due one is
-- removed when met, as live() does. `every` when none is due (live_range then answers
-- with the range as it is); nil (read each entry) when many are due: the sweeps had no
-- time to remove them.
local function not_due()
  local due = redis.call("ZRANGEBYSCORE", DEADLINES, "-inf", now, "LIMIT", 0, CHUNK + 1)
  if #due > CHUNK then
    return nil
  end
  if #due == 0 then
    return every
  end
  local set = {}
  for _, key in ipairs(due) do
    set[key] = true
  end
  return function(key)
    return not set[key] or live(key) ~= nil
  end
end

local function count()
  return redis.call("HLEN", ENTRIES) - redis.call("ZCOUNT", DEADLINES, "-inf", now)
end

-- Forget the events older than the retention time, and the values they set.
local function drop_old_events()
  local oldest = now - retention
  flush()  -- what is trimmed may be buffered still
  while true do
    local batch = redis.call("XRANGE", EVENTS, "-", "+", "COUNT", CHUNK)
    local old = 0
    while old < #batch and tonumber(batch[old + 1][2][8]) <= oldest do
      old = old + 1
    end
    if old == 0 then
      break
    end
    local last = revision_of(batch[old])
    redis.call("XTRIM", EVENTS, "MINID", (last + 1) .. "-0")
    forget_events(revision_of(batch[1]), last)
    stream_length = nil  -- read again if needed
    if old < CHUNK then
      break
    end
  end
end

-- Forget the request ids older than the window: a part of the log per sweep (the
-- cursor of the walk through it is kept in META).
local function forget_requests()
  local cursor = redis.call("HGET", META, "requests") or "0"
  local found = redis.call("HSCAN", REQUESTS, cursor, "COUNT", 200)
  local old = {}
  for i = 1, #found[2], 2 do
    local at = cmsgpack.unpack(found[2][i + 1])[1]
    if type(at) ~= "number" or at < now - window then  -- (or of an older version)
      old[#old + 1] = found[2][i]
    end
  end
  if #old > 0 then
    redis.call("HDEL", REQUESTS, unpack(old))
  end
  if found[1] ~= cursor then  -- (a session that does not exist is not written to)
    redis.call("HSET", META, "requests", found[1])
  end
end

local function lease_of(key)
  local lease = redis.call("HGET", LEASES, key)
  if not lease then
    return nil
  end
  local holder, expires = string.match(lease, "^(%S+) (%d+)$")
  expires = tonumber(expires)
  if expires <= now then
    redis.call("HDEL", LEASES, key)
    return nil
  end
  return holder, expires
end

local function release(key, holder)
  if lease_of(key) == holder then
    redis.call("HDEL", LEASES, key)
  end
end

-- The session changed. With a session ttl every key expires that long after the last
-- write (a change that was no write, such as a sweep, keeps the session's end where it
-- was, for the keys it may have created too); the events (and their values) expire
-- the retention time after it, or sooner: that expiry is moved on only every eighth
-- of the retention time.
local function session_lives()
  local ends = -1
  if session_ttl >= 0 then
    ends = now + session_ttl
    if not wrote then
      local was = redis.call("PEXPIRETIME", META)
      if was > 0 then
        ends = was
      end
    end
    for i = 1, DATA do
      redis.call("PEXPIREAT", KEYS[i], ends)
    end
  end
  local events_ttl = session_ttl >= 0 and math.min(retention, session_ttl) or retention
  if session_ttl >= 0 or now - refreshed >= events_ttl / 8 then
    local at = now + events_ttl
    if ends >= 0 and ends < at then
      at = ends
    end
    redis.call("PEXPIREAT", EVENTS, at)
    redis.call("PEXPIREAT", VALUES, at)
    -- (Not while one of them is still to be made: it would be made without expiry.)
    local made = redis.call("EXISTS", EVENTS, VALUES) == 2
    redis.call("HSET", META, "refreshed", made and now or 0)
  end
  return ends
end

-- The changes after revision `since`, as {revision, action, key, metadata, value,
-- traceparent} (the value of a set, while it is kept, else ""; the traceparent if any).
local function events_since()
  if since < 0 or rev <= since then
    return {}
  end
  local found = {}
  local events = redis.call("XRANGE", EVENTS, (since + 1) .. "-0", "+", "COUNT", EVENT_BATCH)
  for _, event in ipairs(events) do
    local fields, rev = event[2], string.match(event[1], "^(%d+)")
    local value = fields[2] == "set" and redis.call("HGET", VALUES, rev) or ""
    found[#found + 1] = {rev, fields[2], fields[4], fields[6], value, fields[10]}
  end
  return found
end

local function floor()
  return since >= 0 and floor_rev or 0
end

-- The session's history changed: it is kept (with the session) for the retention time
-- after this change at most; the sweeps drop what is due before then.
local function history_lives(ends)  -- (ends: the session's, from session_lives)
  local ttl = session_ttl >= 0 and math.min(hretention, session_ttl) or hretention
  if session_ttl >= 0 or now - hrefreshed >= ttl / 8 then  -- (as the events' expiry)
    local at = now + ttl
    if ends >= 0 and ends < at then
      at = ends
    end
    redis.call("PEXPIREAT", HISTORY, at)
    redis.call("PEXPIREAT", AGING, at)
    redis.call("HSET", META, "hrefreshed", now)
  end
end

local function reply(status, ...)
  flush()
  local result = {...}
  if fresh then
    if not (wrote or leased) then
      -- A read, a sweep or a refused write of a session that does not exist leaves
      -- none behind (nor its outcome: answered again, it answers the same), nor
      -- the history that track() began for it.
      if tracking then
        redis.call("DEL", HISTORY, AGING)
      end
      return {status, "", {}, 0, unpack(result)}
    end
    redis.call("HSET", META, "epoch", epoch)
    changed = true
  end
  if proposal and wrote then  -- the first sealed write: the session's data key with it
    redis.call("HSET", META, "dkid", string.sub(proposal, 2, 9), "dk", proposal)
  end
  if request ~= "" then  -- remember the outcome of this write, without any value
    redis.call("HSET", REQUESTS, request, cmsgpack.pack({now, status, ...}))
    changed = true
  end
  if wrote or changed then
    if tracking then
      local fields = {"rev", rev, "floor", floor_rev, "bytes", bytes, "hfloor", hfloor, "hsnap",
        hsnap, "hbytes", hbytes, "hcount", hcount}
      if wrote then
        fields[#fields + 1], fields[#fields + 2] = "written", now
      end
      redis.call("HSET", META, unpack(fields))
    elseif wrote then  -- (the common case, without a list of fields)
      redis.call("HSET", META, "rev", rev, "floor", floor_rev, "bytes", bytes, "written", now)
    else
      redis.call("HSET", META, "rev", rev, "floor", floor_rev, "bytes", bytes)
    end
    local ends = session_lives()
    if tracking then
      history_lives(ends)
    end
  elseif touched and session_ttl >= 0 then
    -- A read created or changed the recency zset: it expires with the session.
    local at = redis.call("PEXPIRETIME", META)
    if at > 0 then
      redis.call("PEXPIREAT", RECENCY, at)
    end
  end
  return {status, epoch, events_since(), floor(), unpack(result)}
end

-- == History's operations ===============================================================

-- The state of the session's history, from META's fields (`state`, as load read
-- them) and the store's settings, at the start of a call.
local function history_begin(state)
  hfloor = tonumber(state[7])
  tracking = hfloor ~= nil
  hsnap, hbytes, hcount, hrefreshed = 0, 0, 0, 0  -- (the previous call's is another's)
  if tracking then
    hsnap, hbytes, hcount = tonumber(state[8]), tonumber(state[9]), tonumber(state[10])
    hrefreshed = tonumber(state[11]) or 0
    hchecked = false
  elseif hversions > 0 then
    track()  -- a store that keeps history versions: from now on
  end
end

-- How many past versions are kept, and their bytes (after dropping what is due).
local function history_counts()
  drop_due_history()
  return hcount, hbytes
end

HISTORY_OPS = {}

-- Make the session a fork: store an entry as given (its version, times and expiry),
-- with an event that says where it comes from.
local function fork_put(key, value, meta, origin, at)
  buffer(pending.index, 0, key)
  for _, tag in ipairs(meta[8]) do
    redis.call("ZADD", TAGS, 0, tag_member(tag, key))
  end
  if meta[6] >= 0 then
    buffer(pending.deadlines, meta[6], key)
  end
  meta[2] = rev + 1
  local blob = blob_of(cmsgpack.pack(meta), value)
  buffer(pending.entries, key, blob)
  bytes = bytes + #blob
  touch(key)
  meta[9], meta[10] = origin, at
  emit("set", key, cmsgpack.pack(meta), value, 0)
end


HISTORY_OPS.get_at = function(a, at)  -- key, revision: the key's entry then
  local key, r = a[at], tonumber(a[at + 1])
  drop_due_history()
  local blob, meta = live(key)
  if r > rev then
    return reply("future", rev)
  end
  local h = tracking and header(key) or {0, 0}
  local floor = floor_of(meta, h)
  if r < floor then
    return reply("compacted", floor)
  end
  return reply("ok", blob_at(r, blob, meta, h) or "")
end

HISTORY_OPS.history = function(a, at)  -- key, limit (-1: all): kept versions, newest first
  local key, limit = a[at], tonumber(a[at + 1])
  drop_due_history()
  local blob = live(key)
  local found = {blob}
  if blob and tracking then
    local h = header(key)
    for i = #h - 3, 3, -4 do
      if #found == limit then
        break
      end
      local past = redis.call("HMGET", HISTORY, "m" .. h[i], "v" .. h[i])
      found[#found + 1] = blob_of(past[1], past[2])
    end
  end
  return reply("ok", found)
end

-- revision ("": now), lo, hi, limit: the entries then of the keys in the index range,
-- the revision, and the last key looked at ("": the range was read to its end).
HISTORY_OPS.find_at = function(a, at)
  purge_due(-1)
  drop_due_history()
  local r = a[at] == "" and rev or tonumber(a[at])
  local lo, hi, limit = a[at + 1], a[at + 2], tonumber(a[at + 3])
  if r > rev then
    return reply("future", rev)
  end
  local floor = tracking and hsnap or rev
  if r < floor then
    return reply("compacted", floor)
  end
  -- Every key of the session then is live now (a removal since would have raised
  -- hsnap above r), so the index holds them all.
  local found, batch = {}, limit < 0 and CHUNK or limit
  while true do
    local keys = redis.call("ZRANGEBYLEX", INDEX, lo, hi, "LIMIT", 0, batch)
    for _, key in ipairs(keys) do
      local blob = redis.call("HGET", ENTRIES, key)
      local meta = blob_meta(blob)
      if meta[2] > r then
        blob = blob_at(r, blob, meta, header(key))
      end
      if blob then
        found[#found + 1] = key
        found[#found + 1] = blob
        if #found == 2 * limit then
          return reply("ok", tostring(r), found, key)
        end
      end
    end
    if #keys < batch then
      return reply("ok", tostring(r), found, "")
    end
    lo = "(" .. keys[#keys]
  end
end

-- from, at, then each entry's key, value and packed metadata: make the new session a
-- fork of session `from` at its revision `at`, unless it exists.
HISTORY_OPS.fork = function(a, at)  -- (exists() was asked before the data key)
  local origin, forked_at, kept = a[at], tonumber(a[at + 1]), {}
  for i = at + 2, #a, 3 do
    local meta = cmsgpack.unpack(a[i + 2])
    if meta[6] < 0 or meta[6] > now then
      kept[#kept + 1] = {a[i], a[i + 1], meta}
    end
  end
  if max_entries >= 0 and #kept > max_entries then
    return reply("full", #kept)
  end
  if #kept == 0 then
    proposal = nil  -- no sealed value: no data key (as a write of nothing takes none)
  end
  for _, entry in ipairs(kept) do
    fork_put(entry[1], entry[2], entry[3], origin, forked_at)
  end
  redis.call("HSET", META, "origin", origin, "origin_at", forked_at)
  changed, wrote = true, true  -- (a fork of nothing makes its session too)
  return reply("ok", rev)
end

-- The calls that read or replace a sealed session's data keys without the session's
-- state (rekey: an admin's, which never creates a session): dk and dk0; rewrap (old
-- dk, new dk, old dk0, new dk0) replaces them if they are still the old ones.
local function data_key_admin(a)
  local found = redis.call("HMGET", META, "dk", "dk0")
  if op == "data_keys" then
    return {"ok", "", {}, 0, found[1] or "", found[2] or ""}
  end
  if (found[1] or "") ~= a[FIRST] or (found[2] or "") ~= a[FIRST + 2] then
    return {"changed", "", {}, 0}
  end
  if found[1] then
    redis.call("HSET", META, "dk", a[FIRST + 1])
  end
  if found[2] then
    redis.call("HSET", META, "dk0", a[FIRST + 3])
  end
  return {"ok", "", {}, 0}
end

-- The data key the client named (ARGV 14) against the session's (its id, "" if it
-- has none): the reply that tells the client the session's keys, or nil if the call
-- goes on. A client's proposed key (a record) is taken by a session that has none
-- and holds no plain value, with this call's write if it writes (see reply): so
-- nothing sealed by a key the session does not hold, and nothing plain, ever lands
-- in a sealed session, and nothing sealed in a plain one.
local function check_key(client_key, session_key)
  proposal = nil
  if #client_key > 8 then
    if session_key == "" then
      if redis.call("HLEN", ENTRIES) > 0 then
        return {"plain", epoch, {}, 0}  -- values written without a key ring
      end
      proposal = client_key
      return nil
    end
    client_key = string.sub(client_key, 2, 9)
  end
  if client_key ~= session_key then
    local found = redis.call("HMGET", META, "dk", "dk0")
    return {"keys", epoch, {}, 0, found[1] or "", found[2] or ""}
  end
  return nil
end

-- A sealed session's own calls, for rotate_data_key (see operations.py): the reply,
-- or nil for an operation that is none of them.
local function data_key_op(a, at)
  if op == "rotate" then  -- new data key id, new record (the client's key is dk's)
    local found = redis.call("HMGET", META, "dk", "dk0")
    if not found[1] then
      return reply("ok", "")  -- no data key yet (no sealed value): none to replace
    end
    if found[2] then
      return reply("rotating")  -- the rotation before is unfinished
    end
    redis.call("HSET", META, "dkid", a[at], "dk", a[at + 1], "dk0", found[1])
    changed = true
    return reply("ok", found[1])
  elseif op == "sealed_under" then  -- hash ("entries", "values", "history"), data key
    -- id, cursor: a page of the values sealed by that key, as field, key, value
    local name, old = a[at], a[at + 1]
    local hash = name == "entries" and ENTRIES or name == "values" and VALUES or HISTORY
    local found = redis.call("HSCAN", hash, a[at + 2], "COUNT", 200)
    local out = {}
    for i = 1, #found[2], 2 do
      local field, value, key = found[2][i], found[2][i + 1], nil
      if hash == HISTORY then
        if string.sub(field, 1, 1) == "k" then  -- a key's header: its past values
          key = string.sub(field, 2)
          local h = cmsgpack.unpack(value)
          for n = 3, #h, 4 do
            local past = redis.call("HGET", HISTORY, "v" .. h[n])
            if past and string.sub(past, 3, 10) == old then
              out[#out + 1], out[#out + 2], out[#out + 3] = "v" .. h[n], key, past
            end
          end
        end
        key = nil
      elseif hash == ENTRIES then
        value, key = string.sub(value, 9 + tonumber(string.sub(value, 1, 8))), field
      elseif string.sub(field, 1, 1) ~= "p" then
        local event = redis.call("XRANGE", EVENTS, field .. "-0", field .. "-0")[1]
        key = event and event[2][4]
      end
      if key and string.sub(value, 3, 10) == old then
        out[#out + 1], out[#out + 2], out[#out + 3] = field, key, value
      end
    end
    return reply("ok", found[1], out)
  elseif op == "reseal" then  -- hash, then field, old value, new value: compare and set
    local count = 0
    for i = at + 1, #a, 3 do
      local field, old, new = a[i], a[i + 1], a[i + 2]
      if a[at] == "entries" then
        local blob = redis.call("HGET", ENTRIES, field)
        local size = blob and 8 + tonumber(string.sub(blob, 1, 8))
        if blob and string.sub(blob, size + 1) == old then
          redis.call("HSET", ENTRIES, field, string.sub(blob, 1, size) .. new)
          bytes = bytes + #new - #old
          changed = true
          count = count + 1
        end
      elseif a[at] == "history" then  -- (a past version the session still keeps)
        if redis.call("HGET", HISTORY, field) == old then
          redis.call("HSET", HISTORY, field, new)
          hbytes = hbytes + #new - #old
          changed = true
        end
      elseif redis.call("HGET", VALUES, field) == old then
        redis.call("HSET", VALUES, field, new)
      end
    end
    return reply("ok", count)
  elseif op == "rotated" then  -- old data key id: forget it if no value needs it
    local old = a[at]
    for _, hash in ipairs({ENTRIES, VALUES, HISTORY}) do
      local cursor = "0"
      repeat
        local found = redis.call("HSCAN", hash, cursor, "COUNT", 1000)
        cursor = found[1]
        for i = 1, #found[2], 2 do
          local field, value = found[2][i], found[2][i + 1]
          local first = string.sub(field, 1, 1)
          if hash == ENTRIES then
            value = string.sub(value, 9 + tonumber(string.sub(value, 1, 8)))
          elseif (hash == VALUES and first == "p") or (hash == HISTORY and first ~= "v") then
            value = ""  -- (not a value: a chain link; a header, metadata)
          end
          if string.sub(value, 3, 10) == old then
            return reply("unfinished")
          end
        end
      until cursor == "0"
    end
    local dk0 = redis.call("HGET", META, "dk0")
    if dk0 and string.sub(dk0, 2, 9) == old then
      redis.call("HDEL", META, "dk0")
      changed = true
    end
    return reply("ok")
  end
  return nil
end

-- The call's state from its keys and arguments (see the header).
local function start(keys, args)
  KEYS, ARGV = keys, args
  META, ENTRIES, INDEX, DEADLINES, RECENCY, TAGS, EVENTS, VALUES, REQUESTS, LEASES,
    HISTORY, AGING = unpack(keys, 1, DATA)
  CHANNEL = keys[DATA + 1]
  cap, max_entries, eviction = tonumber(args[1]), tonumber(args[2]), args[3]
  session_ttl, retention, window = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
  hversions, hretention, counted = tonumber(args[7]), tonumber(args[8]), args[9] == "1"
  op, client_epoch, since, request = args[10], args[11], tonumber(args[12]), args[13]
  trace = nil
  if #request > 32 then  -- a request id (32 hex digits), a space, a traceparent
    request, trace = string.sub(request, 1, 32), string.sub(request, 34)
  end
end

-- The session's state (META) for a call on it; returns the id of its data key ("":
-- none), and the fields read (for history_begin).
local function load()
  time = redis.call("TIME")
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  changed, wrote, touched, leased, stream_length, listening = false, false, false, false, nil, nil
  empty_buffers()  -- a call that failed half-way may have left some

  local state = redis.call("HMGET", META, "epoch", "rev", "floor", "bytes", "refreshed", "dkid",
    "hfloor")
  if state[7] then  -- (a session that keeps history: its counters too)
    local more = redis.call("HMGET", META, "hsnap", "hbytes", "hcount", "hrefreshed")
    state[8], state[9], state[10], state[11] = more[1], more[2], more[3], more[4]
  end
  epoch = state[1]
  fresh = not epoch
  if fresh then
    -- A new session, or one whose data is gone: start clean. It is created (its meta
    -- written, with this epoch) only if the call writes: see reply.
    if redis.call("EXISTS", unpack(KEYS, 1, DATA)) > 0 then
      redis.call("DEL", unpack(KEYS, 1, DATA))
    end
    epoch = time[1] .. "." .. time[2]
    state = {epoch}
  end
  rev, floor_rev = tonumber(state[2]) or 0, tonumber(state[3]) or 0
  bytes, refreshed = tonumber(state[4]) or 0, tonumber(state[5]) or 0
  return state[6] or "", state
end

local function call(keys, args)
  start(keys, args)
  if op == "destroy" then  -- every key of the session, for everyone
    redis.call("DEL", unpack(KEYS, 1, DATA))
    return {"ok", "", {}, 0}
  elseif op == "data_keys" or op == "rewrap" then
    return data_key_admin(ARGV)
  end

  local session_key, state = load()
  if client_epoch ~= "" and client_epoch ~= epoch then
    return {"lost", fresh and "" or epoch, {}, 0}
  end
  -- A fork needs a session that does not exist, whatever its data key.
  if op == "fork" and (rev > 0 or redis.call("HLEN", ENTRIES) > 0
      or redis.call("HEXISTS", META, "origin") == 1) then
    return {"exists", epoch, {}, 0}
  end
  -- A client that seals with another data key than the session's (or that does not
  -- know the session is sealed) learns the session's first.
  local refused = check_key(args[14], session_key)
  if refused then
    return refused
  end
  history_begin(state)

  -- A write sent again (its reply was lost): answer what it answered the first time.
  if request ~= "" then
    local outcome = redis.call("HGET", REQUESTS, request)
    if outcome then
      -- A write of ours, so that WAIT (durability "replicated") waits for replicas to
      -- have everything up to here, the first outcome included.
      redis.call("HSET", REQUESTS, request, outcome)
      outcome = cmsgpack.unpack(outcome)  -- {time, status, result...}
      return {outcome[2], epoch, events_since(), floor(), unpack(outcome, 3)}
    end
  end

  local a, at = ARGV, FIRST
  local history_op = HISTORY_OPS[op]
  if history_op then
    return history_op(a, at)
  end

  if op == "get" then
    return reply("ok", read(a[at]) or "")
  elseif op == "get_many" then
    local keys = {}
    for i = at, #a do
      keys[#keys + 1] = a[i]
    end
    return reply("ok", entries(keys, true))
  elseif op == "contains" then
    return reply("ok", live(a[at]) and 1 or 0)
  elseif op == "write" or op == "write_many" then
    -- Each value: key, value, ttl, if_version, source, holder, then its tags.
    local writes, keys, i = {}, {}, at
    while i <= #a do
      local write = {key = a[i], value = a[i + 1], ttl = tonumber(a[i + 2]),
        if_version = tonumber(a[i + 3]), source = a[i + 4], holder = a[i + 5], tags = false,
        blob = false, old = false}  -- (every field made at once: none added later)
      write.tags, i = read_tags(i + 6)
      writes[#writes + 1] = write
      keys[#keys + 1] = write.key
    end
    local blobs, metas = live_many(keys)
    local keep, fresh = max_entries >= 0 and {}, 0  -- (keep: for make_room only)
    for n, write in ipairs(writes) do
      write.blob, write.old = blobs[n], metas[n]
      local version = write.old and write.old[1] or 0
      if write.if_version >= 0 and write.if_version ~= version then
        if op == "write" then
          return reply("conflict", version)
        end
        return reply("conflict", write.key, write.if_version, version)
      end
      if not write.old then
        fresh = fresh + 1
      end
      if keep then
        keep[write.key] = true
      end
    end
    if not make_room(fresh, keep, #writes) then
      return reply("full", redis.call("HLEN", ENTRIES))
    end
    local written = {}
    for _, write in ipairs(writes) do
      if write.holder ~= "" then
        release(write.key, write.holder)
      end
      written[#written + 1] = put(write.key, write.value, write.blob, write.old, write.ttl,
        write.source, write.tags)
    end
    if op == "write" then
      return reply("ok", written[1])
    end
    return reply("ok", written)
  elseif op == "delete" then
    local blob, meta = live(a[at])
    if blob then
      remove(a[at], blob, meta, "delete")
      return reply("ok", 1)
    end
    return reply("ok", 0)
  elseif op == "expire" then  -- key, ttl (-1: none)
    local key, ttl = a[at], tonumber(a[at + 1])
    local blob, meta = live(key)
    if not blob then
      return reply("ok", 0)
    end
    local value = string.sub(blob, 9 + tonumber(string.sub(blob, 1, 8)))
    meta[5], meta[6] = ttl, -1
    if ttl >= 0 then
      meta[6] = now + ttl
      redis.call("ZADD", DEADLINES, meta[6], key)
    else
      redis.call("ZREM", DEADLINES, key)
    end
    local new_blob = blob_of(cmsgpack.pack(meta), value)
    redis.call("HSET", ENTRIES, key, new_blob)
    bytes = bytes + #new_blob - #blob
    changed, wrote = true, true
    return reply("ok", 1)
  elseif op == "keys" then  -- lo, hi, limit: live keys of an index range, and the revision
    local keys = live_range(INDEX, a[at], a[at + 1], tonumber(a[at + 2]), same, not_due())
    return reply("ok", keys, tostring(rev))
  elseif op == "find_range" then  -- lo, hi, limit
    local keys = live_range(INDEX, a[at], a[at + 1], tonumber(a[at + 2]), same, not_due())
    return reply("ok", entries(keys, false))
  elseif op == "find_keys" then  -- rev, keys...: entries if nothing changed since rev
    if tostring(rev) ~= a[at] then
      return reply("changed")
    end
    local keys = {}
    for i = at + 1, #a do
      keys[#keys + 1] = a[i]
    end
    return reply("ok", entries(keys, false))
  elseif op == "find_tag" then  -- tag, after ("" for none), limit
    local prefix = string.format("%08d", #a[at]) .. a[at]
    local lo = a[at + 1] == "" and "[" .. prefix or "(" .. prefix .. a[at + 1]
    local function untagged(member)
      return string.sub(member, #prefix + 1)
    end
    local keys = live_range(TAGS, lo, "[" .. prefix .. "\255", tonumber(a[at + 2]), untagged,
      not_due())
    return reply("ok", entries(keys, false))
  elseif op == "count" then
    return reply("ok", count())
  elseif op == "revision" then
    return reply("ok", rev, floor_rev)
  elseif op == "purge" then  -- the sweep: expired entries, and what must not be kept
    local purged = purge_due(-1)
    drop_old_events()
    forget_requests()
    history_counts()
    return reply("ok", purged)
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
  elseif op == "tags" then  -- each tag of the live entries, and how many carry it
    local counts, found = {}, {}
    for _, member in ipairs(redis.call("ZRANGE", TAGS, 0, -1)) do
      local size = tonumber(string.sub(member, 1, 8))
      local tag, key = string.sub(member, 9, 8 + size), string.sub(member, 9 + size)
      if live(key) then
        if not counts[tag] then
          found[#found + 1] = tag
          counts[tag] = 0
        end
        counts[tag] = counts[tag] + 1
      end
    end
    local flat = {}
    for _, tag in ipairs(found) do
      flat[#flat + 1] = tag
      flat[#flat + 1] = counts[tag]
    end
    return reply("ok", flat)
  elseif op == "stats" then
    local counters = redis.call("HMGET", META, "expired", "evicted")
    local past_count, past_bytes = history_counts()
    return reply("ok", count(), {counters[1], counters[2], rev, past_count, past_bytes})
  elseif op == "lease" then  -- key, holder, lease ms
    local key, holder, length = a[at], a[at + 1], tonumber(a[at + 2])
    local blob = read(key)
    if blob then
      return reply("ok", blob)
    end
    local current, expires = lease_of(key)
    if current and current ~= holder then
      return reply("wait", expires - now)
    end
    redis.call("HSET", LEASES, key, holder .. " " .. (now + length))
    leased = true
    changed = true
    return reply("lead")
  elseif op == "renew" then  -- lease ms, then key/holder pairs
    local length, kept = tonumber(a[at]), {}
    for i = at + 1, #a, 2 do
      if lease_of(a[i]) == a[i + 1] then
        redis.call("HSET", LEASES, a[i], a[i + 1] .. " " .. (now + length))
        kept[#kept + 1] = a[i]
        changed = true
      end
    end
    return reply("ok", kept)
  elseif op == "release" then  -- key, holder
    release(a[at], a[at + 1])
    return reply("ok")
  end
  return data_key_op(a, at) or redis.error_reply("sharedctx: unknown operation " .. tostring(op))
end

redis.register_function("__LIBRARY__", call)
