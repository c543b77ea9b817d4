//! Authentication, per-key rate limits, load shedding and slow clients.
//!
//! Its own test binary: it installs a capturing log subscriber (at debug level, to give a key
//! every chance to leak) and checks that no key ever appears in a log line.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logjet_core::auth::key_line;
use logjet_core::config::{ApiSettings, AuthSetting};
use logjet_tests::platform::{self, Platform};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();

fn capture_logs() -> &'static Captured {
    LOGS.get_or_init(|| {
        let c = Captured::default();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,h2=info,hyper=info",
            ))
            .with_writer(c.clone())
            .try_init();
        c
    })
}

const INGEST_KEY: &str = "lj_ingest_9f2c1e7a40b3d5";
const QUERY_KEY: &str = "lj_query_1b8e44c0d2a9f6";
const ADMIN_KEY: &str = "lj_admin_77ad30e5c1f2b8";
const FLOOD_KEY: &str = "lj_flood_3c5e9a1f0b7d22";

fn keys_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for (name, scopes, key) in [
        ("shipper", "ingest", INGEST_KEY),
        ("grafana", "query", QUERY_KEY),
        ("admin", "ingest,query", ADMIN_KEY),
        ("flood", "ingest", FLOOD_KEY),
    ] {
        writeln!(f, "{}", key_line(name, scopes, key)).unwrap();
    }
    f
}

fn secured(keys: &tempfile::NamedTempFile, per_second: u32) -> ApiSettings {
    ApiSettings {
        auth: AuthSetting::On,
        api_keys_file: Some(keys.path().to_path_buf()),
        rate_limit_per_second: per_second,
        rate_limit_burst: per_second,
        header_read_timeout: Duration::from_secs(2),
        ..ApiSettings::default()
    }
}

