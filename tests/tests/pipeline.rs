//! The pipeline end to end: HTTP and `nats pub` in, exact counts and searchable events out,
//! through crashes and outages. Real nats-server and redis-server, started per test.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use logjet_core::Level;
use logjet_tests::platform::Platform;
use serde_json::{Value, json};

const SERVICES: [&str; 3] = ["api", "web", "billing"];
const LEVELS: [Level; 4] = [Level::Info, Level::Warn, Level::Error, Level::Debug];

#[derive(Default)]
struct Expected {
    total: u64,
    by_level: BTreeMap<String, u64>,
    by_service: BTreeMap<String, u64>,
}

impl Expected {
    fn add(&mut self, service: &str, level: Level) {
        self.total += 1;
        *self.by_level.entry(level.as_str().into()).or_default() += 1;
        *self.by_service.entry(service.into()).or_default() += 1;
    }

    fn check(&self, summary: &Value) {
        assert_eq!(summary["total"].as_u64(), Some(self.total), "{summary}");
        for level in Level::ALL {
            let want = self.by_level.get(level.as_str()).copied().unwrap_or(0);
            assert_eq!(
                summary["by_level"][level.as_str()].as_u64(),
                Some(want),
                "level {level}: {summary}"
            );
        }
        for (svc, n) in &self.by_service {
            assert_eq!(
                summary["by_service"][svc].as_u64(),
                Some(*n),
                "service {svc}: {summary}"
            );
        }
        assert_eq!(
            summary["by_service"].as_object().unwrap().len(),
            self.by_service.len(),
            "{summary}"
        );
    }
}

