//! The metrics contract (docs/metrics.md) holds on every service after a small workload: each
//! contracted metric is present in that service's /metrics with the contracted type and labels,
//! every series carries its `service` label, and nothing named `logjet_*` is exported that the
//! contract does not list.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use logjet_tests::platform::Platform;
use serde_json::json;

#[derive(Debug)]
struct Contracted {
    kind: String,
    labels: Vec<String>,
    services: Vec<String>,
}

/// The contract table of docs/metrics.md.
fn contract() -> BTreeMap<String, Contracted> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        // `\|` inside a cell (enumerated label values) is not a column separator.
        let line = line.replace("\\|", "/");
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(cells.len(), 5, "malformed contract row: {line}");
        let name = cells[0].trim_matches('`').to_string();
        let labels = cells[2]
            .split(',')
            .map(|l| l.split('=').next().unwrap().trim().to_string())
            .filter(|l| !l.is_empty() && !l.starts_with('('))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect();
        out.insert(
            name,
            Contracted {
                kind: cells[1].to_string(),
                labels,
                services: cells[3].split(',').map(|s| s.trim().to_string()).collect(),
            },
        );
    }
    assert!(out.len() >= 20, "the contract table was not found");
    out
}

/// Metric families in an exposition: name → (type, label names seen).
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            out.entry(name.to_string()).or_default().0 = kind.to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suf| {
                    name.strip_suffix(suf)
                        .filter(|base| out.get(*base).is_some_and(|f| f.0 == "histogram"))
                })
                .unwrap_or(name);
            let entry = out.entry(family.to_string()).or_default();
            for kv in labels
                .trim_end_matches('}')
                .split("\",")
                .filter(|kv| !kv.is_empty())
            {
                let k = kv.split('=').next().unwrap().trim();
                if k != "le" {
                    entry.1.insert(k.to_string());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_service_exports_its_contract_after_a_small_workload() {
    let p = Platform::start(1).await;
    // A small workload touching every path: accepted, rejected and duplicate events, a dead
    // letter, queries, a tail.
    let body = "{\"service\":\"api\",\"level\":\"error\",\"message\":\"boom\"}\n{oops\n";
    for _ in 0..2 {
        let r = p
            .http
            .post(format!("{}/logs", p.ingest_url()))
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "contract-1")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let nc = p.nats_client().await;
    nc.publish("logs.api", "{\"broken".into()).await.unwrap();
    nc.flush().await.unwrap();
    p.wait_for_total(1, Duration::from_secs(10)).await;
    p.query(json!({"contains": "boom"})).await;
    let tail = p
        .http
        .get(format!("{}/logs/tail", p.query_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let contract = contract();
    let bases = [
        ("ingest", p.ingest_url()),
        ("processor", p.processors[0].url()),
        ("query", p.query_url()),
    ];
    for (service, base) in bases {
        let text = p
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let fams = families(&text);
        for (name, c) in contract
            .iter()
            .filter(|(_, c)| c.services.iter().any(|s| s == service))
        {
            let (kind, labels) = fams
                .get(name)
                .unwrap_or_else(|| panic!("{service} does not export {name}"));
            assert_eq!(kind, &c.kind, "{service}: {name} type");
            for l in &c.labels {
                assert!(
                    labels.contains(l),
                    "{service}: {name} lacks label {l} ({labels:?})"
                );
            }
            assert!(
                labels.contains("service"),
                "{service}: {name} lacks the service label"
            );
        }
        for name in fams.keys().filter(|n| n.starts_with("logjet_")) {
            let c = contract.get(name).unwrap_or_else(|| {
                panic!("{service} exports {name}, which docs/metrics.md does not list")
            });
            assert!(
                c.services.iter().any(|s| s == service),
                "{service} exports {name} but the contract does not say so"
            );
        }
        // Every sample names its service.
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(
                line.contains(&format!("service=\"{service}\"")),
                "{service}: {line}"
            );
        }
    }
    drop(tail);
}

/// The archiver (a process: `cargo build --bins`) exports its part of the contract once it has
/// archived something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archiver_exports_its_contract() {
    let nats = logjet_tests::servers::NatsServer::start().await;
    let archive = tempfile::tempdir().unwrap();
    let archiver = logjet_tests::process::ServiceProcess::spawn(
        "logjet-archiver",
        &[
            ("LOGJET_NATS_URL", nats.url()),
            (
                "LOGJET_ARCHIVE_URL",
                format!("file://{}", archive.path().display()),
            ),
            ("LOGJET_SPOOL_DIR", archive.path().display().to_string()),
            ("LOGJET_SEGMENT_MAX_AGE", "1s".into()),
        ],
    );
    archiver.wait_ready().await;
    let nc = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(nc);
    js.publish("logs.api", "disk full".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while logjet_tests::platform::metric(
        &http,
        &archiver.url,
        "logjet_archiver_events_archived_total",
    )
    .await
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "{}", archiver.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = http
        .get(format!("{}/metrics", archiver.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fams = families(&text);
    let contract = contract();
    for (name, c) in contract
        .iter()
        .filter(|(_, c)| c.services.iter().any(|s| s == "archiver"))
    {
        let (kind, labels) = fams
            .get(name)
            .unwrap_or_else(|| panic!("archiver does not export {name}"));
        assert_eq!(kind, &c.kind, "archiver: {name} type");
        for l in c
            .labels
            .iter()
            .chain(std::iter::once(&"service".to_string()))
        {
            assert!(labels.contains(l), "archiver: {name} lacks label {l}");
        }
    }
    for name in fams.keys().filter(|n| n.starts_with("logjet_")) {
        let c = contract.get(name).unwrap_or_else(|| {
            panic!("archiver exports {name}, which docs/metrics.md does not list")
        });
        assert!(c.services.iter().any(|s| s == "archiver"), "{name}");
    }
}
