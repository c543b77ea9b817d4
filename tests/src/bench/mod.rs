//! The pieces of `logjet-bench` (`tests/src/bin/logjet-bench.rs`): its lines, the services as
//! processes, CPU per process from `/proc`, the same-run comparison with another build, and the Loki
//! `query_range` latencies.

pub mod archive;
pub mod archive_scale;
pub mod compare;
pub mod cpu;
pub mod latency;
pub mod lines;
pub mod linger;
pub mod loki;
pub mod parser;
pub mod phases;
pub mod protocols;
pub mod queries;
pub mod report;
pub mod seed;
pub mod stack;
