//! The dashboard server in-process, pointed at a query service and at the built bundle.

use std::path::{Path, PathBuf};

use logjet_core::config::{DashboardAuth, DashboardConfig};
use tokio_util::sync::CancellationToken;

use crate::platform::Svc;

/// `dashboard/dist` of this workspace (or `LOGJET_TEST_DASHBOARD_DIST`), which must hold a
/// built bundle.
pub fn dist_dir() -> PathBuf {
    let dir = std::env::var_os("LOGJET_TEST_DASHBOARD_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("tests/ has a parent")
                .join("dashboard/dist")
        });
    assert!(
        dir.join("index.html").is_file(),
        "the dashboard bundle is not built ({} has no index.html): run scripts/build-dashboard.sh \
         (scripts/test.sh does it before the Rust tests)",
        dir.display()
    );
    dir
}

/// A dashboard that asks nobody (`dashboard_auth = off`): for the tests of what it shows; the
/// sign-in and the trusted proxy are tested in `tests/dashboard_auth.rs` with [`signed_in_config`].
pub fn config(query_url: &str, static_dir: &Path) -> DashboardConfig {
    DashboardConfig {
        dashboard_auth: DashboardAuth::Off,
        ..signed_in_config(query_url, static_dir)
    }
}

/// A dashboard with its default: users sign in with a key of query scope.
pub fn signed_in_config(query_url: &str, static_dir: &Path) -> DashboardConfig {
    DashboardConfig {
        listen: "127.0.0.1:0".parse().expect("static address"),
        query_url: query_url.to_string(),
        static_dir: static_dir.to_path_buf(),
        ..DashboardConfig::default()
    }
}

pub async fn start(cfg: DashboardConfig) -> Svc {
    let svc = logjet_dashboard::Dashboard::build(cfg)
        .await
        .expect("dashboard builds");
    let addr = svc.local_addr();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let handle = tokio::spawn(async move {
        svc.run(token).await.expect("dashboard runs");
    });
    Svc {
        addr,
        shutdown,
        handle,
    }
}
