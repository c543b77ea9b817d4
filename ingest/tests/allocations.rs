//! Allocations on ingest's hot path, counted by a global allocator of this test binary alone:
//! a 1,000-line NDJSON request of realistic lines must cost a handful of allocations for the
//! whole batch (its payload buffer, the batch list), not one or more per event.

// A test's (or an example's) unwrap is its assertion; the workspace denies it in services.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use chrono::Utc;
use logjet_core::parse::ParseOptions;

struct Counting;

thread_local! {
    /// Allocations made by this thread while counting is on (other threads are not counted).
    static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
}

fn bump() {
    // `try_with`: the thread-local may already be gone while a thread exits.
    let _ = COUNT.try_with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + 1));
        }
    });
}

// A counting allocator must implement the unsafe GlobalAlloc trait.
#[allow(unsafe_code)]
// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    COUNT.with(|c| c.set(Some(0)));
    let out = f();
    let n = COUNT.with(|c| c.replace(None)).unwrap_or(0);
    (out, n)
}

/// A realistic line: distinct ids, IPs, paths, durations; ~280 bytes, 8 fields besides the head.
fn line(i: u64) -> String {
    let ip = format!("10.{}.{}.{}", i % 251, (i / 7) % 253, 1 + i % 254);
    format!(
        "{{\"service\":\"checkout\",\"level\":\"{}\",\"message\":\"GET /api/v1/orders/{} completed in {}.{}ms for {ip}\",\"request_id\":\"{:016x}\",\"client_ip\":\"{ip}\",\"method\":\"GET\",\"path\":\"/api/v1/orders/{}\",\"status\":{},\"duration_ms\":{}.{},\"bytes\":{},\"user_agent\":\"okhttp/4.12.0\"}}\n",
        ["info", "warn", "error", "debug"][(i % 4) as usize],
        i * 7919 % 100_000,
        i % 900,
        i % 10,
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        i * 7919 % 100_000,
        [200, 201, 404, 500][(i % 4) as usize],
        i % 900,
        i % 10,
        i * 31 % 2_000_000
    )
}

#[test]
fn a_thousand_line_request_allocates_per_batch_not_per_event() {
    let body: String = (0..1000).map(line).collect();
    let opts = ParseOptions::new(Utc::now());
    // Warm-up: one-time initialisation (thread-locals, lazy statics) is not the hot path.
    let _ = logjet_ingest::prepare(
        body.as_bytes(),
        Some("application/x-ndjson"),
        &opts,
        1 << 20,
        &Default::default(),
    );
    let (prepared, allocations) = counted(|| {
        logjet_ingest::prepare(
            body.as_bytes(),
            Some("application/x-ndjson"),
            &opts,
            1 << 20,
            // A pool of its own: an empty one, so the payload's buffer is allocated as well.
            &Default::default(),
        )
    });
    let prepared = prepared.expect("valid body");
    assert_eq!(prepared.encoded.events, 1000);
    assert!(prepared.rejects.is_empty());
    assert!(
        allocations <= 16,
        "{allocations} allocations for 1,000 events: the hot path allocates per event"
    );
    println!("1,000-line NDJSON request: {allocations} allocations");
}

#[test]
fn the_counter_sees_per_event_allocations() {
    // The same body through the general parser, which builds a `LogEvent` per line: the count
    // must show it, or the test above would prove nothing.
    let body: String = (0..1000).map(line).collect();
    let opts = ParseOptions::new(Utc::now());
    let (parsed, allocations) = counted(|| {
        logjet_core::parse::parse_body(
            body.as_bytes(),
            logjet_core::parse::BodyFormat::Ndjson,
            &opts,
        )
    });
    assert_eq!(parsed.events.len(), 1000);
    assert!(allocations > 5_000, "{allocations}");
}
