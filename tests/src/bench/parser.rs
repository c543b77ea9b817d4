//! The forgiving parser alone, on one thread, in the benchmark process itself.

use std::time::Instant;

use logjet_core::parse::{BodyFormat, ParseOptions, parse_body};
use logjet_ingest::buffers::BufferPool;

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
    best_rate(|| parse_body(body, BodyFormat::Ndjson, &opts).events.len())
}

/// Lines/s of ingest's own path for a 1,000-line NDJSON body (`logjet_ingest::prepare`: the
/// borrowed reader writing canonical lines straight into the payloads, in reused buffers as a
/// running ingest has them), best of 5 rounds of 100 bodies.
pub fn ingest_rate(body: &[u8]) -> f64 {
    let opts = ParseOptions::new(chrono::Utc::now());
    let buffers = BufferPool::default();
    best_rate(|| {
        logjet_ingest::prepare(body, Some("application/x-ndjson"), &opts, 1 << 20, &buffers)
            .map_or(0, |p| p.encoded.events)
    })
}

/// Events/s of `run` (which handles one body and says how many events it had), best of 5 rounds
/// of 100 calls.
fn best_rate(mut run: impl FnMut() -> usize) -> f64 {
    let mut best = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0;
        for _ in 0..100 {
            n += run();
        }
        best = best.max(n as f64 / start.elapsed().as_secs_f64());
    }
    best
}

/// (row name, lines/s) for the realistic lines, the padded lines and the padded lines with
/// distinct keys.
pub fn rates() -> Vec<(&'static str, f64)> {
    let realistic = LineKind::Realistic.body(0, "parse");
    vec![
        ("realistic lines", rate(&realistic)),
        (
            "ingest's path (parse + encode), realistic lines",
            ingest_rate(&realistic),
        ),
        ("padded lines", rate(&LineKind::Padded.body(0, "parse"))),
        (
            "padded lines, distinct keys",
            rate(padded_distinct_body().as_bytes()),
        ),
    ]
}
