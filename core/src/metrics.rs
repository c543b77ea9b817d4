//! Prometheus plumbing shared by every service.
//!
//! Each service instance owns a [`Registry`] (not the global default), so tests can run several
//! instances in one process. Metric names follow `docs/metrics.md`: `logjet_*`, base units,
//! bounded labels.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, 250 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A registry with the process collector (CPU, RSS, open file descriptors) and a build-info
/// gauge already in it. Every series it exports carries `service="<service>"`, so alert rules
/// and dashboards select a service the same way whatever job name the scraper gives it.
pub fn new_registry(service: &str) -> Registry {
    let labels = std::collections::HashMap::from([("service".to_string(), service.to_string())]);
    let registry = Registry::new_custom(None, Some(labels)).expect("valid const label");
    #[cfg(target_os = "linux")]
    {
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        let _ = registry.register(Box::new(pc));
    }
    let info = IntGauge::with_opts(
        Opts::new("logjet_build_info", "Always 1; labels say what is running.")
            .const_label("version", env!("CARGO_PKG_VERSION")),
    )
    .expect("valid metric");
    info.set(1);
    let _ = registry.register(Box::new(info));
    registry
}

/// Registers a collector, panicking on a programming error (duplicate or invalid name): those
/// are caught by the first test that builds the service.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once with a valid name");
    c
}

pub fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    register(
        registry,
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric"),
    )
}

pub fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid metric"))
}

/// Prometheus text exposition of a registry.
pub fn encode(registry: &Registry) -> String {
    let mut buf = Vec::with_capacity(16 * 1024);
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// Per-route HTTP metrics, the same on every service.
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
}

impl HttpMetrics {
    pub fn new(registry: &Registry) -> HttpMetrics {
        HttpMetrics {
            requests: counter_vec(
                registry,
                "logjet_http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
                &["route", "method", "status"],
            ),
            duration: histogram_vec(
                registry,
                "logjet_http_request_duration_seconds",
                "Time from request received to response headers sent, by route template.",
                &["route", "method"],
                LATENCY_BUCKETS,
            ),
        }
    }
}
