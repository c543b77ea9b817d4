//! The consume loop: fetch, route each message's events to its services' open segments, cut a
//! segment when a rule says so, upload it and commit its index object, and only then
//! acknowledge the messages all of whose segments are committed (commit-then-ack).
//!
//! While an upload fails (object store down) the loop retries it with backoff and fetches
//! nothing: memory stays bounded, and the messages wait in the stream. Progress acks keep the
//! held messages this replica's meanwhile; a segment whose hold is no longer certain is given up
//! (its messages are redelivered), so two replicas never commit the same message.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message, consumer::PullConsumer};
use futures::StreamExt;
use futures::future::join_all;
use logjet_core::archive::{ArchiveError, Catalog, SegmentOptions, SegmentWriter};
use logjet_core::config::ArchiverConfig;
use logjet_core::jetstream::{self as ljs, Nats};
use logjet_core::message::{decode_message, message_options};
use logjet_core::outage::{OutageTracker, Throttle};
use tokio_util::sync::CancellationToken;

use crate::metrics::ArchiverMetrics;
use crate::route::{Item, route};
use crate::segments::{self, Held, Limits, Open};

mod commit;
pub(crate) use logjet_core::shutdown::sleep_or_shutdown;

/// Acks and naks wait at most this for the client's buffer; one not sent comes back after
/// `ack_wait`, which commit-then-ack makes harmless.
const ACK_BOUND: Duration = Duration::from_secs(1);
/// Most payload bytes one fetch brings (a bounded amount of work between progress acks).
const FETCH_MAX_BYTES: usize = 8 << 20;
/// Longest wait for a fetch, so cuts by age and progress acks are never late by more.
const FETCH_WAIT: Duration = Duration::from_secs(1);

pub struct Worker {
    pub consumer: PullConsumer,
    pub nats: Nats,
    pub catalog: Catalog,
    /// The object store's outages, logged once each.
    pub store_status: OutageTracker,
    pub metrics: ArchiverMetrics,
    pub cfg: ArchiverConfig,
    /// The stream's creation time in ms: part of every segment's name.
    pub incarnation: u64,
    /// The consumer's `num_pending`, as the lag watcher last read it.
    pub pending: Arc<AtomicU64>,
    pub failures_log: Throttle,
}

/// What one replica holds.
struct Run {
    open: HashMap<String, Open>,
    held: HashMap<u64, Held>,
    last_progress: Instant,
}

impl Worker {
    fn limits(&self) -> Limits {
        Limits {
            max_age: self.cfg.segment_max_age,
            max_events: self.cfg.segment_max_events,
            max_bytes: self.cfg.segment_max_bytes,
        }
    }

