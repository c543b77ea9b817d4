//! The shared contract of logjet.
//!
//! Everything two services must agree on lives here and only here: the event model
//! ([`event::LogEvent`]), the forgiving input parser ([`parse`]), NATS subject and stream naming
//! ([`subject`], [`jetstream`]), the Redis key layout ([`keys`]), typed configuration
//! ([`config`]), and the HTTP/telemetry plumbing every service shares ([`http`], [`metrics`],
//! [`telemetry`], [`shutdown`]).

pub mod archive;
pub mod auth;
pub mod config;
pub mod event;
pub mod http;
pub mod jetstream;
pub mod keys;
pub mod metrics;
pub mod parse;
pub mod pattern;
pub mod shutdown;
pub mod store;
pub mod subject;
pub mod telemetry;
pub mod tokens;

pub use event::{FieldValue, Fields, Level, LogEvent};
pub use subject::ServiceName;
