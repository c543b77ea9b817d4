//! The archiver's part of the metrics contract (docs/metrics.md).

use logjet_core::metrics::{self, LATENCY_BUCKETS};
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Registry};

/// Why a segment was cut.
pub const CUT_REASONS: [&str; 6] = ["age", "events", "bytes", "memory", "pending", "shutdown"];

#[derive(Clone)]
pub struct ArchiverMetrics {
    pub segments_written: IntCounterVec,
    pub segment_bytes: IntCounter,
    pub raw_bytes: IntCounter,
    pub compression_ratio: Gauge,
    pub events_archived: IntCounter,
    pub messages: IntCounterVec,
    pub upload_duration: Histogram,
    pub upload_errors: IntCounter,
    pub segments_dropped: IntCounter,
    pub open_segments: IntGauge,
    pub held_messages: IntGauge,
    pub consumer_lag: IntGauge,
    pub retention_deleted: IntCounterVec,
    pub store_up: IntGauge,
    pub nats_connected: IntGauge,
}

impl ArchiverMetrics {
    pub fn new(registry: &Registry) -> ArchiverMetrics {
        let segments_written = metrics::counter_vec(
            registry,
            "logjet_archiver_segments_written_total",
            "Segments committed (object and index object written), by why they were cut.",
            &["reason"],
        );
        for r in CUT_REASONS {
            segments_written.with_label_values(&[r]);
        }
        let messages = metrics::counter_vec(
            registry,
            "logjet_archiver_messages_total",
            "Stream messages acknowledged, by outcome: archived (in a committed segment), already_archived (a redelivery found in the archive), empty (no event to archive).",
            &["outcome"],
        );
        for o in ["archived", "already_archived", "empty"] {
            messages.with_label_values(&[o]);
        }
        let retention_deleted = metrics::counter_vec(
            registry,
            "logjet_archiver_retention_deleted_total",
            "Objects deleted by the sweep: expired segments, orphans (segment objects never committed).",
            &["kind"],
        );
        for k in ["expired", "orphan"] {
            retention_deleted.with_label_values(&[k]);
        }
        let gauge = |name: &str, help: &str| {
            metrics::register(registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let counter = |name: &str, help: &str| {
            metrics::register(registry, IntCounter::new(name, help).expect("valid metric"))
        };
        let mut upload_buckets = LATENCY_BUCKETS.to_vec();
        upload_buckets.extend([30.0, 60.0]);
        ArchiverMetrics {
            segments_written,
            segment_bytes: counter(
                "logjet_archiver_segment_bytes_total",
                "Bytes of committed segment objects (compressed Parquet).",
            ),
            raw_bytes: counter(
                "logjet_archiver_raw_bytes_total",
                "Canonical NDJSON bytes of the events in committed segments.",
            ),
            compression_ratio: metrics::register(
                registry,
                Gauge::new(
                    "logjet_archiver_compression_ratio",
                    "Raw NDJSON bytes / segment bytes over every segment this replica committed.",
                )
                .expect("valid metric"),
            ),
            events_archived: counter(
                "logjet_archiver_events_archived_total",
                "Events in committed segments.",
            ),
            messages,
            upload_duration: metrics::register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "logjet_archiver_upload_duration_seconds",
                        "One successful upload of a segment and its index object.",
                    )
                    .buckets(upload_buckets),
                )
                .expect("valid metric"),
            ),
            upload_errors: counter(
                "logjet_archiver_upload_errors_total",
                "Failed upload attempts (retried with backoff).",
            ),
            segments_dropped: counter(
                "logjet_archiver_segments_dropped_total",
                "Segments given up uncommitted (hold on the messages lost, writer error, shutdown): their messages are redelivered.",
            ),
            open_segments: gauge(
                "logjet_archiver_open_segments",
                "Segments being written or uploaded.",
            ),
            held_messages: gauge(
                "logjet_archiver_held_messages",
                "Messages received and not yet acknowledged (their segments are not committed).",
            ),
            consumer_lag: gauge(
                "logjet_archiver_consumer_lag_messages",
                "The archiver consumer's num_pending + num_ack_pending, as this replica last read it.",
            ),
            retention_deleted,
            store_up: gauge(
                "logjet_archiver_store_up",
                "1 when the last object-store request succeeded.",
            ),
            nats_connected: gauge(
                "logjet_nats_connected",
                "1 while the NATS connection is up.",
            ),
        }
    }

    /// Counts a committed segment.
    pub fn committed(&self, reason: &str, rows: u64, bytes: u64, raw: u64) {
        self.segments_written.with_label_values(&[reason]).inc();
        self.events_archived.inc_by(rows);
        self.segment_bytes.inc_by(bytes);
        self.raw_bytes.inc_by(raw);
        let stored = self.segment_bytes.get();
        if stored > 0 {
            self.compression_ratio
                .set(self.raw_bytes.get() as f64 / stored as f64);
        }
    }
}
