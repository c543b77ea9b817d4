use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_the_design() {
    let c: IngestConfig = load_from(None, env(&[("LOGJET_AUTH", "off")])).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8000");
    assert_eq!(c.nats_url, "nats://127.0.0.1:4222");
    assert_eq!(c.stream.stream, "LOGS");
    let p: ProcessorConfig = load_from(None, env(&[])).unwrap();
    assert_eq!(p.listen.to_string(), "0.0.0.0:9100");
    assert_eq!(p.consumer, "processor");
    assert_eq!(p.redis_url, "redis://127.0.0.1:6379");
    let q: QueryConfig = load_from(None, env(&[("LOGJET_AUTH", "off")])).unwrap();
    assert_eq!(q.listen.to_string(), "0.0.0.0:8001");
    // One thread per replica for the processor (see `ProcessorConfig::worker_threads`), one per
    // core for the others.
    assert_eq!(p.worker_threads(), Some(1));
    assert_eq!(q.worker_threads(), None);
    let p: ProcessorConfig = load_from(None, env(&[("LOGJET_WORKER_THREADS", "2")])).unwrap();
    assert_eq!(p.worker_threads(), Some(2));
    let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_WORKER_THREADS", "0")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("worker_threads"), "{e}");
    let e = load_from::<QueryConfig>(None, env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("api_keys_file") && e.contains("LOGJET_AUTH=off"),
        "{e}"
    );
    let e = load_from::<IngestConfig>(None, env(&[("LOGJET_AUTH", "maybe")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth"), "{e}");
}

#[test]
fn env_overrides_file_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "nats_url = \"nats://file:4222\"\nfetch_batch = 10\nack_wait = \"45s\"\n",
    )
    .unwrap();
    let c: ProcessorConfig = load_from(
        Some(&path),
        env(&[
            ("LOGJET_FETCH_BATCH", "20"),
            ("LOGJET_STREAM_REPLICAS", "3"),
        ]),
    )
    .unwrap();
    assert_eq!(c.nats_url, "nats://file:4222");
    assert_eq!(c.fetch_batch, 20);
    assert_eq!(c.ack_wait, Duration::from_secs(45));
    assert_eq!(c.stream.stream_replicas, 3);
}

#[test]
fn bad_values_name_the_key() {
    let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_FETCH_BATCH", "many")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fetch_batch") && e.contains("LOGJET_FETCH_BATCH"),
        "{e}"
    );
    let e = load_from::<IngestConfig>(
        None,
        env(&[("LOGJET_AUTH", "off"), ("LOGJET_NATS_URL", "http://x")]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`nats_url`") && e.contains("scheme"), "{e}");
    let e = load_from::<IngestConfig>(
        None,
        env(&[("LOGJET_AUTH", "off"), ("LOGJET_LISTEN", "nowhere")]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("listen"), "{e}");
    let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_ACK_WAIT", "soon")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ack_wait"), "{e}");
    let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_MAX_DELIVER", "1")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_deliver"), "{e}");
}

#[test]
fn unknown_file_key_is_an_error_unknown_env_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "nats_ulr = \"nats://x:1\"\n").unwrap();
    let e = load_from::<IngestConfig>(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key `nats_ulr`"), "{e}");
    let c = load_from::<IngestConfig>(
        None,
        env(&[("LOGJET_AUTH", "off"), ("LOGJET_QUERY_URL", "http://q")]),
    );
    assert!(c.is_ok());
}

#[test]
fn credentials_in_urls_are_redacted() {
    assert_eq!(
        redact_url("nats://app:s3cret@nats:4222"),
        "nats://app:***@nats:4222"
    );
    assert_eq!(
        redact_url("redis://:pw@redis:6379"),
        "redis://:***@redis:6379"
    );
    assert_eq!(redact_url("rediss://token@r:6380"), "rediss://***@r:6380");
    assert_eq!(
        redact_url("nats://a:1@x:1,nats://b:2@y:2"),
        "nats://a:***@x:1,nats://b:***@y:2"
    );
    assert_eq!(redact_url("nats://nats:4222"), "nats://nats:4222");
    assert_eq!(redact_url("plain text"), "plain text");
}

#[test]
fn every_service_has_a_drain_timeout_and_query_a_body_limit() {
    let q: QueryConfig = load_from(None, env(&[("LOGJET_AUTH", "off")])).unwrap();
    assert_eq!(q.drain_timeout, Duration::from_secs(20));
    assert_eq!(q.max_body_bytes, 1024 * 1024);
    let i: IngestConfig = load_from(
        None,
        env(&[("LOGJET_AUTH", "off"), ("LOGJET_DRAIN_TIMEOUT", "2s")]),
    )
    .unwrap();
    assert_eq!(i.drain_timeout(), Duration::from_secs(2));
    let p: ProcessorConfig = load_from(None, env(&[("LOGJET_DRAIN_TIMEOUT", "1500ms")])).unwrap();
    assert_eq!(p.drain_timeout(), Duration::from_millis(1500));
    let d: DashboardConfig = load_from(None, env(&[("LOGJET_DRAIN_TIMEOUT", "10s")])).unwrap();
    assert_eq!(d.drain_timeout(), Duration::from_secs(10));
    for bad in ["0s", "1h"] {
        let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_DRAIN_TIMEOUT", bad)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("LOGJET_DRAIN_TIMEOUT"), "{e}");
    }
    let e = load_from::<QueryConfig>(
        None,
        env(&[("LOGJET_AUTH", "off"), ("LOGJET_MAX_BODY_BYTES", "0")]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("max_body_bytes"), "{e}");
}

#[test]
fn known_keys_are_flat() {
    let keys = known_keys::<ProcessorConfig>();
    assert!(keys.contains(&"stream_max_age".to_string()));
    assert!(keys.contains(&"consumer".to_string()));
    assert!(known_env_vars::<IngestConfig>().contains(&"LOGJET_NATS_URL".to_string()));
}

#[test]
fn loki_settings_are_top_level_environment_keys() {
    let q: QueryConfig = load_from(
        None,
        env(&[
            ("LOGJET_AUTH", "off"),
            ("LOGJET_LOKI_LABELS", "region,env"),
            ("LOGJET_LOKI_COUNTED_ABOVE", "0"),
        ]),
    )
    .unwrap();
    assert_eq!(q.loki.labels(), vec!["region", "env"]);
    assert_eq!(q.loki.loki_counted_above, 0);
}

#[test]
fn stream_compression_is_s2_unless_turned_off() {
    let p: ProcessorConfig = load_from(None, env(&[])).unwrap();
    assert_eq!(p.stream.stream_compression, StreamCompression::S2);
    let i: IngestConfig = load_from(
        None,
        env(&[
            ("LOGJET_AUTH", "off"),
            ("LOGJET_STREAM_COMPRESSION", "none"),
        ]),
    )
    .unwrap();
    assert_eq!(i.stream.stream_compression, StreamCompression::None);
    assert_eq!(
        crate::jetstream::logs_stream_config(&i.stream).compression,
        Some(async_nats::jetstream::stream::Compression::None)
    );
    let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_STREAM_COMPRESSION", "zip")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("stream_compression"), "{e}");
}
