//! A message on `logs.<service>` into events, as every reader of the stream decodes it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::event::LogEvent;
use crate::parse::{BodyFormat, ParseOptions, Parsed, parse_body};
use crate::subject::ServiceName;

/// How a message on `logs.<service>` is read, for every reader (processor, tail, history): the
/// subject's token is the default service and the time JetStream stored the message is the time
/// of receipt, so every reader, and every redelivery, decodes the very same events.
pub fn message_options(subject: &str, published: DateTime<Utc>, max_age: Duration) -> ParseOptions {
    ParseOptions::new(published)
        .with_default_service(ServiceName::from_subject(subject))
        .with_max_age(Some(max_age))
}

/// Decodes a stream message into full events. `canonical` is true for ingest's batches
/// (`Logjet-Format: canonical-ndjson`): their lines deserialize directly, and a line that does not
/// falls back to the forgiving parser.
pub fn decode_message(payload: &[u8], canonical: bool, opts: &ParseOptions) -> Parsed {
    if !canonical {
        return parse_body(payload, BodyFormat::Auto, opts);
    }
    let mut out = Parsed::default();
    for (i, line) in crate::lines::split_lines(payload).enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<LogEvent>(line) {
            Ok(ev) if ServiceName::parse_strict(&ev.service).is_ok() => out.events.push(ev),
            _ => {
                let sub = parse_body(line, BodyFormat::Auto, opts);
                out.events.extend(sub.events);
                out.rejects.extend(sub.rejects.into_iter().map(|mut r| {
                    r.line = i + 1;
                    r
                }));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;

    fn opts() -> ParseOptions {
        let published = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        message_options("logs.checkout", published, Duration::from_secs(3600))
    }

    #[test]
    fn the_subject_names_the_service_and_the_stream_time_is_receipt() {
        let p = decode_message(b"disk full", false, &opts());
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].service, "checkout");
        assert_eq!(p.events[0].ts, opts().received_at);
        let old = br#"{"ts":"2026-11-26T10:00:00Z","message":"m"}"#;
        assert!(
            decode_message(old, false, &opts()).rejects[0]
                .error
                .contains("older than the retention")
        );
    }

    #[test]
    fn canonical_lines_are_read_as_they_are_and_odd_lines_fall_back() {
        let payload = concat!(
            r#"{"ts":"2026-11-26T11:59:00Z","service":"api","level":"error","message":"boom"}"#,
            "\n",
            // Not canonical (a service name with capitals): read by the forgiving parser.
            r#"{"ts":"2026-11-26T11:59:01Z","service":"Pay Svc","level":"warn","message":"slow"}"#,
            "\n\n",
            "{broken\n",
        );
        let p = decode_message(payload.as_bytes(), true, &opts());
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.events[0].service, "api");
        assert_eq!(p.events[0].level, Level::Error);
        assert_eq!(p.events[1].service, "pay-svc");
        assert_eq!(p.rejects.len(), 1);
        assert_eq!(p.rejects[0].line, 4, "the line number in the whole message");
    }
}
