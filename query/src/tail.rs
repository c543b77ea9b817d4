//! `GET /logs/tail`: live tail as Server-Sent Events, fed from JetStream, not by polling Redis.
//!
//! Each tail has its own ordered consumer on `logs.<service>` (or `logs.>`), starting now or at
//! `since`, its own task and a bounded buffer. A client that stops reading fills only its own
//! buffer; it then gets a final `dropped` event and its consumer stops, so it can never stall the
//! other tails or the pipeline. The number of open tails is bounded by a semaphore.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::{self, consumer};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use logjet_core::message;
use logjet_core::{LogEvent, ServiceName};
use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::QueryError;
use crate::search::{EventQuery, QueryRequest, parse_time};

pub use logjet_api::TailParams;

#[derive(Clone)]
pub struct TailMetrics {
    pub open: IntGauge,
    pub dropped: IntCounter,
    pub refused: IntCounter,
}

impl TailMetrics {
    pub fn new(registry: &Registry) -> TailMetrics {
        use logjet_core::metrics::{gauge, register};
        TailMetrics {
            open: gauge(
                registry,
                "logjet_query_open_tails",
                "Live tails streaming now.",
            ),
            dropped: register(
                registry,
                IntCounter::new(
                    "logjet_query_tails_dropped_total",
                    "Tails closed because the client did not keep up.",
                )
                .expect("valid metric"),
            ),
            refused: register(
                registry,
                IntCounter::new(
                    "logjet_query_tails_refused_total",
                    "Tails refused because the limit of open tails was reached.",
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// Everything live tails share.
#[derive(Clone)]
pub struct Tails {
    pub client: Client,
    pub stream: String,
    pub permits: Arc<Semaphore>,
    pub buffer: usize,
    pub max_age: Duration,
    pub metrics: TailMetrics,
}

/// How long a full buffer may stay full before the client counts as too slow: long enough for a
/// reading client to drain a burst, short enough to free the tail of one that stopped reading.
const SLOW_CLIENT_GRACE: Duration = Duration::from_secs(2);

/// What a feed hands its reader: matched items, and the one it could not deliver if the reader
/// fell behind (the feed then stops).
pub struct Feed<T> {
    pub items: mpsc::Receiver<T>,
    pub dropped: Arc<Mutex<Option<T>>>,
}

impl<T> Feed<T> {
    /// The item that could not be delivered, once `items` has ended.
    pub fn take_dropped(&self) -> Option<T> {
        self.dropped.lock().ok().and_then(|mut d| d.take())
    }
}

impl Tails {
    /// Opens a tail: validates the filters, binds an ordered consumer, and returns the SSE stream.
    pub async fn open(
        &self,
        params: TailParams,
        now: DateTime<Utc>,
    ) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, QueryError> {
        let since = params
            .since
            .as_deref()
            .map(|s| parse_time("since", s, now))
            .transpose()?;
        let req = QueryRequest {
            service: params.service,
            level: params.level,
            min_level: params.min_level,
            contains: params.contains,
            regex: params.regex,
            filter: params.filter,
            trace_id: params.trace_id,
            ..Default::default()
        };
        let q = EventQuery::from_request(&req, now)?;
        let service = q.service.clone();
        let feed = self
            .feed(service.as_ref(), since, move |ev| {
                q.matches(ev).then(|| to_json(ev))
            })
            .await?;
        let dropped = feed.dropped.clone();
        // After what was buffered, a client that fell behind hears why the stream ends.
        let farewell =
            futures::stream::once(
                async move { dropped.lock().map(|d| d.is_some()).unwrap_or(false) },
            )
            .filter_map(|was_dropped| async move {
                was_dropped.then(|| {
                    Ok(Event::default().event("dropped").data(
                    r#"{"reason":"the client did not keep up; reconnect with since= to resume"}"#,
                ))
                })
            });
        let events = ReceiverStream::new(feed.items)
            .map(|json| Ok(Event::default().event("log").data(json)))
            .chain(farewell);
        Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
    }

    /// Binds an ordered consumer on `logs.<service>` (or every service) from now or `since`, and
    /// spawns the task that decodes each message and sends what `select` keeps to a bounded
    /// buffer. Takes one of the `max_tails` permits for as long as the feed runs.
    pub async fn feed<T, F>(
        &self,
        service: Option<&ServiceName>,
        since: Option<DateTime<Utc>>,
        select: F,
    ) -> Result<Feed<T>, QueryError>
    where
        T: Send + 'static,
        F: Fn(&LogEvent) -> Option<T> + Send + 'static,
    {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            self.metrics.refused.inc();
            QueryError::TooManyTails
        })?;
        // Right after start-up, or during a reconnect, give the connection a moment.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() >= deadline {
                return Err(QueryError::Unavailable("not connected to NATS".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let js = jetstream::new(self.client.clone());
        let stream = js
            .get_stream(&self.stream)
            .await
            .map_err(|e| QueryError::Unavailable(format!("stream {}: {e}", self.stream)))?;
        let filter_subject = service.map_or_else(
            || logjet_core::subject::STREAM_SUBJECTS.to_string(),
            |s| s.subject(),
        );
        let deliver_policy = match since {
            None => consumer::DeliverPolicy::New,
            Some(t) => consumer::DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(
                    t.timestamp_nanos_opt().unwrap_or_default(),
                ))
                .map_err(|e| QueryError::invalid("since", e.to_string()))?,
            },
        };
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject,
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| QueryError::Unavailable(format!("tail consumer: {e}")))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| QueryError::Unavailable(format!("tail consumer: {e}")))?;

        let (tx, rx) = mpsc::channel::<T>(self.buffer);
        let dropped = Arc::new(Mutex::new(None));
        let dropped_slot = dropped.clone();
        let metrics = self.metrics.clone();
        let max_age = self.max_age;
        tokio::spawn(async move {
            let _permit = permit;
            metrics.open.inc();
            'feed: loop {
                let msg = tokio::select! {
                    _ = tx.closed() => break,
                    m = messages.next() => m,
                };
                let Some(Ok(msg)) = msg else { break };
                let published = msg
                    .info()
                    .map(|i| logjet_core::jetstream::published_at(&i))
                    .unwrap_or_else(|_| Utc::now());
                let opts = message::message_options(msg.subject.as_str(), published, max_age);
                let canonical = logjet_core::jetstream::is_canonical(msg.headers.as_ref());
                let decoded = message::decode_message(&msg.payload, canonical, &opts);
                for ev in decoded.events {
                    let Some(item) = select(&ev) else { continue };
                    match tx.try_send(item) {
                        Ok(()) => {}
                        Err(TrySendError::Closed(_)) => break 'feed,
                        Err(TrySendError::Full(item)) => {
                            let permit =
                                tokio::time::timeout(SLOW_CLIENT_GRACE, tx.reserve()).await;
                            match permit {
                                Ok(Ok(p)) => p.send(item),
                                Ok(Err(_)) => break 'feed,
                                Err(_) => {
                                    metrics.dropped.inc();
                                    if let Ok(mut d) = dropped_slot.lock() {
                                        *d = Some(item);
                                    }
                                    break 'feed;
                                }
                            }
                        }
                    }
                }
            }
            metrics.open.dec();
        });
        Ok(Feed { items: rx, dropped })
    }
}

fn to_json(ev: &LogEvent) -> String {
    serde_json::to_string(ev).unwrap_or_default()
}
