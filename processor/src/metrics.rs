//! The processor's part of the metrics contract (docs/metrics.md).

use logjet_core::metrics::{self, LATENCY_BUCKETS};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct ProcessorMetrics {
    pub events_applied: IntCounter,
    pub messages: IntCounterVec,
    pub redelivered: IntCounter,
    pub dead_letters: IntCounterVec,
    pub batch_messages: Histogram,
    pub apply_duration: Histogram,
    pub redis_errors: IntCounter,
    pub redis_unreplicated: IntCounter,
    pub consumer_lag: IntGauge,
    pub e2e_latency: Histogram,
    pub nats_connected: IntGauge,
    pub redis_up: IntGauge,
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    metrics::register(
        registry,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("valid metric"),
    )
}

impl ProcessorMetrics {
    pub fn new(registry: &Registry) -> ProcessorMetrics {
        let messages = metrics::counter_vec(
            registry,
            "logjet_processor_messages_total",
            "Stream messages handled, by outcome: applied (new effects in Redis), already_applied (a redelivery whose effects were already there), dead_lettered (nothing parseable), empty, nak (transient failure).",
            &["outcome"],
        );
        for o in [
            "applied",
            "already_applied",
            "dead_lettered",
            "empty",
            "nak",
        ] {
            messages.with_label_values(&[o]);
        }
        let dead_letters = metrics::counter_vec(
            registry,
            "logjet_processor_dead_letters_total",
            "Lines sent to the dead-letter stream, by reason.",
            &["reason"],
        );
        for reason in logjet_core::parse::LineError::CODES {
            dead_letters.with_label_values(&[reason]);
        }
        ProcessorMetrics {
            events_applied: metrics::register(
                registry,
                IntCounter::new(
                    "logjet_processor_events_applied_total",
                    "Events whose effects were written to Redis (redeliveries not counted again).",
                )
                .expect("valid metric"),
            ),
            messages,
            redelivered: metrics::register(
                registry,
                IntCounter::new(
                    "logjet_processor_redelivered_messages_total",
                    "Messages received with a delivery count above 1.",
                )
                .expect("valid metric"),
            ),
            dead_letters,
            batch_messages: histogram(
                registry,
                "logjet_processor_batch_messages",
                "Messages applied together in one Redis call.",
                vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
            ),
            apply_duration: histogram(
                registry,
                "logjet_processor_redis_apply_duration_seconds",
                "Time of one batch's apply script in Redis.",
                LATENCY_BUCKETS.to_vec(),
            ),
            redis_errors: metrics::register(
                registry,
                IntCounter::new(
                    "logjet_processor_redis_errors_total",
                    "Batches whose Redis apply failed (nak'ed and retried).",
                )
                .expect("valid metric"),
            ),
            redis_unreplicated: metrics::register(
                registry,
                IntCounter::new(
                    "logjet_processor_redis_unreplicated_total",
                    "Batches applied but not confirmed by enough replicas in time (WAIT): nak'ed, redelivered.",
                )
                .expect("valid metric"),
            ),
            consumer_lag: metrics::gauge(
                registry,
                "logjet_processor_consumer_lag_messages",
                "Consumer lag as KEDA computes it: num_pending + num_ack_pending.",
            ),
            e2e_latency: histogram(
                registry,
                "logjet_e2e_latency_seconds",
                "From receipt at ingest to the effects being visible in Redis, per message.",
                LATENCY_BUCKETS.to_vec(),
            ),
            nats_connected: metrics::gauge(
                registry,
                "logjet_nats_connected",
                "1 while the NATS connection is up.",
            ),
            redis_up: metrics::gauge(
                registry,
                "logjet_redis_up",
                "1 when the last Redis command succeeded.",
            ),
        }
    }
}
