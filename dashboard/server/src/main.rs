use std::path::PathBuf;

use clap::Parser;
use logjet_core::config::{self, DashboardConfig};

/// mimalloc, not the C library's allocator: the images are static musl builds, and with musl's
/// allocator the pipeline ran at 38 % of its speed (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// logjet dashboard: serves the web app and proxies /api/* to the query service.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML config file (also LOGJET_CONFIG); LOGJET_* variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logjet_core::telemetry::tune_allocator();
    let args = Args::parse();
    let cfg: DashboardConfig = config::load(args.config.as_deref())?;
    logjet_core::telemetry::init(cfg.log_format);
    let shutdown = logjet_core::shutdown::on_signals();
    logjet_dashboard::serve(cfg, shutdown).await?;
    Ok(())
}
