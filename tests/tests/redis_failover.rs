//! Redis through Sentinel (issue 15, point 3): a primary, a replica and three Sentinels on
//! loopback. The primary is SIGKILLed under load; processors and query follow the promoted
//! replica and every acknowledged event is counted exactly once, without `rebuild`. And the
//! processor acknowledges nothing a replica does not have (`WAIT`).

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logjet_core::config::{ProcessorConfig, QueryConfig, RedisSentinelSettings};
use logjet_tests::platform::{
    self, Svc, processor_config, query_config, start_ingest, start_processor, start_query,
};
use logjet_tests::sentinel::{MASTER_NAME, RedisGroup};
use logjet_tests::servers::NatsServer;

/// Events per second offered: `LOGJET_TEST_FAILOVER_RATE`, else 20,000.
fn rate() -> u64 {
    std::env::var("LOGJET_TEST_FAILOVER_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

const BATCH: u64 = 200;

fn sentinel_settings(group: &RedisGroup) -> RedisSentinelSettings {
    RedisSentinelSettings {
        redis_sentinels: group.sentinel_list(),
        redis_master_name: MASTER_NAME.into(),
    }
}

fn processor_cfg(nats: &str, group: &RedisGroup, wait_replicas: u32) -> ProcessorConfig {
    let mut cfg = processor_config(nats, "redis://127.0.0.1:1");
    cfg.redis_sentinel = sentinel_settings(group);
    cfg.redis_wait.redis_wait_replicas = wait_replicas;
    cfg.redis_wait.redis_wait_timeout = Duration::from_millis(500);
    cfg.nak_delay = Duration::from_millis(200);
    cfg
}

fn query_cfg(nats: &str, group: &RedisGroup) -> QueryConfig {
    let mut cfg = query_config(nats, "redis://127.0.0.1:1");
    cfg.redis_sentinel = sentinel_settings(group);
    cfg
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{base} not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn total(http: &reqwest::Client, query: &Svc) -> Option<u64> {
    let r = http
        .get(format!("{}/stats/summary", query.url()))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json::<serde_json::Value>().await.ok()?["total"].as_u64()
}

/// Waits until query counts exactly `want` (failing at once on more).
async fn wait_for_total(http: &reqwest::Client, query: &Svc, want: u64, timeout: Duration) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < timeout {
        last = total(http, query).await;
        if let Some(n) = last {
            assert!(
                n <= want,
                "counted {n} events, more than the {want} acknowledged"
            );
            if n == want {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("counted {last:?} of {want} acknowledged events after {timeout:?}");
}

/// Offers `rate` events/s in batches with idempotency keys, each retried until ingest takes it
/// (202), until `stop`. Returns the events acknowledged.
fn load(
    http: reqwest::Client,
    ingest: String,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let acked = Arc::new(AtomicU64::new(0));
        let mut tick =
            tokio::time::interval(Duration::from_micros(1_000_000 * BATCH / rate.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let inflight = Arc::new(tokio::sync::Semaphore::new(128));
        let mut tasks = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            tick.tick().await;
            let Ok(permit) = inflight.clone().acquire_owned().await else {
                break;
            };
            n += 1;
            let body: String = (0..BATCH)
                .map(|i| {
                    format!(
                        "{{\"service\":\"failover-{}\",\"level\":\"info\",\"message\":\"batch {n} event {i}\"}}\n",
                        n % 4
                    )
                })
                .collect();
            let (http, ingest, acked) = (http.clone(), ingest.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let r = http
                        .post(format!("{ingest}/logs"))
                        .header("content-type", "application/x-ndjson")
                        .header("idempotency-key", format!("failover-{n}"))
                        .body(body.clone())
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status() == 202) {
                        acked.fetch_add(BATCH, Ordering::SeqCst);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                drop(permit);
            }));
            tasks.retain(|t| !t.is_finished());
        }
        for t in tasks {
            let _ = t.await;
        }
        acked.load(Ordering::SeqCst)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_primary_loses_no_acknowledged_event() {
    logjet_tests::init_logging();
    let nats = NatsServer::start().await;
    let mut group = RedisGroup::start(Duration::from_millis(1000)).await;
    let http = logjet_tests::http_builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let ingest = start_ingest(platform::ingest_config(&nats.url())).await;
    let query = start_query(query_cfg(&nats.url(), &group)).await;
    let mut processors = Vec::new();
    for _ in 0..2 {
        let p = start_processor(processor_cfg(&nats.url(), &group, 1)).await;
        wait_ready(&http, &p.url()).await;
        processors.push(p);
    }
    wait_ready(&http, &ingest.url()).await;
    wait_ready(&http, &query.url()).await;

    let nats_client = async_nats::connect(nats.url()).await.expect("nats");
    let mut max_deliveries = nats_client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.LOGS.processor")
        .await
        .expect("advisory subscription");
    let rate = rate();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let loader = load(http.clone(), ingest.url(), rate, stop.clone());

    // Let the processors write to the primary for a while, then kill it mid-stream.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = total(&http, &query).await.unwrap_or(0);
    assert!(before > 0, "nothing counted before the failover");
    let replica_port = group.replica.port;
    group.primary.sigkill().await;
    let killed = Instant::now();
    group
        .wait_master(replica_port, Duration::from_secs(30))
        .await;
    let promoted_after = killed.elapsed();
    // The old primary comes back as a replica of the new master (in Kubernetes its pod
    // restarts; redis/redis-start.sh). Until it does, WAIT cannot succeed and the processors
    // hold back (without burning delivery attempts) rather than ack what one crash could lose.
    group.restart_primary_as_replica_of(replica_port).await;

    // Keep loading after the promotion: these events can only be counted through the new master.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::SeqCst);
    let acked = loader.await.expect("loader");
    let offered_for = started.elapsed();
    eprintln!(
        "offered {rate} events/s; {acked} acknowledged in {offered_for:?} ({:.0}/s); \
         {before} counted before the kill; replica promoted {promoted_after:?} after it",
        acked as f64 / offered_for.as_secs_f64()
    );
    assert!(acked > before, "no events acknowledged after the failover");

    // Every acknowledged event, exactly once, read from the promoted replica. No rebuild ran:
    // this test never starts one, so the counts are what the processors wrote.
    wait_for_total(&http, &query, acked, Duration::from_secs(120)).await;
    // No message was given up after max_deliver attempts (its effects would be on one Redis
    // only, never confirmed by a replica).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        futures::FutureExt::now_or_never(futures::StreamExt::next(&mut max_deliveries)).is_none(),
        "a message reached max_deliver during the failover"
    );
    assert_eq!(group.master_port().await, Some(replica_port));
    let mut promoted = redis::Client::open(format!("redis://127.0.0.1:{replica_port}"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("promoted replica");
    let role: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut promoted)
        .await
        .expect("ROLE");
    assert!(
        matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master"),
        "{role:?}"
    );
    for p in processors {
        p.stop().await;
    }
    query.stop().await;
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_that_no_replica_has() {
    logjet_tests::init_logging();
    let nats = NatsServer::start().await;
    let group = RedisGroup::start(Duration::from_secs(30)).await;
    let http = logjet_tests::http_client();
    let ingest = start_ingest(platform::ingest_config(&nats.url())).await;
    let query = start_query(query_cfg(&nats.url(), &group)).await;
    let processor = start_processor(processor_cfg(&nats.url(), &group, 1)).await;
    wait_ready(&http, &processor.url()).await;
    wait_ready(&http, &ingest.url()).await;

    // The replica stops answering: the primary applies, WAIT times out, nothing is acked.
    let replica = group.replica.pid().expect("replica pid") as i32;
    // SAFETY: signals to a child process this test owns.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(replica, libc::SIGSTOP)
    };
    let body: String = (0..50)
        .map(|i| format!("{{\"service\":\"wait\",\"level\":\"info\",\"message\":\"event {i}\"}}\n"))
        .collect();
    let r = http
        .post(format!("{}/logs", ingest.url()))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    let series = "logjet_processor_redis_unreplicated_total";
    let start = Instant::now();
    while platform::metric(&http, &processor.url(), series).await < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the processor never found its batch unreplicated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unacked = async_nats::jetstream::new(async_nats::connect(nats.url()).await.expect("nats"))
        .get_stream("LOGS")
        .await
        .expect("stream")
        .consumer_info("processor")
        .await
        .expect("consumer");
    assert_eq!(
        unacked.ack_floor.stream_sequence, 0,
        "a message was acked while no replica had it"
    );

    // The replica is back: the redelivery is a no-op on the primary, WAIT succeeds, it is acked,
    // and counted once.
    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(replica, libc::SIGCONT)
    };
    wait_for_total(&http, &query, 50, Duration::from_secs(30)).await;
    let start = Instant::now();
    loop {
        let info = async_nats::jetstream::new(async_nats::connect(nats.url()).await.expect("nats"))
            .get_stream("LOGS")
            .await
            .expect("stream")
            .consumer_info("processor")
            .await
            .expect("consumer")
            .clone();
        if info.ack_floor.stream_sequence >= 1 && info.num_ack_pending == 0 && info.num_pending == 0
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not acked after the replica came back: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_total(&http, &query, 50, Duration::from_secs(5)).await;
    processor.stop().await;
    query.stop().await;
    ingest.stop().await;
}
