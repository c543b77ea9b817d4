//! The commit side of the consume loop: a segment cut, uploaded with backoff and committed,
//! then its messages acknowledged; or, when its hold is lost, given up for redelivery.

use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use logjet_core::archive::{ArchiveError, FinishedSegment};
use logjet_core::shutdown::sleep_or_shutdown;
use tokio_util::sync::CancellationToken;

use super::{Run, Worker, send_acks};
use crate::segments;

impl Worker {
    /// Finishes, uploads and commits one open segment, retrying uploads with backoff until
    /// they succeed (or shutdown, or the hold on its messages is lost), then acknowledges the
    /// messages that have no other open segment.
    pub(super) async fn cut(
        &self,
        run: &mut Run,
        service: &str,
        reason: &str,
        shutdown: &CancellationToken,
    ) {
        let Some(open) = run.open.remove(service) else {
            return;
        };
        let seqs = open.seqs;
        let finished = tokio::task::spawn_blocking(move || open.writer.finish()).await;
        let seg = match finished {
            Ok(Ok(seg)) => seg,
            Ok(Err(e)) => {
                tracing::error!(service, error = %e, "finishing a segment failed; its messages will be redelivered");
                self.give_up(run, &seqs).await;
                return;
            }
            Err(e) => {
                tracing::error!(service, error = %e, "segment finisher panicked");
                self.give_up(run, &seqs).await;
                return;
            }
        };
        let retry = reason != "shutdown";
        if self.upload(run, &seg, &seqs, retry, shutdown).await {
            self.metrics.committed(
                reason,
                seg.header.rows,
                seg.header.bytes,
                seg.header.raw_bytes,
            );
            tracing::debug!(segment = %seg.header.segment, rows = seg.header.rows, reason, "segment committed");
            for s in &seqs {
                if let Some(h) = run.held.get_mut(s) {
                    h.segments = h.segments.saturating_sub(1);
                }
            }
            self.release(run, &seqs).await;
        } else {
            self.give_up(run, &seqs).await;
        }
    }

    /// Uploads and commits; `true` once the index object is written.
    pub(super) async fn upload(
        &self,
        run: &mut Run,
        seg: &FinishedSegment,
        seqs: &[u64],
        retry: bool,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut delay = self.cfg.upload_retry_min;
        // One attempt may take at most what is left of the hold.
        let mut attempt_bound = self
            .cfg
            .ack_wait
            .saturating_sub(segments::hold_margin(self.cfg.ack_wait));
        if !retry {
            // Draining: the whole stop must fit in drain_timeout.
            attempt_bound = attempt_bound.min(self.cfg.drain_timeout / 2);
        }
        loop {
            if !segments::hold_certain(&run.held, seqs, self.cfg.ack_wait, Instant::now()) {
                tracing::warn!(segment = %seg.header.segment, "hold on the segment's messages not certain (NATS unreachable too long); dropping it for redelivery");
                return false;
            }
            let started = Instant::now();
            let attempt = tokio::time::timeout(attempt_bound, self.catalog.publish(seg)).await;
            match attempt {
                Ok(Ok(_)) => {
                    self.observe_store(None);
                    self.metrics
                        .upload_duration
                        .observe(started.elapsed().as_secs_f64());
                    return true;
                }
                Ok(Err(e)) => {
                    self.metrics.upload_errors.inc();
                    self.observe_store(Some(&e));
                }
                Err(_) => {
                    self.metrics.upload_errors.inc();
                    self.store_status
                        .failed(&format!("upload did not finish within {attempt_bound:?}"));
                    self.metrics.store_up.set(0);
                }
            }
            if !retry || shutdown.is_cancelled() {
                return false;
            }
            // Wait, keeping the hold on everything held meanwhile.
            let until = Instant::now() + delay;
            while Instant::now() < until {
                self.progress_if_due(run).await;
                let step = until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(250));
                if !sleep_or_shutdown(shutdown, step).await {
                    return false;
                }
            }
            delay = (delay * 2).min(self.cfg.upload_retry_max);
        }
    }

    pub(super) fn observe_store(&self, error: Option<&ArchiveError>) {
        match error {
            None => {
                self.store_status.succeeded();
                self.metrics.store_up.set(1);
            }
            Some(e) => {
                self.store_status.failed(e);
                self.metrics.store_up.set(0);
            }
        }
    }

    /// A segment is given up: its messages must be redelivered. Those with no other open
    /// segment are nak'ed now; the others when their last segment is done.
    pub(super) async fn give_up(&self, run: &mut Run, seqs: &[u64]) {
        self.metrics.segments_dropped.inc();
        for s in seqs {
            if let Some(h) = run.held.get_mut(s) {
                h.failed = true;
                h.segments = h.segments.saturating_sub(1);
            }
        }
        self.release(run, seqs).await;
    }

    /// Drops an open segment whose writer failed (nothing was committed).
    /// Returns its messages, to be released.
    pub(super) fn abandon(&self, run: &mut Run, service: &str) -> Vec<u64> {
        let Some(open) = run.open.remove(service) else {
            return Vec::new();
        };
        self.metrics.segments_dropped.inc();
        for s in &open.seqs {
            if let Some(h) = run.held.get_mut(s) {
                h.failed = true;
                h.segments = h.segments.saturating_sub(1);
            }
        }
        open.seqs
    }

    /// Acknowledges (or, when one of their segments was given up, naks) the messages among
    /// `seqs` that no open segment holds any more.
    pub(super) async fn release(&self, run: &mut Run, seqs: &[u64]) {
        let mut acks = Vec::new();
        let mut naks = Vec::new();
        for s in seqs {
            if run.held.get(s).is_some_and(|h| h.segments == 0)
                && let Some(h) = run.held.remove(s)
            {
                if h.failed {
                    naks.push(h.msg);
                } else {
                    acks.push(h.msg);
                }
            }
        }
        if !acks.is_empty() {
            self.metrics
                .messages
                .with_label_values(&["archived"])
                .inc_by(acks.len() as u64);
            send_acks(acks.iter().map(|m| m.ack_with(AckKind::Ack)), "ack").await;
        }
        if !naks.is_empty() {
            send_acks(naks.iter().map(|m| m.ack_with(AckKind::Nak(None))), "nak").await;
        }
        self.update_gauges(run);
    }
}