fn pick(i: usize) -> (&'static str, Level) {
    (SERVICES[i % 3], LEVELS[(i / 3) % 4])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_thousand_events_in_every_format_are_counted_exactly() {
    let p = Platform::start(3).await;
    let mut exp = Expected::default();
    let mut i = 0usize;

    // 1. 500 single JSON objects, one per POST.
    for _ in 0..500 {
        let (svc, level) = pick(i);
        let body = json!({"service": svc, "level": level.as_str(), "msg": format!("object {i}"), "req": {"id": i}});
        let r = p.post("application/json", body.to_string()).await;
        assert_eq!(r.status(), 202);
        exp.add(svc, level);
        i += 1;
    }
    // 2. 3,000 events as JSON arrays of 100, with explicit epoch-ms timestamps.
    let base_ms = chrono::Utc::now().timestamp_millis() - 60_000;
    for _ in 0..30 {
        let arr: Vec<Value> = (0..100)
            .map(|_| {
                let (svc, level) = pick(i);
                exp.add(svc, level);
                let v = json!({"app": svc, "severity": level.as_str().to_uppercase(), "message": format!("array {i}"), "timestamp": base_ms + i as i64, "order_id": format!("order-{i}")});
                i += 1;
                v
            })
            .collect();
        let r = p
            .post("application/json", serde_json::to_string(&arr).unwrap())
            .await;
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["accepted"], 100);
    }
    // 3. 3,500 events as NDJSON, gzip-compressed, in batches of 500.
    for _ in 0..7 {
        let mut nd = String::new();
        for _ in 0..500 {
            let (svc, level) = pick(i);
            exp.add(svc, level);
            nd.push_str(&json!({"service": svc, "lvl": level.as_str(), "text": format!("ndjson {i}"), "http": {"status": 200 + (i % 5)}}).to_string());
            nd.push('\n');
            i += 1;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(nd.as_bytes()).unwrap();
        let r = p
            .http
            .post(format!("{}/logs", p.ingest_url()))
            .header("content-type", "application/x-ndjson")
            .header("content-encoding", "gzip")
            .body(gz.finish().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(r.json::<Value>().await.unwrap()["accepted"], 500);
    }
    // 4. 3,000 plain-text lines, level detected from the text, service from ?service=.
    for chunk in 0..6 {
        let svc = SERVICES[chunk % 3];
        let mut text = String::new();
        for _ in 0..500 {
            let level = LEVELS[(i / 3) % 4];
            let word = match level {
                Level::Error => "ERROR",
                Level::Warn => "WARN",
                Level::Debug => "DEBUG",
                _ => "note:",
            };
            exp.add(svc, level);
            text.push_str(&format!("{word} text line {i}\n"));
            i += 1;
        }
        let r = p
            .http
            .post(format!("{}/logs?service={svc}", p.ingest_url()))
            .header("content-type", "text/plain")
            .body(text)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    assert_eq!(i, 10_000);

    // 5. 2,000 raw core-NATS publishes, no headers, as `nats pub` sends them.
    let nc = p.nats_client().await;
    for n in 0..2000usize {
        let svc = SERVICES[n % 3];
        if n % 2 == 0 {
            nc.publish(
                format!("logs.{svc}"),
                format!("disk almost full on node {n}").into(),
            )
            .await
            .unwrap();
            exp.add(svc, Level::Info);
        } else {
            nc.publish(
                format!("logs.{svc}"),
                json!({"level": "error", "message": format!("boom {n}"), "code": n})
                    .to_string()
                    .into(),
            )
            .await
            .unwrap();
            exp.add(svc, Level::Error);
        }
    }
    nc.flush().await.unwrap();

    let summary = p.wait_for_total(12_000, Duration::from_secs(60)).await;
    exp.check(&summary);
    // Stays exact (no late duplicates).
    tokio::time::sleep(Duration::from_secs(1)).await;
    exp.check(&p.summary().await);

    // The time series adds up to the same total, per level too.
    let ts: Value = p
        .http
        .get(format!(
            "{}/stats/timeseries?step=10s&from=10m",
            p.query_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let points = ts["points"].as_array().unwrap();
    assert_eq!(ts["step_secs"], 10);
    assert_eq!(
        points
            .iter()
            .map(|p| p["total"].as_u64().unwrap())
            .sum::<u64>(),
        12_000
    );
    let errors: u64 = points
        .iter()
        .map(|p| p["by_level"]["error"].as_u64().unwrap())
        .sum();
    assert_eq!(errors, exp.by_level["error"]);

    // Sampled events come back with their fields and timestamps.
    let r = p.query(json!({"contains": "order-1234"})).await;
    let events = r["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{r}");
    let ev = &events[0];
    assert_eq!(ev["message"], "array 1234");
    assert_eq!(ev["fields"]["order_id"], "order-1234");
    let want_ts = chrono::DateTime::from_timestamp_millis(base_ms + 1234).unwrap();
    let got_ts = chrono::DateTime::parse_from_rfc3339(ev["ts"].as_str().unwrap()).unwrap();
    assert_eq!(got_ts, want_ts);
    let (svc, level) = pick(1234);
    assert_eq!(ev["service"], svc);
    assert_eq!(ev["level"], level.as_str());

    let r = p
        .query(json!({"service": "web", "contains": "ndjson 4000"}))
        .await;
    let ev = &r["events"][0];
    assert_eq!(ev["message"], "ndjson 4000");
    assert_eq!(ev["fields"]["http.status"], 200);

    let r = p.query(json!({"contains": "boom 1999"})).await;
    assert_eq!(r["events"][0]["fields"]["code"], 1999);
    assert_eq!(r["events"][0]["service"], SERVICES[1999 % 3]);

    // The design's example body, newest first, paged by cursor without overlap.
    let r = p.query(json!({"service": "api", "limit": 10})).await;
    assert_eq!(r["events"].as_array().unwrap().len(), 10);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = Value::Null;
    let mut last_ts = String::from("9999");
    for _ in 0..5 {
        let r = p
            .query(json!({"service": "billing", "level": "error", "limit": 200, "cursor": cursor}))
            .await;
        for e in r["events"].as_array().unwrap() {
            let ts = e["ts"].as_str().unwrap().to_string();
            assert!(ts <= last_ts, "not newest first: {ts} after {last_ts}");
            last_ts = ts;
            assert_eq!(e["service"], "billing");
            assert_eq!(e["level"], "error");
            assert!(seen.insert(e.to_string()), "duplicate across pages");
        }
        cursor = r["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen.len() as u64, {
        // billing errors sent
        let s = p.summary().await;
        s["by_service_level"]["billing"]["error"]
            .as_u64()
            .unwrap()
            .min(1000)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_redis_write_and_ack_changes_nothing() {
    use logjet_processor::aggregate::{Aggregator, MessageEvents, PlanSettings, plan_batch};
    use logjet_processor::decode::{self, MessageMeta};

    let mut p = Platform::start(0).await;
    let nd: String = (0..500)
        .map(|i| format!("{{\"service\":\"api\",\"message\":\"m{i}\"}}\n"))
        .collect();
    assert_eq!(p.post("application/x-ndjson", nd).await.status(), 202);

    // A "processor" that applies a batch and dies before acking: the real decode, plan and apply
    // code, then the messages are dropped unacknowledged, exactly what a SIGKILL leaves behind.
    let cfg = p.processor_config();
    let client = p.nats_client().await;
    let js = logjet_core::jetstream::context(client, Duration::from_secs(5));
    let info = logjet_core::jetstream::ensure_stream(
        &js,
        logjet_core::jetstream::logs_stream_config(&cfg.stream),
    )
    .await
    .unwrap();
    let consumer = logjet_core::jetstream::ensure_processor_consumer(&js, &cfg)
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(100).messages().await.unwrap();
    let mut msgs = Vec::new();
    while let Some(m) = batch.next().await {
        msgs.push(m.unwrap());
    }
    assert!(!msgs.is_empty());
    let decoded: Vec<(u64, decode::Decoded)> = msgs
        .iter()
        .map(|m| {
            let i = m.info().unwrap();
            let meta = MessageMeta {
                subject: m.subject.as_str(),
                headers: m.headers.as_ref(),
                published: chrono::DateTime::from_timestamp_nanos(
                    i.published.unix_timestamp_nanos() as i64,
                ),
                max_age: cfg.stream.stream_max_age,
            };
            (i.stream_sequence, decode::decode(&m.payload, &meta))
        })
        .collect();
    let inputs: Vec<MessageEvents<'_>> = decoded
        .iter()
        .map(|(s, d)| MessageEvents {
            seq: *s,
            events: &d.events,
        })
        .collect();
    let settings = PlanSettings {
        stream_id: logjet_core::jetstream::stream_incarnation(&info),
        retention: cfg.stream.stream_max_age,
        recent_retention: cfg.recent_retention,
    };
    let planned = plan_batch(&inputs, &settings, chrono::Utc::now());
    let conn = logjet_core::store::connect_lazy(&p.redis.url(), Duration::from_secs(5)).unwrap();
    let applied = Aggregator::new(conn).apply_batch(&planned).await.unwrap();
    assert_eq!(applied.fresh_events, 500);
    drop(msgs); // crash: no ack
    p.wait_for_total(500, Duration::from_secs(10)).await;

    // Real processors get the redeliveries after ack_wait and must not count them again.
    p.add_processor().await;
    p.add_processor().await;
    let mut consumer = consumer;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let i = consumer.info().await.unwrap().clone();
        // Every delivery takes a consumer sequence: more of them than stream messages means the
        // crashed batch was delivered again.
        if i.num_pending == 0
            && i.num_ack_pending == 0
            && i.delivered.consumer_sequence > i.delivered.stream_sequence
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "redelivery did not finish: {i:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = p.summary().await;
    assert_eq!(s["total"], 500, "{s}");
    let already = p
        .processors_metric("logjet_processor_messages_total{outcome=\"already_applied\"}")
        .await;
    assert!(
        already >= 1,
        "the redelivered message was not recognised as applied"
    );
    // And search holds each event once.
    let r = p.query(json!({"contains": "m499"})).await;
    assert_eq!(r["events"].as_array().unwrap().len(), 1, "{r}");
}

/// Posts batches of `size` events until stopped, each retried with its Idempotency-Key until
/// ingest answers 202. Returns (events acknowledged, 503s seen).
/// What a loader saw: events acknowledged, requests refused, and when each acknowledged request
/// was sent and answered.
struct Load {
    acked: u64,
    unavailable: u64,
    accepted: Vec<(Instant, Instant)>,
}

fn spawn_loader(p: &Platform, size: usize, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Load> {
    let http = p.http.clone();
    let url = format!("{}/logs", p.ingest_url());
    tokio::spawn(async move {
        let acked = AtomicU64::new(0);
        let mut unavailable = 0u64;
        let mut accepted = Vec::new();
        let mut batch = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let body: String = (0..size)
                .map(|i| format!("{{\"service\":\"load\",\"message\":\"b{batch} e{i}\"}}\n"))
                .collect();
            let key = format!("batch-{batch}");
            loop {
                let sent = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .header("idempotency-key", &key)
                    .body(body.clone())
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 202 => {
                        acked.fetch_add(size as u64, Ordering::SeqCst);
                        accepted.push((sent, Instant::now()));
                        break;
                    }
                    Ok(r) => {
                        assert_eq!(r.status(), 503, "only 503 is expected while NATS is away");
                        assert!(r.headers().contains_key("retry-after"));
                        unavailable += 1;
                    }
                    Err(_) => unavailable += 1,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            batch += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Load {
            acked: acked.load(Ordering::SeqCst),
            unavailable,
            accepted,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_down_means_503_and_nothing_acknowledged_is_lost() {
    let mut p = Platform::start(2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let loader = spawn_loader(&p, 50, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    let killed = Instant::now();
    p.nats.kill().await;
    // While NATS is away: 503 with Retry-After, and ingest is not ready.
    let mut saw_503 = false;
    let mut saw_unready = false;
    for _ in 0..100 {
        let r = p.post("text/plain", "hello while nats is down").await;
        if r.status() == 503 {
            assert!(r.headers().contains_key("retry-after"));
            let b: Value = r.json().await.unwrap();
            assert!(b["error"].as_str().unwrap().contains("unavailable"), "{b}");
            saw_503 = true;
        }
        let ready = p
            .http
            .get(format!("{}/readyz", p.ingest_url()))
            .send()
            .await
            .unwrap();
        saw_unready |= ready.status() == 503;
        if saw_503 && saw_unready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        saw_503 && saw_unready,
        "503: {saw_503}, unready: {saw_unready}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let restarting = Instant::now();
    p.nats.restart().await;
    p.wait_ready(&p.ingest_url()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let Load {
        acked,
        unavailable,
        accepted,
    } = loader.await.unwrap();
    // A request in flight when NATS went away was answered then (503), not accepted once it came
    // back: no publish waits out an outage in the client's buffer.
    for (sent, answered) in &accepted {
        assert!(
            !(*sent < killed && *answered > restarting),
            "a request sent before the outage was acknowledged after it"
        );
    }
    assert!(unavailable > 0, "the loader never saw the outage");
    assert!(acked > 0);
    p.wait_for_total(acked, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_for_five_seconds_under_load_recovers_exactly() {
    let mut p = Platform::start_with(2, true).await;
    let stop = Arc::new(AtomicBool::new(false));
    let loader = spawn_loader(&p, 100, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.redis.kill().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    p.redis.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let acked = loader.await.unwrap().acked;
    p.wait_for_total(acked, Duration::from_secs(60)).await;
    let naks = p
        .processors_metric("logjet_processor_messages_total{outcome=\"nak\"}")
        .await;
    assert!(
        naks > 0,
        "no batch was nak'ed: was Redis really down under load?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_request_with_the_same_idempotency_key_counts_once() {
    let p = Platform::start(1).await;
    let body: String = (0..300)
        .map(|i| format!("{{\"service\":\"pay\",\"message\":\"charge {i}\"}}\n"))
        .collect();
    let send = || {
        p.http
            .post(format!("{}/logs", p.ingest_url()))
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "charge-batch-7")
            .body(body.clone())
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(first["accepted"], 300);
    assert!(first.get("duplicates").is_none());
    p.wait_for_total(300, Duration::from_secs(20)).await;
    let second: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(second["accepted"], 300);
    assert_eq!(second["duplicates"], 300);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(p.summary().await["total"], 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_clear_4xx_and_the_valid_part_is_kept() {
    let p = Platform::start(1).await;

    // A malformed line inside NDJSON: the others are kept, its line number reported.
    let r = p
        .post(
            "application/x-ndjson",
            "{\"message\":\"one\"}\n{\"message\": nope}\n{\"message\":\"three\"}\n",
        )
        .await;
    assert_eq!(r.status(), 202);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["accepted"], 2);
    assert_eq!(b["rejected"][0]["line"], 2);
    assert!(
        b["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );

    // Wrong content type.
    let r = p
        .post("application/x-www-form-urlencoded", "message=hi")
        .await;
    assert_eq!(r.status(), 415);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("content type")
    );

    // Empty body.
    let r = p.post("application/json", "").await;
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("empty")
    );

    // Over the body limit (16 MiB by default).
    let big = vec![b'a'; 17 * 1024 * 1024];
    let r = p.post("text/plain", big).await;
    assert_eq!(r.status(), 413);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("limit")
    );

    // A gzip bomb stops at the same limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'x'; 40 * 1024 * 1024]).unwrap();
    let r = p
        .http
        .post(format!("{}/logs", p.ingest_url()))
        .header("content-type", "text/plain")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // Invalid UTF-8.
    let r = p.post("text/plain", vec![0xff, 0xfe, b'a']).await;
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["details"][0]["line"], 1);
    assert!(b["details"][0]["error"].as_str().unwrap().contains("UTF-8"));

    // 10,000-deep nesting: an error, not a stack overflow.
    let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let r = p.post("application/json", deep).await;
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["details"][0]["error"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{b}"
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(p.post("application/json", deep).await.status(), 400);

    // Nothing valid at all: 400 with every line's reason.
    let r = p.post("application/x-ndjson", "{bad\n[1]\n").await;
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["details"].as_array().unwrap().len(), 2);

    // A bad ?service= names the parameter; unknown routes answer JSON too.
    let r = p
        .http
        .post(format!("{}/logs?service=%2A%2A", p.ingest_url()))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("`service`")
    );
    let r = p
        .http
        .get(format!("{}/nope", p.ingest_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.is_ok());

    // Query errors name the field.
    let r = p
        .http
        .post(format!("{}/logs/query", p.query_url()))
        .json(&json!({"limit": 5000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("`limit`")
    );
    let r = p
        .http
        .post(format!("{}/logs/query", p.query_url()))
        .json(&json!({"servce": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("servce")
    );

    // Still alive, and the two good lines were counted.
    assert_eq!(
        p.http
            .get(format!("{}/healthz", p.ingest_url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    p.wait_for_total(2, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unparseable_nats_payloads_go_to_the_dead_letter_stream_with_the_reason() {
    let p = Platform::start(1).await;
    let nc = p.nats_client().await;
    // Entirely bad: one broken JSON line.
    nc.publish("logs.api", "{\"message\": \"unterminated".into())
        .await
        .unwrap();
    // Partly bad: the good lines count, the bad one is dead-lettered.
    nc.publish(
        "logs.web",
        "good line one\n{\"level\":\"nonsense\",\"message\":\"x\"}\ngood line two".into(),
    )
    .await
    .unwrap();
    nc.flush().await.unwrap();
    p.wait_for_total(2, Duration::from_secs(20)).await;

    let js = async_nats::jetstream::new(nc);
    let mut dlq = js.get_stream("LOGS_DLQ").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dlq.info().await.unwrap().state.messages < 2 {
        assert!(std::time::Instant::now() < deadline, "dead letters missing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = dlq.get_raw_message(1).await.unwrap();
    let second = dlq.get_raw_message(2).await.unwrap();
    let mut by_subject = std::collections::HashMap::new();
    for m in [first, second] {
        by_subject.insert(m.subject.to_string(), m);
    }
    let api = &by_subject["deadletter.logs.api"];
    assert_eq!(&api.payload[..], b"{\"message\": \"unterminated\n");
    let reason = api
        .headers
        .get("Logjet-Dlq-Reason")
        .unwrap()
        .as_str()
        .to_string();
    assert!(reason.starts_with("line 1: invalid JSON"), "{reason}");
    let web = &by_subject["deadletter.logs.web"];
    assert_eq!(
        &web.payload[..],
        b"{\"level\":\"nonsense\",\"message\":\"x\"}\n"
    );
    let reason = web
        .headers
        .get("Logjet-Dlq-Reason")
        .unwrap()
        .as_str()
        .to_string();
    assert!(reason.starts_with("line 2: field `level`"), "{reason}");
    assert_eq!(
        web.headers.get("Logjet-Dlq-Subject").unwrap().as_str(),
        "logs.web"
    );
    // Nothing is left for redelivery: the bad message was terminated, the mixed one acked.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(p.summary().await["total"], 2);
    assert_eq!(
        p.processors_metric("logjet_processor_messages_total{outcome=\"dead_lettered\"}")
            .await,
        1
    );
    assert_eq!(
        p.processors_metric("logjet_processor_dead_letters_total{reason=\"invalid_json\"}")
            .await,
        1
    );
}
