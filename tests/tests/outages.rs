//! Outages (issue 18), with the binaries as processes: whatever NATS, Redis or the query service
//! do (never answering at start-up, gone, frozen with work in flight), every service stops on
//! SIGTERM within its drain deadline with exit code 0, answers what was in flight with 503 or
//! leaves it for redelivery, and says an outage once when it starts and once when it ends.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use logjet_tests::process::{LogLine, ServiceProcess};
use logjet_tests::servers::{NatsServer, RedisServer, SilentServer};
use serde_json::Value;

/// Every service here runs with this drain timeout (`LOGJET_DRAIN_TIMEOUT`)...
const DRAIN: &str = "2s";
/// ...and must be gone this long after SIGTERM: the drain timeout plus one second.
const EXIT_WITHIN: Duration = Duration::from_secs(3);

fn drain() -> (&'static str, String) {
    ("LOGJET_DRAIN_TIMEOUT", DRAIN.into())
}

fn nats_env(url: String) -> (&'static str, String) {
    ("LOGJET_NATS_URL", url)
}

fn redis_env(url: String) -> (&'static str, String) {
    ("LOGJET_REDIS_URL", url)
}

/// SIGTERM to all at once; each must exit with status 0 within [`EXIT_WITHIN`].
async fn terminate_all(services: &mut [&mut ServiceProcess]) {
    let t = Instant::now();
    for s in services.iter() {
        s.signal(libc::SIGTERM);
    }
    let exits = futures::future::join_all(services.iter_mut().map(|s| async move {
        let (status, took) = s.wait_exit(t, EXIT_WITHIN).await;
        (s.name.clone(), status, took, s.log())
    }))
    .await;
    for (name, status, took, log) in exits {
        assert!(
            status.success(),
            "{name} exited with {status:?}; log:\n{log}"
        );
        eprintln!("{name} stopped {took:?} after SIGTERM");
    }
}

