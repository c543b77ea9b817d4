//! The retention sweep: every `retention_interval`, each replica deletes the segments past
//! their service's rule (object, then index objects) and orphans (segment objects no index
//! object names, older than `orphan_grace`). Deletes are idempotent, so replicas sweeping at
//! the same time only repeat each other.

use std::time::Duration;

use logjet_core::archive::{ArchiveError, Catalog, RetentionRules};
use logjet_core::config::ArchiverConfig;
use logjet_core::outage::OutageTracker;
use tokio_util::sync::CancellationToken;

use crate::metrics::ArchiverMetrics;
use crate::worker::sleep_or_shutdown;

/// What one sweep deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: usize,
    pub orphans: usize,
}

/// One sweep at `now_ms`.
pub async fn sweep_once(
    catalog: &Catalog,
    rules: &RetentionRules,
    orphan_grace: Duration,
    now_ms: i64,
) -> Result<SweepReport, ArchiveError> {
    let mut report = SweepReport::default();
    // Lists segments/ then index/ (a full refresh): the catalog is current for `expired` too.
    let orphans = catalog.find_orphans(orphan_grace, now_ms).await?;
    for o in orphans {
        if catalog.store().delete(&o.path).await? {
            tracing::info!(segment = %o.path, "deleted an orphan segment (never committed)");
        }
        report.orphans += 1;
    }
    for m in catalog.expired(rules, now_ms.saturating_mul(1_000_000)) {
        catalog.delete(&m).await?;
        tracing::info!(segment = %m.segment(), service = %m.service(), "deleted an expired segment");
        report.expired += 1;
    }
    Ok(report)
}

/// Sweeps at start and then every `retention_interval` until `shutdown`.
pub async fn run(
    catalog: Catalog,
    cfg: ArchiverConfig,
    metrics: ArchiverMetrics,
    store_status: OutageTracker,
    shutdown: CancellationToken,
) {
    let rules = match cfg.archive.retention_rules() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "no retention sweep");
            return;
        }
    };
    loop {
        let now_ms = chrono::Utc::now().timestamp_millis();
        match sweep_once(&catalog, &rules, cfg.orphan_grace, now_ms).await {
            Ok(r) => {
                store_status.succeeded();
                metrics
                    .retention_deleted
                    .with_label_values(&["expired"])
                    .inc_by(r.expired as u64);
                metrics
                    .retention_deleted
                    .with_label_values(&["orphan"])
                    .inc_by(r.orphans as u64);
            }
            Err(e) => {
                store_status.failed(&e);
                tracing::debug!(error = %e, "retention sweep failed; next one in {:?}", cfg.retention_interval);
            }
        }
        if !sleep_or_shutdown(&shutdown, cfg.retention_interval).await {
            return;
        }
    }
}
