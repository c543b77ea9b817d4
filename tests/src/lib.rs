//! Harness for logjet's system tests: real servers ([`servers`]), the services in-process
//! ([`platform`]) or as processes ([`process`]). The tests themselves live in `tests/tests/`.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

pub mod alertmanager;
pub mod bench;
pub mod browser;
pub mod container_start;
pub mod dashboard;
pub mod grafana;
pub mod k8s;
pub mod loki;
pub mod platform;
pub mod process;
pub mod s3;
pub mod sentinel;
pub mod servers;
pub mod soak;
pub mod tools;

use std::sync::Once;

/// Logs of the services under test, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging() {
    static ONCE: Once = Once::new();
    // Before any HTTP client: a build with the `archive` feature needs it.
    logjet_core::archive::install_tls_provider();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_none() {
            // std::env::set_var is unsafe in edition 2024; a test sets it before its threads start.
            #[allow(unsafe_code)]
            // SAFETY: called once, before the test starts other threads that read the env.
            unsafe {
                std::env::set_var("RUST_LOG", "warn")
            };
        }
        logjet_core::telemetry::init(logjet_core::telemetry::LogFormat::Pretty);
    });
}

/// A reqwest client. Every client of the tests is built here: the build includes query's
/// `archive` feature, whose reqwest panics on a client built before a TLS provider is
/// installed (`logjet_core::archive::install_tls_provider`).
pub fn http_client() -> reqwest::Client {
    http_builder().build().expect("http client")
}

/// A reqwest client builder, after the TLS provider is installed (see [`http_client`]).
pub fn http_builder() -> reqwest::ClientBuilder {
    logjet_core::archive::install_tls_provider();
    reqwest::Client::builder()
}
