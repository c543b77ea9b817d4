//! The shippers' protocols end to end: real client libraries (Python, from the `shippers` tool venv
//! venv that scripts/test.sh builds) and the wire formats of Fluent Bit and Vector send to ingest;
//! the events are counted exactly and searchable with the right service, level, message and
//! fields; partially bad requests keep the good records and name the bad ones.
//!
//! docs/shippers.md lists which configuration snippet each test stands for.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use logjet_core::auth::key_line;
use logjet_core::config::{ApiSettings, AuthSetting};
use logjet_tests::platform::{self, Platform};
use rmpv::Value as Mp;
use serde_json::{Value, json};

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("LOGJET_TEST_SHIPPERS_PYTHON") {
        return PathBuf::from(p);
    }
    let p = logjet_tests::tools::tool_bin("shippers", "python");
    assert!(
        p.exists(),
        "the shippers' client libraries are not installed: run ./scripts/test.sh (it installs them once per machine, see tests/src/tools.rs)"
    );
    p
}

/// Runs a subcommand of tests/python/shippers.py and returns the JSON it printed.
async fn client(args: &[&str]) -> Value {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/shippers.py");
        let out = Command::new(python())
            .arg(script)
            .args(&args)
            .env("PYTHONWARNINGS", "ignore")
            .output()
            .expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "shippers.py {args:?} failed:\n{stdout}\n{stderr}"
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!("shippers.py {args:?} printed no JSON ({e}):\n{stdout}\n{stderr}")
        })
    })
    .await
    .unwrap()
}

/// Every event of a service, newest first.
async fn events(p: &Platform, service: &str) -> Vec<Value> {
    let r = p.query(json!({"service": service, "limit": 100})).await;
    r["events"].as_array().cloned().unwrap_or_default()
}

/// The one event of `service` whose message is `message`.
fn find<'a>(events: &'a [Value], message: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["message"] == message)
        .unwrap_or_else(|| panic!("no event {message:?} in {events:#?}"))
}

