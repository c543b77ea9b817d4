//! logjet processor: replicas share one durable pull consumer on the LOGS stream and apply
//! every message to Redis exactly once in effect.
//!
//! - [`decode`]: message → event records (ingest batches and raw `nats pub` payloads alike)
//! - [`aggregate`]: the pure planner and the [`aggregate::Aggregator`] that runs it in Redis
//! - [`consume`]: the pull/apply/ack loop
//! - [`dlq`]: dead letters

pub mod aggregate;
pub mod consume;
pub mod decode;
pub mod dlq;
pub mod metrics;
pub mod rebuild;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::Client;
use async_nats::connection::State as NatsState;
use async_nats::jetstream::consumer::PullConsumer;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use logjet_core::config::ProcessorConfig;
use logjet_core::http::{self as lhttp, Draining};
use logjet_core::jetstream::{self as ljs, JetStreamError};
use redis::aio::ConnectionManager;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use aggregate::{Aggregator, PlanSettings};
use consume::{Worker, sleep_or_shutdown};
use dlq::DeadLetters;
use metrics::ProcessorMetrics;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Nats(#[from] JetStreamError),
    #[error("redis at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

#[derive(Clone)]
struct AppState {
    client: Client,
    redis: ConnectionManager,
    registry: prometheus::Registry,
    metrics: ProcessorMetrics,
    draining: Draining,
    consumer_bound: Arc<AtomicBool>,
}

/// A bound, not yet running processor.
pub struct Processor {
    cfg: ProcessorConfig,
    listener: TcpListener,
    state: AppState,
}

impl Processor {
    pub async fn build(cfg: ProcessorConfig) -> Result<Processor, StartError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let client = ljs::connect(&cfg.nats_url, "logjet-processor", true).await?;
        let redis = logjet_core::store::connect_lazy(&cfg.redis_url, Duration::from_secs(5))
            .map_err(|source| StartError::Redis {
                url: logjet_core::config::redact_url(&cfg.redis_url),
                source,
            })?;
        let registry = logjet_core::metrics::new_registry("processor");
        let metrics = ProcessorMetrics::new(&registry);
        Ok(Processor {
            cfg,
            listener,
            state: AppState {
                client,
                redis,
                registry,
                metrics,
                draining: Draining::default(),
                consumer_bound: Arc::new(AtomicBool::new(false)),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Runs until `shutdown`: then readiness fails, fetching stops, the batch in hand is applied
    /// and acknowledged, buffered messages are handed back, and the process can exit.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Processor {
            cfg,
            listener,
            state,
        } = self;
        tracing::info!(config = ?logjet_core::config::describe(&cfg), "processor starting");
        let http_stop = CancellationToken::new();
        let http = tokio::spawn(lhttp::serve(
            listener,
            app(state.clone()),
            http_stop.clone(),
        ));

        let work_stop = shutdown.child_token();
        let worker = tokio::spawn(run_worker(cfg.clone(), state.clone(), work_stop.clone()));

        shutdown.cancelled().await;
        state.draining.start();
        tracing::info!("draining");
        let _ = worker.await;
        let _ = state.client.flush().await;
        http_stop.cancel();
        let served = http.await;
        tracing::info!("processor stopped");
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StartError::Serve(e)),
            Err(_) => Ok(()),
        }
    }
}

/// Builds and runs a processor until `shutdown` is cancelled.
pub async fn serve(cfg: ProcessorConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    Processor::build(cfg).await?.run(shutdown).await
}

/// Sets up the streams and the consumer (retrying until NATS answers), then consumes.
async fn run_worker(cfg: ProcessorConfig, state: AppState, shutdown: CancellationToken) {
    let js = ljs::context(state.client.clone(), Duration::from_secs(5));
    let mut delay = Duration::from_millis(20);
    let (consumer, stream_id) = loop {
        if state.client.connection_state() == NatsState::Connected {
            match bind(&js, &cfg).await {
                Ok(bound) => break bound,
                Err(e) => tracing::warn!(error = %e, "consumer not ready; retrying"),
            }
        }
        if !sleep_or_shutdown(&shutdown, delay).await {
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    };
    state.consumer_bound.store(true, Ordering::SeqCst);
    tracing::info!(stream_id = %stream_id, consumer = %cfg.consumer, "consumer bound");

    let lag = tokio::spawn(watch_lag(
        consumer.clone(),
        state.metrics.clone(),
        cfg.lag_interval,
        shutdown.clone(),
    ));
    let worker = Arc::new(Worker {
        consumer,
        aggregator: Aggregator::new(state.redis.clone()),
        dead_letters: DeadLetters::new(js.clone(), stream_id.clone(), state.metrics.clone()),
        metrics: state.metrics.clone(),
        settings: PlanSettings {
            stream_id,
            retention: cfg.stream.stream_max_age,
            recent_retention: cfg.recent_retention,
        },
        fetch_batch: cfg.fetch_batch,
        fetch_max_bytes: cfg.fetch_max_bytes,
        fetch_expires: cfg.fetch_expires,
        linger: cfg.batch_linger,
        nak_delay: cfg.nak_delay,
        max_deliver: cfg.max_deliver,
        max_age: cfg.stream.stream_max_age,
    });
    worker.run(shutdown).await;
    lag.abort();
}

async fn bind(
    js: &async_nats::jetstream::Context,
    cfg: &ProcessorConfig,
) -> Result<(PullConsumer, String), JetStreamError> {
    let info = ljs::ensure_stream(js, ljs::logs_stream_config(&cfg.stream)).await?;
    ljs::ensure_stream(js, ljs::dlq_stream_config(&cfg.stream)).await?;
    let consumer = ljs::ensure_processor_consumer(js, cfg).await?;
    Ok((consumer, ljs::stream_incarnation(&info)))
}

/// Reads the consumer's lag the way KEDA's `nats-jetstream` scaler does.
async fn watch_lag(
    mut consumer: PullConsumer,
    metrics: ProcessorMetrics,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match consumer.info().await {
            Ok(info) => metrics
                .consumer_lag
                .set((info.num_pending + info.num_ack_pending as u64) as i64),
            Err(e) => tracing::debug!(error = %e, "consumer info failed"),
        }
        if !sleep_or_shutdown(&shutdown, every).await {
            return;
        }
    }
}

fn app(state: AppState) -> Router {
    let http_metrics = logjet_core::metrics::HttpMetrics::new(&state.registry);
    let router = Router::new()
        .route("/healthz", get(lhttp::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(lhttp::not_found)
        .with_state(state);
    lhttp::instrument(router, http_metrics)
}

async fn readyz(State(st): State<AppState>) -> Response {
    let nats = if st.client.connection_state() == NatsState::Connected {
        Ok(())
    } else {
        Err("not connected to NATS".into())
    };
    let redis = logjet_core::store::ping(&st.redis)
        .await
        .map_err(|e| format!("redis: {e}"));
    let consumer = if st.consumer_bound.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err("consumer not bound yet".into())
    };
    let draining = if st.draining.is_draining() {
        Err("shutting down".into())
    } else {
        Ok(())
    };
    lhttp::readiness(&[
        ("nats", nats),
        ("redis", redis),
        ("consumer", consumer),
        ("shutdown", draining),
    ])
}

async fn metrics(State(st): State<AppState>) -> Response {
    st.metrics
        .nats_connected
        .set((st.client.connection_state() == NatsState::Connected) as i64);
    lhttp::metrics_handler(State(st.registry.clone())).await
}
