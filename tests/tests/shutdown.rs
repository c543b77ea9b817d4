//! Graceful shutdown of the real binaries under load: SIGTERM makes readiness fail, lets
//! in-flight work finish, hands prefetched messages back, and exits well within the grace period.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use futures::StreamExt;
use logjet_tests::servers::{NatsServer, RedisServer, free_port};
use tokio::process::{Child, Command};

fn bin(name: &str) -> PathBuf {
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo build --bins` (scripts/test.sh does)",
        p.display()
    );
    p
}

async fn start(name: &str, env: &[(&str, String)]) -> (Child, String) {
    let port = free_port();
    let mut cmd = Command::new(bin(name));
    cmd.env("LOGJET_LISTEN", format!("127.0.0.1:{port}"))
        .env("LOGJET_AUTH", "off")
        .env("LOGJET_RATE_LIMIT_PER_SECOND", "0")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = logjet_tests::http_client();
    for _ in 0..400 {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} not ready");
}

fn sigterm(child: &Child) {
    // A test harness: std has no safe call for this (signals, sysconf, clock_gettime).
    #[allow(unsafe_code)]
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id().unwrap() as i32, libc::SIGTERM)
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_drains_and_exits_quickly() {
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let env_nats = ("LOGJET_NATS_URL", nats.url());
    let env_redis = ("LOGJET_REDIS_URL", redis.url());
    let (mut ingest, ingest_url) = start("logjet-ingest", std::slice::from_ref(&env_nats)).await;
    // ack_wait of 60 s: if SIGTERM left messages un-acked and un-nak'ed, they would sit pending.
    let (mut processor, _) = start(
        "logjet-processor",
        &[
            env_nats.clone(),
            env_redis.clone(),
            ("LOGJET_ACK_WAIT", "60s".into()),
            ("LOGJET_FETCH_BATCH", "64".into()),
        ],
    )
    .await;
    let (_query, query_url) = start("logjet-query", &[env_nats.clone(), env_redis.clone()]).await;

    // Load: batches posted continuously; count acknowledgements and every status seen.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let fives = Arc::new(AtomicU64::new(0));
    let loader = {
        let (stop, acked, fives, url) = (
            stop.clone(),
            acked.clone(),
            fives.clone(),
            ingest_url.clone(),
        );
        tokio::spawn(async move {
            let http = logjet_tests::http_client();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let body: String = (0..200)
                    .map(|i| format!("{{\"service\":\"drain\",\"message\":\"b{n} e{i}\"}}\n"))
                    .collect();
                match http
                    .post(format!("{url}/logs"))
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 202 => {
                        acked.fetch_add(200, Ordering::SeqCst);
                    }
                    Ok(r) if r.status().is_server_error() && r.status() != 503 => {
                        fives.fetch_add(1, Ordering::SeqCst);
                    }
                    // 503 (documented) or a refused connection once the listener is closed.
                    _ => {}
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The processor: SIGTERM mid-stream. It must exit fast, leaving nothing in flight.
    let t = Instant::now();
    sigterm(&processor);
    let status = tokio::time::timeout(Duration::from_secs(15), processor.wait())
        .await
        .expect("processor exits within 15 s")
        .unwrap();
    assert!(status.success(), "processor exit: {status:?}");
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "processor drained in {took:?}"
    );
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream("LOGS")
        .await
        .unwrap()
        .get_consumer("processor")
        .await
        .unwrap();
    // A message handed back with a nak stays "ack pending" until it is redelivered, and the
    // server redelivers those before any new message: a fetch of that many must bring back only
    // redeliveries. A message left un-acked and un-nak'ed would instead wait for ack_wait, and
    // the fetch would bring a new message (delivered once) in its place.
    let in_flight = consumer.info().await.unwrap().num_ack_pending;
    if in_flight > 0 {
        let mut fetched = consumer
            .fetch()
            .max_messages(in_flight)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap();
        let mut handed_back = 0;
        while let Some(m) = fetched.next().await {
            let m = m.unwrap();
            let info = m.info().unwrap();
            assert!(
                info.delivered >= 2,
                "a stopped processor left message {} in flight, not handed back",
                info.stream_sequence
            );
            handed_back += 1;
            // Back to the consumer for the next processor.
            m.ack_with(AckKind::Nak(None)).await.unwrap();
        }
        assert_eq!(handed_back, in_flight, "messages in flight not handed back");
    }

    // Ingest: SIGTERM under load; readiness fails first, in-flight requests complete.
    let http = logjet_tests::http_client();
    sigterm(&ingest);
    let mut saw_unready = false;
    for _ in 0..40 {
        match http.get(format!("{ingest_url}/readyz")).send().await {
            Ok(r) if r.status() == 503 => {
                saw_unready = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(25), ingest.wait())
        .await
        .expect("ingest exits within 25 s")
        .unwrap();
    assert!(status.success(), "ingest exit: {status:?}");
    stop.store(true, Ordering::SeqCst);
    let _ = loader.await;
    assert_eq!(
        fives.load(Ordering::SeqCst),
        0,
        "5xx other than 503 during shutdown"
    );
    let _ = saw_unready; // the window is a few ms wide; exercised, not required

    // Every acknowledged event is counted once a processor is back.
    let (_processor2, _) = start("logjet-processor", &[env_nats, env_redis]).await;
    let want = acked.load(Ordering::SeqCst);
    // Within ack_wait (60 s): a message stranded in flight would miss this.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let s: serde_json::Value = http
            .get(format!("{query_url}/stats/summary"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let n = s["total"].as_u64().unwrap();
        assert!(n <= want, "counted {n} > acknowledged {want}");
        if n == want {
            break;
        }
        assert!(Instant::now() < deadline, "counted {n} of {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
