//! The archiver with real servers: nats-server, ingest in-process, the archiver as a process
//! (`cargo build --bins` first), and its archive in a local directory or a real S3-compatible
//! server (`s3s-fs`). Every event is read back from the committed segments with the format
//! library (`logjet_core::archive`) and must be there exactly once.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logjet_core::archive::{ArchiveStore, Catalog, CatalogOptions, TsRange};
use logjet_tests::platform::{Svc, ingest_config, metric, start_ingest};
use logjet_tests::process::ServiceProcess;
use logjet_tests::s3::S3Server;
use logjet_tests::servers::{NatsServer, RedisServer};

const SERVICES: [&str; 4] = ["api", "web", "payments", "worker"];

/// The archiver's settings for tests: small segments cut often, quick retries.
fn archiver_env(nats: &NatsServer, spool: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("LOGJET_NATS_URL", nats.url()),
        ("LOGJET_SPOOL_DIR", spool.display().to_string()),
        ("LOGJET_SEGMENT_MAX_AGE", "2s".into()),
        ("LOGJET_SEGMENT_MAX_EVENTS", "20000".into()),
        ("LOGJET_ACK_WAIT", "10s".into()),
        ("LOGJET_UPLOAD_RETRY_MIN", "100ms".into()),
        ("LOGJET_UPLOAD_RETRY_MAX", "1s".into()),
        ("LOGJET_DRAIN_TIMEOUT", "5s".into()),
    ]
}

struct Pipeline {
    nats: NatsServer,
    ingest: Svc,
    http: reqwest::Client,
    spool: tempfile::TempDir,
}

impl Pipeline {
    async fn start() -> Pipeline {
        let nats = NatsServer::start().await;
        let ingest = start_ingest(ingest_config(&nats.url())).await;
        let http = reqwest::Client::new();
        // Ingest answers 503 until its NATS connection is up: load starts once it is ready.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !http
            .get(format!("{}/readyz", ingest.url()))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "ingest not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Pipeline {
            nats,
            ingest,
            http,
            spool: tempfile::tempdir().expect("spool dir"),
        }
    }

    fn archiver(&self, archive: &[(&'static str, String)]) -> ServiceProcess {
        let mut env = archiver_env(&self.nats, self.spool.path());
        env.extend(archive.iter().cloned());
        ServiceProcess::spawn("logjet-archiver", &env)
    }

    /// Posts events `from..to` through ingest as NDJSON batches, each event carrying its number
    /// in the field `n`; every service gets a quarter.
    async fn post_range(&self, from: u64, to: u64) {
        let mut i = from;
        while i < to {
            let end = (i + 2_000).min(to);
            let mut body = String::new();
            for n in i..end {
                let svc = SERVICES[(n % 4) as usize];
                let level = ["info", "warn", "error", "debug"][(n % 7 % 4) as usize];
                body.push_str(&format!(
                    "{{\"service\":\"{svc}\",\"level\":\"{level}\",\"message\":\"GET /orders/{n} from 10.0.{}.{} took {}.{}ms req-{n:08x}\",\"n\":{n}}}\n",
                    n % 256,
                    n / 256 % 256,
                    n % 900,
                    n % 100
                ));
            }
            let r = self
                .http
                .post(format!("{}/logs", self.ingest.url()))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .expect("post /logs");
            assert_eq!(r.status(), 202, "{:?}", r.text().await);
            i = end;
        }
    }

    /// The archiver consumer's `num_pending + num_ack_pending`.
    async fn lag(&self) -> u64 {
        let client = async_nats::connect(self.nats.url()).await.expect("nats");
        let js = async_nats::jetstream::new(client);
        let mut c: async_nats::jetstream::consumer::PullConsumer = js
            .get_consumer_from_stream("archiver", "LOGS")
            .await
            .expect("the archiver's consumer exists");
        let info = c.info().await.expect("consumer info");
        info.num_pending + info.num_ack_pending as u64
    }
}

/// Every event's `n` in the committed segments of `store`, and the number of segments.
async fn archived(store: ArchiveStore) -> (Vec<u64>, usize) {
    let catalog = Catalog::new(store, CatalogOptions::default());
    let report = catalog.refresh_all().await.expect("list the archive");
    assert!(
        report.failed.is_empty(),
        "unreadable index objects: {:?}",
        report.failed
    );
    let mut ns = Vec::new();
    let segments = catalog.segments();
    for m in &segments {
        let reader = catalog
            .read_segment(m)
            .await
            .expect("a committed segment reads");
        for ev in reader.newest_first(TsRange::ALL) {
            let ev = ev.expect("a row decodes");
            assert_eq!(ev.event.service, m.service());
            let n = ev
                .event
                .fields
                .get("n")
                .and_then(|v| v.as_f64())
                .expect("field n");
            ns.push(n as u64);
        }
    }
    (ns, segments.len())
}

/// Rows the committed segments hold (their headers only).
async fn archived_rows(store: &ArchiveStore) -> u64 {
    let catalog = Catalog::new(store.clone(), CatalogOptions::default());
    match catalog.refresh_all().await {
        Ok(_) => catalog.segments().iter().map(|m| m.header.rows).sum(),
        Err(_) => 0,
    }
}

/// Waits until the archive holds `n` events and the consumer has nothing pending, then checks
/// every event `0..n` is there exactly once.
async fn assert_exactly_once(p: &Pipeline, store: ArchiveStore, n: u64, archiver: &ServiceProcess) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let rows = archived_rows(&store).await;
        assert!(
            rows <= n,
            "more rows archived ({rows}) than events sent ({n})"
        );
        if rows == n && p.lag().await == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "archive holds {rows} of {n} events; archiver log:\n{}",
            archiver.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (mut ns, segments) = archived(store).await;
    assert_eq!(ns.len() as u64, n);
    ns.sort_unstable();
    let missing_or_twice: Vec<(usize, u64)> = ns
        .iter()
        .enumerate()
        .filter(|(i, v)| *i as u64 != **v)
        .map(|(i, v)| (i, *v))
        .take(5)
        .collect();
    assert!(
        missing_or_twice.is_empty(),
        "not exactly once: {missing_or_twice:?}"
    );
    assert!(segments >= SERVICES.len(), "{segments} segments");
}

