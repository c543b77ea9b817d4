//! Ingest's part of the metrics contract (docs/metrics.md).

use logjet_core::metrics::{self, LATENCY_BUCKETS};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct IngestMetrics {
    /// `logjet_ingest_events_total{outcome}`: accepted, rejected, duplicate.
    pub events: IntCounterVec,
    /// `logjet_ingest_rejected_events_total{reason}`: why lines were refused.
    pub rejected: IntCounterVec,
    pub publish_duration: Histogram,
    pub publish_failures: IntCounterVec,
    pub batch_events: Histogram,
    pub nats_connected: IntGauge,
    /// `logjet_ingest_memory_budget_bytes`: the budget of request body bytes in flight.
    pub memory_budget: IntGauge,
    /// `logjet_ingest_memory_in_flight_bytes` and `logjet_ingest_memory_rejected_total{stage}`.
    pub budget: crate::budget::BudgetMetrics,
}

impl IngestMetrics {
    pub fn new(registry: &Registry) -> IngestMetrics {
        let events = metrics::counter_vec(
            registry,
            "logjet_ingest_events_total",
            "Events received by ingest, by outcome: accepted (acknowledged by JetStream), rejected (invalid), duplicate (a retried idempotent request).",
            &["outcome"],
        );
        for outcome in ["accepted", "rejected", "duplicate"] {
            events.with_label_values(&[outcome]);
        }
        let rejected = metrics::counter_vec(
            registry,
            "logjet_ingest_rejected_events_total",
            "Events refused by ingest, by reason.",
            &["reason"],
        );
        for reason in logjet_core::parse::LineError::CODES {
            rejected.with_label_values(&[reason]);
        }
        for reason in [
            crate::protocols::UNDECODABLE,
            crate::protocols::UNSUPPORTED_ACTION,
        ] {
            rejected.with_label_values(&[reason]);
        }
        let publish_duration = metrics::register(
            registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "logjet_jetstream_publish_duration_seconds",
                    "Time from the first publish of a request to JetStream's last acknowledgement.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
        );
        let publish_failures = metrics::counter_vec(
            registry,
            "logjet_jetstream_publish_failures_total",
            "Publishes to JetStream that failed, by reason (not_connected, timeout, no_stream, error).",
            &["reason"],
        );
        for reason in ["not_connected", "timeout", "no_stream", "error"] {
            publish_failures.with_label_values(&[reason]);
        }
        let batch_events = metrics::register(
            registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "logjet_ingest_batch_events",
                    "Events per JetStream message published by ingest.",
                )
                .buckets(vec![
                    1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
                ]),
            )
            .expect("valid metric"),
        );
        let nats_connected = metrics::gauge(
            registry,
            "logjet_nats_connected",
            "1 while the NATS connection is up.",
        );
        let memory_budget = metrics::gauge(
            registry,
            "logjet_ingest_memory_budget_bytes",
            "Bytes of request bodies (compressed and decompressed) ingest holds at most at once.",
        );
        let in_flight = metrics::gauge(
            registry,
            "logjet_ingest_memory_in_flight_bytes",
            "Bytes of request bodies reserved from the memory budget now.",
        );
        let memory_rejected = metrics::counter_vec(
            registry,
            "logjet_ingest_memory_rejected_total",
            "Requests answered 503 because the memory budget was full, by stage: admission (before the body was read) or body (while it was read or decompressed).",
            &["stage"],
        );
        for stage in crate::budget::Stage::ALL {
            memory_rejected.with_label_values(&[stage.as_str()]);
        }
        IngestMetrics {
            events,
            rejected,
            publish_duration,
            publish_failures,
            batch_events,
            nats_connected,
            memory_budget,
            budget: crate::budget::BudgetMetrics {
                in_flight,
                rejected: memory_rejected,
            },
        }
    }
}
