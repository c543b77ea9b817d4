//! A short chaos soak (2 minutes) in the suite: processors SIGKILLed, NATS and Redis restarted,
//! an ingest SIGTERMed under load; nothing acknowledged lost, nothing counted twice, and no 5xx
//! other than the documented 503s. `scripts/soak.sh` runs the long one.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use logjet_tests::soak::{SoakOptions, run};

/// The debug binaries next to this test binary (test.sh builds them with `cargo build --bins`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    for b in ["logjet-ingest", "logjet-processor", "logjet-query"] {
        assert!(
            dir.join(b).exists(),
            "{} missing: run `cargo build --bins` (scripts/test.sh does)",
            dir.join(b).display()
        );
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_minute_chaos_soak_loses_nothing_and_duplicates_nothing() {
    let seconds = std::env::var("LOGJET_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let report = run(SoakOptions {
        bin_dir: bin_dir(),
        duration: Duration::from_secs(seconds),
        // Debug builds on two shared cores: a rate they sustain with room for the chaos.
        rate: 2_000,
        batch: 50,
        processors: 3,
        kill_every: Duration::from_secs(20),
    })
    .await;
    report.print();
    assert!(report.acknowledged > 0);
    assert!(report.processor_kills >= seconds / 20 - 1, "{report:?}");
    assert_eq!(report.lost, 0, "acknowledged events were lost: {report:?}");
    assert_eq!(
        report.duplicates, 0,
        "events were counted twice: {report:?}"
    );
    assert_eq!(report.counted, report.acknowledged);
    for code in report.errors.keys() {
        assert!(
            code == "HTTP 503" || code == "connection error",
            "unexpected {code}: {report:?}"
        );
    }
}
