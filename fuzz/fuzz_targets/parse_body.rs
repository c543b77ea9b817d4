//! The forgiving parser never panics, whatever the bytes, in every body format; and everything it
//! accepts serialises to canonical JSON that parses back to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logjet_core::LogEvent;
use logjet_core::parse::{BodyFormat, ParseOptions, parse_body};

fuzz_target!(|data: &[u8]| {
    let now = chrono::DateTime::from_timestamp(1_795_694_400, 0).unwrap();
    let mut opts = ParseOptions::new(now).with_max_age(Some(std::time::Duration::from_secs(86_400)));
    opts.max_line_bytes = 4096;
    for format in [BodyFormat::Json, BodyFormat::Ndjson, BodyFormat::Text, BodyFormat::Auto] {
        let parsed = parse_body(data, format, &opts);
        for ev in parsed.events {
            let json = serde_json_roundtrip(&ev);
            assert_eq!(json, ev, "canonical form does not round-trip");
        }
    }
});

fn serde_json_roundtrip(ev: &LogEvent) -> LogEvent {
    let text = logjet_core::parse::parse_body(
        canonical(ev).as_bytes(),
        BodyFormat::Ndjson,
        &ParseOptions::new(ev.ts),
    );
    text.events.into_iter().next().expect("a canonical event parses")
}

fn canonical(ev: &LogEvent) -> String {
    // The canonical JSON, as ingest publishes it.
    serde_json::to_string(ev).unwrap()
}
