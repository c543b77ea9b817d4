//! The forgiving parser alone, on one thread, in the benchmark process itself.

use std::time::Instant;

use logjet_core::parse::{BodyFormat, ParseOptions, parse_body};

use crate::bench::lines::{self, LineKind};

/// A 1,000-line body of padded lines whose padding keys are renamed apart (`x1`, `x2`, …), so
/// every line carries ~10 more fields, as the parser row has always measured it.
pub fn padded_distinct_body() -> String {
    (0..1000u64)
        .map(|i| {
            let mut l = lines::padded(i, "parse");
            let mut k = 0;
            while let Some(at) = l.find(",\"x\":") {
                k += 1;
                l.replace_range(at..at + 5, &format!(",\"x{k}\":"));
            }
            l + "\n"
        })
        .collect()
}

/// Lines/s of `parse_body` on a 1,000-line NDJSON body, best of 5 rounds of 100 bodies.
pub fn rate(body: &[u8]) -> f64 {
    let opts = ParseOptions::new(chrono::Utc::now());
    let mut best = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0;
        for _ in 0..100 {
            n += parse_body(body, BodyFormat::Ndjson, &opts).events.len();
        }
        best = best.max(n as f64 / start.elapsed().as_secs_f64());
    }
    best
}

/// (row name, lines/s) for the realistic lines, the padded lines and the padded lines with
/// distinct keys.
pub fn rates() -> Vec<(&'static str, f64)> {
    vec![
        (
            "realistic lines",
            rate(&LineKind::Realistic.body(0, "parse")),
        ),
        ("padded lines", rate(&LineKind::Padded.body(0, "parse"))),
        (
            "padded lines, distinct keys",
            rate(padded_distinct_body().as_bytes()),
        ),
    ]
}
