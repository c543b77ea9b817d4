//! JetStream set-up shared by the services: connecting, the LOGS and LOGS_DLQ streams, and the
//! processor's durable consumer.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{Client, ConnectOptions, Event};

use crate::config::{ProcessorConfig, StreamCompression, StreamSettings};
use crate::outage::{OutageTracker, REMINDER_EVERY, Throttle};
use crate::shutdown::{CancellationToken, sleep_or_shutdown};
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

/// A NATS client and the tracker its connection events feed: the one place NATS outages are
/// logged (see [`crate::outage`]), and what a request waiting on NATS selects on to fail fast.
#[derive(Clone, Debug)]
pub struct Nats {
    pub client: Client,
    pub status: OutageTracker,
}

impl Nats {
    /// The client's own view: what readiness and `logjet_nats_connected` report.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Sends what the client buffered (acks, naks) to the server, if connected, waiting at most
    /// `within`: the client's own `flush` waits for a connection forever.
    pub async fn flush_within(&self, within: Duration) {
        if !self.is_connected() {
            return;
        }
        match tokio::time::timeout(within, self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "flush failed"),
            Err(_) => tracing::debug!("flush did not finish within {within:?}"),
        }
    }
}

/// Connects to NATS. With `retry` the client keeps trying in the background instead of failing,
/// so a service can start (and report not-ready) before NATS is up. Reconnects are quick and
/// unbounded: a NATS restart must not need a service restart. The client's connection events go
/// to an [`OutageTracker`], which logs an outage once (not every reconnect attempt).
pub async fn connect(url: &str, name: &str, retry: bool) -> Result<Nats, JetStreamError> {
    let status = OutageTracker::new("nats", "NATS", url);
    let server_errors = Arc::new(Throttle::new(REMINDER_EVERY));
    let events = status.clone();
    let mut opts = ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(3))
        // A server that stops answering (frozen, partitioned) is noticed after two missed pings
        // rather than the default two minutes.
        .ping_interval(Duration::from_secs(10))
        // The client also waits this before its very first attempt: none then, so a service is
        // ready as soon as NATS answers; then 100 ms more per attempt, up to a second.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts.saturating_sub(1) as u64 * 100).min(1000))
        })
        .event_callback(move |event| {
            observe(&events, &server_errors, event);
            std::future::ready(())
        });
    if retry {
        opts = opts.retry_on_initial_connect();
    }
    // Credentials in the URL (`nats://user:pass@host`, from a Secret) go to the client as
    // options: async-nats would otherwise ignore them, and log them with the server address.
    let (servers, credentials) = split_credentials(url);
    match credentials {
        Some(Credentials::UserPassword(user, pass)) => {
            opts = opts
                .custom_inbox_prefix(inbox_prefix(&user))
                .user_and_password(user, pass)
        }
        Some(Credentials::Token(token)) => opts = opts.token(token),
        None => {}
    }
    let client =
        opts.connect(servers.as_str())
            .await
            .map_err(|source| JetStreamError::Connect {
                url: crate::config::redact_url(url),
                source,
            })?;
    Ok(Nats { client, status })
}

/// What a connection event means: async-nats reports every reconnect attempt (once a second
/// during an outage); the tracker turns them into one line per outage. Its own per-event log
/// line is filtered out in [`crate::telemetry::init`].
fn observe(status: &OutageTracker, server_errors: &Throttle, event: Event) {
    match event {
        Event::Connected => status.succeeded(),
        Event::Disconnected => status.failed(&"connection lost"),
        Event::ClientError(e) => status.failed(&e),
        Event::ServerError(e) => {
            if let Some(suppressed) = server_errors.allow() {
                tracing::warn!(error = %e, suppressed, "NATS server error");
            }
        }
        Event::SlowConsumer(sid) => {
            if let Some(suppressed) = server_errors.allow() {
                tracing::warn!(subscription = sid, suppressed, "NATS slow consumer");
            }
        }
        Event::LameDuckMode => {
            tracing::info!("{} entered lame duck mode", status.what());
        }
        Event::Draining | Event::Closed => tracing::debug!(event = %event, "NATS connection"),
    }
}

/// Credentials found in a NATS URL.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    UserPassword(String, String),
    Token(String),
}

