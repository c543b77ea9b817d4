//! From one stream message to the events each service's segment receives.
//!
//! An event's `event_idx` is its position among the events
//! `logjet_core::message::decode_message` yields for the message (lines that cannot be read
//! yield none and take no position), so every reader of the stream gives an event the same
//! identity `(ts, stream_seq, event_idx)` that the archive stores: query deduplicates by it.

use std::collections::BTreeMap;

use logjet_core::LogEvent;
use logjet_core::archive::segment::CanonicalLine;
use logjet_core::message::decode_message;
use logjet_core::parse::ParseOptions;

/// One event for a segment: the canonical line as published, or an event the forgiving parser
/// made (serialised by the writer).
#[derive(Debug, PartialEq)]
pub enum Item<'a> {
    Line(&'a [u8]),
    Event(Box<LogEvent>),
}

/// The events of one message, by service (sorted by name), each with its `event_idx`.
pub type Routed<'a> = BTreeMap<String, Vec<(u32, Item<'a>)>>;

/// Splits a message into its services' events. `canonical`: the message is one of ingest's
/// batches (`Logjet-Format: canonical-ndjson`), whose lines are stored as they are.
pub fn route<'a>(payload: &'a [u8], canonical: bool, opts: &ParseOptions) -> Routed<'a> {
    let mut out: Routed<'a> = BTreeMap::new();
    if !canonical {
        for (i, ev) in decode_message(payload, false, opts)
            .events
            .into_iter()
            .enumerate()
        {
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            out.entry(ev.service.clone())
                .or_default()
                .push((idx, Item::Event(Box::new(ev))));
        }
        return out;
    }
    let mut idx = 0u32;
    for line in logjet_core::lines::split_lines(payload) {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match CanonicalLine::parse(line) {
            Ok(l) => {
                out.entry(l.service.into_owned())
                    .or_default()
                    .push((idx, Item::Line(line)));
                idx = idx.saturating_add(1);
            }
            // What decode_message does with such a line: its own events, in order.
            Err(_) => {
                for ev in decode_message(line, true, opts).events {
                    out.entry(ev.service.clone())
                        .or_default()
                        .push((idx, Item::Event(Box::new(ev))));
                    idx = idx.saturating_add(1);
                }
            }
        }
    }
    out
}

/// Events in a routed message.
pub fn event_count(routed: &Routed<'_>) -> usize {
    routed.values().map(Vec::len).sum()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use logjet_core::message::message_options;

    use super::*;

    fn opts() -> ParseOptions {
        let published = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        message_options("logs.api", published, Duration::from_secs(86_400))
    }

    const A: &str = r#"{"ts":"2026-11-26T11:59:59.5Z","service":"api","level":"warn","message":"m","fields":{"a":1}}"#;
    const B: &str =
        r#"{"ts":"2026-11-26T11:59:59.6Z","service":"web","level":"info","message":"n"}"#;

    #[test]
    fn canonical_lines_are_kept_and_split_by_service() {
        let payload = format!("{A}\n\n{B}\n{A}\n");
        let r = route(payload.as_bytes(), true, &opts());
        assert_eq!(event_count(&r), 3);
        assert_eq!(
            r["api"],
            vec![(0, Item::Line(A.as_bytes())), (2, Item::Line(A.as_bytes()))]
        );
        assert_eq!(r["web"], vec![(1, Item::Line(B.as_bytes()))]);
    }

    #[test]
    fn indexes_follow_decode_message_including_fallbacks_and_rejects() {
        // line 2 is not canonical (parsed forgivingly), line 3 is unreadable (no event).
        let payload =
            format!("{A}\n{{\"message\":\"plain\",\"service\":\"Web App\"}}\n{{oops\n{A}");
        let r = route(payload.as_bytes(), true, &opts());
        let decoded = decode_message(payload.as_bytes(), true, &opts());
        assert_eq!(decoded.events.len(), 3);
        assert_eq!(event_count(&r), 3);
        let (idx, Item::Event(ev)) = &r["web-app"][0] else {
            panic!("{r:?}")
        };
        assert_eq!(*idx, 1);
        assert_eq!(**ev, decoded.events[1]);
        assert_eq!(r["api"].iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2]);
    }

    #[test]
    fn raw_payloads_use_the_forgiving_parser() {
        let r = route(
            b"disk full\n{\"level\":\"error\",\"message\":\"boom\"}",
            false,
            &opts(),
        );
        let api = &r["api"];
        assert_eq!(api.len(), 2);
        assert_eq!(api[1].0, 1);
        let Item::Event(ev) = &api[1].1 else { panic!() };
        assert_eq!(ev.message, "boom");
        // The same payload gives the same events: a redelivery rewrites the same segment.
        assert_eq!(
            route(b"disk full", false, &opts()),
            route(b"disk full", false, &opts())
        );
    }
}
