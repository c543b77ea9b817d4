//! logjet-soak: the chaos soak of `scripts/soak.sh`. See `logjet_tests::soak`.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use logjet_tests::soak::{SoakOptions, run};

#[derive(Parser)]
#[command(
    about = "Steady load with processors SIGKILLed, NATS and Redis restarted, an ingest SIGTERMed"
)]
struct Args {
    /// Directory with the service binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Seconds of load.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Events per second.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    #[arg(long, default_value_t = 3)]
    processors: usize,
    /// Seconds between processor kills.
    #[arg(long, default_value_t = 30)]
    kill_every: u64,
}

#[tokio::main]
async fn main() {
    logjet_core::archive::install_tls_provider();
    let a = Args::parse();
    let report = run(SoakOptions {
        bin_dir: a.bin_dir,
        duration: Duration::from_secs(a.seconds),
        rate: a.rate,
        processors: a.processors,
        kill_every: Duration::from_secs(a.kill_every),
        ..SoakOptions::default()
    })
    .await;
    report.print();
    let bad_errors: Vec<&String> = report
        .errors
        .keys()
        .filter(|k| *k != "HTTP 503" && *k != "connection error")
        .collect();
    if report.lost > 0 || report.duplicates > 0 || !bad_errors.is_empty() {
        eprintln!(
            "soak FAILED: lost {}, duplicates {}, unexpected errors {bad_errors:?}",
            report.lost, report.duplicates
        );
        std::process::exit(1);
    }
}
