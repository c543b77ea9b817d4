//! Live tail: fed from JetStream, in order, fast, and a slow client never stalls the others.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use logjet_tests::platform::{self, Platform};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// A minimal SSE reader over a streaming reqwest response.
struct Sse {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Sse {
    async fn open(url: &str) -> Sse {
        let r = reqwest::get(url).await.expect("tail request");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        Sse {
            stream: r.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// Next (event, data), skipping keep-alive comments.
    async fn next(&mut self, timeout: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if data.is_empty() && event == "message" {
                    continue;
                }
                return Some((event, data));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posted_events_reach_an_open_tail_in_order_within_a_second() {
    let p = Platform::start(1).await;
    let mut tail = Sse::open(&format!(
        "{}/logs/tail?service=checkout&min_level=warn",
        p.query_url()
    ))
    .await;
    // Give the consumer a moment to bind; events before "now" are not expected.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..10 {
        let sent = Instant::now();
        let r = p
            .post("application/json", json!({"service": "checkout", "level": "error", "message": format!("tail event {i}")}).to_string())
            .await;
        assert_eq!(r.status(), 202);
        // Noise that the filters must drop: another service, a lower level.
        p.post(
            "application/json",
            json!({"service": "other", "level": "error", "message": "noise"}).to_string(),
        )
        .await;
        p.post(
            "application/json",
            json!({"service": "checkout", "level": "info", "message": "noise"}).to_string(),
        )
        .await;
        let (event, data) = tail
            .next(Duration::from_secs(1))
            .await
            .unwrap_or_else(|| panic!("event {i} did not arrive within 1 s"));
        assert!(sent.elapsed() < Duration::from_secs(1));
        assert_eq!(event, "log");
        let ev: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(ev["message"], format!("tail event {i}"));
        assert_eq!(ev["service"], "checkout");
    }
    // Raw `nats pub` payloads are tailed too.
    let nc = p.nats_client().await;
    nc.publish("logs.checkout", "WARN published straight to NATS".into())
        .await
        .unwrap();
    nc.flush().await.unwrap();
    let (_, data) = tail
        .next(Duration::from_secs(1))
        .await
        .expect("nats pub event");
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap()["message"],
        "WARN published straight to NATS"
    );

    // A tail from `since` replays what is already in the stream.
    let mut replay = Sse::open(&format!(
        "{}/logs/tail?service=checkout&contains=tail%20event&since=5m",
        p.query_url()
    ))
    .await;
    for i in 0..10 {
        let (_, data) = replay
            .next(Duration::from_secs(2))
            .await
            .expect("replayed event");
        assert_eq!(
            serde_json::from_str::<Value>(&data).unwrap()["message"],
            format!("tail event {i}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_is_dropped_without_stalling_another() {
    let mut p = Platform::start(1).await;
    // A query service with a small per-tail buffer and at most two tails.
    let mut cfg = platform::query_config(&p.nats.url(), &p.redis.url());
    cfg.tail_buffer = 64;
    cfg.max_tails = 2;
    let q = platform::start_query(cfg).await;
    let base = q.url();

    // The stalled client: asks for the tail and never reads a byte.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock.connect(q.addr).await.unwrap();
    stalled
        .write_all(format!("GET /logs/tail HTTP/1.1\r\nHost: {}\r\n\r\n", q.addr).as_bytes())
        .await
        .unwrap();
    let mut good = Sse::open(&format!("{base}/logs/tail")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A third tail is over the limit.
    let r = reqwest::get(format!("{base}/logs/tail")).await.unwrap();
    assert_eq!(r.status(), 503);

    // Flood: far more than the socket buffers and the tail buffer hold.
    let big = "x".repeat(2000);
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some((event, _)) = good.next(Duration::from_secs(5)).await {
            assert_eq!(event, "log", "the reading client must not be dropped");
            n += 1;
            if n == 8000 {
                break;
            }
        }
        (n, good)
    });
    for b in 0..8 {
        let body: String = (0..1000)
            .map(|i| {
                json!({"service": "flood", "message": format!("{b}-{i} {big}")}).to_string() + "\n"
            })
            .collect();
        assert_eq!(p.post("application/x-ndjson", body).await.status(), 202);
    }
    let (n, mut good) = reader.await.unwrap();
    assert_eq!(n, 8000, "the reading client fell behind");

    // The stalled one was dropped (metric), and its slot is free again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dropped = platform::metric(&p.http, &base, "logjet_query_tails_dropped_total").await;
        let open = platform::metric(&p.http, &base, "logjet_query_open_tails").await;
        if dropped == 1 && open == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "dropped={dropped} open={open}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and the good client still gets new events at once.
    let sent = Instant::now();
    p.post("text/plain", "after the flood").await;
    loop {
        let (_, data) = good
            .next(Duration::from_secs(1))
            .await
            .expect("event after the flood");
        if data.contains("after the flood") {
            break;
        }
    }
    assert!(sent.elapsed() < Duration::from_secs(1));
    drop(stalled);
    p.processors.clear();
}
