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
mod json_check;
pub mod metrics;
pub mod rebuild;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use axum::Router;
use logjet_core::config::ProcessorConfig;
use logjet_core::jetstream::{self as ljs, JetStreamError, Nats};
use logjet_core::outage::{REMINDER_EVERY, Throttle};
use logjet_core::service::{
    self, Check, Draining, HttpServer, ServeOptions, ServerError, ServiceState,
};
use logjet_core::store::Redis;
use tokio_util::sync::CancellationToken;

use aggregate::{Aggregator, PlanSettings};
use consume::{Worker, sleep_or_shutdown};
use dlq::DeadLetters;
use metrics::ProcessorMetrics;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Nats(#[from] JetStreamError),
    #[error("redis at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
}

#[derive(Clone)]
struct AppState {
    nats: Nats,
    redis: Redis,
    registry: prometheus::Registry,
    metrics: ProcessorMetrics,
    draining: Draining,
    consumer_bound: Arc<AtomicBool>,
}

impl ServiceState for AppState {
    fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    fn draining(&self) -> &Draining {
        &self.draining
    }

    async fn readiness(&self) -> Vec<Check> {
        let nats = Check::when("nats", self.nats.is_connected(), || {
            "not connected to NATS".into()
        });
        let redis = self.redis.ping().await.map_err(|e| format!("redis: {e}"));
        let consumer = Check::when(
            "consumer",
            self.consumer_bound.load(Ordering::SeqCst),
            || "consumer not bound yet".into(),
        );
        vec![nats, Check::new("redis", redis), consumer]
    }

    async fn before_scrape(&self) {
        self.metrics
            .nats_connected
            .set(self.nats.is_connected() as i64);
    }
}

/// A bound, not yet running processor.
pub struct Processor {
    cfg: ProcessorConfig,
    server: HttpServer,
    state: AppState,
    router: Router,
}

impl Processor {
    pub async fn build(cfg: ProcessorConfig) -> Result<Processor, StartError> {
        let server = HttpServer::bind(
            cfg.listen,
            ServeOptions::with_drain_timeout(cfg.drain_timeout),
        )
        .await?;
        let nats = ljs::connect(&cfg.nats_url, "logjet-processor", true).await?;
        let redis = Redis::connect(
            &cfg.redis_url,
            &cfg.redis_sentinel,
            logjet_core::config::PROCESSOR_REDIS_RESPONSE_TIMEOUT,
        )
        .map_err(|source| StartError::Redis {
            url: logjet_core::config::redact_url(&cfg.redis_url),
            source,
        })?;
        let registry = logjet_core::metrics::new_registry("processor");
        let metrics = ProcessorMetrics::new(&registry);
        let state = AppState {
            nats,
            redis,
            registry,
            metrics,
            draining: server.draining(),
            consumer_bound: Arc::new(AtomicBool::new(false)),
        };
        Ok(Processor {
            cfg,
            server,
            // Only the standard routes: health, readiness, metrics.
            router: service::router(Router::new(), state.clone()),
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Runs until `shutdown`: then readiness fails, fetching stops, the batch in hand is applied
    /// and acknowledged, buffered messages are handed back, and the process can exit. All of it
    /// within the drain timeout whatever NATS and Redis do: what is not acknowledged by then is
    /// delivered again (the apply is atomic and idempotent, so nothing is half-applied).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Processor {
            cfg,
            server,
            state,
            router,
        } = self;
        tracing::info!(config = ?logjet_core::config::describe(&cfg), "processor starting");
        // Redis is pinged now and then so its outages are noticed while nothing is applied.
        state
            .redis
            .spawn_watch(REDIS_WATCH_EVERY, shutdown.child_token());
        let drain_timeout = cfg.drain_timeout;
        let worker = tokio::spawn(run_worker(cfg, state.clone(), shutdown.child_token()));
        let finish_work = async move {
            tracing::info!("draining");
            let _ = worker.await;
            // The acks and naks just sent must reach the server before the process ends.
            state.nats.flush_within(drain_timeout).await;
        };
        let result = server.serve_then(router, shutdown, finish_work).await;
        tracing::info!("processor stopped");
        Ok(result?)
    }
}

/// Builds and runs a processor until `shutdown` is cancelled.
pub async fn serve(cfg: ProcessorConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    Processor::build(cfg).await?.run(shutdown).await
}

/// How often Redis is pinged while nothing else uses it.
const REDIS_WATCH_EVERY: Duration = Duration::from_secs(2);

/// Sets up the streams and the consumer (retrying until NATS answers), then consumes. The set-up
/// waits on NATS only until `shutdown`; a stream or consumer that cannot be made while NATS
/// answers is said once, with reminders.
async fn run_worker(cfg: ProcessorConfig, state: AppState, shutdown: CancellationToken) {
    let js = ljs::context(state.nats.client.clone(), Duration::from_secs(5));
    let what = format!("consumer {} on stream {}", cfg.consumer, cfg.stream.stream);
    let Some((consumer, stream_id)) =
        ljs::bind_until_ready(&state.nats, &shutdown, what, || bind(&js, &cfg)).await
    else {
        return;
    };
    state.consumer_bound.store(true, Ordering::SeqCst);
    tracing::info!(stream_id = %stream_id, consumer = %cfg.consumer, "consumer bound");

    let lag = tokio::spawn(watch_lag(
        consumer.clone(),
        state.nats.clone(),
        state.metrics.clone(),
        cfg.lag_interval,
        shutdown.clone(),
    ));
    let worker = Arc::new(Worker {
        consumer,
        nats: state.nats.clone(),
        aggregator: Aggregator::new(state.redis.conn.clone()).waiting_for(
            cfg.redis_wait.redis_wait_replicas,
            cfg.redis_wait.redis_wait_timeout,
        ),
        redis: state.redis.clone(),
        failures_log: Throttle::new(REMINDER_EVERY),
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
    let manage = cfg.stream.manage_streams;
    let info = ljs::ensure_or_find_stream(js, ljs::logs_stream_config(&cfg.stream), manage).await?;
    ljs::ensure_or_find_stream(js, ljs::dlq_stream_config(&cfg.stream), manage).await?;
    let consumer = ljs::ensure_processor_consumer(js, cfg).await?;
    Ok((consumer, ljs::stream_incarnation(&info)))
}

/// Reads the consumer's lag the way KEDA's `nats-jetstream` scaler does (not while NATS is
/// down: the requests would only queue in the client).
async fn watch_lag(
    mut consumer: PullConsumer,
    nats: Nats,
    metrics: ProcessorMetrics,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        if nats.is_connected() {
            let info = tokio::select! {
                r = consumer.info() => r.map(|i| i.num_pending + i.num_ack_pending as u64),
                _ = shutdown.cancelled() => return,
            };
            match info {
                Ok(lag) => metrics.consumer_lag.set(lag as i64),
                Err(e) => tracing::debug!(error = %e, "consumer info failed"),
            }
        }
        if !sleep_or_shutdown(&shutdown, every).await {
            return;
        }
    }
}
