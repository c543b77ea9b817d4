//! `logjet-processor rebuild`: replay the LOGS stream into Redis.
//!
//! JetStream is the source of truth; Redis holds what can be derived from it. After Redis lost
//! data (a restart without persistence, a flush), a rebuild reads the stream from its first
//! message with an ordered consumer and applies every message through the same decode → plan →
//! apply path as the processors. The apply script skips messages whose sequence bit is already
//! set, so a rebuild is safe at any time, beside running processors, and twice in a row: it only
//! adds what is missing. Dead letters are not sent again (the processors did that the first time).

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use chrono::Utc;
use futures::StreamExt;
use logjet_core::config::ProcessorConfig;
use logjet_core::jetstream as ljs;

use crate::aggregate::{Aggregator, MessageEvents, PlanSettings, plan_batch};
use crate::decode::{self, MessageMeta};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    /// Stream messages read.
    pub messages: u64,
    /// Events whose effects were written now.
    pub events_applied: u64,
    /// Messages whose effects Redis already had.
    pub already_applied: u64,
    /// Lines that could not be parsed (they are in LOGS_DLQ since the first time).
    pub rejected_lines: u64,
    /// Last stream sequence covered.
    pub last_seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Nats(#[from] ljs::JetStreamError),
    #[error("reading the stream: {0}")]
    Stream(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Replays every message of the stream, as it was when the rebuild started, into Redis.
pub async fn rebuild(
    cfg: &ProcessorConfig,
    mut progress: impl FnMut(&RebuildReport),
) -> Result<RebuildReport, RebuildError> {
    let client = ljs::connect(&cfg.nats_url, "logjet-processor-rebuild", false)
        .await?
        .client;
    let redis = logjet_core::store::RedisConn::connect(
        &cfg.redis_url,
        &cfg.redis_sentinel,
        Duration::from_secs(30),
    )?;
    logjet_core::store::ping(&redis).await?;
    let js = ljs::context(client, Duration::from_secs(10));
    let mut stream = js
        .get_stream(&cfg.stream.stream)
        .await
        .map_err(|e| RebuildError::Stream(e.to_string()))?;
    let info = stream
        .info()
        .await
        .map_err(|e| RebuildError::Stream(e.to_string()))?
        .clone();
    let mut report = RebuildReport::default();
    let last_seq = info.state.last_sequence;
    if info.state.messages == 0 {
        return Ok(report);
    }
    let settings = PlanSettings {
        stream_id: ljs::stream_incarnation(&info),
        retention: cfg.stream.stream_max_age,
        recent_retention: cfg.recent_retention,
    };
    let aggregator = Aggregator::new(redis);
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: logjet_core::subject::STREAM_SUBJECTS.to_string(),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| RebuildError::Stream(e.to_string()))?;
    let messages = ordered
        .messages()
        .await
        .map_err(|e| RebuildError::Stream(e.to_string()))?;
    let mut batches = messages.ready_chunks(cfg.fetch_batch);
    'read: while let Some(batch) = tokio::time::timeout(Duration::from_secs(10), batches.next())
        .await
        .map_err(|_| {
            RebuildError::Stream("no message for 10 s before the end of the stream".into())
        })?
    {
        let mut msgs: Vec<jetstream::Message> = Vec::with_capacity(batch.len());
        let mut done = false;
        for m in batch {
            let m = m.map_err(|e| RebuildError::Stream(e.to_string()))?;
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            if seq > last_seq {
                done = true;
                break;
            }
            done = seq == last_seq;
            msgs.push(m);
            if done {
                break;
            }
        }
        apply(&aggregator, &settings, cfg, &msgs, &mut report).await?;
        progress(&report);
        if done {
            break 'read;
        }
    }
    Ok(report)
}

async fn apply(
    aggregator: &Aggregator,
    settings: &PlanSettings,
    cfg: &ProcessorConfig,
    msgs: &[jetstream::Message],
    report: &mut RebuildReport,
) -> Result<(), RebuildError> {
    let mut decoded = Vec::with_capacity(msgs.len());
    for m in msgs {
        let Ok(info) = m.info() else { continue };
        let meta = MessageMeta {
            subject: m.subject.as_str(),
            headers: m.headers.as_ref(),
            published: ljs::published_at(&info),
            max_age: cfg.stream.stream_max_age,
        };
        report.last_seq = info.stream_sequence;
        decoded.push((info.stream_sequence, decode::decode(&m.payload, &meta)));
    }
    report.messages += msgs.len() as u64;
    report.rejected_lines += decoded
        .iter()
        .map(|(_, d)| d.rejects.len() as u64)
        .sum::<u64>();
    let inputs: Vec<MessageEvents<'_>> = decoded
        .iter()
        .filter(|(_, d)| !d.events.is_empty())
        .map(|(seq, d)| MessageEvents {
            seq: *seq,
            events: &d.events,
        })
        .collect();
    if inputs.is_empty() {
        return Ok(());
    }
    let planned = plan_batch(&inputs, settings, Utc::now());
    let applied = aggregator.apply_batch(&planned).await?;
    report.events_applied += applied.fresh_events;
    report.already_applied += applied.already_applied;
    Ok(())
}