/// The subjects a user's replies come back on (`<prefix>.>`): each NATS user its own, so its
/// permissions allow its replies without allowing every `_INBOX.>` (where it could read the
/// replies meant for another service). The nats-auth.conf of the manifests allows exactly this.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// Removes `user:pass@` (or `token@`) from every server of a comma-separated NATS URL and returns
/// them, percent-decoded. The first server's credentials are used for all.
pub fn split_credentials(url: &str) -> (String, Option<Credentials>) {
    let mut found = None;
    let servers: Vec<String> = url
        .split(',')
        .map(|u| {
            let u = u.trim();
            let Some(scheme_end) = u.find("://").map(|i| i + 3) else {
                return u.to_string();
            };
            let Some(at) = u[scheme_end..].rfind('@').map(|i| i + scheme_end) else {
                return u.to_string();
            };
            let userinfo = &u[scheme_end..at];
            if found.is_none() && !userinfo.is_empty() {
                found = Some(match userinfo.split_once(':') {
                    Some((user, pass)) => {
                        Credentials::UserPassword(percent_decode(user), percent_decode(pass))
                    }
                    None => Credentials::Token(percent_decode(userinfo)),
                });
            }
            format!("{}{}", &u[..scheme_end], &u[at + 1..])
        })
        .collect();
    (servers.join(","), found)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b.get(i + 1)), hex_val(b.get(i + 2)))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: Option<&u8>) -> Option<u8> {
    (*c? as char).to_digit(16).map(|d| d as u8)
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
        // S2 on the server's blocks (nats-server 2.10+; older servers ignore the field): log
        // batches are text, and the stream holds hours of them (docs/archive.md, "The stream").
        compression: Some(match s.stream_compression {
            StreamCompression::S2 => stream::Compression::S2,
            StreamCompression::None => stream::Compression::None,
        }),
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

/// With `manage` ([`StreamSettings::manage_streams`]), [`ensure_stream`]; without, the stream as
/// it is: a service whose NATS user may not create or update streams waits for one that may.
pub async fn ensure_or_find_stream(
    js: &jetstream::Context,
    config: stream::Config,
    manage: bool,
) -> Result<stream::Info, JetStreamError> {
    if manage {
        return ensure_stream(js, config).await;
    }
    match js.get_stream(&config.name).await {
        Ok(stream) => Ok(stream.cached_info().clone()),
        Err(e) => Err(JetStreamError::Stream {
            message: format!("{e} (this service does not create it: manage_streams is off)"),
            stream: config.name,
        }),
    }
}

/// A durable pull consumer of the LOGS stream (every subject), with explicit acks: the
/// processors' and the archivers' (each group shares its own).
pub fn logs_consumer_config(
    name: &str,
    description: &str,
    ack_wait: Duration,
    max_deliver: i64,
    max_ack_pending: i64,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(name.to_string()),
        description: Some(description.to_string()),
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        max_deliver,
        max_ack_pending,
        filter_subject: STREAM_SUBJECTS.to_string(),
        ..Default::default()
    }
}

/// Creates the consumer `config` names on `stream`, or brings an existing one to this config.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    stream: &str,
    config: consumer::pull::Config,
) -> Result<consumer::PullConsumer, JetStreamError> {
    let err = |message: String| JetStreamError::Consumer {
        stream: stream.to_string(),
        consumer: config.durable_name.clone().unwrap_or_default(),
        message,
    };
    let handle = js
        .get_stream(stream)
        .await
        .map_err(|e| err(e.to_string()))?;
    match handle.create_consumer(config.clone()).await {
        Ok(c) => Ok(c),
        // An existing consumer with different settings: update what may be updated.
        Err(_) => js
            .update_consumer_on_stream(config.clone(), stream)
            .await
            .map_err(|e| err(e.to_string())),
    }
}

/// The processors' shared durable pull consumer.
pub fn processor_consumer_config(cfg: &ProcessorConfig) -> consumer::pull::Config {
    logs_consumer_config(
        &cfg.consumer,
        "logjet processors: aggregate into Redis",
        cfg.ack_wait,
        cfg.max_deliver,
        cfg.max_ack_pending,
    )
}

/// Creates or updates the processors' consumer.
pub async fn ensure_processor_consumer(
    js: &jetstream::Context,
    cfg: &ProcessorConfig,
) -> Result<consumer::PullConsumer, JetStreamError> {
    ensure_consumer(js, &cfg.stream.stream, processor_consumer_config(cfg)).await
}

/// Runs `bind` (set up streams and a consumer) until it succeeds: while NATS is down it waits
/// (20 ms doubling to 1 s) without a word; a failure while NATS answers is said once under
/// `what` (with reminders), and the recovery when bound. `None` when `shutdown` came first.
pub async fn bind_until_ready<T, E, Fut>(
    nats: &Nats,
    shutdown: &CancellationToken,
    what: String,
    mut bind: impl FnMut() -> Fut,
) -> Option<T>
where
    E: std::fmt::Display,
    Fut: Future<Output = Result<T, E>>,
{
    let status = OutageTracker::describing("consumer", what);
    let mut delay = Duration::from_millis(20);
    let mut failed = false;
    let bound = loop {
        if nats.is_connected() {
            let bound = tokio::select! {
                r = bind() => r,
                _ = shutdown.cancelled() => return None,
            };
            match bound {
                Ok(b) => break b,
                Err(e) if nats.is_connected() => {
                    failed = true;
                    status.failed(&e);
                }
                Err(e) => tracing::debug!(error = %e, "consumer not bound during a NATS outage"),
            }
        }
        if !sleep_or_shutdown(shutdown, delay).await {
            return None;
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    };
    if failed {
        // Says how long it took; a consumer bound at the first try is said by the caller.
        status.succeeded();
    }
    Some(bound)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        assert_eq!(
            split_credentials("nats://ingest:p%40ss@nats:4222"),
            (
                "nats://nats:4222".into(),
                Some(Credentials::UserPassword("ingest".into(), "p@ss".into()))
            )
        );
        assert_eq!(
            split_credentials("tls://tok@a:1, tls://tok@b:2"),
            (
                "tls://a:1,tls://b:2".into(),
                Some(Credentials::Token("tok".into()))
            )
        );
        assert_eq!(
            split_credentials("nats://127.0.0.1:4222"),
            ("nats://127.0.0.1:4222".into(), None)
        );
    }
}
