//! Patterns: 100,000 lines made from 20 templates come back as those 20, with exact counts.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use logjet_tests::platform::Platform;
use serde_json::Value;

const NAMES: [&str; 12] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar",
];
const TABLES: [&str; 4] = ["orders", "users", "invoices", "sessions"];
const QUEUES: [&str; 3] = ["emails", "reports", "thumbnails"];
const HOSTS: [&str; 3] = ["payments.internal", "search.internal", "auth.internal"];

/// Line `i` of template `k`, and the template as logjet should report it.
fn line(k: usize, i: usize) -> String {
    let name = NAMES[i % NAMES.len()];
    let ip = format!("10.{}.{}.{}", i % 7, i % 251, (i * 7) % 253);
    let hex = format!("{:08x}", i.wrapping_mul(2_654_435_761) as u32 | 0x1000_0001);
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        i * 31 + 1,
        i % 65_535,
        i % 4095,
        (i * 3) % 4095,
        i * 977 + 5
    );
    let dur = format!("{}ms", 5 + i % 900);
    match k {
        0 => format!("User {name} logged in from {ip}"),
        1 => format!(
            "GET /api/items/{} returned {} in {dur}",
            i % 1000,
            [200, 404, 500][i % 3]
        ),
        2 => format!(
            "Connection to {ip}:{} timed out after {dur}",
            1024 + i % 5000
        ),
        3 => format!("Failed to open \"/var/data/{name}/file-{i}.bin\": permission denied"),
        4 => format!("Cache miss for key {hex}"),
        5 => format!(
            "Order {uuid} placed by {name} for {}.{:02} EUR",
            i % 500,
            i % 100
        ),
        6 => format!(
            "Worker {} picked job {hex} from queue {}",
            i % 16,
            QUEUES[i % 3]
        ),
        7 => format!(
            "Retrying request to {} (attempt {}/5)",
            HOSTS[i % 3],
            1 + i % 5
        ),
        8 => format!(
            "Disk usage on /dev/sd{} at {}%",
            ["a", "b", "c"][i % 3],
            50 + i % 50
        ),
        9 => format!("Payment {hex} declined: insufficient funds"),
        10 => format!("Scheduled backup completed in {dur} ({} files)", i % 10_000),
        11 => format!("TLS handshake with {ip} failed: certificate expired"),
        12 => format!("Queue depth is {} messages", i % 100_000),
        13 => format!(
            "Session {uuid} expired after {} minutes of inactivity",
            5 + i % 55
        ),
        14 => format!("Sending email to {name}@example.com"),
        15 => format!("Config reloaded: {} keys changed", i % 40),
        16 => format!("Rate limit exceeded for client {ip}"),
        17 => format!("Shutting down gracefully, {} requests in flight", i % 300),
        18 => format!(
            "Slow query took {dur}: SELECT * FROM {} WHERE id = {}",
            TABLES[i % 4],
            i
        ),
        _ => format!("Heartbeat from node-{} ok", i % 64),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_templates_come_back_as_twenty_patterns_with_exact_counts() {
    let p = Platform::start(1).await;
    // Uneven, distinct counts that add up to 100,000.
    let mut counts: Vec<usize> = (0..20).map(|k| 2500 + (k * 737) % 2000).collect();
    let sum: usize = counts.iter().sum();
    counts[19] += 100_000 - sum;
    let mut lines: Vec<String> = Vec::with_capacity(100_000);
    for (k, n) in counts.iter().enumerate() {
        for i in 0..*n {
            lines.push(line(k, i));
        }
    }
    // Interleave templates the way real traffic does.
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|i| (i.wrapping_mul(2_654_435_761)) % 1_000_003);
    for chunk in order.chunks(2500) {
        let body: String = chunk.iter().map(|i| lines[*i].clone() + "\n").collect();
        let r = p
            .http
            .post(format!("{}/logs?service=corpus", p.ingest_url()))
            .header("content-type", "text/plain")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    p.wait_for_total(100_000, Duration::from_secs(120)).await;

    let r: Value = p
        .http
        .get(format!(
            "{}/patterns?service=corpus&since=15m&limit=100",
            p.query_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patterns = r["patterns"].as_array().unwrap();
    assert_eq!(r["total"], 100_000);
    assert!(
        (18..=22).contains(&patterns.len()),
        "{} patterns: {:#?}",
        patterns.len(),
        patterns
            .iter()
            .map(|p| (p["template"].clone(), p["count"].clone()))
            .collect::<Vec<_>>()
    );
    let got: Vec<u64> = patterns
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .collect();
    let exact = counts
        .iter()
        .filter(|c| got.contains(&(**c as u64)))
        .count();
    assert!(
        exact >= 18,
        "only {exact} of 20 template counts came back exactly: {got:?} vs {counts:?}"
    );
    for pat in patterns {
        let series: u64 = pat["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(series, pat["count"].as_u64().unwrap());
        assert!(!pat["sample"].as_str().unwrap().is_empty());
        assert!(pat["first_seen"].as_str().unwrap() <= pat["last_seen"].as_str().unwrap());
    }
    let templates: Vec<&str> = patterns
        .iter()
        .map(|p| p["template"].as_str().unwrap())
        .collect();
    for want in [
        "User <*> logged in from <ip>",
        "Connection to <ip> timed out after <duration>",
        "Failed to open <quoted>: permission denied",
        "Order <uuid> placed by <*> for <num> EUR",
        "Slow query took <duration>: SELECT * FROM <*> WHERE id = <num>",
    ] {
        assert!(templates.contains(&want), "{want:?} not in {templates:#?}");
    }
    // Some generated hex keys happen to be all digits (`<num>`): Drain merges the two shapes.
    assert!(
        templates
            .iter()
            .any(|t| t.starts_with("Cache miss for key <"))
    );

    // Level filter: only what was detected as error.
    let errs: Value = p
        .http
        .get(format!(
            "{}/patterns?service=corpus&since=15m&level=error",
            p.query_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(errs["total"].as_u64().unwrap() < 100_000);
}