async fn post_logs(
    http: &reqwest::Client,
    base: &str,
    key: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut r = http
        .post(format!("{base}/logs"))
        .header("content-type", "text/plain")
        .body(body.to_string());
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_scopes_rate_limits_and_no_key_in_the_logs() {
    let logs = capture_logs();
    let p = Platform::start(1).await;
    let keys = keys_file();
    let mut icfg = platform::ingest_config(&p.nats.url());
    icfg.api = secured(&keys, 20);
    let ingest = platform::start_ingest(icfg).await;
    let mut qcfg = platform::query_config(&p.nats.url(), &p.redis.url());
    qcfg.api = secured(&keys, 1000);
    let query = platform::start_query(qcfg).await;
    p.wait_ready(&ingest.url()).await;
    let http = &p.http;

    // Without a key: 401 with a Bearer challenge, on both APIs.
    let r = post_logs(http, &ingest.url(), None, "hello").await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("API key")
    );
    let r = http
        .post(format!("{}/logs/query", query.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A wrong key is the same 401, whatever it looks like.
    assert_eq!(
        post_logs(http, &ingest.url(), Some("lj_ingest_9f2c1e7a40b3d6"), "x")
            .await
            .status(),
        401
    );
    // A query-only key cannot ingest (403), an ingest key cannot read (403).
    let r = post_logs(http, &ingest.url(), Some(QUERY_KEY), "hello").await;
    assert_eq!(r.status(), 403);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("grafana")
    );
    let r = http
        .post(format!("{}/logs/query", query.url()))
        .bearer_auth(INGEST_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The right scopes work; a key with both scopes works on both.
    assert_eq!(
        post_logs(http, &ingest.url(), Some(INGEST_KEY), "with a key")
            .await
            .status(),
        202
    );
    assert_eq!(
        post_logs(http, &ingest.url(), Some(ADMIN_KEY), "admin too")
            .await
            .status(),
        202
    );
    p.wait_for_total(2, Duration::from_secs(10)).await;
    for key in [QUERY_KEY, ADMIN_KEY] {
        let r = http
            .post(format!("{}/logs/query", query.url()))
            .bearer_auth(key)
            .json(&json!({"contains": "with a key"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap()["events"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
    // Probes and metrics stay open (the network policies guard them).
    for base in [ingest.url(), query.url()] {
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(
                http.get(format!("{base}{path}"))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                200,
                "{base}{path}"
            );
        }
    }

    // A flood beyond one key's rate gets 429s with Retry-After; another key keeps being served.
    let flood = {
        let (http, url) = (http.clone(), ingest.url());
        tokio::spawn(async move {
            let mut limited = 0;
            for _ in 0..200 {
                let r = post_logs(&http, &url, Some(FLOOD_KEY), "flood").await;
                if r.status() == 429 {
                    let retry: u64 = r.headers()["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert!((1..=2).contains(&retry));
                    limited += 1;
                } else {
                    assert_eq!(r.status(), 202);
                }
            }
            limited
        })
    };
    let mut served = 0;
    for _ in 0..10 {
        let r = post_logs(http, &ingest.url(), Some(INGEST_KEY), "still served").await;
        assert_eq!(
            r.status(),
            202,
            "the second key must not be throttled by the first"
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let limited = flood.await.unwrap();
    assert!(
        limited >= 100,
        "only {limited} of 200 flood requests were limited"
    );
    assert_eq!(served, 10);
    assert!(
        platform::metric(
            http,
            &ingest.url(),
            "logjet_http_rejected_total{reason=\"rate_limited\"}"
        )
        .await
            >= 100
    );
    assert!(
        platform::metric(
            http,
            &ingest.url(),
            "logjet_http_rejected_total{reason=\"unauthenticated\"}"
        )
        .await
            >= 2
    );

    // No key, valid or not, was ever logged.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.len() > 1000, "the capture saw logs");
    for key in [
        INGEST_KEY,
        QUERY_KEY,
        ADMIN_KEY,
        FLOOD_KEY,
        "lj_ingest_9f2c1e7a40b3d6",
    ] {
        assert!(!text.contains(key), "a key appeared in the logs");
    }
    ingest.stop().await;
    query.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_slow_connections_do_not_stop_a_normal_client() {
    capture_logs();
    let p = Platform::start(1).await;
    let mut icfg = platform::ingest_config(&p.nats.url());
    icfg.api.header_read_timeout = Duration::from_secs(3);
    let ingest = platform::start_ingest(icfg).await;
    p.wait_ready(&ingest.url()).await;

    // 1,000 clients that send half a request line and then nothing.
    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut s = tokio::net::TcpStream::connect(ingest.addr).await.unwrap();
        s.write_all(b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Ty")
            .await
            .unwrap();
        slow.push(s);
    }
    // A normal client is served at once, several times.
    for i in 0..5 {
        let t = Instant::now();
        let r = post_logs(&p.http, &ingest.url(), None, &format!("normal {i}")).await;
        assert_eq!(r.status(), 202);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "served in {:?}",
            t.elapsed()
        );
    }
    // And the slow ones are cut off after the header timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut closed = 0;
    for s in slow.iter_mut().take(50) {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(
        closed, 50,
        "slow connections were not closed by the header timeout"
    );
    p.wait_for_total(5, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saturation_sheds_load_with_503_instead_of_queueing() {
    capture_logs();
    let p = Platform::start(1).await;
    let mut icfg = platform::ingest_config(&p.nats.url());
    icfg.max_concurrent_requests = 2;
    let ingest = platform::start_ingest(icfg).await;
    p.wait_ready(&ingest.url()).await;
    // Two requests whose bodies trickle in hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(ingest.addr).await.unwrap();
        s.write_all(b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nslow")
            .await
            .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let r = post_logs(&p.http, &ingest.url(), None, "third").await;
    assert_eq!(r.status(), 503);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "shed at once, not queued"
    );
    assert!(r.headers().contains_key("retry-after"));
    // Probes are not subject to the limit.
    assert_eq!(
        p.http
            .get(format!("{}/healthz", ingest.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        post_logs(&p.http, &ingest.url(), None, "fourth")
            .await
            .status(),
        202
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_names_cannot_inject_subjects_or_keys() {
    capture_logs();
    let p = Platform::start(1).await;
    let names = [
        ("a.b>*", "a-b"),
        ("logs.>", "logs"),
        ("{lj}:idx", "lj-idx"),
        ("Pay Ments", "pay-ments"),
    ];
    for (raw, _) in names {
        let r = p
            .post(
                "application/json",
                json!({"service": raw, "message": format!("from {raw}")}).to_string(),
            )
            .await;
        assert_eq!(r.status(), 202);
    }
    p.wait_for_total(4, Duration::from_secs(10)).await;
    for (raw, want) in names {
        let q = p
            .query(json!({"service": want, "contains": format!("from {raw}")}))
            .await;
        assert_eq!(q["events"][0]["service"], want, "{raw}");
    }
    // Nothing landed outside logs.<sanitised>.
    let js = async_nats::jetstream::new(p.nats_client().await);
    let stream = js.get_stream("LOGS").await.unwrap();
    let subjects = stream.info_with_subjects("logs.>").await.unwrap();
    let mut names: Vec<String> = futures::StreamExt::collect::<Vec<_>>(subjects)
        .await
        .into_iter()
        .map(|r| r.unwrap().0)
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["logs.a-b", "logs.lj-idx", "logs.logs", "logs.pay-ments"]
    );
    // A query for a wildcard service is refused, not widened.
    let r = p
        .http
        .post(format!("{}/logs/query", p.query_url()))
        .json(&json!({"service": "*"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_credentials_in_the_url_authenticate_and_are_never_logged() {
    let logs = capture_logs();
    let nats = logjet_tests::servers::NatsServer::start_with(vec![
        "--user".into(),
        "ingest".into(),
        "--pass".into(),
        "s3cret-pw-7731".into(),
    ])
    .await;
    let good = nats
        .url()
        .replace("nats://", "nats://ingest:s3cret-pw-7731@");
    let bad = nats
        .url()
        .replace("nats://", "nats://ingest:wrong-pw-0000@");
    let http = logjet_tests::http_client();
    let ok = platform::start_ingest(platform::ingest_config(&good)).await;
    let denied = platform::start_ingest(platform::ingest_config(&bad)).await;
    let mut ready = false;
    for _ in 0..100 {
        if http
            .get(format!("{}/readyz", ok.url()))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "ingest with the right credentials never became ready"
    );
    assert_eq!(
        post_logs(&http, &ok.url(), None, "authenticated")
            .await
            .status(),
        202
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        http.get(format!("{}/readyz", denied.url()))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        post_logs(&http, &denied.url(), None, "refused")
            .await
            .status(),
        503
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        !text.contains("s3cret-pw-7731") && !text.contains("wrong-pw-0000"),
        "a NATS password was logged"
    );
}
