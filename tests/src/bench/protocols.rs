//! The shippers' protocols (docs/shippers.md) in `logjet-bench`: the same 1,000-event batches
//! as the NDJSON run, in each protocol's encoding, posted the same way, so each can be compared
//! with NDJSON `POST /logs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use crate::bench::lines;
use crate::bench::stack::wait_counted;

/// One benchmark line's content, shared by every encoding: (service, level, message, status,
/// duration_ms, user).
type Parts = (String, &'static str, String, u64, u64, String);

fn parts(i: u64, service: &str) -> Parts {
    let levels = ["info", "info", "info", "warn", "error", "debug"];
    (
        service.to_string(),
        levels[(i % 6) as usize],
        format!("GET /api/v1/items/{} completed", i % 1000),
        200,
        i % 250,
        format!("u-{}", i % 5000),
    )
}

fn otel_severity(level: &str) -> i32 {
    match level {
        "debug" => 5,
        "warn" => 13,
        "error" => 17,
        _ => 9,
    }
}

/// A batch of 1,000 events in `protocol`'s encoding: (path, content type, body).
fn protocol_body(protocol: &str, batch: u64) -> (&'static str, &'static str, bytes::Bytes) {
    use logjet_ingest::protocols::proto::{
        loki, otlp_collector, otlp_common, otlp_logs, otlp_resource,
    };
    use prost::Message;
    let service = format!("svc-{}", batch % 4);
    let events: Vec<_> = (0..1000u64)
        .map(|i| parts(batch * 1000 + i, &service))
        .collect();
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    match protocol {
        "loki-protobuf" | "loki-json" => {
            // One stream per level (a label), the other fields as structured metadata.
            let mut streams: Vec<(&str, Vec<&Parts>)> = Vec::new();
            for e in &events {
                match streams.iter_mut().find(|(l, _)| *l == e.1) {
                    Some((_, entries)) => entries.push(e),
                    None => streams.push((e.1, vec![e])),
                }
            }
            if protocol == "loki-protobuf" {
                let md = |k: &str, v: String| loki::LabelPairAdapter {
                    name: k.into(),
                    value: v,
                };
                let streams = streams
                    .iter()
                    .map(|(level, entries)| loki::StreamAdapter {
                        labels: format!("{{service_name=\"{service}\", level=\"{level}\"}}"),
                        entries: entries
                            .iter()
                            .map(|(_, _, msg, status, ms, user)| loki::EntryAdapter {
                                timestamp: Some(loki::Timestamp {
                                    seconds: now_ns / 1_000_000_000,
                                    nanos: (now_ns % 1_000_000_000) as i32,
                                }),
                                line: msg.clone(),
                                structured_metadata: vec![
                                    md("status", status.to_string()),
                                    md("duration_ms", ms.to_string()),
                                    md("user", user.clone()),
                                ],
                            })
                            .collect(),
                        hash: 0,
                    })
                    .collect();
                let raw = loki::PushRequest { streams }.encode_to_vec();
                let body = snap::raw::Encoder::new()
                    .compress_vec(&raw)
                    .expect("snappy");
                ("/loki/api/v1/push", "application/x-protobuf", body.into())
            } else {
                let ts = now_ns.to_string();
                let streams: Vec<Value> = streams
                    .iter()
                    .map(|(level, entries)| {
                        let values: Vec<Value> = entries
                            .iter()
                            .map(|(_, _, msg, status, ms, user)| {
                                json!([ts, msg, {"status": status.to_string(), "duration_ms": ms.to_string(), "user": user}])
                            })
                            .collect();
                        json!({"stream": {"service_name": service, "level": level}, "values": values})
                    })
                    .collect();
                (
                    "/loki/api/v1/push",
                    "application/json",
                    json!({ "streams": streams }).to_string().into(),
                )
            }
        }
        "elasticsearch" => {
            let mut body = String::with_capacity(300_000);
            for (i, _) in events.iter().enumerate() {
                body.push_str("{\"create\":{\"_index\":\"logs-bench-default\"}}\n");
                body.push_str(&lines::realistic(batch * 1000 + i as u64, &service));
                body.push('\n');
            }
            ("/_bulk", "application/x-ndjson", body.into())
        }
        "otlp-protobuf" | "otlp-json" => {
            let kv = |k: &str, v: otlp_common::any_value::Value| otlp_common::KeyValue {
                key: k.into(),
                value: Some(otlp_common::AnyValue { value: Some(v) }),
                ..Default::default()
            };
            use otlp_common::any_value::Value as V;
            let records = events
                .iter()
                .map(|(_, level, msg, status, ms, user)| otlp_logs::LogRecord {
                    time_unix_nano: now_ns as u64,
                    severity_number: otel_severity(level),
                    body: Some(otlp_common::AnyValue {
                        value: Some(V::StringValue(msg.clone())),
                    }),
                    attributes: vec![
                        kv("status", V::IntValue(*status as i64)),
                        kv("duration_ms", V::IntValue(*ms as i64)),
                        kv("user", V::StringValue(user.clone())),
                    ],
                    ..Default::default()
                })
                .collect::<Vec<_>>();
            if protocol == "otlp-protobuf" {
                let req = otlp_collector::ExportLogsServiceRequest {
                    resource_logs: vec![otlp_logs::ResourceLogs {
                        resource: Some(otlp_resource::Resource {
                            attributes: vec![kv("service.name", V::StringValue(service.clone()))],
                            ..Default::default()
                        }),
                        scope_logs: vec![otlp_logs::ScopeLogs {
                            log_records: records,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
                (
                    "/v1/logs",
                    "application/x-protobuf",
                    req.encode_to_vec().into(),
                )
            } else {
                let records: Vec<Value> = events
                    .iter()
                    .map(|(_, level, msg, status, ms, user)| {
                        json!({
                            "timeUnixNano": now_ns.to_string(),
                            "severityNumber": otel_severity(level),
                            "body": {"stringValue": msg},
                            "attributes": [
                                {"key": "status", "value": {"intValue": status.to_string()}},
                                {"key": "duration_ms", "value": {"intValue": ms.to_string()}},
                                {"key": "user", "value": {"stringValue": user}},
                            ]
                        })
                    })
                    .collect();
                let req = json!({"resourceLogs": [{
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeLogs": [{"logRecords": records}]
                }]});
                ("/v1/logs", "application/json", req.to_string().into())
            }
        }
        "fluent-bit-msgpack" => {
            use rmpv::Value as Mp;
            let secs = (now_ns / 1_000_000_000) as u32;
            let mut time = secs.to_be_bytes().to_vec();
            time.extend_from_slice(&0u32.to_be_bytes());
            let mut body = Vec::with_capacity(200_000);
            for (svc, level, msg, status, ms, user) in &events {
                let record = Mp::Map(vec![
                    (Mp::from("service"), Mp::from(svc.as_str())),
                    (Mp::from("level"), Mp::from(*level)),
                    (Mp::from("log"), Mp::from(msg.as_str())),
                    (Mp::from("status"), Mp::from(*status)),
                    (Mp::from("duration_ms"), Mp::from(*ms)),
                    (Mp::from("user"), Mp::from(user.as_str())),
                ]);
                let event = Mp::Array(vec![
                    Mp::Array(vec![Mp::Ext(0, time.clone()), Mp::Map(vec![])]),
                    record,
                ]);
                rmpv::encode::write_value(&mut body, &event).expect("msgpack");
            }
            ("/logs", "application/msgpack", body.into())
        }
        _ => {
            let body: String = (0..1000)
                .map(|i| lines::realistic(batch * 1000 + i, &service) + "\n")
                .collect();
            ("/logs", "application/x-ndjson", body.into())
        }
    }
}

/// Posts `events` (batches of 1,000) of one protocol with `conns` connections; returns (e2e
/// events/s until counted, ingest acceptance events/s).
pub async fn protocol_run(
    http: &reqwest::Client,
    ingest: &str,
    query: &str,
    protocol: &'static str,
    events: u64,
    conns: usize,
    base: u64,
) -> (f64, f64) {
    let batches = (events / 1000).max(1);
    let bodies: Arc<Vec<(&'static str, &'static str, bytes::Bytes)>> =
        Arc::new((0..16u64).map(|b| protocol_body(protocol, b)).collect());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, ingest, bodies, next) = (
            http.clone(),
            ingest.to_string(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                let (path, ct, body) = &bodies[(b % 16) as usize];
                let r = http
                    .post(format!("{ingest}{path}"))
                    .header("content-type", *ct)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("post");
                let status = r.status();
                let body = r.bytes().await.unwrap_or_default();
                // Failures show at the start of every answer (`"errors":true`, `"rejected":[{`,
                // `partialSuccess`); the rest of a bulk answer is only read, as shippers do.
                let head = String::from_utf8_lossy(&body[..body.len().min(96)]);
                assert!(status.is_success(), "{protocol}: {status} {head}");
                assert!(
                    !head.contains("\"errors\":true")
                        && !head.contains("\"rejected\":[{")
                        && !head.contains("partialSuccess"),
                    "{protocol}: {head}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let sent = start.elapsed().as_secs_f64();
    let done = wait_counted(http, query, base + batches * 1000).await;
    let n = (batches * 1000) as f64;
    (n / (done - start).as_secs_f64(), n / sent)
}

pub const PROTOCOLS: [&str; 6] = [
    "loki-protobuf",
    "loki-json",
    "elasticsearch",
    "otlp-protobuf",
    "otlp-json",
    "fluent-bit-msgpack",
];
