//! JetStream set-up shared by the services: connecting, the LOGS and LOGS_DLQ streams, and the
//! processor's durable consumer.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{Client, ConnectOptions};

use crate::config::{ProcessorConfig, StreamSettings};
use crate::subject::{DLQ_SUBJECTS, STREAM_SUBJECTS};

#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("creating or updating stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("creating or updating consumer {consumer} on {stream}: {message}")]
    Consumer {
        stream: String,
        consumer: String,
        message: String,
    },
}

/// Connects to NATS. With `retry` the client keeps trying in the background instead of failing,
/// so a service can start (and report not-ready) before NATS is up. Reconnects are quick and
/// unbounded: a NATS restart must not need a service restart.
pub async fn connect(url: &str, name: &str, retry: bool) -> Result<Client, JetStreamError> {
    let mut opts = ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(3))
        // The client also waits this before its very first attempt: none then, so a service is
        // ready as soon as NATS answers; then 100 ms more per attempt, up to a second.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts.saturating_sub(1) as u64 * 100).min(1000))
        });
    if retry {
        opts = opts.retry_on_initial_connect();
    }
    opts.connect(url)
        .await
        .map_err(|source| JetStreamError::Connect {
            url: crate::config::redact_url(url),
            source,
        })
}

/// A JetStream context whose API calls and publish acks time out after `timeout`, with
/// publishers waiting (not failing) when too many acks are outstanding.
pub fn context(client: Client, timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(timeout)
        .max_ack_inflight(20_000)
        .backpressure_on_inflight(true)
        .build(client)
}

/// The LOGS stream: limits retention (not work-queue), so tail, replay and history readers can
/// consume beside the processors.
pub fn logs_stream_config(s: &StreamSettings) -> stream::Config {
    stream::Config {
        name: s.stream.clone(),
        description: Some("logjet: every accepted log event, subjects logs.<service>".into()),
        subjects: vec![STREAM_SUBJECTS.to_string()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        max_age: s.stream_max_age,
        max_bytes: s.stream_max_bytes,
        num_replicas: s.stream_replicas,
        duplicate_window: s.stream_duplicate_window,
        allow_direct: true,
        ..Default::default()
    }
}

/// The dead-letter stream: payloads the processor could never parse, with the reason in a header.
pub fn dlq_stream_config(s: &StreamSettings) -> stream::Config {
    stream::Config {
        name: s.dlq_stream.clone(),
        description: Some("logjet: payloads that could not be parsed".into()),
        subjects: vec![DLQ_SUBJECTS.to_string()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_bytes: (s.stream_max_bytes / 10).max(64 * 1024 * 1024),
        num_replicas: s.stream_replicas,
        duplicate_window: s.stream_duplicate_window,
        ..Default::default()
    }
}

/// Creates the stream, or brings an existing one to this config.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Info, JetStreamError> {
    let name = config.name.clone();
    js.create_or_update_stream(config)
        .await
        .map_err(|e| JetStreamError::Stream {
            stream: name,
            message: e.to_string(),
        })
}

/// The processors' shared durable pull consumer.
pub fn processor_consumer_config(cfg: &ProcessorConfig) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(cfg.consumer.clone()),
        description: Some("logjet processors: aggregate into Redis".into()),
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: cfg.ack_wait,
        max_deliver: cfg.max_deliver,
        max_ack_pending: cfg.max_ack_pending,
        filter_subject: STREAM_SUBJECTS.to_string(),
        ..Default::default()
    }
}

/// Creates or updates the processors' consumer.
pub async fn ensure_processor_consumer(
    js: &jetstream::Context,
    cfg: &ProcessorConfig,
) -> Result<consumer::PullConsumer, JetStreamError> {
    let err = |message: String| JetStreamError::Consumer {
        stream: cfg.stream.stream.clone(),
        consumer: cfg.consumer.clone(),
        message,
    };
    let stream = js
        .get_stream(&cfg.stream.stream)
        .await
        .map_err(|e| err(e.to_string()))?;
    let config = processor_consumer_config(cfg);
    match stream.create_consumer(config.clone()).await {
        Ok(c) => Ok(c),
        // An existing consumer with different settings: update what may be updated.
        Err(_) => js
            .update_consumer_on_stream(config, &cfg.stream.stream)
            .await
            .map_err(|e| err(e.to_string())),
    }
}

/// Whether a message is one of ingest's canonical NDJSON batches.
pub fn is_canonical(headers: Option<&async_nats::HeaderMap>) -> bool {
    headers
        .and_then(|h| h.get(crate::subject::headers::FORMAT))
        .is_some_and(|v| v.as_str() == crate::subject::headers::FORMAT_CANONICAL)
}

/// JetStream's storage time of a message, as the time of receipt of its events.
pub fn published_at(
    info: &async_nats::jetstream::message::Info<'_>,
) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_nanos(info.published.unix_timestamp_nanos() as i64)
}

/// A stable id for a stream incarnation: its name and creation time. Idempotency bits are keyed
/// by it, so a re-created stream (sequences restart at 1) never matches old bits.
pub fn stream_incarnation(info: &stream::Info) -> String {
    format!(
        "{}-{}",
        info.config.name,
        info.created.unix_timestamp_nanos()
    )
}
