//! `GET /stats/pipeline`: the state of the stream and of the processors' consumer, as NATS
//! reports it. The dashboard's "processor lag" card reads this; KEDA reads the same numbers from
//! NATS' monitoring port.

use async_nats::Client;
use async_nats::jetstream;

use crate::error::QueryError;

pub use logjet_api::{ConsumerState, PipelineStats, StreamState};

pub async fn pipeline(
    client: &Client,
    stream: &str,
    consumer: &str,
) -> Result<PipelineStats, QueryError> {
    if client.connection_state() != async_nats::connection::State::Connected {
        return Err(QueryError::Unavailable("not connected to NATS".into()));
    }
    let js = jetstream::new(client.clone());
    let unavailable = |e: String| QueryError::Unavailable(e);
    let mut s = js
        .get_stream(stream)
        .await
        .map_err(|e| unavailable(format!("stream {stream}: {e}")))?;
    let info = s
        .info()
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .clone();
    let consumer = match s
        .get_consumer::<jetstream::consumer::pull::Config>(consumer)
        .await
    {
        Ok(mut c) => {
            let i = c.info().await.map_err(|e| unavailable(e.to_string()))?;
            Some(ConsumerState {
                name: i.name.clone(),
                lag: i.num_pending + i.num_ack_pending as u64,
                num_pending: i.num_pending,
                num_ack_pending: i.num_ack_pending as u64,
                num_redelivered: i.num_redelivered as u64,
                num_waiting: i.num_waiting as u64,
            })
        }
        Err(_) => None,
    };
    Ok(PipelineStats {
        stream: StreamState {
            name: info.config.name,
            messages: info.state.messages,
            bytes: info.state.bytes,
            first_seq: info.state.first_sequence,
            last_seq: info.state.last_sequence,
        },
        consumer,
    })
}
