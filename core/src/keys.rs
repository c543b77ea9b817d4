//! The Redis layout: every key logjet reads or writes, and the one script that writes them.
//!
//! All keys share the hash tag `{lj}` so the multi-key apply script runs on Redis Cluster too.
//!
//! | key | type | what |
//! |---|---|---|
//! | `logjet:{lj}:c:<g>:<start>` | hash `service\|level` → count | events per bucket of event time; `g` is `s1`, `s10`, `m1` or `h1` |
//! | `logjet:{lj}:services` | zset service → last seen (ms) | services seen |
//! | `logjet:{lj}:applied:<stream-id>:<block>` | bitmap | stream sequences already applied (idempotency) |
//! | `logjet:{lj}:chunk:<id>` | string | NDJSON of canonical events, one service, one second of event time |
//! | `logjet:{lj}:bloom:<id>` | string | Bloom filter of the chunk's identifier-like tokens |
//! | `logjet:{lj}:chunk_seq` | integer | chunk id allocator |
//! | `logjet:{lj}:stage:<apply>:<n>` | string | a batch's chunk data or Bloom filter, staged for the apply script (renamed into place, or deleted, by it; expires in minutes otherwise) |
//! | `logjet:{lj}:idx` / `logjet:{lj}:idx:s:<service>` | zset [`ChunkRef`] → newest event (ms) | recent chunks, all services / one service |

use std::time::Duration;

use crate::event::Level;

pub const PREFIX: &str = "logjet:{lj}:";

/// Counter granularities. Each event increments one field in one hash of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    S1,
    S10,
    M1,
    H1,
}

impl Bucket {
    pub const ALL: [Bucket; 4] = [Bucket::S1, Bucket::S10, Bucket::M1, Bucket::H1];

    pub fn secs(self) -> i64 {
        match self {
            Bucket::S1 => 1,
            Bucket::S10 => 10,
            Bucket::M1 => 60,
            Bucket::H1 => 3600,
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Bucket::S1 => "s1",
            Bucket::S10 => "s10",
            Bucket::M1 => "m1",
            Bucket::H1 => "h1",
        }
    }

    pub fn from_secs(secs: i64) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.secs() == secs)
    }

    /// Start of the bucket holding `ts_secs`.
    pub fn start(self, ts_secs: i64) -> i64 {
        ts_secs.div_euclid(self.secs()) * self.secs()
    }

    /// How long a bucket is kept after its end. One-second buckets only serve the last hour (the
    /// live views); the others cover the whole retention window.
    pub fn keep(self, retention: Duration) -> i64 {
        let retention = retention.as_secs() as i64;
        match self {
            Bucket::S1 => 2 * 3600,
            _ => retention + self.secs() + 3600,
        }
    }

    /// Unix time at which the bucket starting at `start` expires.
    pub fn expire_at(self, start: i64, retention: Duration) -> i64 {
        start + self.secs() + self.keep(retention)
    }
}

pub fn counter_key(bucket: Bucket, start: i64) -> String {
    format!("{PREFIX}c:{}:{start}", bucket.tag())
}

/// Hash field of a counter: `service|level`. `|` cannot occur in a sanitised service name.
pub fn counter_field(service: &str, level: Level) -> String {
    format!("{service}|{}", level.as_str())
}

pub fn split_counter_field(field: &str) -> Option<(&str, Level)> {
    let (service, level) = field.rsplit_once('|')?;
    Some((service, Level::from_name(level)?))
}

pub fn services_key() -> String {
    format!("{PREFIX}services")
}

/// Sequences per idempotency bitmap: 2^20 bits = 128 KiB per key.
pub const APPLIED_BLOCK_BITS: u64 = 1 << 20;

/// The bitmap key and bit offset recording that stream message `seq` was applied. `stream_id`
/// names the stream *and its creation time*, so a stream deleted and re-created (sequences start
/// again at 1) never collides with the old one's bits.
pub fn applied_bit(stream_id: &str, seq: u64) -> (String, u64) {
    (
        format!("{PREFIX}applied:{stream_id}:{}", seq / APPLIED_BLOCK_BITS),
        seq % APPLIED_BLOCK_BITS,
    )
}

pub fn chunk_seq_key() -> String {
    format!("{PREFIX}chunk_seq")
}

pub fn chunk_key_prefix() -> String {
    format!("{PREFIX}chunk:")
}

pub fn chunk_key(id: u64) -> String {
    format!("{PREFIX}chunk:{id}")
}

/// Bloom filter of a chunk's identifier-like tokens ([`crate::tokens::Bloom`]).
pub fn bloom_key_prefix() -> String {
    format!("{PREFIX}bloom:")
}

pub fn bloom_key(id: u64) -> String {
    format!("{PREFIX}bloom:{id}")
}

