//! `GET /stats/pipeline`: the stream and the processors' consumer, as NATS reports them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamState {
    pub name: String,
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsumerState {
    pub name: String,
    /// `num_pending + num_ack_pending`: what KEDA scales on.
    pub lag: u64,
    pub num_pending: u64,
    pub num_ack_pending: u64,
    pub num_redelivered: u64,
    /// Pull requests waiting: roughly, processor replicas idle and asking for work.
    pub num_waiting: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineStats {
    pub stream: StreamState,
    /// `null` until a processor has created the consumer.
    pub consumer: Option<ConsumerState>,
}
