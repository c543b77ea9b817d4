//! Aggregation into Redis: a pure planner and the [`Aggregator`] that runs the plan.
//!
//! [`plan_batch`] turns a batch of decoded messages into one call of the apply script
//! ([`logjet_core::keys::APPLY_SCRIPT`]): per-message counter increments for every bucket
//! granularity, last-seen times of services, and recent-event chunks grouped per service and
//! second of event time. The script applies a message's effects only if its sequence bit was not
//! set yet, which is what makes redelivery harmless.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use logjet_core::Level;
use logjet_core::keys::{self, Bucket};
use logjet_core::pattern;
use logjet_core::tokens::{self, Bloom};
use redis::{RedisWrite, ToRedisArgs};
// Small keys hashed several times per event: FxHash, not SipHash. The maps live for one batch
// and hold few keys (services × levels × buckets of its messages), so flooding is no concern.
use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use serde::Serialize;

use crate::decode::EventRecord;

mod apply;
pub use apply::Aggregator;

/// What the planner needs to know beyond the events.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    /// The stream incarnation (name and creation time) the sequences belong to.
    pub stream_id: String,
    /// Retention of aggregates (the stream's max age).
    pub retention: Duration,
    /// How long recent events stay searchable.
    pub recent_retention: Duration,
}

/// One message's events and its stream sequence.
pub struct MessageEvents<'a> {
    pub seq: u64,
    pub events: &'a [EventRecord],
}

#[derive(Debug, Serialize)]
struct ApplyPlan {
    /// Per message: idempotency bitmap key and bit.
    applied: Vec<(String, u64)>,
    applied_expire_at: i64,
    /// (message index, key, field, increment, expire at)
    incr: Vec<(usize, String, String, u64, i64)>,
    /// Template definitions: (key, template id, JSON, expire at); set if absent.
    defs: Vec<(String, String, String, i64)>,
    services_key: String,
    /// (message index, service, newest event ms)
    services: Vec<(usize, String, i64)>,
    chunk_seq_key: String,
    chunk_key_prefix: String,
    bloom_key_prefix: String,
    chunk_ttl: u64,
    chunks: Vec<ChunkGroup>,
    trim_before_ms: i64,
}

#[derive(Debug, Serialize)]
struct ChunkGroup {
    /// Index zsets the chunk is listed in.
    index: Vec<String>,
    /// Per message: (message index, byte offset and length in the group's lines, min ms, max ms,
    /// events, level mask)
    parts: Vec<(usize, usize, usize, i64, i64, u32, u8)>,
    /// Part index of the group's lines (every message's, in order).
    lines: usize,
    /// Part index of the Bloom filter of every part's tokens (a superset when some parts turn out
    /// to be redeliveries: more false positives, never a missed event).
    bloom: usize,
    /// Its size: 2^bloom_log2 bits.
    bloom_log2: u8,
}

/// Events per chunk before a new one is started (a single message's part may exceed it).
pub const CHUNK_MAX_EVENTS: u32 = 2000;

/// One message's events of one service and second, being assembled.
struct PartBuilder<'a> {
    key: (&'a str, i64),
    /// The events' lines, shared with the message (no copy until the command is written).
    lines: Vec<Bytes>,
    tokens: Vec<(u64, u64)>,
    min_ms: i64,
    max_ms: i64,
    count: u32,
    levels: u8,
}

/// A value staged for the script: a chunk group's lines or its Bloom filter.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanPart {
    /// Canonical lines, each written followed by a newline.
    Lines(Vec<Bytes>),
    Bloom(Vec<u8>),
}

impl PlanPart {
    /// The argument's bytes (tests and tools; the command writes them without this copy).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        match self {
            PlanPart::Lines(lines) => lines.iter().map(|l| l.len() + 1).sum(),
            PlanPart::Bloom(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write_to(&self, out: &mut impl std::io::Write) {
        // Writing into memory cannot fail.
        match self {
            PlanPart::Lines(lines) => {
                for l in lines {
                    let _ = out.write_all(l);
                    let _ = out.write_all(b"\n");
                }
            }
            PlanPart::Bloom(b) => {
                let _ = out.write_all(b);
            }
        }
    }
}

impl ToRedisArgs for PlanPart {
    /// Straight into the command's buffer: a line is copied once on its way to Redis (then once
    /// more into the socket's buffer by the client).
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        self.write_to(&mut out.writer_for_next_arg());
    }
}

/// A ready-to-run script call.
#[derive(Debug)]
pub struct Planned {
    pub plan_json: String,
    /// Staged under `<stage prefix><index>` before the script runs ([`keys::APPLY_SCRIPT`]).
    pub parts: Vec<PlanPart>,
    /// Events of each message, in plan order.
    pub events_per_message: Vec<usize>,
}