/// Lines about `dependency` (its tracker's `dependency` field), and any line of async-nats' own
/// (its per-event lines, "event: client error: nats: IO error", must not come back).
fn about(lines: &[LogLine], dependency: &str) -> Vec<LogLine> {
    lines
        .iter()
        .filter(|l| {
            let json = l.json();
            json["dependency"].as_str() == Some(dependency)
                || json["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("async_nats"))
        })
        .cloned()
        .collect()
}

/// Waits for the first WARN about `dependency`, lets the outage go on for a few reconnect
/// attempts, then checks it is still the only line about it, says `says`, and returns it.
async fn one_warning(s: &ServiceProcess, dependency: &str, says: &str) -> LogLine {
    s.wait_for_line(Duration::from_secs(30), |l| {
        l.level() == "WARN" && l.json()["dependency"].as_str() == Some(dependency)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let found = about(&s.lines(), dependency);
    let warnings: Vec<&LogLine> = found.iter().filter(|l| l.level() == "WARN").collect();
    assert_eq!(
        warnings.len(),
        1,
        "{}: one warning about {dependency} expected; log:\n{}",
        s.name,
        s.log()
    );
    assert!(
        warnings[0].message().contains(says),
        "{}: {:?} does not say {says:?}",
        s.name,
        warnings[0].text
    );
    warnings[0].clone()
}

async fn post_logs(
    http: &reqwest::Client,
    ingest: &ServiceProcess,
    body: &str,
) -> reqwest::Response {
    http.post(format!("{}/logs", ingest.url))
        .header("content-type", "application/x-ndjson")
        .body(body.to_string())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("ingest answers")
}

fn events(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| format!("{{\"service\":\"outage\",\"message\":\"{tag} {i}\"}}\n"))
        .collect()
}

async fn summary_total(http: &reqwest::Client, query: &ServiceProcess) -> Option<u64> {
    let r = http
        .get(format!("{}/stats/summary", query.url))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    r.json::<Value>().await.ok()?["total"].as_u64()
}

async fn wait_for_total(http: &reqwest::Client, query: &ServiceProcess, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = summary_total(http, query).await;
        if n == Some(want) {
            return;
        }
        assert!(n.unwrap_or(0) <= want, "counted {n:?} > {want}");
        assert!(Instant::now() < deadline, "counted {n:?} of {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_never_answering_at_start_up() {
    let redis = RedisServer::start().await;
    let silent = SilentServer::start().await;
    // Credentials in the URL must never reach a log line.
    let nats_url = format!("nats://app:s3cret@127.0.0.1:{}", silent.port);
    let env = [nats_env(nats_url.clone()), redis_env(redis.url()), drain()];
    let mut ingest = ServiceProcess::spawn("logjet-ingest", &env);
    let mut processor = ServiceProcess::spawn("logjet-processor", &env);
    let mut query = ServiceProcess::spawn("logjet-query", &env);
    ingest.wait_unready().await;
    processor.wait_unready().await;
    // Query needs NATS only for tails, history and the pipeline view: ready on Redis alone.
    query.wait_ready().await;

    // While NATS never answers, a publish fails at once.
    let http = logjet_tests::http_client();
    let t = Instant::now();
    let r = post_logs(&http, &ingest, &events(1, "nowhere")).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "503 took {:?}",
        t.elapsed()
    );

    for s in [&ingest, &processor, &query] {
        let w = one_warning(s, "nats", "is not available yet").await;
        assert!(
            w.message()
                .contains(&format!("NATS at nats://app:***@127.0.0.1:{}", silent.port)),
            "{}",
            w.text
        );
        assert!(
            !s.log().contains("s3cret"),
            "{}: credentials logged",
            s.name
        );
    }
    terminate_all(&mut [&mut ingest, &mut processor, &mut query]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_lost_while_running() {
    let mut nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let env = [nats_env(nats.url()), redis_env(redis.url()), drain()];
    let mut ingest = ServiceProcess::spawn("logjet-ingest", &env);
    let mut processor = ServiceProcess::spawn("logjet-processor", &env);
    let mut query = ServiceProcess::spawn("logjet-query", &env);
    for s in [&ingest, &processor, &query] {
        s.wait_ready().await;
    }
    let http = logjet_tests::http_client();
    assert_eq!(
        post_logs(&http, &ingest, &events(10, "before"))
            .await
            .status(),
        202
    );
    wait_for_total(&http, &query, 10).await;

    nats.kill().await;
    ingest.wait_unready().await;
    processor.wait_unready().await;
    let t = Instant::now();
    let r = post_logs(&http, &ingest, &events(1, "during")).await;
    assert_eq!(r.status(), 503);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "503 took {:?}",
        t.elapsed()
    );
    for s in [&ingest, &processor, &query] {
        one_warning(s, "nats", "is unavailable").await;
    }
    terminate_all(&mut [&mut ingest, &mut processor, &mut query]).await;
}

/// A NATS that stops answering with the connection still open: a publish waits for its
/// acknowledgement, the processor for its fetch. SIGTERM answers the publish 503 before the
/// deadline and every service still stops in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_frozen_with_work_in_flight() {
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let env = [
        nats_env(nats.url()),
        redis_env(redis.url()),
        drain(),
        // Longer than the test: only the drain deadline can end the publish.
        ("LOGJET_PUBLISH_TIMEOUT", "60s".into()),
    ];
    let mut ingest = ServiceProcess::spawn("logjet-ingest", &env);
    let mut processor = ServiceProcess::spawn("logjet-processor", &env);
    let mut query = ServiceProcess::spawn("logjet-query", &env);
    for s in [&ingest, &processor, &query] {
        s.wait_ready().await;
    }
    let http = logjet_tests::http_client();
    assert_eq!(
        post_logs(&http, &ingest, &events(10, "before"))
            .await
            .status(),
        202
    );
    wait_for_total(&http, &query, 10).await;

    nats.freeze();
    let in_flight = {
        let (http, url) = (http.clone(), format!("{}/logs", ingest.url));
        tokio::spawn(async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-ndjson")
                .header("idempotency-key", "frozen-1")
                .body(events(5, "frozen"))
                .send()
                .await
                .expect("answered, not cut off");
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !in_flight.is_finished(),
        "the publish should be waiting on NATS"
    );
    terminate_all(&mut [&mut ingest, &mut processor, &mut query]).await;
    assert_eq!(in_flight.await.unwrap(), (503, true));
    nats.thaw();
}

/// A publish waiting for its acknowledgement when the connection to NATS drops is answered 503
/// then, not left in the client's buffer to be sent (and acknowledged) once NATS is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_waiting_when_nats_is_lost_is_answered_at_once() {
    let mut nats = NatsServer::start().await;
    let env = [
        nats_env(nats.url()),
        drain(),
        ("LOGJET_PUBLISH_TIMEOUT", "60s".into()),
    ];
    let mut ingest = ServiceProcess::spawn("logjet-ingest", &env);
    ingest.wait_ready().await;
    let http = logjet_tests::http_client();
    assert_eq!(
        post_logs(&http, &ingest, &events(1, "before"))
            .await
            .status(),
        202
    );

    // Frozen first, so the publish is sent and waits; then gone, so the connection drops.
    nats.freeze();
    let in_flight = {
        let (http, url) = (http.clone(), format!("{}/logs", ingest.url));
        tokio::spawn(async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(events(5, "lost"))
                .send()
                .await
                .expect("answered");
            (r.status().as_u16(), Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !in_flight.is_finished(),
        "the publish should be waiting on NATS"
    );
    let lost = Instant::now();
    nats.kill().await;
    let (status, answered) = in_flight.await.unwrap();
    assert_eq!(status, 503);
    let after = answered.saturating_duration_since(lost);
    assert!(
        after < Duration::from_secs(2),
        "answered {after:?} after the loss"
    );
    terminate_all(&mut [&mut ingest]).await;
}

/// A Redis that never answers at start-up, with messages waiting in the stream: the processor
/// holds a batch it cannot apply and a query request waits on Redis. SIGTERM answers the request
/// 503 and leaves the batch unacknowledged; a processor with a working Redis counts every event
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_never_answering_at_start_up() {
    let nats = NatsServer::start().await;
    let silent = SilentServer::start().await;
    let ack_wait = ("LOGJET_ACK_WAIT", "3s".to_string());
    let mut ingest = ServiceProcess::spawn("logjet-ingest", &[nats_env(nats.url()), drain()]);
    ingest.wait_ready().await;
    let http = logjet_tests::http_client();
    assert_eq!(
        post_logs(&http, &ingest, &events(50, "waiting"))
            .await
            .status(),
        202
    );

    let env = [
        nats_env(nats.url()),
        redis_env(format!("redis://:s3cret@127.0.0.1:{}", silent.port)),
        drain(),
        ack_wait.clone(),
    ];
    let mut processor = ServiceProcess::spawn("logjet-processor", &env);
    let mut query = ServiceProcess::spawn("logjet-query", &env);
    processor.wait_healthy().await;
    query.wait_healthy().await;
    // Not ready: /readyz waits on Redis (a probe's timeout makes that a failure) or says 503.
    for s in [&processor, &query] {
        let r = http
            .get(format!("{}/readyz", s.url))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        assert!(
            r.is_err() || r.is_ok_and(|r| r.status() == 503),
            "{} ready",
            s.name
        );
    }
    // The processor binds, fetches and is stuck applying.
    processor
        .wait_for_line(Duration::from_secs(20), |l| l.message() == "consumer bound")
        .await;
    for s in [&processor, &query] {
        let w = one_warning(s, "redis", "is not available yet").await;
        assert!(w.message().contains(":***@127.0.0.1"), "{}", w.text);
        assert!(
            !s.log().contains("s3cret"),
            "{}: credentials logged",
            s.name
        );
    }
    let request = {
        let (http, url) = (http.clone(), format!("{}/stats/summary", query.url));
        tokio::spawn(async move {
            let r = http.get(url).send().await.expect("answered, not cut off");
            r.status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !request.is_finished(),
        "the request should be waiting on Redis"
    );
    terminate_all(&mut [&mut processor, &mut query]).await;
    assert_eq!(request.await.unwrap(), 503);

    // Nothing was acknowledged without being applied: with a Redis that works, every event
    // is counted, once.
    let redis = RedisServer::start().await;
    let env = [
        nats_env(nats.url()),
        redis_env(redis.url()),
        drain(),
        ack_wait,
    ];
    let mut processor = ServiceProcess::spawn("logjet-processor", &env);
    let mut query = ServiceProcess::spawn("logjet-query", &env);
    query.wait_ready().await;
    wait_for_total(&http, &query, 50).await;
    terminate_all(&mut [&mut ingest, &mut processor, &mut query]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_lost_while_running() {
    let nats = NatsServer::start().await;
    let mut redis = RedisServer::start().await;
    let env = [nats_env(nats.url()), redis_env(redis.url()), drain()];
    let mut ingest = ServiceProcess::spawn("logjet-ingest", &env);
    let mut processor = ServiceProcess::spawn("logjet-processor", &env);
    let mut query = ServiceProcess::spawn("logjet-query", &env);
    for s in [&ingest, &processor, &query] {
        s.wait_ready().await;
    }
    let http = logjet_tests::http_client();
    assert_eq!(
        post_logs(&http, &ingest, &events(10, "before"))
            .await
            .status(),
        202
    );
    wait_for_total(&http, &query, 10).await;

    redis.kill().await;
    // Work keeps arriving: the processor fetches, fails to apply, naks and waits for Redis.
    assert_eq!(
        post_logs(&http, &ingest, &events(10, "during"))
            .await
            .status(),
        202
    );
    processor.wait_unready().await;
    query.wait_unready().await;
    let r = http
        .get(format!("{}/stats/summary", query.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    for s in [&processor, &query] {
        one_warning(s, "redis", "is unavailable").await;
    }
    terminate_all(&mut [&mut ingest, &mut processor, &mut query]).await;
}

/// The dashboard's dependency is the query service: never answering (a proxied request waits),
/// and gone while running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_with_the_query_service_silent_or_gone() {
    let static_dir = (
        "LOGJET_STATIC_DIR",
        logjet_tests::dashboard::dist_dir().display().to_string(),
    );
    let http = logjet_tests::http_client();

    // Never answering from the start, with a proxied request waiting on it at SIGTERM.
    let silent = SilentServer::start().await;
    let mut dashboard = ServiceProcess::spawn(
        "logjet-dashboard",
        &[
            ("LOGJET_QUERY_URL", silent.url("http")),
            static_dir.clone(),
            drain(),
        ],
    );
    dashboard.wait_ready().await;
    let request = {
        let (http, url) = (http.clone(), format!("{}/api/stats/summary", dashboard.url));
        tokio::spawn(async move {
            let r = http.get(url).send().await.expect("answered, not cut off");
            r.status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !request.is_finished(),
        "the request should be waiting on the query service"
    );
    terminate_all(&mut [&mut dashboard]).await;
    assert_eq!(request.await.unwrap(), 503);

    // Gone while running.
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let mut query = ServiceProcess::spawn(
        "logjet-query",
        &[nats_env(nats.url()), redis_env(redis.url()), drain()],
    );
    query.wait_ready().await;
    let mut dashboard = ServiceProcess::spawn(
        "logjet-dashboard",
        &[("LOGJET_QUERY_URL", query.url.clone()), static_dir, drain()],
    );
    dashboard.wait_ready().await;
    let summary = format!("{}/api/stats/summary", dashboard.url);
    assert_eq!(http.get(&summary).send().await.unwrap().status(), 200);
    terminate_all(&mut [&mut query]).await;
    for _ in 0..3 {
        assert_eq!(http.get(&summary).send().await.unwrap().status(), 502);
    }
    one_warning(&dashboard, "query", "is unavailable").await;
    terminate_all(&mut [&mut dashboard]).await;
}

/// Thirty seconds of NATS, Redis and the query service all gone, under a trickle of requests and
/// scrapes: each service says each outage once (at most three lines in all), then once that it is
/// over, with how long it lasted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() {
    const OUTAGE: Duration = Duration::from_secs(30);
    let mut nats = NatsServer::start().await;
    let mut redis = RedisServer::start().await;
    let env = [nats_env(nats.url()), redis_env(redis.url()), drain()];
    let mut ingest = ServiceProcess::spawn("logjet-ingest", &env);
    let mut processor = ServiceProcess::spawn("logjet-processor", &env);
    let mut query = ServiceProcess::spawn("logjet-query", &env);
    // The dashboard's upstream: a query service of its own, stopped for the outage.
    let mut upstream = ServiceProcess::spawn("logjet-query", &env);
    let upstream_port = upstream.port;
    upstream.wait_ready().await;
    let mut dashboard = ServiceProcess::spawn(
        "logjet-dashboard",
        &[
            ("LOGJET_QUERY_URL", upstream.url.clone()),
            (
                "LOGJET_STATIC_DIR",
                logjet_tests::dashboard::dist_dir().display().to_string(),
            ),
            drain(),
        ],
    );
    for s in [&ingest, &processor, &query, &dashboard] {
        s.wait_ready().await;
    }
    let http = logjet_tests::http_client();
    assert_eq!(
        post_logs(&http, &ingest, &events(10, "before"))
            .await
            .status(),
        202
    );
    wait_for_total(&http, &query, 10).await;
    let dashboard_summary = format!("{}/api/stats/summary", dashboard.url);
    assert_eq!(
        http.get(&dashboard_summary).send().await.unwrap().status(),
        200
    );

    let started = Instant::now();
    nats.kill().await;
    redis.kill().await;
    terminate_all(&mut [&mut upstream]).await;
    // Requests, probes and scrapes keep coming, as from clients, Kubernetes and Prometheus.
    let mut requests = 0;
    while started.elapsed() < OUTAGE {
        let body = events(1, "during");
        let calls = [
            http.post(format!("{}/logs", ingest.url))
                .header("content-type", "application/x-ndjson")
                .body(body),
            http.get(format!("{}/stats/summary", query.url)),
            http.get(dashboard_summary.clone()),
        ];
        for call in calls {
            let r = call.timeout(Duration::from_secs(5)).send().await.unwrap();
            assert!(r.status().is_server_error(), "{:?}", r.url());
            requests += 1;
        }
        for s in [&ingest, &processor, &query, &dashboard] {
            for path in ["/readyz", "/metrics"] {
                let _ = http
                    .get(format!("{}{path}", s.url))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ended = Instant::now();
    eprintln!("{requests} requests answered during the outage");

    let expected: [(&ServiceProcess, &[&str]); 4] = [
        (&ingest, &["nats"]),
        (&processor, &["nats", "redis"]),
        (&query, &["nats", "redis"]),
        (&dashboard, &["query"]),
    ];
    for (s, dependencies) in expected {
        let lines = s.lines_between(started, ended);
        let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert!(
            lines.len() <= 3,
            "{}: {} lines in {OUTAGE:?} of outage:\n{}",
            s.name,
            lines.len(),
            text.join("\n")
        );
        for dependency in dependencies {
            let said = about(&lines, dependency);
            assert_eq!(
                said.len(),
                1,
                "{}: {dependency}:\n{}",
                s.name,
                text.join("\n")
            );
            assert_eq!(said[0].level(), "WARN", "{}", said[0].text);
        }
    }

    // Back: one INFO each, with the outage's duration.
    nats.restart().await;
    redis.restart().await;
    let mut upstream = ServiceProcess::spawn_on("logjet-query", upstream_port, &env);
    upstream.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(&dashboard_summary).send().await.unwrap().status() != 200 {
        assert!(
            Instant::now() < deadline,
            "the dashboard never reached its query service again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (s, dependencies) in expected {
        for dependency in dependencies {
            let back = s
                .wait_for_line(Duration::from_secs(30), |l| {
                    l.at >= ended
                        && l.json()["dependency"].as_str() == Some(*dependency)
                        && l.message().contains("is available again after")
                })
                .await;
            assert_eq!(back.level(), "INFO", "{}", back.text);
            let down = back.json()["down_secs"].as_f64().unwrap();
            assert!(down >= OUTAGE.as_secs_f64(), "{}: {}", s.name, back.text);
        }
    }
    terminate_all(&mut [
        &mut ingest,
        &mut processor,
        &mut query,
        &mut dashboard,
        &mut upstream,
    ])
    .await;
}
