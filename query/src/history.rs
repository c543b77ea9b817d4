//! History beyond Redis: events older than the recent-event chunks are read from the LOGS stream,
//! which keeps everything for its max age.
//!
//! JetStream reads forward only, and a newest-first page wants the newest events first, so the
//! window is read in slices from its end backwards: `[end - d, end)`, then the slice before it
//! with `d` doubled, each slice through its own ordered consumer started at the slice's start
//! time (by the server's time index, not by scanning). A scan budget (events decoded and wall
//! time) bounds the work; when it runs out the page says so.

use std::time::{Duration, Instant};

use async_nats::Client;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use logjet_core::{LogEvent, message};

use crate::search::{Budget, EventQuery, Position};

/// Messages published this long after a slice's end may still hold events of the slice.
const PUBLISH_SKEW: Duration = Duration::from_secs(5);
const FIRST_SLICE: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct History {
    pub client: Client,
    pub stream: String,
    pub max_age: Duration,
}

/// What a history scan found.
#[derive(Debug, Default)]
pub struct HistoryPage {
    /// Newest first.
    pub events: Vec<(Position, LogEvent)>,
    pub scanned: u64,
    /// The budget ran out before the window was covered.
    pub truncated: bool,
    /// Everything from the window's start was read.
    pub exhausted: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("reading history from the stream: {0}")]
pub struct HistoryError(pub String);

fn err(e: impl std::fmt::Display) -> HistoryError {
    HistoryError(e.to_string())
}

impl History {
    /// The newest `want` events matching `q` with `since_ns <= ts < end_ns` (and below the cursor).
    pub async fn scan(
        &self,
        q: &EventQuery,
        since_ns: i64,
        end_ns: i64,
        want: usize,
        budget: Budget,
        started: Instant,
    ) -> Result<HistoryPage, HistoryError> {
        let mut page = HistoryPage::default();
        if end_ns <= since_ns || want == 0 {
            page.exhausted = true;
            return Ok(page);
        }
        let js = jetstream::new(self.client.clone());
        let stream = js.get_stream(&self.stream).await.map_err(err)?;
        let filter_subject = q.service.as_ref().map_or_else(
            || logjet_core::subject::STREAM_SUBJECTS.to_string(),
            |s| s.subject(),
        );
        let mut slice_end = end_ns;
        let mut width = FIRST_SLICE.as_nanos() as i64;
        loop {
            let slice_start = slice_end.saturating_sub(width).max(since_ns);
            let mut found = Vec::new();
            let complete = self
                .read_slice(
                    &stream,
                    &filter_subject,
                    q,
                    slice_start,
                    slice_end,
                    &mut found,
                    &mut page.scanned,
                    budget,
                    started,
                )
                .await?;
            found.sort_by_key(|item: &(Position, LogEvent)| std::cmp::Reverse(item.0));
            for item in found {
                if page.events.len() >= want {
                    break;
                }
                page.events.push(item);
            }
            if !complete {
                page.truncated = true;
                return Ok(page);
            }
            if page.events.len() >= want {
                return Ok(page);
            }
            if slice_start <= since_ns {
                page.exhausted = true;
                return Ok(page);
            }
            slice_end = slice_start;
            width = width.saturating_mul(2);
        }
    }

    /// Reads one slice; `false` when the budget ran out first.
    #[allow(clippy::too_many_arguments)]
    async fn read_slice(
        &self,
        stream: &jetstream::stream::Stream,
        filter_subject: &str,
        q: &EventQuery,
        start_ns: i64,
        end_ns: i64,
        found: &mut Vec<(Position, LogEvent)>,
        scanned: &mut u64,
        budget: Budget,
        started: Instant,
    ) -> Result<bool, HistoryError> {
        let start_time =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(start_ns)).map_err(err)?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: filter_subject.to_string(),
                deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time },
                ..Default::default()
            })
            .await
            .map_err(err)?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(true);
        }
        let mut messages = consumer.messages().await.map_err(err)?;
        let publish_limit = end_ns.saturating_add(PUBLISH_SKEW.as_nanos() as i64);
        loop {
            if *scanned >= budget.max_events || started.elapsed() >= budget.max_time {
                return Ok(false);
            }
            let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
            let Ok(Some(Ok(msg))) = next else {
                // Nothing more arrives: the slice is read.
                return Ok(true);
            };
            let Ok(info) = msg.info() else { continue };
            let published = logjet_core::jetstream::published_at(&info);
            let seq = info.stream_sequence;
            let pending = info.pending;
            if published.timestamp_nanos_opt().unwrap_or(i64::MAX) > publish_limit {
                return Ok(true);
            }
            let opts = message::message_options(msg.subject.as_str(), published, self.max_age);
            let canonical = logjet_core::jetstream::is_canonical(msg.headers.as_ref());
            let decoded = message::decode_message(&msg.payload, canonical, &opts);
            for (i, ev) in decoded.events.into_iter().enumerate() {
                *scanned += 1;
                let ts = ev.ts_nanos();
                let pos = Position {
                    ts_nanos: ts,
                    chunk: seq,
                    idx: i as u32,
                };
                if ts < start_ns
                    || ts >= end_ns
                    || q.cursor.is_some_and(|c| pos >= c)
                    || !q.matches(&ev)
                {
                    continue;
                }
                found.push((pos, ev));
            }
            if pending == 0 {
                return Ok(true);
            }
        }
    }
}
