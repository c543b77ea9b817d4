use clap::{Parser, Subcommand};
use logjet_core::config::ProcessorConfig;
use logjet_core::service;

/// mimalloc, not the C library's allocator: the images are static musl builds, and with musl's
/// allocator the pipeline ran at 38 % of its speed (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// logjet processor: consumes the LOGS stream and aggregates into Redis.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: service::ConfigFlag,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the stream (the default).
    Run,
    /// Replay the LOGS stream into Redis (after Redis lost data). Safe beside running
    /// processors and safe to repeat: what Redis already has is skipped.
    Rebuild,
    /// Dead letters (LOGS_DLQ).
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// Publish dead letters back to their original subject and remove them from the DLQ.
    Replay {
        /// Only count what would be replayed.
        #[arg(long)]
        dry_run: bool,
        /// Replay at most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
}

fn main() -> std::process::ExitCode {
    service::run_command(
        || {
            let args = Args::parse();
            (args.config, args.command.unwrap_or(Command::Run))
        },
        run,
    )
}

async fn run(command: Command, cfg: ProcessorConfig) -> anyhow::Result<()> {
    match command {
        Command::Run => service::serve_with_config(cfg, logjet_processor::serve).await?,
        Command::Rebuild => {
            let report = logjet_processor::rebuild::rebuild(&cfg, |r| {
                tracing::info!(
                    messages = r.messages,
                    events_applied = r.events_applied,
                    last_seq = r.last_seq,
                    "rebuilding"
                );
            })
            .await?;
            println!(
                "rebuild done: {} messages read, {} events applied, {} messages already in Redis, {} unparseable lines skipped, up to stream sequence {}",
                report.messages,
                report.events_applied,
                report.already_applied,
                report.rejected_lines,
                report.last_seq
            );
        }
        Command::Dlq {
            action: DlqAction::Replay { dry_run, limit },
        } => {
            let report = logjet_processor::dlq::replay(&cfg, dry_run, limit).await?;
            println!(
                "dlq replay{}: {} dead letters {}, {} without an original subject left in place",
                if dry_run { " (dry run)" } else { "" },
                report.replayed,
                if dry_run {
                    "would be replayed"
                } else {
                    "replayed"
                },
                report.skipped
            );
        }
    }
    Ok(())
}