fn messages(events: &[Value]) -> Vec<String> {
    let mut m: Vec<String> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    m.sort();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loki_push_from_a_loki_client_library_and_protobuf_built_from_the_schema() {
    let p = Platform::start(1).await;
    let url = p.ingest_url();

    // python-logging-loki: JSON push, in Loki's current format and its older one.
    let out = client(&["loki-handler", &url]).await;
    assert_eq!(out["errors"], json!([]), "{out}");
    assert_eq!(out["sent"], 6);

    // Snappy-compressed protobuf, its messages built by Python's protobuf runtime from the
    // descriptor set of ingest/proto/loki/push.proto.
    let mut desc = tempfile::NamedTempFile::new().unwrap();
    desc.write_all(logjet_ingest::protocols::proto::LOKI_DESCRIPTOR_SET)
        .unwrap();
    let out = client(&["loki-protobuf", &url, desc.path().to_str().unwrap()]).await;
    assert_eq!(out["ok"]["status"], 204, "{out}");
    // Partial failure: 400 naming the refused entry; the other two were published.
    assert_eq!(out["partial"]["status"], 400, "{out}");
    let body: Value = serde_json::from_str(out["partial"]["body"].as_str().unwrap()).unwrap();
    let details = body["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{body}");
    assert_eq!(
        (details[0]["stream"].as_u64(), details[0]["entry"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(
        details[0]["error"]
            .as_str()
            .unwrap()
            .contains("older than the retention"),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("1 of 3 entries refused, the other 2 were accepted"),
        "{body}"
    );

    let summary = p.wait_for_total(6 + 3 + 2, Duration::from_secs(30)).await;
    assert_eq!(summary["by_service"]["loki-partial"], 2, "{summary}");

    for service in ["loki-py", "loki-py-legacy"] {
        let ev = events(&p, service).await;
        assert_eq!(ev.len(), 3, "{ev:#?}");
        let e = find(&ev, "payment failed for order A-17");
        assert_eq!(e["level"], "error");
        assert_eq!(e["fields"]["order_id"], "A-17");
        assert_eq!(e["fields"]["env"], "test");
        assert_eq!(e["fields"]["logger"], format!("shippers.{service}"));
        assert_eq!(find(&ev, "slow response from upstream")["level"], "warn");
        assert_eq!(find(&ev, "user logged in")["level"], "info");
    }
    let ev = events(&p, "promtail-app").await;
    assert_eq!(messages(&ev), ["disk full on /data", "retrying write"]);
    let e = find(&ev, "disk full on /data");
    assert_eq!(e["level"], "error");
    assert_eq!(e["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(e["fields"]["job"], "varlogs");
    assert_eq!(e["fields"]["filename"], "/var/log/app.log");
    let ev = events(&p, "nginx").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["level"], "warn", "detected from the line");
    assert_eq!(ev[0]["fields"]["pod"], "nginx-1");
    assert_eq!(
        messages(&events(&p, "loki-partial").await),
        ["kept 1", "kept 2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn otlp_logs_from_the_opentelemetry_sdk_in_protobuf_and_json() {
    let p = Platform::start(1).await;
    let url = p.ingest_url();
    let out = client(&["otlp-sdk", &url]).await;
    // Partial success: one record beyond the retention is refused and counted, two are kept.
    let partial = client(&["otlp-partial", &url]).await;
    assert_eq!(partial["status"], 200, "{partial}");
    assert_eq!(partial["content_type"], "application/x-protobuf");
    assert_eq!(partial["has_partial_success"], true);
    assert_eq!(partial["rejected"], 1);
    assert!(
        partial["error_message"]
            .as_str()
            .unwrap()
            .contains("log record 2: field `ts`"),
        "{partial}"
    );

    let summary = p.wait_for_total(4 + 4 + 2, Duration::from_secs(30)).await;
    assert_eq!(summary["by_service"]["otel-partial"], 2, "{summary}");
    assert_eq!(
        messages(&events(&p, "otel-partial").await),
        ["record 1", "record 3"]
    );

    for enc in ["proto", "json"] {
        assert_eq!(out[enc]["flushed"], true, "{out}");
        let ev = events(&p, &format!("otel-{enc}")).await;
        assert_eq!(ev.len(), 4, "{ev:#?}");
        let e = find(&ev, "payment failed for order A-17");
        assert_eq!(e["level"], "error");
        assert_eq!(e["trace_id"], out[enc]["trace_id"], "{e}");
        assert_eq!(e["fields"]["span_id"], out[enc]["span_id"], "{e}");
        assert_eq!(e["fields"]["order.id"], "A-17");
        assert_eq!(e["fields"]["amount"], 12.5);
        assert_eq!(e["fields"]["retry"], 2);
        assert_eq!(e["fields"]["deployment.environment"], "test");
        assert_eq!(e["fields"]["scope.name"], "checkout.payments");
        assert_eq!(e["fields"]["scope.version"], "1.2.3");
        assert_eq!(e["host"], "node-7");
        assert_eq!(
            find(&ev, "cache miss")["level"],
            "debug",
            "severity 5 is DEBUG in OTLP"
        );
        let slow = find(&ev, "slow query");
        assert_eq!(slow["level"], "warn");
        assert_eq!(slow["fields"]["ms"], 950);
        assert_eq!(find(&ev, "disk /data almost full")["level"], "warn");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn elasticsearch_bulk_from_the_official_python_client() {
    let p = Platform::start(1).await;
    let url = p.ingest_url();
    let out = client(&["es-bulk", &url]).await;
    assert_eq!(out["info"]["version"]["number"], "8.19.0", "{out}");
    assert_eq!(out["info"]["tagline"], "You Know, for Search");
    assert_eq!(out["ok"], 6, "{out}");
    assert_eq!(out["errors"], json!([]));
    // One bad document: a per-item 400, the two others kept.
    assert_eq!(out["partial_ok"], 2, "{out}");
    let errors = out["partial_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{out}");
    let item = &errors[0]["index"];
    assert_eq!(item["status"], 400);
    assert_eq!(item["error"]["type"], "document_parsing_exception");
    assert!(
        item["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown level"),
        "{item}"
    );

    let summary = p.wait_for_total(6 + 2, Duration::from_secs(30)).await;
    assert_eq!(summary["by_service"]["es-partial"], 2, "{summary}");

    let ev = events(&p, "es-app").await;
    assert_eq!(
        ev.len(),
        5,
        "the service comes from the index es-app-2026.11.26"
    );
    let e = find(&ev, "GET /items/3 200");
    assert_eq!(e["level"], "info");
    assert_eq!(e["fields"]["http.status"], 200);
    assert_eq!(e["fields"]["_index"], "es-app-2026.11.26");
    let ev = events(&p, "es-ecs").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (&ev[0]["level"], &ev[0]["message"], &ev[0]["host"]),
        (&json!("error"), &json!("payment failed"), &json!("node-3"))
    );
    assert_eq!(ev[0]["fields"]["_index"], "logs-es-ecs-default");
    assert_eq!(
        messages(&events(&p, "es-partial").await),
        ["good 1", "good 2"]
    );

    // What clients and Beats read before sending.
    for path in ["/", "/_license"] {
        let r = p.http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-elastic-product"], "Elasticsearch");
    }
}

fn event_time(secs: i64, nanos: u32) -> Mp {
    let mut d = (secs as u32).to_be_bytes().to_vec();
    d.extend_from_slice(&nanos.to_be_bytes());
    Mp::Ext(0, d)
}

fn mp_map(pairs: &[(&str, Mp)]) -> Mp {
    Mp::Map(
        pairs
            .iter()
            .map(|(k, v)| (Mp::from(*k), v.clone()))
            .collect(),
    )
}

/// Fluent Bit's `http` output (msgpack, json, json_lines) and Vector's `http` sink (NDJSON,
/// JSON array), with their default field names, on `POST /logs`.
///
/// Formats: Fluent Bit's msgpack chunk is a sequence of events `[[EventTime, metadata], record]`
/// (Fluent Bit ≥ 2.1; `[EventTime, record]` before), EventTime being msgpack extension type 0
/// (seconds, nanoseconds as big-endian u32) — Fluent Bit's "Fluent Bit Data Pipeline: Events"
/// documentation; with `format json`/`json_lines` each record gets the event time under
/// `json_date_key` (default `date`) as `json_date_format` (default `double`, epoch seconds) —
/// the `http` output's documentation. Vector's `http` sink with `encoding.codec = "json"` sends
/// its log events, whose default fields are `message`, `timestamp` (RFC 3339), `host` and
/// `source_type` (plus source-specific ones such as `file`), as NDJSON with `framing.method =
/// "newline_delimited"` or as a JSON array with `framing.method = "json"`… — Vector's log data
/// model and `http` sink documentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fluent_bit_and_vector_payloads_with_their_default_fields() {
    let p = Platform::start(1).await;
    let url = p.ingest_url();
    let now = chrono::Utc::now();
    let secs = now.timestamp() - 30;

    // Fluent Bit, format msgpack (the default), tail input + kubernetes-like record.
    let mut body = Vec::new();
    for v in [
        Mp::Array(vec![
            Mp::Array(vec![event_time(secs, 123_456_789), Mp::Map(vec![])]),
            mp_map(&[
                ("log", Mp::from("ERROR connection refused to db:5432")),
                ("stream", Mp::from("stderr")),
                (
                    "kubernetes",
                    mp_map(&[
                        ("pod_name", Mp::from("api-7f9c")),
                        ("namespace_name", Mp::from("prod")),
                    ]),
                ),
            ]),
        ]),
        Mp::Array(vec![
            event_time(secs, 0),
            mp_map(&[
                ("log", Mp::from("GET /healthz 200")),
                ("stream", Mp::from("stdout")),
            ]),
        ]),
    ] {
        rmpv::encode::write_value(&mut body, &v).unwrap();
    }
    // A truncated last event: refused by position, the two before it kept.
    body.extend_from_slice(&[0x92, 0x92]);
    let r = p
        .http
        .post(format!("{url}/logs?service=fluent-bit-mp"))
        .header("content-type", "application/msgpack")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let resp: Value = r.json().await.unwrap();
    assert_eq!(resp["accepted"], 2, "{resp}");
    assert_eq!(resp["rejected"][0]["line"], 3, "{resp}");

    // Fluent Bit, format json and json_lines: `date` as epoch seconds (double).
    let date = secs as f64 + 0.25;
    let records = [
        json!({"date": date, "log": "WARN cache nearly full", "stream": "stdout"}),
        json!({"date": date, "log": "worker started", "stream": "stdout"}),
    ];
    let r = p
        .http
        .post(format!("{url}/logs?service=fluent-bit-json"))
        .header("content-type", "application/json")
        .body(serde_json::to_string(&records).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let lines: String = records.iter().map(|r| format!("{r}\n")).collect();
    let r = p
        .http
        .post(format!("{url}/logs?service=fluent-bit-lines"))
        .header("content-type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Vector, `http` sink, json codec: NDJSON and a JSON array.
    let ts =
        (now - chrono::Duration::seconds(20)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let vector: Vec<Value> = (0..3)
        .map(|i| json!({"message": format!("request {i} served"), "timestamp": ts, "host": "node-1", "source_type": "file", "file": "/var/log/app.log"}))
        .collect();
    let r = p
        .http
        .post(format!("{url}/logs?service=vector-nd"))
        .header("content-type", "application/x-ndjson")
        .body(vector.iter().map(|v| format!("{v}\n")).collect::<String>())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = p
        .http
        .post(format!("{url}/logs?service=vector-array"))
        .header("content-type", "application/json")
        .body(serde_json::to_string(&vector).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    p.wait_for_total(2 + 2 + 2 + 3 + 3, Duration::from_secs(30))
        .await;
    let ev = events(&p, "fluent-bit-mp").await;
    let e = find(&ev, "ERROR connection refused to db:5432");
    assert_eq!(e["level"], "error");
    assert!(
        e["ts"].as_str().unwrap().ends_with(".123456789Z"),
        "EventTime keeps ns: {e}"
    );
    assert_eq!(e["fields"]["stream"], "stderr");
    assert_eq!(e["fields"]["kubernetes.pod_name"], "api-7f9c");
    assert_eq!(find(&ev, "GET /healthz 200")["level"], "info");
    for service in ["fluent-bit-json", "fluent-bit-lines"] {
        let ev = events(&p, service).await;
        let e = find(&ev, "WARN cache nearly full");
        assert_eq!(e["level"], "warn");
        let ts = chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).unwrap();
        let want = chrono::DateTime::from_timestamp(secs, 250_000_000).unwrap();
        // An epoch in an f64 is exact to a few hundred nanoseconds.
        assert!(
            (ts.timestamp_nanos_opt().unwrap() - want.timestamp_nanos_opt().unwrap()).abs() < 1_000,
            "{e}"
        );
        assert_eq!(e["fields"]["stream"], "stdout");
    }
    for service in ["vector-nd", "vector-array"] {
        let ev = events(&p, service).await;
        assert_eq!(ev.len(), 3);
        let e = find(&ev, "request 1 served");
        assert_eq!(e["host"], "node-1");
        assert_eq!(e["fields"]["source_type"], "file");
        assert_eq!(e["fields"]["file"], "/var/log/app.log");
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).unwrap(),
            chrono::DateTime::parse_from_rfc3339(&ts).unwrap()
        );
    }
}

const SHIPPER_KEY: &str = "lj_shipper_51c0de5e4a9b";

/// Every protocol route is behind the same API keys as `POST /logs`, and an `Idempotency-Key`
/// makes a retried request count once whatever the protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn protocols_share_auth_and_idempotency_with_post_logs() {
    let p = Platform::start(1).await;
    let mut keys = tempfile::NamedTempFile::new().unwrap();
    writeln!(keys, "{}", key_line("shipper", "ingest", SHIPPER_KEY)).unwrap();
    let mut cfg = platform::ingest_config(&p.nats.url());
    cfg.api = ApiSettings {
        auth: AuthSetting::On,
        api_keys_file: Some(keys.path().to_path_buf()),
        rate_limit_per_second: 0,
        ..ApiSettings::default()
    };
    let ingest = platform::start_ingest(cfg).await;
    p.wait_ready(&ingest.url()).await;
    let base = ingest.url();
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let loki = json!({"streams": [{"stream": {"app": "idem-loki"}, "values": [[now_ns.to_string(), "once"]]}]}).to_string();
    let bulk = "{\"index\":{\"_index\":\"idem-es\"}}\n{\"message\":\"once\"}\n".to_string();
    let otlp = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "idem-otlp"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": now_ns.to_string(), "body": {"stringValue": "once"}}]}]}]}).to_string();
    let cases = [
        ("/loki/api/v1/push", "application/json", loki, 204),
        ("/_bulk", "application/x-ndjson", bulk, 200),
        ("/v1/logs", "application/json", otlp, 200),
    ];
    for (path, ct, body, ok) in &cases {
        let r = p
            .http
            .post(format!("{base}{path}"))
            .header("content-type", *ct)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} without a key");
        for _ in 0..2 {
            let r = p
                .http
                .post(format!("{base}{path}"))
                .bearer_auth(SHIPPER_KEY)
                .header("content-type", *ct)
                .header("idempotency-key", format!("retry-of-{path}"))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), *ok, "{path}: {}", r.text().await.unwrap());
        }
    }
    let r = p.http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let summary = p.wait_for_total(3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        p.summary().await["total"],
        3,
        "retries counted once: {summary}"
    );
    let duplicates = platform::metric(
        &p.http,
        &base,
        "logjet_ingest_events_total{outcome=\"duplicate\"}",
    )
    .await;
    assert_eq!(duplicates, 3);
    ingest.stop().await;
}

/// With JetStream away every protocol answers 503 with `Retry-After`, in its own error shape,
/// and nothing of those requests is counted; once it is back the same requests are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_down_means_503_with_retry_after_on_every_protocol() {
    let mut p = Platform::start(1).await;
    let url = p.ingest_url();
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let loki = json!({"streams": [{"stream": {"app": "down-loki"}, "values": [[now_ns.to_string(), "x"]]}]}).to_string();
    let bulk = "{\"index\":{\"_index\":\"down-es\"}}\n{\"message\":\"x\"}\n".to_string();
    let otlp = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "down-otlp"}}]},
        "scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}}]}]}]}).to_string();
    let cases = [
        ("/loki/api/v1/push", "application/json", loki),
        ("/_bulk", "application/x-ndjson", bulk),
        ("/v1/logs", "application/json", otlp),
    ];
    let send = |path: &str, ct: &str, body: &str| {
        p.http
            .post(format!("{url}{path}"))
            .header("content-type", ct)
            .body(body.to_string())
            .send()
    };
    p.nats.kill().await;
    for (path, ct, body) in &cases {
        let mut refused = None;
        for _ in 0..100 {
            let r = send(path, ct, body).await.unwrap();
            if r.status() == 503 {
                refused = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = refused.unwrap_or_else(|| panic!("{path}: no 503 while NATS is down"));
        assert!(r.headers().contains_key("retry-after"), "{path}");
        let es = r.headers().get("x-elastic-product").cloned();
        let b: Value = r.json().await.unwrap();
        match *path {
            "/_bulk" => {
                assert_eq!(es.unwrap(), "Elasticsearch");
                assert_eq!(b["status"], 503, "{b}");
                assert_eq!(b["error"]["type"], "unavailable_shards_exception", "{b}");
            }
            "/v1/logs" => assert_eq!(b["code"], 14, "google.rpc UNAVAILABLE: {b}"),
            _ => assert!(b["error"].as_str().unwrap().contains("unavailable"), "{b}"),
        }
    }
    p.nats.restart().await;
    p.wait_ready(&url).await;
    for (path, ct, body) in &cases {
        let r = send(path, ct, body).await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let summary = p.wait_for_total(3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        p.summary().await["total"],
        3,
        "the refused requests left nothing: {summary}"
    );
}