fn local_store(dir: &Path) -> ArchiveStore {
    ArchiveStore::local(dir.to_path_buf()).expect("local archive")
}

#[tokio::test]
async fn every_event_is_archived_exactly_once_in_a_local_directory() {
    let p = Pipeline::start().await;
    let archive = tempfile::tempdir().unwrap();
    let archiver = p.archiver(&[(
        "LOGJET_ARCHIVE_URL",
        format!("file://{}", archive.path().display()),
    )]);
    archiver.wait_ready().await;
    const N: u64 = 200_000;
    let started = Instant::now();
    p.post_range(0, N).await;
    assert_exactly_once(&p, local_store(archive.path()), N, &archiver).await;
    eprintln!(
        "{N} events ingested and archived in {:?}",
        started.elapsed()
    );
    let http = reqwest::Client::new();
    assert!(
        metric(
            &http,
            &archiver.url,
            "logjet_archiver_segments_written_total"
        )
        .await
            >= 4
    );
    assert_eq!(
        metric(
            &http,
            &archiver.url,
            "logjet_archiver_events_archived_total"
        )
        .await,
        N
    );
    // Parquet files are valid outside logjet too: every name is segments/<service>/<day>/….
    for s in SERVICES {
        assert!(archive.path().join("segments").join(s).is_dir(), "{s}");
    }
    // DuckDB (PyPI `duckdb`, installed by scripts/test.sh) counts exactly the events sent,
    // each `n` once. `n`, in every event, is a promoted field (a column of its own) in every
    // segment of at least 500 rows (a smaller one keeps it in the `fields` JSON text: see
    // `promoted::MIN_VALUES`); read as docs/archive.md says, falling back to the JSON text.
    let python = logjet_tests::tools::tool_bin("venv", "python");
    let sql = format!(
        "with t as (select * from read_parquet('{}/segments/**/*.parquet', \
                      union_by_name = true, filename = true)), \
              f as (select filename, count(*) as n_rows, \
                      count(\"fields.n\") = count(*) as promoted from t group by filename) \
         select (select count(*) from t), \
           (select count(distinct coalesce(\"fields.n\", cast(fields->>'$.n' as bigint))) from t), \
           (select bool_and(promoted or n_rows < 500) and bool_or(promoted) from f), \
           (select min(ts) is not null from t)",
        archive.path().display()
    );
    let out = tokio::process::Command::new(&python)
        .args([
            "-c",
            "import duckdb, sys; print(*duckdb.sql(sys.argv[1]).fetchone())",
            &sql,
        ])
        .output()
        .await
        .expect("the venv's python runs (scripts/test.sh installs duckdb)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("{N} {N} True True"));
}

/// Posts continuously from a task until stopped; returns how many it sent.
fn spawn_load(
    p: Arc<Pipeline>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let from = sent.load(Ordering::SeqCst);
            p.post_range(from, from + 2_000).await;
            sent.store(from + 2_000, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

#[tokio::test]
async fn a_sigkilled_archiver_loses_and_duplicates_nothing() {
    let p = Arc::new(Pipeline::start().await);
    let archive = tempfile::tempdir().unwrap();
    let env = [
        (
            "LOGJET_ARCHIVE_URL",
            format!("file://{}", archive.path().display()),
        ),
        ("LOGJET_SEGMENT_MAX_EVENTS", "5000".into()),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = spawn_load(p.clone(), stop.clone(), sent.clone());
    let store = local_store(archive.path());
    // Killed three times at different moments of its work: mid-write, mid-upload, between a
    // commit and its acks (wherever the kill lands; each run has several segments in flight).
    for (round, after) in [(0, 1500u64), (1, 2300), (2, 900)] {
        let archiver = p.archiver(&env);
        archiver.wait_ready().await;
        let before = archived_rows(&store).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while archived_rows(&store).await == before {
            assert!(
                Instant::now() < deadline,
                "round {round}: nothing archived; log:\n{}",
                archiver.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(after)).await;
        archiver.signal(libc::SIGKILL);
        drop(archiver);
    }
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let n = sent.load(Ordering::SeqCst);
    let archiver = p.archiver(&env);
    assert_exactly_once(&p, store, n, &archiver).await;
}

#[tokio::test]
async fn s3_store_down_for_ten_seconds_under_load_loses_nothing() {
    let p = Arc::new(Pipeline::start().await);
    let mut s3 = S3Server::start().await;
    let archiver = p.archiver(&s3.env("archive"));
    archiver.wait_ready().await;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = spawn_load(p.clone(), stop.clone(), sent.clone());
    let store = local_store(&s3.bucket_dir().join("archive"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while archived_rows(&store).await == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing archived; log:\n{}",
            archiver.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s3.kill().await;
    let sent_before = sent.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Ingest was unaffected: it kept accepting.
    assert!(
        sent.load(Ordering::SeqCst) > sent_before + 10_000,
        "ingest stalled"
    );
    s3.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let n = sent.load(Ordering::SeqCst);
    assert_exactly_once(&p, store, n, &archiver).await;
    let http = reqwest::Client::new();
    assert!(metric(&http, &archiver.url, "logjet_archiver_upload_errors_total").await > 0);
    // The outage was said once, and its end.
    let lines = archiver.lines();
    let lost = lines
        .iter()
        .filter(|l| l.message().contains("object store") && l.level() == "WARN")
        .count();
    assert!(
        lost >= 1,
        "no WARN about the object store; log:\n{}",
        archiver.log()
    );
}

#[tokio::test]
async fn s3_exact_and_reindex_rebuilds_the_catalog() {
    let p = Pipeline::start().await;
    let s3 = S3Server::start().await;
    let env = s3.env("team-a");
    let mut archiver = p.archiver(&env);
    archiver.wait_ready().await;
    const N: u64 = 40_000;
    p.post_range(0, N).await;
    let store = local_store(&s3.bucket_dir().join("team-a"));
    assert_exactly_once(&p, store.clone(), N, &archiver).await;
    archiver.terminate(Duration::from_secs(10)).await;
    // Lose the catalog: delete every index object, then rebuild it from the segments.
    std::fs::remove_dir_all(s3.bucket_dir().join("team-a/index")).unwrap();
    assert_eq!(archived_rows(&store).await, 0);
    let mut cmd = tokio::process::Command::new(logjet_tests::process::bin("logjet-archiver"));
    cmd.arg("reindex").env("LOGJET_NATS_URL", p.nats.url());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("reindex runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reindex done"), "{stdout}");
    let (mut ns, _) = archived(store.clone()).await;
    ns.sort_unstable();
    assert_eq!(ns, (0..N).collect::<Vec<_>>());
    // Twice changes nothing.
    let out = cmd.output().await.expect("reindex runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 0 index objects written"));
}

#[tokio::test]
async fn retention_deletes_expired_segments_only() {
    logjet_core::archive::install_tls_provider();
    use logjet_core::archive::{SegmentOptions, SegmentWriter};
    let nats = NatsServer::start().await;
    let archive = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let store = local_store(archive.path());
    let catalog = Catalog::new(store.clone(), CatalogOptions::default());
    // Segments of three services, two days old, written with the format library.
    let two_days_ago = chrono::Utc::now() - chrono::Duration::days(2);
    let mut seq = 1;
    for service in ["debug-web", "payments", "api"] {
        let mut w =
            SegmentWriter::create(spool.path(), service, 1, SegmentOptions::default()).unwrap();
        for i in 0..100 {
            let ts = (two_days_ago + chrono::Duration::seconds(i))
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let line = format!(
                "{{\"ts\":\"{ts}\",\"service\":\"{service}\",\"level\":\"info\",\"message\":\"m{i}\"}}"
            );
            w.append_line(seq, 0, line.as_bytes()).unwrap();
            seq += 1;
        }
        catalog.publish(&w.finish().unwrap()).await.unwrap();
    }
    let archiver = ServiceProcess::spawn(
        "logjet-archiver",
        &[
            ("LOGJET_NATS_URL", nats.url()),
            ("LOGJET_SPOOL_DIR", spool.path().display().to_string()),
            (
                "LOGJET_ARCHIVE_URL",
                format!("file://{}", archive.path().display()),
            ),
            // debug-* keeps 1 day, payments 30, the rest 3.
            (
                "LOGJET_RETENTION_RULES",
                "debug-*=1d,payments=30d,3d".into(),
            ),
            ("LOGJET_RETENTION_INTERVAL", "1s".into()),
        ],
    );
    archiver.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let by_service = loop {
        let c = Catalog::new(store.clone(), CatalogOptions::default());
        c.refresh_all().await.unwrap();
        let mut by_service: HashMap<String, usize> = HashMap::new();
        for m in c.segments() {
            *by_service.entry(m.service().to_string()).or_default() += 1;
        }
        if !by_service.contains_key("debug-web") {
            break by_service;
        }
        assert!(
            Instant::now() < deadline,
            "expired segment not deleted; log:\n{}",
            archiver.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(by_service.get("payments"), Some(&1));
    assert_eq!(by_service.get("api"), Some(&1));
    assert_eq!(
        du(&archive.path().join("segments/debug-web")),
        0,
        "the expired segment's object is gone too"
    );
    let http = reqwest::Client::new();
    assert_eq!(
        metric(
            &http,
            &archiver.url,
            "logjet_archiver_retention_deleted_total{kind=\"expired\"}"
        )
        .await,
        1
    );
}

/// Bytes of the files under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                du(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

/// The LOGS stream is S2-compressed (nats-server 2.10+): the same messages sourced into an
/// uncompressed stream take more disk. Prints both sizes (docs/archive.md, "The stream").
#[tokio::test]
async fn the_stream_is_s2_compressed() {
    use async_nats::jetstream::stream;
    let p = Pipeline::start().await;
    let client = async_nats::connect(p.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    // The stream as every service declares it, then events, then an uncompressed copy.
    logjet_core::jetstream::ensure_stream(
        &js,
        logjet_core::jetstream::logs_stream_config(&Default::default()),
    )
    .await
    .unwrap();
    const N: u64 = 100_000;
    p.post_range(0, N).await;
    let logs = js.get_stream("LOGS").await.unwrap().cached_info().clone();
    assert_eq!(logs.config.compression, Some(stream::Compression::S2));
    js.create_stream(stream::Config {
        name: "LOGS_RAW".into(),
        sources: Some(vec![stream::Source {
            name: "LOGS".into(),
            ..Default::default()
        }]),
        compression: Some(stream::Compression::None),
        ..Default::default()
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let raw = js
            .get_stream("LOGS_RAW")
            .await
            .unwrap()
            .cached_info()
            .state
            .messages;
        let logs = js
            .get_stream("LOGS")
            .await
            .unwrap()
            .cached_info()
            .state
            .messages;
        if raw == logs && raw > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "LOGS_RAW did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let streams = p.nats.store_dir().join("jetstream/$G/streams");
    let (compressed, raw) = (du(&streams.join("LOGS")), du(&streams.join("LOGS_RAW")));
    eprintln!(
        "{N} events: LOGS (S2) {compressed} bytes on disk, LOGS_RAW (none) {raw} bytes: {:.2}x",
        raw as f64 / compressed as f64
    );
    assert!(compressed < raw, "S2 saves nothing: {compressed} vs {raw}");
}

/// Query reads an archive in a real S3 server (`s3s-fs`) through an `s3://` URL: events the
/// archiver uploaded are found by a needle search and, page by page, each exactly once.
#[tokio::test]
async fn query_reads_the_archive_from_s3() {
    let p = Pipeline::start().await;
    let s3 = S3Server::start().await;
    let env = s3.env("team-q");
    let archiver = p.archiver(&env);
    archiver.wait_ready().await;
    const N: u64 = 6_000;
    p.post_range(0, N).await;
    let store = local_store(&s3.bucket_dir().join("team-q"));
    assert_exactly_once(&p, store, N, &archiver).await;

    // Query as a process, as deployed: the same s3:// URL and AWS_* variables; an empty Redis,
    // and every message archived, so the archive alone answers.
    let redis = RedisServer::start().await;
    let mut query_env = env.clone();
    query_env.push(("LOGJET_NATS_URL", p.nats.url()));
    query_env.push(("LOGJET_REDIS_URL", redis.url()));
    let query = ServiceProcess::spawn("logjet-query", &query_env);
    query.wait_ready().await;
    let search = |body: serde_json::Value| {
        let (http, url) = (p.http.clone(), format!("{}/logs/query", query.url));
        async move {
            let r = http.post(url).json(&body).send().await.expect("query");
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<serde_json::Value>().await.expect("query json")
        }
    };
    // The catalog loads in the background; the needle is found once it has. `since` reaches
    // past Redis's window, so the archive is read.
    let needle = format!("req-{:08x}", 4321);
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let r = search(serde_json::json!({"contains": needle, "since": "2h"})).await;
        // Until the catalog is loaded the stream answers, with a warning that says so.
        if r["events"].as_array().is_some_and(|e| !e.is_empty()) && r.get("warnings").is_none() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "needle never found in the archive: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let events = found["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{found}");
    assert_eq!(events[0]["fields"]["n"].as_f64(), Some(4321.0), "{found}");
    assert_eq!(found["source"], "archive", "{found}");
    assert!(found.get("warnings").is_none(), "{found}");

    // Every event, once, following the cursor.
    let mut ns = Vec::new();
    let mut cursor = serde_json::Value::Null;
    for _ in 0..100 {
        let r = search(serde_json::json!({"since": "2h", "limit": 1000, "cursor": cursor})).await;
        for e in r["events"].as_array().unwrap() {
            ns.push(e["fields"]["n"].as_f64().expect("field n") as u64);
        }
        assert!(r.get("warnings").is_none(), "{r}");
        cursor = r["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    ns.sort_unstable();
    assert_eq!(ns, (0..N).collect::<Vec<_>>());
}
