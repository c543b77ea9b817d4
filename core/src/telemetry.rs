//! Structured logging set-up shared by every binary.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// `LOGJET_LOG_FORMAT`: `json` for machines (the default), `pretty` for people.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

/// Installs the global subscriber. The level filter comes from `RUST_LOG` (default `info`).
/// Safe to call more than once (tests start several services in one process): later calls are
/// no-ops.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::new(filter_directives(std::env::var("RUST_LOG").ok().as_deref()));
    let result = match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => tracing_subscriber::fmt().with_env_filter(filter).try_init(),
    };
    let _ = result;
}

/// The filter for `RUST_LOG`: async-nats logs every connection event at INFO (once a second
/// while NATS is away, and the line says only "IO error"); its events go to the outage tracker
/// instead (`crate::jetstream::connect`), so the crate is held at WARN unless `RUST_LOG` names it.
fn filter_directives(rust_log: Option<&str>) -> String {
    let base = rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info");
    if base.contains("async_nats") {
        base.to_string()
    } else {
        format!("{base},async_nats=warn")
    }
}

/// Keeps transparent huge pages away from this process. The services allocate through mimalloc
/// (see each `main.rs`), whose segments are large and aligned: where the host backs such regions
/// with 2 MiB pages (THP `always`, or `madvise` with an allocator that asks for them), a few live
/// objects pin whole huge pages and RSS doubles — measured here with mimalloc 3, which asks: the
/// processor's peak RSS under the benchmark went from 35 to 77 MB. (The build also turns off
/// mimalloc's own request, `no_thp`; this covers hosts set to `always`.)
// The one `unsafe` of the services (the workspace denies `unsafe_code`): prctl(2) has no safe
// wrapper in std, and a crate for one flag would be more code to trust than these three lines.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process; it takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_nats_is_held_at_warn_unless_named() {
        assert_eq!(filter_directives(None), "info,async_nats=warn");
        assert_eq!(filter_directives(Some("")), "info,async_nats=warn");
        assert_eq!(
            filter_directives(Some("debug,hyper=info")),
            "debug,hyper=info,async_nats=warn"
        );
        assert_eq!(
            filter_directives(Some("info,async_nats=debug")),
            "info,async_nats=debug"
        );
        // Every result parses.
        for d in [None, Some("warn"), Some("logjet_ingest=debug")] {
            assert!(EnvFilter::try_new(filter_directives(d)).is_ok());
        }
    }
}
