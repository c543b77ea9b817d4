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
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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

/// Keeps transparent huge pages away from this process. The services allocate through mimalloc
/// (see each `main.rs`), whose segments are large and aligned: where the host backs such regions
/// with 2 MiB pages (THP `always`, or `madvise` with an allocator that asks for them), a few live
/// objects pin whole huge pages and RSS doubles — measured here with mimalloc 3, which asks: the
/// processor's peak RSS under the benchmark went from 35 to 77 MB. (The build also turns off
/// mimalloc's own request, `no_thp`; this covers hosts set to `always`.)
pub fn tune_allocator() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process; it takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
