//! The query filter language never panics, and a parsed filter evaluates without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(filter) = logjet_query::filter::parse(text) {
        let ev = logjet_core::LogEvent {
            ts: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            service: "api".into(),
            level: logjet_core::Level::Warn,
            message: "GET /items/42 took 12ms".into(),
            fields: [
                ("http.status".to_string(), logjet_core::FieldValue::Int(503)),
                ("order_id".to_string(), logjet_core::FieldValue::Str("A-17".into())),
            ]
            .into(),
            trace_id: Some("abc".into()),
            host: None,
        };
        let _ = filter.matches(&ev);
        let _ = filter.index_tokens();
    }
});
