//! Dead letters: lines that can never be parsed go to `LOGS_DLQ` (subject
//! `deadletter.logs.<service>`) with the reason in a header, instead of blocking the consumer or
//! vanishing.

use std::future::IntoFuture;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage};
use logjet_core::ServiceName;
use logjet_core::parse::{self, Reject};
use logjet_core::subject::headers;

use crate::metrics::ProcessorMetrics;

/// Longest reason header; the details of very many rejects are cut.
const MAX_REASON_BYTES: usize = 2048;

#[derive(Clone)]
pub struct DeadLetters {
    js: jetstream::Context,
    stream_id: String,
    metrics: ProcessorMetrics,
}

impl DeadLetters {
    pub fn new(
        js: jetstream::Context,
        stream_id: String,
        metrics: ProcessorMetrics,
    ) -> DeadLetters {
        DeadLetters {
            js,
            stream_id,
            metrics,
        }
    }

    /// Publishes the rejected lines of `msg` and waits for the DLQ stream's ack. The message id is
    /// derived from the source sequence, so a redelivered message is dead-lettered once.
    pub async fn send(
        &self,
        msg: &jetstream::Message,
        seq: u64,
        rejects: &[Reject],
    ) -> Result<(), async_nats::Error> {
        let service =
            ServiceName::from_subject(msg.subject.as_str()).unwrap_or_else(ServiceName::unknown);
        let mut hdrs = HeaderMap::new();
        hdrs.insert(headers::DLQ_REASON, reason_header(rejects).as_str());
        hdrs.insert(headers::DLQ_ORIGINAL_SUBJECT, msg.subject.as_str());
        hdrs.insert(headers::DLQ_ORIGINAL_SEQUENCE, seq.to_string().as_str());
        let payload = parse::extract_rejected(&msg.payload, rejects);
        let publish = PublishMessage::build()
            .payload(payload.into())
            .headers(hdrs)
            .message_id(format!("dlq-{}-{seq}", self.stream_id));
        let ack = self
            .js
            .send_publish(service.dlq_subject(), publish)
            .await?
            .into_future()
            .await?;
        if !ack.duplicate {
            for r in rejects {
                self.metrics
                    .dead_letters
                    .with_label_values(&[r.reason])
                    .inc();
            }
        }
        tracing::warn!(seq, subject = %msg.subject, rejected = rejects.len(), "dead-lettered");
        Ok(())
    }
}

/// `line 3: invalid JSON: …; line 7: …`, cut to a header-friendly size, one line.
pub fn reason_header(rejects: &[Reject]) -> String {
    let mut out = String::new();
    for r in rejects {
        let part = format!("line {}: {}", r.line, r.error);
        if out.len() + part.len() + 2 > MAX_REASON_BYTES {
            out.push_str(&format!("; … {} more", rejects.len()));
            break;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&part);
    }
    out.replace(['\r', '\n'], " ")
}

/// What `logjet-processor dlq replay` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters published back to their original subject (and removed from the DLQ).
    pub replayed: u64,
    /// Dead letters without a usable original subject, left in place.
    pub skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Nats(#[from] logjet_core::jetstream::JetStreamError),
    #[error("{0}")]
    Stream(String),
}

/// The subject a dead letter came from: its `Logjet-Dlq-Subject` header, else its own subject
/// with the `deadletter.` prefix removed.
pub fn original_subject(subject: &str, hdrs: &HeaderMap) -> Option<String> {
    let from_header = hdrs
        .get(headers::DLQ_ORIGINAL_SUBJECT)
        .map(|v| v.as_str().to_string());
    let derived = subject
        .strip_prefix(logjet_core::subject::DLQ_SUBJECT_PREFIX)
        .map(|s| format!("{}{s}", logjet_core::subject::SUBJECT_PREFIX));
    from_header
        .or(derived)
        .and_then(|s| ServiceName::from_subject(&s).map(|svc| svc.subject()))
}

/// Publishes dead letters back to `logs.<service>` (after a fix, the processors read them again)
/// and deletes each from the DLQ once JetStream acknowledged its copy. A replay interrupted and run
/// again does not duplicate: each copy carries a message id derived from its DLQ sequence.
pub async fn replay(
    cfg: &logjet_core::config::ProcessorConfig,
    dry_run: bool,
    limit: Option<u64>,
) -> Result<ReplayReport, ReplayError> {
    let client = logjet_core::jetstream::connect(&cfg.nats_url, "logjet-processor-dlq", false)
        .await?
        .client;
    let js = logjet_core::jetstream::context(client, std::time::Duration::from_secs(10));
    let mut stream = js
        .get_stream(&cfg.stream.dlq_stream)
        .await
        .map_err(|e| ReplayError::Stream(e.to_string()))?;
    let state = stream
        .info()
        .await
        .map_err(|e| ReplayError::Stream(e.to_string()))?
        .state
        .clone();
    let mut report = ReplayReport::default();
    if state.messages == 0 {
        return Ok(report);
    }
    for seq in state.first_sequence..=state.last_sequence {
        if limit.is_some_and(|l| report.replayed >= l) {
            break;
        }
        // Gaps (already replayed or deleted) are skipped.
        let Ok(msg) = stream.get_raw_message(seq).await else {
            continue;
        };
        let Some(subject) = original_subject(msg.subject.as_str(), &msg.headers) else {
            report.skipped += 1;
            continue;
        };
        if !dry_run {
            let publish = PublishMessage::build()
                .payload(msg.payload.clone())
                .message_id(format!("dlq-replay-{}-{seq}", cfg.stream.dlq_stream));
            js.send_publish(subject, publish)
                .await
                .map_err(|e| ReplayError::Stream(e.to_string()))?
                .into_future()
                .await
                .map_err(|e| ReplayError::Stream(e.to_string()))?;
            stream
                .delete_message(seq)
                .await
                .map_err(|e| ReplayError::Stream(e.to_string()))?;
        }
        report.replayed += 1;
    }
    Ok(report)
}