/// What applying a plan changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Messages whose effects were written now.
    pub fresh_messages: u64,
    /// Messages whose effects were already there (redeliveries).
    pub already_applied: u64,
    /// Events of the fresh messages.
    pub fresh_events: u64,
    /// Replicas that confirmed the writes (`WAIT`), when the aggregator waits for any.
    pub replicas: Option<u64>,
}

/// A template's definition as stored: `{"s":sample,"t":template}` (the members in that order,
/// as `serde_json::json!` wrote them from its sorted map), written without building a map.
fn template_def(sample: &str) -> String {
    #[derive(Serialize)]
    struct Def<'a> {
        s: &'a str,
        t: &'a str,
    }
    let t = pattern::mask(sample);
    serde_json::to_string(&Def { s: sample, t: &t }).expect("strings serialise")
}

/// Plans the application of a batch. Pure: same input, same output.
pub fn plan_batch(
    msgs: &[MessageEvents<'_>],
    settings: &PlanSettings,
    now: DateTime<Utc>,
) -> Planned {
    let now_secs = now.timestamp();
    let mut plan = ApplyPlan {
        applied: Vec::with_capacity(msgs.len()),
        applied_expire_at: now_secs + settings.retention.as_secs() as i64 + 3600,
        incr: Vec::new(),
        defs: Vec::new(),
        services_key: keys::services_key(),
        services: Vec::new(),
        chunk_seq_key: keys::chunk_seq_key(),
        chunk_key_prefix: keys::chunk_key_prefix(),
        bloom_key_prefix: keys::bloom_key_prefix(),
        chunk_ttl: settings.recent_retention.as_secs().max(1),
        chunks: Vec::new(),
        trim_before_ms: now.timestamp_millis() - settings.recent_retention.as_millis() as i64,
    };
    let mut parts: Vec<PlanPart> = Vec::new();
    // Token hashes per chunk group, for its Bloom filter; its lines and their bytes.
    let mut group_tokens: Vec<Vec<(u64, u64)>> = Vec::new();
    let mut group_lines: Vec<(Vec<Bytes>, usize)> = Vec::new();
    // (service, second) → position in plan.chunks of the group being filled, and its events
    let mut groups: HashMap<(&str, i64), (usize, u32)> = HashMap::default();
    let mut events_per_message = Vec::with_capacity(msgs.len());
    // Template ids already defined by this plan.
    let mut defined: FxHashSet<u64> = FxHashSet::default();

    for (mi, msg) in msgs.iter().enumerate() {
        plan.applied
            .push(keys::applied_bit(&settings.stream_id, msg.seq));
        events_per_message.push(msg.events.len());

        // Per second first (one lookup per event, none while the key repeats), spread over the
        // buckets once per key below.
        let mut per_second: HashMap<(i64, &str, Level), u64> = HashMap::default();
        let mut run: Option<((i64, &str, Level), u64)> = None;
        let mut templates: HashMap<(i64, &str, Level, u64), u64> = HashMap::default();
        let mut last_seen: HashMap<&str, i64> = HashMap::default();
        // One part per (service, second), in first-seen order.
        let mut msg_parts: Vec<PartBuilder<'_>> = Vec::new();
        for ev in msg.events {
            let secs = ev.ts_secs();
            let ms = ev.ts_millis();
            let key = (secs, &*ev.service, ev.level);
            match &mut run {
                Some((k, n)) if *k == key => *n += 1,
                _ => {
                    if let Some((k, n)) = run.replace((key, 1)) {
                        *per_second.entry(k).or_default() += n;
                    }
                }
            }
            let tid = ev.template_id;
            *templates
                .entry((Bucket::M1.start(secs), &*ev.service, ev.level, tid))
                .or_default() += 1;
            if defined.insert(tid)
                && let Some(sample) = crate::decode::line_message(&ev.line)
            {
                let day = secs.div_euclid(86_400) * 86_400;
                plan.defs.push((
                    keys::pattern_defs_key(day),
                    keys::template_id_hex(tid),
                    template_def(&sample),
                    day + 86_400 + settings.retention.as_secs() as i64,
                ));
            }
            let seen = last_seen.entry(&*ev.service).or_insert(ms);
            *seen = (*seen).max(ms);
            let key = (&*ev.service, secs);
            let slot = match msg_parts.iter().position(|p| p.key == key) {
                Some(i) => i,
                None => {
                    // A message's events mostly share one service and second: its first part is
                    // sized for all of them (~10 tokens an event), so it never grows (which
                    // would copy it); later parts grow as needed.
                    let (lines, tokens) = match msg_parts.is_empty() {
                        true => (msg.events.len(), msg.events.len() * 12),
                        false => (0, 0),
                    };
                    msg_parts.push(PartBuilder {
                        key,
                        lines: Vec::with_capacity(lines),
                        tokens: Vec::with_capacity(tokens),
                        min_ms: ms,
                        max_ms: ms,
                        count: 0,
                        levels: 0,
                    });
                    msg_parts.len() - 1
                }
            };
            let p = &mut msg_parts[slot];
            p.lines.push(ev.line.clone());
            tokens::canonical_line_tokens(&ev.line, |t| p.tokens.push(tokens::token_hashes(t)));
            p.min_ms = p.min_ms.min(ms);
            p.max_ms = p.max_ms.max(ms);
            p.count += 1;
            p.levels |= 1 << ev.level.index();
        }
        if let Some((k, n)) = run {
            *per_second.entry(k).or_default() += n;
        }
        let mut counts: HashMap<(Bucket, i64, &str, Level), u64> = HashMap::default();
        for ((secs, service, level), n) in per_second {
            for b in Bucket::ALL {
                *counts
                    .entry((b, b.start(secs), service, level))
                    .or_default() += n;
            }
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| {
            (a.0.0.secs(), a.0.1, a.0.2, a.0.3).cmp(&(b.0.0.secs(), b.0.1, b.0.2, b.0.3))
        });
        for ((bucket, start, service, level), n) in counts {
            plan.incr.push((
                mi,
                keys::counter_key(bucket, start),
                keys::counter_field(service, level),
                n,
                bucket.expire_at(start, settings.retention),
            ));
        }
        let mut templates: Vec<_> = templates.into_iter().collect();
        templates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for ((minute, service, level, tid), n) in templates {
            plan.incr.push((
                mi,
                keys::pattern_counts_key(minute),
                keys::pattern_field(service, level, tid),
                n,
                Bucket::M1.expire_at(minute, settings.retention),
            ));
        }
        let mut seen: Vec<_> = last_seen.into_iter().collect();
        seen.sort();
        for (service, ms) in seen {
            plan.services.push((mi, service.to_string(), ms));
        }
        for part in msg_parts {
            // Events older than the recent window would be trimmed from the index at once:
            // count them, but do not store them (a rebuild replays a whole day of them).
            if part.max_ms < plan.trim_before_ms {
                continue;
            }
            let open = groups.get(&part.key).copied();
            let gi = match open {
                Some((gi, n)) if n + part.count <= CHUNK_MAX_EVENTS => {
                    groups.insert(part.key, (gi, n + part.count));
                    gi
                }
                // A full group (or none yet): start a new chunk, so one query never has to
                // decode a huge chunk to return a few events.
                _ => {
                    plan.chunks.push(ChunkGroup {
                        index: vec![keys::index_all_key(), keys::index_service_key(part.key.0)],
                        parts: Vec::new(),
                        lines: 0,
                        bloom: 0,
                        bloom_log2: 0,
                    });
                    group_tokens.push(Vec::new());
                    group_lines.push((Vec::new(), 0));
                    groups.insert(part.key, (plan.chunks.len() - 1, part.count));
                    plan.chunks.len() - 1
                }
            };
            let (lines, bytes) = &mut group_lines[gi];
            let len: usize = part.lines.iter().map(|l| l.len() + 1).sum();
            plan.chunks[gi].parts.push((
                mi,
                *bytes,
                len,
                part.min_ms,
                part.max_ms,
                part.count,
                part.levels,
            ));
            // A new group takes the part's hashes as they are, without a copy.
            let hashes = &mut group_tokens[gi];
            if hashes.is_empty() {
                *hashes = part.tokens;
            } else {
                hashes.extend_from_slice(&part.tokens);
            }
            *bytes += len;
            if lines.is_empty() {
                *lines = part.lines;
            } else {
                lines.extend(part.lines);
            }
        }
    }
    for ((group, hashes), (lines, _)) in plan.chunks.iter_mut().zip(group_tokens).zip(group_lines) {
        group.lines = parts.len();
        parts.push(PlanPart::Lines(lines));
        let mut bloom = Bloom::with_capacity(hashes.len());
        for h in hashes {
            bloom.insert_hashes(h);
        }
        group.bloom = parts.len();
        group.bloom_log2 = bloom.bits_log2();
        parts.push(PlanPart::Bloom(bloom.into_bytes()));
    }
    Planned {
        plan_json: serde_json::to_string(&plan).expect("plan serialises"),
        parts,
        events_per_message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts_ms: i64, service: &str, level: Level) -> EventRecord {
        EventRecord {
            ts_nanos: ts_ms * 1_000_000,
            service: service.into(),
            level,
            line: Bytes::from(format!("{{\"ts_ms\":{ts_ms},\"message\":\"took 5 ms\"}}")),
            template_id: 42,
        }
    }

    fn settings() -> PlanSettings {
        PlanSettings {
            stream_id: "LOGS-1".into(),
            retention: Duration::from_secs(86_400),
            recent_retention: Duration::from_secs(3600),
        }
    }

    #[test]
    fn plan_counts_every_bucket_and_groups_chunks_by_service_and_second() {
        let a = vec![
            rec(1_000_000_000_100, "api", Level::Info),
            rec(1_000_000_000_200, "api", Level::Error),
            rec(1_000_000_001_100, "api", Level::Info),
        ];
        let b = vec![
            rec(1_000_000_000_300, "api", Level::Info),
            rec(1_000_000_000_300, "web", Level::Warn),
        ];
        let msgs = [
            MessageEvents { seq: 1, events: &a },
            MessageEvents { seq: 2, events: &b },
        ];
        let now = DateTime::from_timestamp(1_000_000_010, 0).unwrap();
        let p = plan_batch(&msgs, &settings(), now);
        let v: serde_json::Value = serde_json::from_str(&p.plan_json).unwrap();
        assert_eq!(
            v["applied"][0],
            serde_json::json!(["logjet:{lj}:applied:LOGS-1:0", 1])
        );
        assert_eq!(p.events_per_message, vec![3, 2]);
        // api/second 1_000_000_000 has parts from both messages in one group
        let chunks = v["chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0]["parts"].as_array().unwrap().len(), 2);
        assert_eq!(chunks[0]["parts"][0][5], 2); // two events from message 0
        assert_eq!(
            chunks[0]["parts"][0][6],
            (1 << Level::Info.index()) | (1 << Level::Error.index())
        );
        assert_eq!(p.parts.len(), 3 + 3); // three groups' lines, three blooms
        // A group's lines are its events' lines, each followed by a newline, message by message;
        // each message's part is where its offset and length say.
        let mut first = a[0].line.to_vec();
        first.push(b'\n');
        first.extend_from_slice(&a[1].line);
        first.push(b'\n');
        let staged = p.parts[chunks[0]["lines"].as_u64().unwrap() as usize].to_bytes();
        assert_eq!(
            (&chunks[0]["parts"][0][1], &chunks[0]["parts"][0][2]),
            (&0.into(), &first.len().into())
        );
        assert!(staged.starts_with(&first));
        let (at, len) = (
            chunks[0]["parts"][1][1].as_u64().unwrap() as usize,
            chunks[0]["parts"][1][2].as_u64().unwrap() as usize,
        );
        assert_eq!((at, at + len), (first.len(), staged.len()));
        for part in &p.parts {
            assert_eq!(part.len(), part.to_bytes().len());
        }
        assert!(matches!(
            p.parts[chunks[0]["bloom"].as_u64().unwrap() as usize],
            PlanPart::Bloom(_)
        ));
        // every event counted once per granularity
        let sum_of = |kind: &str| -> u64 {
            v["incr"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c[1].as_str().unwrap().contains(kind))
                .map(|c| c[3].as_u64().unwrap())
                .sum()
        };
        assert_eq!(sum_of(":c:"), 5 * 4);
        // and once per template
        assert_eq!(sum_of(":pat:"), 5);
        assert_eq!(v["defs"].as_array().unwrap().len(), 1);
        let s1_api_info: u64 = v["incr"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c[1] == "logjet:{lj}:c:s1:1000000000" && c[2] == "api|info")
            .map(|c| c[3].as_u64().unwrap())
            .sum();
        assert_eq!(s1_api_info, 2);
    }

    #[test]
    fn full_groups_start_new_chunks() {
        let a: Vec<EventRecord> = (0..1500).map(|_| rec(7_000, "x", Level::Info)).collect();
        let msgs = [
            MessageEvents { seq: 1, events: &a },
            MessageEvents { seq: 2, events: &a },
            MessageEvents {
                seq: 3,
                events: &a[..400],
            },
        ];
        let p = plan_batch(&msgs, &settings(), DateTime::from_timestamp(10, 0).unwrap());
        let v: serde_json::Value = serde_json::from_str(&p.plan_json).unwrap();
        let sizes: Vec<u64> = v["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                g["parts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[5].as_u64().unwrap())
                    .sum()
            })
            .collect();
        assert_eq!(sizes, vec![1500, 1900]);
    }

    #[test]
    fn template_defs_are_written_as_before() {
        for sample in ["took 5ms", "quote \" and \\ and \u{1} and é", ""] {
            let before = serde_json::json!({"t": pattern::mask(sample), "s": sample}).to_string();
            assert_eq!(template_def(sample), before);
        }
    }

    #[test]
    fn plans_are_deterministic() {
        let a = vec![rec(5_000, "x", Level::Info), rec(6_000, "y", Level::Debug)];
        let msgs = [MessageEvents { seq: 9, events: &a }];
        let now = DateTime::from_timestamp(10, 0).unwrap();
        assert_eq!(
            plan_batch(&msgs, &settings(), now).plan_json,
            plan_batch(&msgs, &settings(), now).plan_json
        );
    }
}