    /// Runs until `shutdown`, then commits what it can within the drain and hands the rest back.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut run = Run {
            open: HashMap::new(),
            held: HashMap::new(),
            last_progress: Instant::now(),
        };
        let limits = self.limits();
        while !shutdown.is_cancelled() {
            self.progress_if_due(&mut run).await;
            let now = Instant::now();
            let due: Vec<(String, &'static str)> = run
                .open
                .iter()
                .filter_map(|(s, o)| {
                    segments::cut_reason(
                        o.opened,
                        o.writer.rows(),
                        o.writer.raw_bytes(),
                        &limits,
                        now,
                    )
                    .map(|r| (s.clone(), r))
                })
                .collect();
            for (service, reason) in due {
                self.cut(&mut run, &service, reason, &shutdown).await;
            }
            self.enforce_bounds(&mut run, &shutdown).await;
            self.update_gauges(&run);
            if shutdown.is_cancelled() {
                break;
            }
            if !self.nats.is_connected() {
                sleep_or_shutdown(&shutdown, Duration::from_millis(100)).await;
                continue;
            }
            let room = usize::try_from(self.cfg.max_ack_pending)
                .unwrap_or(usize::MAX)
                .saturating_sub(run.held.len());
            let wait = self.fetch_wait(&run);
            let batch = self
                .fetch(room.min(self.cfg.fetch_batch).max(1), wait, &shutdown)
                .await;
            if batch.is_empty() {
                // Nothing came although the stream has more: the consumer's max_ack_pending is
                // reached (by the messages held here and by other replicas). Commit to free it.
                if !run.open.is_empty() && self.pending.load(Ordering::Relaxed) > 0 {
                    let all: Vec<String> = run.open.keys().cloned().collect();
                    for s in all {
                        self.cut(&mut run, &s, "pending", &shutdown).await;
                    }
                }
                continue;
            }
            self.handle(&mut run, batch, &shutdown).await;
        }
        self.drain(&mut run).await;
    }

    /// How long a fetch may wait: [`FETCH_WAIT`], less when a cut by age is due sooner.
    fn fetch_wait(&self, run: &Run) -> Duration {
        let now = Instant::now();
        let mut wait = FETCH_WAIT;
        for o in run.open.values() {
            let left = (o.opened + self.cfg.segment_max_age).saturating_duration_since(now);
            wait = wait.min(left);
        }
        wait.max(Duration::from_millis(50))
    }

    /// One pull request, read to its end (at most `wait`).
    async fn fetch(
        &self,
        max: usize,
        wait: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<Message> {
        let request = tokio::select! {
            r = self
                .consumer
                .batch()
                .max_messages(max)
                .max_bytes(FETCH_MAX_BYTES)
                .expires(wait)
                .messages() => r,
            _ = shutdown.cancelled() => return Vec::new(),
        };
        let mut stream = match request {
            Ok(s) => s,
            Err(e) => {
                if self.nats.is_connected()
                    && let Some(suppressed) = self.failures_log.allow()
                {
                    tracing::warn!(error = %e, suppressed, "cannot pull from the consumer; retrying");
                }
                sleep_or_shutdown(shutdown, Duration::from_millis(500)).await;
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        // The request ends by itself after `wait`; past that (NATS gone) it is abandoned and
        // its messages come back after ack_wait.
        let deadline = tokio::time::Instant::now() + wait + Duration::from_secs(2);
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, stream.next()).await {
            match m {
                Ok(m) => out.push(m),
                Err(e) => tracing::debug!(error = %e, "pull stream notice"),
            }
        }
        out
    }

    /// Routes a batch into the open segments.
    async fn handle(&self, run: &mut Run, batch: Vec<Message>, shutdown: &CancellationToken) {
        let now = Instant::now();
        // Redeliveries are looked up in the archive; the recent commits are listed once.
        let mut refreshed: Option<bool> = None;
        let mut touched: Vec<String> = Vec::new();
        for m in batch {
            let Ok(info) = m.info() else {
                tracing::debug!("a message without JetStream metadata; skipped");
                continue;
            };
            let (seq, delivered) = (info.stream_sequence, info.delivered);
            let published = ljs::published_at(&info);
            if let Some(h) = run.held.get_mut(&seq) {
                // Delivered again while its segments are open here: keep the newest delivery.
                h.msg = m;
                h.since = now;
                continue;
            }
            let opts = message_options(
                m.subject.as_str(),
                published,
                self.cfg.stream.stream_max_age,
            );
            let canonical = ljs::is_canonical(m.headers.as_ref());
            let mut routed = route(&m.payload, canonical, &opts);
            if routed.is_empty() {
                // Nothing to archive (the processor dead-letters unreadable payloads).
                self.metrics.messages.with_label_values(&["empty"]).inc();
                send_acks([m.ack_with(AckKind::Ack)], "ack").await;
                continue;
            }
            if delivered > 1 {
                if refreshed.is_none() {
                    let r = self.catalog.refresh_recent().await;
                    self.observe_store(r.as_ref().err());
                    refreshed = Some(r.is_ok());
                }
                let mut unknown = refreshed != Some(true);
                if !unknown {
                    let published_ms = published.timestamp_millis();
                    let mut archived = Vec::new();
                    for service in routed.keys() {
                        match self
                            .catalog
                            .contains_seq(service, self.incarnation, seq, published_ms)
                            .await
                        {
                            Ok(true) => archived.push(service.clone()),
                            Ok(false) => {}
                            Err(e) => {
                                self.observe_store(Some(&e));
                                unknown = true;
                                break;
                            }
                        }
                    }
                    for s in archived {
                        routed.remove(&s);
                    }
                }
                if unknown {
                    // Cannot tell whether it is archived: it comes back once the store answers.
                    send_acks(
                        [m.ack_with(AckKind::Nak(Some(self.cfg.upload_retry_min)))],
                        "nak",
                    )
                    .await;
                    continue;
                }
                if routed.is_empty() {
                    self.metrics
                        .messages
                        .with_label_values(&["already_archived"])
                        .inc();
                    send_acks([m.ack_with(AckKind::Ack)], "ack").await;
                    continue;
                }
            }
            let mut failed = false;
            let mut segments = 0;
            let mut to_release = Vec::new();
            for (service, items) in &routed {
                match self.append(run, service, seq, items, &opts) {
                    Ok(()) => {
                        segments += 1;
                        touched.push(service.clone());
                    }
                    Err(e) => {
                        tracing::error!(service = %service, seq, error = %e, "segment writer failed; its messages will be redelivered");
                        failed = true;
                        to_release.extend(self.abandon(run, service));
                    }
                }
            }
            run.held.insert(
                seq,
                Held {
                    msg: m,
                    segments,
                    since: now,
                    failed,
                },
            );
            to_release.push(seq);
            self.release(run, &to_release).await;
            // A batch can be a lot of work: cut as soon as a rule says so, and keep the hold on
            // what is held meanwhile.
            self.cut_touched(run, std::mem::take(&mut touched), shutdown)
                .await;
            self.progress_if_due(run).await;
        }
    }

    /// Cuts the segments among `touched` that a rule says must be cut.
    async fn cut_touched(
        &self,
        run: &mut Run,
        mut touched: Vec<String>,
        shutdown: &CancellationToken,
    ) {
        touched.sort();
        touched.dedup();
        let limits = self.limits();
        for service in touched {
            let reason = run.open.get(&service).and_then(|o| {
                segments::cut_reason(
                    o.opened,
                    o.writer.rows(),
                    o.writer.raw_bytes(),
                    &limits,
                    Instant::now(),
                )
            });
            if let Some(reason) = reason {
                self.cut(run, &service, reason, shutdown).await;
            }
        }
    }

    /// Appends one message's events of `service` to its open segment (opened if needed).
    fn append(
        &self,
        run: &mut Run,
        service: &str,
        seq: u64,
        items: &[(u32, Item<'_>)],
        opts: &logjet_core::parse::ParseOptions,
    ) -> Result<(), ArchiveError> {
        if !run.open.contains_key(service) {
            let writer = SegmentWriter::create(
                &self.cfg.spool_dir(),
                service,
                self.incarnation,
                SegmentOptions::default(),
            )?;
            run.open.insert(
                service.to_string(),
                Open {
                    writer,
                    opened: Instant::now(),
                    seqs: Vec::new(),
                },
            );
        }
        let open = run
            .open
            .get_mut(service)
            .ok_or_else(|| ArchiveError::BadLine("segment vanished".into()))?;
        for (idx, item) in items {
            match item {
                Item::Line(line) => match open.writer.append_line(seq, *idx, line) {
                    Err(ArchiveError::BadLine(_)) => {
                        // Canonical to the router but not to the writer: store what the
                        // forgiving parser makes of it.
                        if let [ev] = decode_message(line, true, opts).events.as_slice() {
                            open.writer.append_event(seq, *idx, ev)?;
                        } else {
                            tracing::warn!(seq, idx, "line not archivable; skipped");
                        }
                    }
                    other => other?,
                },
                Item::Event(ev) => match open.writer.append_event(seq, *idx, ev) {
                    Err(ArchiveError::BadLine(e)) => {
                        tracing::warn!(seq, idx, error = %e, "event not archivable; skipped")
                    }
                    other => other?,
                },
            }
        }
        open.seqs.push(seq);
        Ok(())
    }

    /// Keeps the replica within `max_buffered_bytes` and its share of `max_ack_pending`.
    async fn enforce_bounds(&self, run: &mut Run, shutdown: &CancellationToken) {
        loop {
            let buffered: usize = run.open.values().map(|o| o.writer.buffered_bytes()).sum();
            // (Names are computed before any await: open segments are not `Sync`.)
            let by_memory = (buffered as u64 > self.cfg.max_buffered_bytes)
                .then(|| segments::largest(&run.open, |o| o.writer.buffered_bytes()))
                .flatten();
            if let Some(s) = by_memory {
                self.cut(run, &s, "memory", shutdown).await;
                continue;
            }
            // Held messages count against the consumer's max_ack_pending for every replica:
            // past half of it, commit the segment holding the most.
            let by_pending = (run.held.len() as i64 >= self.cfg.max_ack_pending / 2)
                .then(|| segments::largest(&run.open, |o| o.seqs.len()))
                .flatten();
            if let Some(s) = by_pending {
                self.cut(run, &s, "pending", shutdown).await;
                continue;
            }
            return;
        }
    }
    /// Every `ack_wait / 4`, a progress ack for every held message; once the server has them
    /// (a flush), the hold counts from the round's start.
    async fn progress_if_due(&self, run: &mut Run) {
        let every = segments::progress_every(self.cfg.ack_wait);
        if run.last_progress.elapsed() < every || run.held.is_empty() {
            return;
        }
        run.last_progress = Instant::now();
        if !self.nats.is_connected() {
            return;
        }
        let round = Instant::now();
        send_acks(
            run.held.values().map(|h| h.msg.ack_with(AckKind::Progress)),
            "progress ack",
        )
        .await;
        let flushed = tokio::time::timeout(Duration::from_secs(2), self.nats.client.flush()).await;
        if matches!(flushed, Ok(Ok(()))) {
            for h in run.held.values_mut() {
                h.since = h.since.max(round);
            }
        }
    }

    fn update_gauges(&self, run: &Run) {
        self.metrics.open_segments.set(run.open.len() as i64);
        self.metrics.held_messages.set(run.held.len() as i64);
    }

    /// After shutdown: each open segment gets one upload attempt within the drain; what is not
    /// committed is handed back at once.
    async fn drain(&self, run: &mut Run) {
        let services: Vec<String> = run.open.keys().cloned().collect();
        let shutdown = CancellationToken::new();
        for s in services {
            self.cut(run, &s, "shutdown", &shutdown).await;
        }
        let left: Vec<u64> = run.held.keys().copied().collect();
        for s in &left {
            if let Some(h) = run.held.get_mut(s) {
                h.failed = true;
                h.segments = 0;
            }
        }
        if !left.is_empty() {
            tracing::info!(messages = left.len(), "handing back messages not archived");
        }
        self.release(run, &left).await;
    }
}

/// Sends acks or naks, waiting at most [`ACK_BOUND`].
async fn send_acks<F>(acks: impl IntoIterator<Item = F>, what: &str)
where
    F: std::future::Future<Output = Result<(), async_nats::Error>>,
{
    match tokio::time::timeout(ACK_BOUND, join_all(acks)).await {
        Ok(results) => {
            for r in results {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "{what} failed; the message comes back after ack_wait");
                }
            }
        }
        Err(_) => tracing::debug!("{what}s not sent within {ACK_BOUND:?}"),
    }
}