/// Template counts of one minute: hash `service|level|template-id` → count.
pub fn pattern_counts_key(minute_start: i64) -> String {
    // The planner writes a few of these per batch and event: sized up front, `format!` would
    // grow the string several times.
    let mut key = String::with_capacity(PREFIX.len() + 24);
    key.push_str(PREFIX);
    key.push_str("pat:");
    push_int(&mut key, minute_start);
    key
}

/// Template definitions first seen on a day: hash `template-id` → `{"t": template, "s": sample}`.
pub fn pattern_defs_key(day_start: i64) -> String {
    let mut key = String::with_capacity(PREFIX.len() + 27);
    key.push_str(PREFIX);
    key.push_str("patdef:");
    push_int(&mut key, day_start);
    key
}

/// Field of a template count.
pub fn pattern_field(service: &str, level: Level, template_id: u64) -> String {
    let mut field = String::with_capacity(service.len() + 24);
    field.push_str(service);
    field.push('|');
    field.push_str(level.as_str());
    field.push('|');
    push_hex16(&mut field, template_id);
    field
}

/// A template id as it is written in keys and fields: 16 lower-case hex digits.
pub fn template_id_hex(template_id: u64) -> String {
    let mut s = String::with_capacity(16);
    push_hex16(&mut s, template_id);
    s
}

/// `{n:016x}`.
fn push_hex16(out: &mut String, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((n >> (shift * 4)) & 0xf) as usize]));
    }
}

/// `{n}`, into a string sized for it.
fn push_int(out: &mut String, n: i64) {
    use std::fmt::Write;
    // Writing into a `String` cannot fail.
    let _ = write!(out, "{n}");
}

pub fn split_pattern_field(field: &str) -> Option<(&str, Level, &str)> {
    let mut it = field.split('|');
    let service = it.next()?;
    let level = Level::from_name(it.next()?)?;
    let id = it.next()?;
    it.next().is_none().then_some((service, level, id))
}

pub fn index_all_key() -> String {
    format!("{PREFIX}idx")
}

pub fn index_service_key(service: &str) -> String {
    format!("{PREFIX}idx:s:{service}")
}

/// A chunk as its index lists it. Member `id:min_ms:count:level_mask:bloom_log2`, score = newest event's
/// time in ms. A chunk spans less than one second of event time ([`CHUNK_SPAN_MS`]), which lets
/// a newest-first reader know where to resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub id: u64,
    pub min_ms: i64,
    pub max_ms: i64,
    pub count: u32,
    /// Bit `Level::index()` set when the chunk holds an event of that level.
    pub levels: u8,
    /// log2 of the size in bits of the chunk's token filter (`bloom:<id>`).
    pub bloom_log2: u8,
}

/// Chunks group events of one second of event time, so `max_ms - min_ms < CHUNK_SPAN_MS`.
pub const CHUNK_SPAN_MS: i64 = 1000;

impl ChunkRef {
    pub fn member(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.id, self.min_ms, self.count, self.levels, self.bloom_log2
        )
    }

    pub fn parse(member: &str, score: f64) -> Option<ChunkRef> {
        let mut it = member.split(':');
        let id = it.next()?.parse().ok()?;
        let min_ms = it.next()?.parse().ok()?;
        let count = it.next()?.parse().ok()?;
        let levels = it.next()?.parse().ok()?;
        let bloom_log2 = it.next()?.parse().ok()?;
        Some(ChunkRef {
            id,
            min_ms,
            max_ms: score as i64,
            count,
            levels,
            bloom_log2,
        })
    }

    pub fn has_level(&self, level: Level) -> bool {
        self.levels & (1 << level.index()) != 0
    }

    pub fn has_level_at_least(&self, level: Level) -> bool {
        let mask: u8 = !((1u8 << level.index()) - 1);
        self.levels & mask != 0
    }
}

