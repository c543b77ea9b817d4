//! From a JetStream message to event records.
//!
//! Two kinds of payload arrive on `logs.<service>`:
//! - ingest's batches (header `Logjet-Format: canonical-ndjson`): canonical events, one per line.
//!   Only the head of each line (time, service, level) is decoded; the line itself is kept as is
//!   for the recent-events store, which saves a full parse and a re-serialisation per event.
//! - anything else, typically `nats pub logs.api 'disk full'`: read by the forgiving parser of
//!   `logjet-core`, with the subject's token as the default service and the time JetStream stored
//!   the message as the time of receipt (so a redelivery yields the very same events).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use logjet_core::parse::{self, BodyFormat, Reject};
use logjet_core::pattern;
use logjet_core::{Level, ServiceName};
use serde::Deserialize;

use crate::json_check;

/// One event as the aggregator needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub ts_nanos: i64,
    /// Shared by the events of a message that name the same service (most messages carry one
    /// service): no string per event.
    pub service: Arc<str>,
    pub level: Level,
    /// Canonical JSON of the event, without the trailing newline.
    pub line: Bytes,
    /// Id of the message's template ([`logjet_core::pattern`]). The template text and a sample
    /// are re-derived from `line` only for the first event of a template in a batch, so no
    /// per-event string is kept.
    pub template_id: u64,
}

/// The message of a canonical line (for a template's sample).
pub fn line_message(line: &[u8]) -> Option<String> {
    // Ingest's layout is read in place, as the decoder reads it, when the rest of the line is
    // valid and cannot name a second `message` (which the JSON reading below refuses as a
    // duplicate field): no `"message"` in it, and no escape that could spell one.
    if let Some(InPlace { message, tail, .. }) = read_head_in_place(line)
        && memchr::memchr(b'\\', tail).is_none()
        && memchr::memmem::find(tail, b"\"message\"").is_none()
        && json_check::is_object_tail(tail, &mut Vec::new())
    {
        return Some(message.into_owned());
    }
    #[derive(Deserialize)]
    struct Msg<'a> {
        #[serde(borrow)]
        message: Cow<'a, str>,
    }
    serde_json::from_slice::<Msg<'_>>(line)
        .ok()
        .map(|m| m.message.into_owned())
}

/// Per-message state of the decoder, reused from one line to the next so that decoding a line
/// allocates nothing once the buffers have grown.
#[derive(Default)]
struct Scratch {
    /// The masked message (its template) being hashed.
    mask: String,
    /// The last service seen, shared by the lines that name it too.
    service: Option<Arc<str>>,
    /// The open brackets of the JSON check.
    json_stack: Vec<u8>,
}

impl Scratch {
    fn template_id(&mut self, message: &str) -> u64 {
        pattern::message_template_id(message, &mut self.mask)
    }

    fn service(&mut self, name: &str) -> Arc<str> {
        match &self.service {
            Some(s) if &**s == name => s.clone(),
            _ => {
                let s: Arc<str> = Arc::from(name);
                self.service = Some(s.clone());
                s
            }
        }
    }
}

impl EventRecord {
    pub fn ts_millis(&self) -> i64 {
        self.ts_nanos.div_euclid(1_000_000)
    }
    pub fn ts_secs(&self) -> i64 {
        self.ts_nanos.div_euclid(1_000_000_000)
    }
}

/// The events of one message, and the lines that could not be read.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<EventRecord>,
    pub rejects: Vec<Reject>,
}

/// The part of a canonical line the aggregator needs.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    service: Cow<'a, str>,
    level: Level,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// What the decoder needs to know about a message besides its payload.
pub struct MessageMeta<'a> {
    pub subject: &'a str,
    pub headers: Option<&'a async_nats::HeaderMap>,
    /// When JetStream stored the message.
    pub published: DateTime<Utc>,
    /// Events older than this before `published` are refused (their buckets have expired).
    pub max_age: Duration,
}

/// Decodes a payload. Never fails as a whole: unreadable lines become rejects.
pub fn decode(payload: &Bytes, meta: &MessageMeta<'_>) -> Decoded {
    if logjet_core::jetstream::is_canonical(meta.headers) {
        decode_canonical(payload, meta)
    } else {
        decode_raw(payload, meta)
    }
}

