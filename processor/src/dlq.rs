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
