//! NATS least privilege: a real nats-server runs with the very `nats.conf` and `nats-auth.conf`
//! the kustomize base ships (passwords substituted, ports and paths made local); ingest,
//! processor, query (in-process) and the archiver (a process: `cargo build --bins` first) each
//! connect as their own user, with the settings the manifests give them. The pipeline works end
//! to end; what a user must not do fails, and changes nothing.
//!
//! A refused publish is only logged by the server (`-ERR Permissions Violation`), so a refused
//! JetStream API call surfaces as a timeout: each refusal is checked by its effect too, and each
//! user's allowed calls are checked on the same connection (a refusal is not a dead connection).
//! `LOGJET_TEST_NATS_LOG=/tmp/nats.log` keeps the server's log, violations included.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use logjet_core::jetstream::{Nats, connect, context};
use logjet_tests::k8s::nats_conf::{LocalNats, localize};
use logjet_tests::k8s::repo_root;
use logjet_tests::platform::{
    Svc, ingest_config, processor_config, query_config, start_ingest, start_processor, start_query,
};
use logjet_tests::process::ServiceProcess;
use logjet_tests::servers::{NatsServer, RedisServer};
use serde_json::Value;

const USERS: [&str; 5] = ["ingest", "processor", "query", "archiver", "admin"];

fn password(user: &str) -> String {
    format!("test-{user}-secret")
}