fn decode_canonical(payload: &Bytes, meta: &MessageMeta<'_>) -> Decoded {
    let mut out = Decoded::default();
    let mut scratch = Scratch::default();
    let mut start = 0usize;
    let mut line_no = 0usize;
    while start < payload.len() {
        let end = memchr_nl(&payload[start..]).map_or(payload.len(), |i| start + i);
        line_no += 1;
        let raw = &payload[start..end];
        if !raw.trim_ascii().is_empty() {
            match read_head(raw, &mut scratch.json_stack) {
                Some((ts_nanos, service, level, message)) => out.events.push(EventRecord {
                    ts_nanos,
                    service: scratch.service(&service),
                    level,
                    line: payload.slice(start..end),
                    template_id: scratch.template_id(&message),
                }),
                // A line that claims to be canonical but is not: give it to the forgiving parser.
                None => {
                    let sub = decode_raw(&payload.slice(start..end), meta);
                    out.events.extend(sub.events);
                    out.rejects.extend(sub.rejects.into_iter().map(|mut r| {
                        r.line = line_no;
                        r
                    }));
                }
            }
        }
        start = end + 1;
    }
    out
}

/// (time, service, level, message) of a canonical line, borrowed from it unless the message
/// holds JSON escapes. The line is read in place when it is laid out as ingest writes it
/// ([`read_head_in_place`]), else as JSON; either way it must be one valid JSON object, or the
/// forgiving parser gets it ([`json_check`], with `stack` for its brackets).
fn read_head<'a>(
    raw: &'a [u8],
    stack: &mut Vec<u8>,
) -> Option<(i64, Cow<'a, str>, Level, Cow<'a, str>)> {
    match read_head_in_place(raw) {
        Some(InPlace {
            ts,
            service,
            level,
            message,
            tail,
        }) => {
            // The head's layout is checked; the rest must complete the object.
            json_check::is_object_tail(tail, stack).then_some(())?;
            let ts_nanos = match logjet_core::event::parse_ts_fixed(ts.as_bytes()) {
                Some(n) => n,
                None => DateTime::parse_from_rfc3339(ts)
                    .ok()?
                    .timestamp_nanos_opt()?,
            };
            ServiceName::is_canonical(service).then_some((
                ts_nanos,
                Cow::Borrowed(service),
                level,
                message,
            ))
        }
        None => read_head_json(raw),
    }
}

/// The head of a canonical line in ingest's layout — `{"ts":"…","service":"…","level":"…",
/// "message":"…"` followed by `}` or by more members — found by position: no JSON parse, no
/// field matching. `None` for any other layout (members in another order, whitespace, escapes
/// in the time, service or level), which [`read_head_json`] reads. Also the rest of the line after
/// the message, which the caller checks completes the JSON object. The head itself is as strict
/// as JSON: the time and level must match exactly, the service be canonical, and the message
/// hold no control character (a JSON string cannot).
fn read_head_in_place(raw: &[u8]) -> Option<InPlace<'_>> {
    let rest = raw.strip_prefix(b"{\"ts\":\"")?;
    let (ts, rest) = plain_str(rest)?;
    let rest = rest.strip_prefix(b",\"service\":\"")?;
    let (service, rest) = plain_str(rest)?;
    let rest = rest.strip_prefix(b",\"level\":\"")?;
    let (level, rest) = plain_str(rest)?;
    let level = Level::ALL.into_iter().find(|l| l.as_str() == level)?;
    let rest = rest.strip_prefix(b",\"message\":\"")?;
    // The message, up to its closing quote; escaped only if it holds a backslash.
    let mut end = 0;
    let mut escaped = false;
    loop {
        end += memchr::memchr2(b'"', b'\\', rest.get(end..)?)?;
        if rest[end] == b'"' {
            break;
        }
        escaped = true;
        end += 2;
    }
    let after = &rest[end + 1..];
    if after != b"}" && !after.starts_with(b",\"") {
        return None;
    }
    let message = if escaped {
        // The quoted string, quotes included (the byte before `rest` is the opening quote).
        let start = raw.len() - rest.len() - 1;
        Cow::Owned(serde_json::from_slice::<String>(&raw[start..start + end + 2]).ok()?)
    } else {
        let m = &rest[..end];
        if has_control(m) {
            return None;
        }
        Cow::Borrowed(std::str::from_utf8(m).ok()?)
    };
    Some(InPlace {
        ts,
        service,
        level,
        message,
        tail: after,
    })
}

/// What [`read_head_in_place`] reads: the head, and the rest of the line after the message.
struct InPlace<'a> {
    ts: &'a str,
    service: &'a str,
    level: Level,
    message: Cow<'a, str>,
    tail: &'a [u8],
}

/// Whether any byte is below 0x20 (a control character, which a JSON string cannot hold), eight
/// bytes at a time.
fn has_control(b: &[u8]) -> bool {
    const ONES: u64 = u64::MAX / 255;
    let mut words = b.chunks_exact(8);
    // "Has a byte less than n" (Bit Twiddling Hacks): exact as to whether there is one.
    let found = words.by_ref().any(|w| {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        let x = u64::from_le_bytes(word);
        x.wrapping_sub(ONES * 0x20) & !x & (ONES << 7) != 0
    });
    found || words.remainder().iter().any(|&c| c < 0x20)
}

