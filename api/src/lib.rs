//! logjet's query API as data.
//!
//! The canonical event ([`LogEvent`]) and the request and response types of the query service's
//! HTTP API. The query service serialises them (and derives its OpenAPI schemas from them, with
//! the `openapi` feature); the dashboard app, built for WebAssembly, deserialises the very same
//! types, so a field renamed here is a compile error there, not a blank panel in a browser.
//!
//! Nothing here depends on a server crate, so this builds for `wasm32-unknown-unknown`.

pub mod auth;
pub mod event;
pub mod patterns;
pub mod pipeline;
pub mod query;
pub mod stats;

pub use auth::{Me, WhoAmI};
pub use event::{FieldValue, Fields, Level, LogEvent};
pub use patterns::{Pattern, PatternParams, PatternsResponse};
pub use pipeline::{ConsumerState, PipelineStats, StreamState};
pub use query::{QueryRequest, QueryResponse, TailParams};
pub use stats::{
    Point, ServiceInfo, ServicesResponse, Summary, SummaryParams, Timeseries, TimeseriesParams,
};
