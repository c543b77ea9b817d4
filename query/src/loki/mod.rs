//! Loki's read API over logjet: Grafana's Loki data source (Explore, log panels, log volume,
//! alert rules) reads logjet as if it were Loki.
//!
//! `logql` parses the query into a typed tree, `pipeline` runs a log query over one event,
//! `read` finds the candidate events with logjet's search, `eval` computes metric queries,
//! `json` prints Loki's shapes, `params` reads Loki's parameters, `api` holds the handlers and
//! `tail` the WebSocket live tail.

pub mod api;
pub mod counts;
pub mod error;
pub mod eval;
pub mod json;
pub mod logql;
pub mod params;
pub mod pipeline;
pub mod read;
pub mod tail;

pub use error::LokiError;