/// A string without escapes up to its closing quote, and what follows the quote.
fn plain_str(b: &[u8]) -> Option<(&str, &[u8])> {
    let end = memchr::memchr2(b'"', b'\\', b)?;
    (b[end] == b'"').then_some(())?;
    Some((std::str::from_utf8(&b[..end]).ok()?, &b[end + 1..]))
}

/// [`read_head`] by a JSON parse, whatever the order of the members.
fn read_head_json(raw: &[u8]) -> Option<(i64, Cow<'_, str>, Level, Cow<'_, str>)> {
    let head: Head<'_> = serde_json::from_slice(raw).ok()?;
    let ts = DateTime::parse_from_rfc3339(&head.ts).ok()?;
    let ts_nanos = ts.timestamp_nanos_opt()?;
    // The service becomes part of Redis keys: it must already be canonical.
    if !ServiceName::is_canonical(&head.service) {
        return None;
    }
    Some((ts_nanos, head.service, head.level, head.message))
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

fn decode_raw(payload: &Bytes, meta: &MessageMeta<'_>) -> Decoded {
    let opts = logjet_core::message::message_options(meta.subject, meta.published, meta.max_age);
    let parsed = parse::parse_body(payload, BodyFormat::Auto, &opts);
    let mut scratch = Scratch::default();
    let events = parsed
        .events
        .into_iter()
        .map(|ev| EventRecord {
            ts_nanos: ev.ts_nanos(),
            level: ev.level,
            line: Bytes::from(serde_json::to_vec(&ev).expect("a LogEvent always serialises")),
            template_id: scratch.template_id(&ev.message),
            service: scratch.service(&ev.service),
        })
        .collect();
    Decoded {
        events,
        rejects: parsed.rejects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logjet_core::{FieldValue, Fields, LogEvent};

    fn meta<'a>(subject: &'a str, h: Option<&'a async_nats::HeaderMap>) -> MessageMeta<'a> {
        MessageMeta {
            subject,
            headers: h,
            published: DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            max_age: Duration::from_secs(86_400),
        }
    }

    fn canonical_headers() -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            logjet_core::subject::headers::FORMAT,
            logjet_core::subject::headers::FORMAT_CANONICAL,
        );
        h
    }

    #[test]
    fn canonical_lines_keep_their_bytes() {
        let line = r#"{"ts":"2026-11-26T11:59:59.5Z","service":"api","level":"warn","message":"m","fields":{"a":1}}"#;
        let payload = Bytes::from(format!("{line}\n{line}\n"));
        let h = canonical_headers();
        let d = decode(&payload, &meta("logs.api", Some(&h)));
        assert_eq!(d.events.len(), 2);
        assert!(d.rejects.is_empty());
        assert_eq!(d.events[0].line, line.as_bytes());
        assert_eq!(d.events[0].level, Level::Warn);
        assert_eq!(&*d.events[0].service, "api");
        assert_eq!(d.events[0].ts_millis(), 1_795_694_399_500);
    }

    #[test]
    fn the_head_read_in_place_is_the_head_read_as_json() {
        let ts = DateTime::parse_from_rfc3339("2026-11-26T11:59:59.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut lines = Vec::new();
        for message in [
            "GET /a/42 completed in 5ms for 10.0.0.1",
            "",
            "quote \" backslash \\ newline \n tab \t unicode é ☃ \u{1}",
            "\\",
            "ends with a backslash \\",
        ] {
            for fields in [
                Fields::new(),
                [("a".to_string(), FieldValue::Int(1))].into(),
            ] {
                let ev = LogEvent {
                    ts,
                    service: "api".into(),
                    level: Level::Warn,
                    message: message.into(),
                    fields,
                    trace_id: Some("t-1".into()),
                    host: None,
                };
                lines.push(serde_json::to_string(&ev).unwrap());
            }
        }
        // Not ingest's layout, or not valid: the JSON reading decides, and both must agree.
        let head = r#"{"ts":"2026-11-26T11:59:59.5Z","service":"api","level":"info","message":"m""#;
        lines.extend([
            format!("{head}}}"),
            format!("{head},\"fields\":{{\"a\":1}}}}"),
            format!("{head},\"fields\":{{\"a\":}}}}"),
            format!("{head},\"x\""),
            format!("{head}}} "),
            format!("{head}}}x"),
            r#"{"service":"api","ts":"2026-11-26T11:59:59Z","level":"info","message":"m"}"#.into(),
            r#"{"ts":"2026-11-26T11:59:59Z","service":"Api","level":"info","message":"m"}"#.into(),
            r#"{"ts":"2026-11-26T11:59:59Z","service":"api","level":"loud","message":"m"}"#.into(),
            r#"{"ts":"2026-11-26T25:59:59Z","service":"api","level":"info","message":"m"}"#.into(),
            // A raw control character: not JSON.
            format!(
                r#"{{"ts":"2026-11-26T11:59:59.000000000Z","service":"api","level":"info","message":"a{}b"}}"#,
                '\u{1}'
            ),
            format!("{head},\"f\":[1,{{\"g\":null}}]}}"),
            format!("{head},\"f\":01}}"),
            format!("{head},}}"),
            format!("{head},\"a\":1}}}}"),
            format!("{head},\"a\":1,\"b\":\"\\u00e9\"}}\t"),
            format!("{head},\"a\":\"x{}\"}}", '\u{1}'),
            r#"{"ts":"2026-11-26T11:59:59Z","service":"api","level":"info","message":"a\"#.into(),
            r#"{"ts":"2026-11-26T11:59:59Z","service":"api","level":"info","message":"m"}"#.into(),
        ]);
        for line in &lines {
            assert_eq!(
                read_head(line.as_bytes(), &mut Vec::new()),
                read_head_json(line.as_bytes()),
                "{line}"
            );
        }
        // The fast reading is what reads ingest's lines.
        assert!(read_head_in_place(lines[0].as_bytes()).is_some());
        assert!(read_head_in_place(lines[4].as_bytes()).is_some());
    }

    #[test]
    fn a_lines_message_is_read_in_place_as_json_reads_it() {
        let head =
            r#"{"ts":"2026-11-26T11:59:59.000000000Z","service":"api","level":"info","message":"#;
        for rest in [
            r#""GET /a/42 in 5ms"}"#,
            r#""a "quoted" é
","fields":{"k":[1,2]}}"#,
            r#""first","message":"second"}"#,
            r#""first","f":{"message":"nested"}}"#,
            r#""first","message":"escaped key"}"#,
            r#""first","f":}"#,
            r#""first"} x"#,
        ] {
            let line = format!("{head}{rest}");
            let by_json = {
                #[derive(Deserialize)]
                struct Msg {
                    message: String,
                }
                serde_json::from_str::<Msg>(&line).ok().map(|m| m.message)
            };
            assert_eq!(line_message(line.as_bytes()), by_json, "{line}");
        }
        let ok = format!("{head}\"m\"}}");
        assert_eq!(line_message(ok.as_bytes()).as_deref(), Some("m"));
        assert_eq!(
            line_message(format!("{head}\"m\",\"message\":\"n\"}}").as_bytes()),
            None
        );
    }

    #[test]
    fn control_characters_are_found_wherever_they_are() {
        for len in 0..40 {
            let clean = vec![b'a'; len];
            assert!(!has_control(&clean));
            for at in 0..len {
                for c in [0u8, 0x1f, b'\n'] {
                    let mut b = clean.clone();
                    b[at] = c;
                    assert!(has_control(&b), "{b:?}");
                }
                let mut b = clean.clone();
                b[at] = 0x20;
                b.iter_mut().skip(at + 1).for_each(|x| *x = 0xff);
                assert!(!has_control(&b), "{b:?}");
            }
        }
    }

    #[test]
    fn a_bad_canonical_line_falls_back_to_the_forgiving_parser() {
        let payload =
            Bytes::from_static(b"{\"message\":\"no head\",\"service\":\"Web App\"}\n{oops\n");
        let h = canonical_headers();
        let d = decode(&payload, &meta("logs.api", Some(&h)));
        assert_eq!(d.events.len(), 1);
        assert_eq!(&*d.events[0].service, "web-app");
        assert_eq!(d.rejects.len(), 1);
        assert_eq!(d.rejects[0].line, 2);
    }

    #[test]
    fn raw_nats_pub_payloads_text_and_json() {
        let d = decode(&Bytes::from_static(b"disk full"), &meta("logs.api", None));
        assert_eq!(d.events.len(), 1);
        assert_eq!(&*d.events[0].service, "api");
        let ev: LogEvent = serde_json::from_slice(&d.events[0].line).unwrap();
        assert_eq!(ev.message, "disk full");
        assert_eq!(ev.ts.to_rfc3339(), "2026-11-26T12:00:00+00:00");

        let d = decode(
            &Bytes::from_static(br#"{"level":"error","message":"boom"}"#),
            &meta("logs.billing", None),
        );
        assert_eq!(d.events[0].level, Level::Error);
        assert_eq!(&*d.events[0].service, "billing");
    }

    #[test]
    fn raw_decoding_is_deterministic_for_redeliveries() {
        let p = Bytes::from_static(b"line one\nline two");
        let a = decode(&p, &meta("logs.x", None));
        let b = decode(&p, &meta("logs.x", None));
        assert_eq!(a.events, b.events);
    }

    #[test]
    fn unparseable_raw_payload_gives_only_rejects() {
        let d = decode(&Bytes::from_static(b"{\"message\":"), &meta("logs.x", None));
        assert!(d.events.is_empty());
        assert_eq!(d.rejects.len(), 1);
    }
}
