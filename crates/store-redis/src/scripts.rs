//! The Lua scripts that make multi-key writes atomic.
//!
//! Redis runs a script alone: no other command interleaves with it, so each script is one
//! atomic step. They are invoked with EVALSHA ([`redis::Script`] loads a script again when
//! Redis answers NOSCRIPT, e.g. after a restart). Numbers are handed to Lua as decimal strings
//! and ids formatted with `%d`, never with Lua's default number formatting (`%.14g`), which
//! would write large ids in exponent notation.
//!
//! Every key a script touches is passed in `KEYS`, except the members of a user's key set
//! that [`DELETE_USER`] removes, which it checks start with the user's prefix.

use std::sync::LazyLock;

use redis::Script;

/// Creates an account if there is none.
/// KEYS: account, account index. ARGV: credentials, bare JID. Returns 1 if created, else 0.
pub(crate) const CREATE_ACCOUNT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SADD', KEYS[2], ARGV[2])
  return 1
end
return 0
";

/// Creates the accounts of a batch that do not exist; a JID repeated in the batch is created
/// once. KEYS: account index, then one account key per account. ARGV: credentials and bare
/// JID of each account, in the order of the keys. Returns how many were created.
pub(crate) const IMPORT_ACCOUNTS: &str = r"
local created = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[2 * i - 3], 'NX') then
    redis.call('SADD', KEYS[1], ARGV[2 * i - 2])
    created = created + 1
  end
end
return created
";

/// Deletes an account and every data key of the user (both whether or not the account
/// exists). KEYS: account, account index, the user's key set. ARGV: bare JID, the prefix every
/// data key of the user starts with. Returns 1 if the account existed, else 0.
pub(crate) const DELETE_USER: &str = r"
local existed = redis.call('DEL', KEYS[1])
local keys = redis.call('SMEMBERS', KEYS[3])
for i = 1, #keys do
  if string.sub(keys[i], 1, #ARGV[2]) == ARGV[2] then
    redis.call('DEL', keys[i])
  end
end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[2], ARGV[1])
return existed
";

/// Sets a key-value document. KEYS: document, the user's key set. ARGV: value.
pub(crate) const KV_SET: &str = r"
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], KEYS[1])
return 1
";

/// Deletes a whole data key (a document or a map). KEYS: the key, the user's key set.
/// Returns 1 if it existed, else 0.
pub(crate) const DROP_KEY: &str = r"
local existed = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
return existed
";

/// Sets one map entry. KEYS: map, the user's key set. ARGV: map key, value.
pub(crate) const MAP_SET: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
return 1
";

/// Deletes one map entry. KEYS: map, the user's key set. ARGV: map key.
/// Returns 1 if it existed, else 0.
pub(crate) const MAP_DELETE: &str = r"
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], KEYS[1])
end
return existed
";

/// Appends an archive item: the count check, the id and the insert are one step, so
/// concurrent appends neither overshoot `max_items` nor share an id.
/// KEYS: items, id index, the store's id counter, the user's key set.
/// ARGV: item, max items (empty: no limit).
/// Returns the id, -1 when the archive is full, -2 when ids are exhausted.
pub(crate) const ARCHIVE_APPEND: &str = r"
if ARGV[2] ~= '' and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  return -1
end
local id = redis.call('INCR', KEYS[3])
if id > 9007199254740991 then
  return -2
end
local sid = string.format('%d', id)
redis.call('HSET', KEYS[1], sid, ARGV[1])
redis.call('ZADD', KEYS[2], sid, sid)
redis.call('SADD', KEYS[4], KEYS[1], KEYS[2])
return id
";

/// Up to `limit` archive items after an id, oldest first. KEYS: items, id index.
/// ARGV: lowest score (`(N` or `-inf`), limit. Returns `[[id, item], …]`.
pub(crate) const ARCHIVE_RANGE: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])
local out = {}
for i = 1, #ids do
  local item = redis.call('HGET', KEYS[1], ids[i])
  if item then
    out[#out + 1] = {ids[i], item}
  end
end
return out
";

/// Removes archive items by id. KEYS: items, id index, the user's key set. ARGV: ids (each
/// once). Returns how many existed.
pub(crate) const ARCHIVE_REMOVE: &str = r"
local removed = 0
for i = 1, #ARGV do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZREM', KEYS[2], ARGV[i])
    removed = removed + 1
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[3], KEYS[1], KEYS[2])
end
return removed
";

/// Removes all of a user's items in one archive store. KEYS: items, id index, the user's key
/// set.
pub(crate) const ARCHIVE_CLEAR: &str = r"
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], KEYS[1], KEYS[2])
return 1
";

/// Raises an archive store's id counter to at least ARGV[1] (never lowers it).
/// KEYS: the store's id counter.
pub(crate) const RAISE_SEQ: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
";

/// [`CREATE_ACCOUNT`], ready to invoke.
pub(crate) static CREATE_ACCOUNT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(CREATE_ACCOUNT));
/// [`IMPORT_ACCOUNTS`], ready to invoke.
pub(crate) static IMPORT_ACCOUNTS_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(IMPORT_ACCOUNTS));
/// [`DELETE_USER`], ready to invoke.
pub(crate) static DELETE_USER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_USER));
/// [`KV_SET`], ready to invoke.
pub(crate) static KV_SET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(KV_SET));
/// [`DROP_KEY`], ready to invoke.
pub(crate) static DROP_KEY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DROP_KEY));
/// [`MAP_SET`], ready to invoke.
pub(crate) static MAP_SET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(MAP_SET));
/// [`MAP_DELETE`], ready to invoke.
pub(crate) static MAP_DELETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(MAP_DELETE));
/// [`ARCHIVE_APPEND`], ready to invoke.
pub(crate) static ARCHIVE_APPEND_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(ARCHIVE_APPEND));
/// [`ARCHIVE_RANGE`], ready to invoke.
pub(crate) static ARCHIVE_RANGE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(ARCHIVE_RANGE));
/// [`ARCHIVE_REMOVE`], ready to invoke.
pub(crate) static ARCHIVE_REMOVE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(ARCHIVE_REMOVE));
/// [`ARCHIVE_CLEAR`], ready to invoke.
pub(crate) static ARCHIVE_CLEAR_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(ARCHIVE_CLEAR));