/// nats-server with the base's configuration files: their `$NATS_<USER>_PASSWORD` variables
/// (from the Secret in the cluster) replaced by test passwords.
async fn nats_as_shipped(dir: &std::path::Path) -> NatsServer {
    let config = repo_root().join("kustomize/base/config");
    let read = |name: &str| {
        let mut text = std::fs::read_to_string(config.join(name)).expect("config file");
        text = text.replace("$POD_NAME", "logjet-test");
        for user in USERS {
            let var = format!("$NATS_{}_PASSWORD", user.to_uppercase());
            text = text.replace(&var, &password(user));
        }
        assert!(
            !text.contains("_PASSWORD"),
            "{name}: a password variable this test does not know"
        );
        text
    };
    let conf = localize(
        &read("nats.conf"),
        &LocalNats {
            // nats-server's own flags (`NatsServer`) set the ports and the store.
            client_port: 0,
            monitor_port: 0,
            pid_file: &dir.join("nats.pid"),
            store_dir: &dir.join("store"),
        },
    );
    // `NatsServer` gives the store with `-sd`, which may not be set twice.
    let conf: String = conf
        .lines()
        .filter(|l| !l.trim_start().starts_with("store_dir"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(conf.contains("include ./nats-auth.conf"));
    std::fs::write(dir.join("nats-auth.conf"), read("nats-auth.conf")).unwrap();
    std::fs::write(dir.join("nats.conf"), conf).unwrap();
    NatsServer::start_with(vec![
        "--config".into(),
        dir.join("nats.conf").display().to_string(),
    ])
    .await
}

fn url_as(nats: &NatsServer, user: &str) -> String {
    format!("nats://{user}:{}@127.0.0.1:{}", password(user), nats.port)
}

async fn connect_as(nats: &NatsServer, user: &str) -> Nats {
    let n = connect(&url_as(nats, user), "logjet-permissions-test", false)
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"));
    n.client.flush().await.expect("flush");
    n
}

/// A JetStream context whose refused calls fail fast.
fn js(n: &Nats) -> jetstream::Context {
    context(n.client.clone(), Duration::from_secs(2))
}

async fn wait_ready(http: &reqwest::Client, base: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http.get(format!("{base}/readyz")).send().await;
        if r.as_ref().is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not ready after 30 s under its NATS user: {:?} (LOGJET_TEST_NATS_LOG=/tmp/nats.log \
             shows the server's permission violations)",
            r.map(|r| r.status())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Services {
    ingest: Svc,
    processor: Svc,
    query: Svc,
    archiver: ServiceProcess,
}

async fn start_services(
    nats: &NatsServer,
    redis: &RedisServer,
    archive: &std::path::Path,
    spool: &std::path::Path,
) -> Services {
    let http = logjet_tests::http_client();
    // As the manifests set them: only the processor creates the streams.
    let mut ingest = ingest_config(&url_as(nats, "ingest"));
    ingest.stream.manage_streams = false;
    let ingest = start_ingest(ingest).await;
    let query = start_query(query_config(&url_as(nats, "query"), &redis.url())).await;
    let archiver = ServiceProcess::spawn(
        "logjet-archiver",
        &[
            ("LOGJET_NATS_URL", url_as(nats, "archiver")),
            ("LOGJET_MANAGE_STREAMS", "false".into()),
            (
                "LOGJET_ARCHIVE_URL",
                format!("file://{}", archive.display()),
            ),
            ("LOGJET_SPOOL_DIR", spool.display().to_string()),
            ("LOGJET_SEGMENT_MAX_AGE", "2s".into()),
            ("LOGJET_DRAIN_TIMEOUT", "5s".into()),
        ],
    );
    let mut processor = processor_config(&url_as(nats, "processor"), &redis.url());
    // Below the shipped max_file_store (8GB), as the manifests' LOGJET_STREAM_MAX_BYTES is.
    processor.stream.stream_max_bytes = 1 << 30;
    let processor = start_processor(processor).await;
    wait_ready(&http, &processor.url(), "processor").await;
    wait_ready(&http, &ingest.url(), "ingest").await;
    wait_ready(&http, &query.url(), "query").await;
    archiver.wait_ready().await;
    Services {
        ingest,
        processor,
        query,
        archiver,
    }
}

/// Posts `n` events of service `checkout` through ingest.
async fn post(http: &reqwest::Client, ingest: &str, from: u64, n: u64) {
    let body: String = (from..from + n)
        .map(|i| {
            serde_json::json!({"service": "checkout", "level": "warn", "message": format!("permitted {i}")})
                .to_string()
                + "\n"
        })
        .collect();
    let r = http
        .post(format!("{ingest}/logs"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post /logs");
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
}

async fn wait_total(http: &reqwest::Client, query: &str, total: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s: Value = http
            .get(format!("{query}/stats/summary"))
            .send()
            .await
            .expect("summary")
            .json()
            .await
            .expect("summary json");
        if s["total"].as_u64() == Some(total) {
            return;
        }
        assert!(Instant::now() < deadline, "counted {s} of {total}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `num_pending + num_ack_pending` of a durable consumer, read as the query user (which may).
async fn lag(query_js: &jetstream::Context, consumer: &str) -> u64 {
    let mut c: PullConsumer = query_js
        .get_consumer_from_stream(consumer, "LOGS")
        .await
        .unwrap_or_else(|e| panic!("query reads {consumer}'s info: {e}"));
    let i = c.info().await.expect("consumer info");
    i.num_pending + i.num_ack_pending as u64
}

async fn last_seq(js: &jetstream::Context) -> u64 {
    let mut s = js.get_stream("LOGS").await.expect("stream info");
    s.info().await.expect("stream info").state.last_sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_service_works_with_its_nats_user_and_nothing_more() {
    logjet_tests::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let (archive, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let nats = nats_as_shipped(dir.path()).await;
    let redis = RedisServer::start().await;
    let s = start_services(&nats, &redis, archive.path(), spool.path()).await;
    let http = logjet_tests::http_client();
    let query_js = js(&connect_as(&nats, "query").await);

    // The pipeline, end to end: a tail open (query's ordered consumer), events posted (ingest),
    // counted (processor), archived (archiver), pipeline status (query reads consumer info).
    let tail = http
        .get(format!("{}/logs/tail?service=checkout", s.query.url()))
        .send()
        .await
        .expect("tail");
    assert_eq!(tail.status(), 200);
    let mut tail = tail.bytes_stream();
    // The tail's consumer is made when the response starts; give it a moment to exist.
    tokio::time::sleep(Duration::from_millis(300)).await;
    post(&http, &s.ingest.url(), 0, 500).await;
    wait_total(&http, &s.query.url(), 500).await;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("permitted 499") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tail.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("tail ended before the last event: {other:?}; got {seen}"),
        }
    }
    for consumer in ["processor", "archiver"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while lag(&query_js, consumer).await > 0 {
            assert!(Instant::now() < deadline, "{consumer} did not catch up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let pipeline: Value = http
        .get(format!("{}/stats/pipeline", s.query.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pipeline["consumer"]["name"], "processor", "{pipeline}");

    // ingest: may read the stream's info, may not delete it nor read the processor's consumer.
    let ingest = connect_as(&nats, "ingest").await;
    let ingest_js = js(&ingest);
    let before = last_seq(&ingest_js).await;
    assert!(
        ingest_js.delete_stream("LOGS").await.is_err(),
        "ingest deleted the stream"
    );
    assert!(
        ingest_js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                "processor",
                "LOGS"
            )
            .await
            .is_err(),
        "ingest read the processor's consumer info"
    );
    let next = tokio::time::timeout(
        Duration::from_secs(2),
        ingest.client.request(
            "$JS.API.CONSUMER.MSG.NEXT.LOGS.processor",
            r#"{"batch":1,"no_wait":true}"#.into(),
        ),
    )
    .await;
    assert!(
        !matches!(next, Ok(Ok(_))),
        "ingest pulled from the processor's consumer: {next:?}"
    );
    // Its allowed calls still work on the same connection.
    assert_eq!(last_seq(&ingest_js).await, before, "the stream is intact");

    // query: may read, may not publish (neither events nor through JetStream).
    let query = connect_as(&nats, "query").await;
    let qjs = js(&query);
    query
        .client
        .publish("logs.intruder", "{\"message\":\"forged\"}".into())
        .await
        .expect("a publish is sent (the server drops it)");
    query.client.flush().await.unwrap();
    let ack = qjs.publish("logs.intruder", "forged".into()).await;
    let acked = match ack {
        Ok(f) => f.await.is_ok(),
        Err(_) => false,
    };
    assert!(!acked, "JetStream acknowledged a publish by the query user");
    assert!(
        qjs.delete_stream("LOGS").await.is_err(),
        "query deleted the stream"
    );
    assert_eq!(
        last_seq(&qjs).await,
        before,
        "the query user's publishes reached the stream"
    );
    // A durable consumer's messages are not query's to take.
    let pull = tokio::time::timeout(
        Duration::from_secs(2),
        query.client.request(
            "$JS.API.CONSUMER.MSG.NEXT.LOGS.processor",
            r#"{"batch":1,"no_wait":true}"#.into(),
        ),
    )
    .await;
    assert!(
        !matches!(pull, Ok(Ok(_))),
        "query pulled from the processor's consumer: {pull:?}"
    );

    // The services still work after all that: the pipeline counts new events.
    post(&http, &s.ingest.url(), 500, 100).await;
    wait_total(&http, &s.query.url(), 600).await;

    // Nobody gets in without credentials.
    assert!(
        async_nats::connect(nats.url().as_str()).await.is_err(),
        "NATS accepted a client without credentials"
    );

    // Operations: the system account answers a server report's request.
    let admin =
        async_nats::ConnectOptions::with_user_and_password("admin".into(), password("admin"))
            .connect(nats.url().as_str())
            .await
            .expect("admin connects");
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        admin.request("$SYS.REQ.SERVER.PING.JSZ", "".into()),
    )
    .await
    .expect("the system account answers")
    .expect("jsz reply");
    let jsz: Value = serde_json::from_slice(&report.payload).expect("jsz json");
    assert!(jsz["data"]["streams"].as_u64() >= Some(1), "{jsz}");
    // ... and a service user cannot ask it.
    let denied = tokio::time::timeout(
        Duration::from_secs(2),
        ingest.client.request("$SYS.REQ.SERVER.PING.JSZ", "".into()),
    )
    .await;
    assert!(!matches!(denied, Ok(Ok(_))), "ingest reached $SYS");

    s.ingest.stop().await;
    s.processor.stop().await;
    s.query.stop().await;
    drop(s.archiver);
}
