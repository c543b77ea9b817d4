use std::path::PathBuf;

use clap::Parser;
use logjet_core::config::{self, DashboardConfig};

/// logjet dashboard: serves the web app and proxies /api/* to the query service.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML config file (also LOGJET_CONFIG); LOGJET_* variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    logjet_core::telemetry::tune_allocator();
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg: DashboardConfig = config::load(args.config.as_deref())?;
    logjet_core::telemetry::init(cfg.log_format);
    let shutdown = logjet_core::shutdown::on_signals();
    logjet_dashboard::serve(cfg, shutdown).await?;
    Ok(())
}
