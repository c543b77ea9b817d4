//! The shared contract of logjet.
//!
//! Everything two services must agree on lives here and only here: the event model
//! ([`event::LogEvent`], defined in `logjet-api`), the forgiving input parser ([`parse`]), how a
//! stream message decodes ([`message`]), NATS subject and stream naming ([`subject`],
//! [`jetstream`]), the Redis key layout ([`keys`]), typed configuration ([`config`]), the archive
//! format ([`archive`]), the skeleton every service is built on ([`service`]: bind, serve and
//! drain within a deadline, the standard routes, `main`), how a dependency's outage is tracked
//! and logged ([`outage`], used by [`jetstream::connect`] and [`store::Redis`]), and the
//! HTTP/telemetry plumbing every service shares ([`http`], [`metrics`], [`telemetry`],
//! [`shutdown`]).

pub mod archive;
pub mod auth;
pub mod cgroup;
pub mod config;
/// The canonical event, defined in `logjet-api` so the browser app decodes the very type the
/// services write.
pub use logjet_api::event;
pub mod http;
pub mod jetstream;
pub mod keys;
pub mod lines;
pub mod message;
pub mod metrics;
pub mod outage;
pub mod parse;
pub mod pattern;
pub mod redis_conn;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod subject;
pub mod telemetry;
pub mod tokens;

pub use event::{FieldValue, Fields, Level, LogEvent};
pub use subject::ServiceName;