/// The script that probes many chunks' Bloom filters in one call, on the server.
///
/// `ARGV[1]` is [`bloom_key_prefix`], `ARGV[2]` a JSON object: filter size (its `bloom_log2`, as
/// a string) → the bit offsets every searched token needs in a filter of that size
/// ([`crate::tokens::Bloom::redis_bit_offsets`]); `ARGV[3..]` are pairs of chunk id and
/// `bloom_log2`. Returns the 0-based positions of the pairs whose filter has every bit set, or
/// whose size is not in the object (no filter known: the chunk has to be read). A missing filter
/// (expired) reads as zeros, so its chunk is dropped.
///
/// Why a script: probing a filter from the client was one `BITFIELD_RO` of 3 arguments per bit
/// per chunk, ~4–5 µs per chunk in encoding, parsing and replies; here a probe stops at the
/// first unset bit (about two `GETBIT`s per chunk at the filters' fill) and only positions come
/// back. `no-writes`: it runs on replicas and when Redis is out of memory.
pub const BLOOM_PROBE_SCRIPT: &str = r#"#!lua flags=no-writes
local prefix = ARGV[1]
local offsets = cjson.decode(ARGV[2])
local kept = {}
for i = 3, #ARGV - 1, 2 do
  local bits = offsets[ARGV[i + 1]]
  local keep = true
  if bits then
    local key = prefix .. ARGV[i]
    for _, off in ipairs(bits) do
      if redis.call('GETBIT', key, off) == 0 then
        keep = false
        break
      end
    end
  end
  if keep then
    kept[#kept + 1] = (i - 3) / 2
  end
end
return kept
"#;

/// Where the processor stages a batch's chunk data and Bloom filters for the apply script: the
/// script renames them into place, so the lines never pass through Lua.
pub fn stage_key_prefix() -> String {
    format!("{PREFIX}stage:")
}

/// The script that applies a batch of stream messages atomically and idempotently.
///
/// `ARGV[1]` is a JSON plan (see `processor::aggregate::ApplyPlan`), `ARGV[2]` the prefix of the
/// keys the processor staged the batch's chunk data and Bloom filters under, in the same
/// pipeline just before (`<prefix><n>`, `n` the plan's part index). The data stays out of the
/// script's arguments because Redis's Lua hashes every byte of every string it makes: passed
/// as arguments, the lines cost more than all the rest of the script (perf on redis-server).
///
/// For each message, `SETBIT` on its sequence's bit returns the old value: a message whose bit
/// was already set was applied before (a redelivery after a crash between apply and ack) and
/// contributes nothing. Everything else — counters, chunk writes, index entries — is applied only
/// for new messages, in the same atomic script, so the counts can never disagree with the bits.
/// Returns one flag per message: 1 if it was new, 0 if its effects were already there.
pub const APPLY_SCRIPT: &str = r#"
local plan = cjson.decode(ARGV[1])
local stage = ARGV[2]
-- Every staged value must be there before anything is written: Redis does not roll back the
-- writes of a script that fails halfway.
for _, g in ipairs(plan.chunks) do
  if redis.call('EXISTS', stage .. g.lines, stage .. g.bloom) ~= 2 then
    return redis.error_reply('ERR logjet: staged chunk data missing')
  end
end
local new = {}
local flags = {}
local fresh = 0
for i, a in ipairs(plan.applied) do
  local old = redis.call('SETBIT', a[1], a[2], 1)
  if old == 0 then
    new[i] = true
    fresh = fresh + 1
  end
  flags[i] = 1 - old
  redis.call('EXPIREAT', a[1], plan.applied_expire_at)
end
if fresh == 0 then
  for _, g in ipairs(plan.chunks) do
    redis.call('DEL', stage .. g.lines, stage .. g.bloom)
  end
  return flags
end
-- counters: sum the contributions of new messages, then one HINCRBY per distinct key/field
local sums = {}
local expire = {}
for _, c in ipairs(plan.incr) do
  if new[c[1] + 1] then
    local k = c[2] .. '\0' .. c[3]
    sums[k] = (sums[k] or 0) + c[4]
    expire[c[2]] = c[5]
  end
end
for k, n in pairs(sums) do
  local sep = string.find(k, '\0', 1, true)
  redis.call('HINCRBY', string.sub(k, 1, sep - 1), string.sub(k, sep + 1), n)
end
for key, at in pairs(expire) do
  redis.call('EXPIREAT', key, at)
end
for _, d in ipairs(plan.defs) do
  if redis.call('HSETNX', d[1], d[2], d[3]) == 1 then
    redis.call('EXPIREAT', d[1], d[4])
  end
end
for _, s in ipairs(plan.services) do
  if new[s[1] + 1] then
    redis.call('ZADD', plan.services_key, 'GT', s[3], s[2])
  end
end
-- chunks: the staged lines of new messages; one chunk per group
local touched = {}
for _, g in ipairs(plan.chunks) do
  local lines, bloom = stage .. g.lines, stage .. g.bloom
  local fresh_parts = {}
  local min_ms, max_ms, count, mask = nil, nil, 0, 0
  for _, p in ipairs(g.parts) do
    if new[p[1] + 1] then
      fresh_parts[#fresh_parts + 1] = p
      if min_ms == nil or p[4] < min_ms then min_ms = p[4] end
      if max_ms == nil or p[5] > max_ms then max_ms = p[5] end
      count = count + p[6]
      mask = bit.bor(mask, p[7])
    end
  end
  if count > 0 then
    local id = redis.call('INCR', plan.chunk_seq_key)
    local key = plan.chunk_key_prefix .. id
    if #fresh_parts == #g.parts then
      -- The usual case: the staged lines are the chunk, renamed without being read.
      redis.call('RENAME', lines, key)
    else
      -- Some of the group's messages were applied before (a redelivery after a crash): only
      -- the new ones' lines, copied out of the staged value, the last first so that the first
      -- write makes the string its full size.
      local at = 0
      for _, p in ipairs(fresh_parts) do at = at + p[3] end
      for j = #fresh_parts, 1, -1 do
        local p = fresh_parts[j]
        at = at - p[3]
        redis.call('SETRANGE', key, at, redis.call('GETRANGE', lines, p[2], p[2] + p[3] - 1))
      end
      redis.call('DEL', lines)
    end
    redis.call('EXPIRE', key, plan.chunk_ttl)
    local bloom_key = plan.bloom_key_prefix .. id
    redis.call('RENAME', bloom, bloom_key)
    redis.call('EXPIRE', bloom_key, plan.chunk_ttl)
    local member = id .. ':' .. min_ms .. ':' .. count .. ':' .. mask .. ':' .. g.bloom_log2
    for _, idx in ipairs(g.index) do
      redis.call('ZADD', idx, max_ms, member)
      touched[idx] = true
    end
  else
    redis.call('DEL', lines, bloom)
  end
end
for idx, _ in pairs(touched) do
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. plan.trim_before_ms)
  redis.call('EXPIRE', idx, plan.chunk_ttl)
end
return flags
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_keys_read_as_formatted() {
        for n in [0, 7, -7, 1_795_690_800, i64::MIN, i64::MAX] {
            assert_eq!(pattern_counts_key(n), format!("{PREFIX}pat:{n}"));
            assert_eq!(pattern_defs_key(n), format!("{PREFIX}patdef:{n}"));
        }
        for id in [0, 1, 0xabc, 0x0123_4567_89ab_cdef, u64::MAX] {
            assert_eq!(
                pattern_field("api", Level::Warn, id),
                format!("api|warn|{id:016x}")
            );
            assert_eq!(template_id_hex(id), format!("{id:016x}"));
        }
    }

    #[test]
    fn buckets_floor_and_expire() {
        assert_eq!(Bucket::S10.start(1_795_690_805), 1_795_690_800);
        assert_eq!(Bucket::M1.start(-1), -60);
        let day = Duration::from_secs(86_400);
        assert_eq!(Bucket::H1.expire_at(0, day), 3600 + 86_400 + 3600 + 3600);
        assert_eq!(Bucket::S1.keep(day), 7200);
    }

    #[test]
    fn counter_fields_round_trip() {
        let f = counter_field("api", Level::Warn);
        assert_eq!(f, "api|warn");
        assert_eq!(split_counter_field(&f), Some(("api", Level::Warn)));
        assert_eq!(split_counter_field("garbage"), None);
    }

    #[test]
    fn keys_share_one_hash_tag() {
        for k in [
            pattern_counts_key(60),
            pattern_defs_key(0),
            counter_key(Bucket::S1, 5),
            services_key(),
            applied_bit("LOGS-1", 7).0,
            chunk_key(3),
            bloom_key(3),
            chunk_seq_key(),
            index_all_key(),
            index_service_key("api"),
        ] {
            assert!(k.starts_with("logjet:{lj}:"), "{k}");
        }
    }

    #[test]
    fn pattern_fields_round_trip() {
        let f = pattern_field("api", Level::Error, 0xabc);
        assert_eq!(f, "api|error|0000000000000abc");
        assert_eq!(
            split_pattern_field(&f),
            Some(("api", Level::Error, "0000000000000abc"))
        );
        assert_eq!(split_pattern_field("a|b"), None);
    }

    #[test]
    fn applied_bits_split_into_blocks() {
        assert_eq!(applied_bit("S", 5), ("logjet:{lj}:applied:S:0".into(), 5));
        assert_eq!(
            applied_bit("S", APPLIED_BLOCK_BITS + 2),
            ("logjet:{lj}:applied:S:1".into(), 2)
        );
    }

    #[test]
    fn chunk_refs_round_trip() {
        let c = ChunkRef {
            id: 9,
            min_ms: 1000,
            max_ms: 1999,
            count: 3,
            levels: 0b10100,
            bloom_log2: 12,
        };
        assert_eq!(ChunkRef::parse(&c.member(), 1999.0), Some(c));
        assert!(c.has_level(Level::Info));
        assert!(!c.has_level(Level::Warn));
        assert!(c.has_level_at_least(Level::Warn));
        assert!(!ChunkRef { levels: 0b111, ..c }.has_level_at_least(Level::Warn));
    }
}
