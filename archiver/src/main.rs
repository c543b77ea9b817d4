use clap::{Parser, Subcommand};
use logjet_core::config::ArchiverConfig;
use logjet_core::service;

/// mimalloc, not the C library's allocator: the images are static musl builds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// logjet archiver: writes the LOGS stream to Parquet segments in object storage.
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
    /// Rebuild the index objects (the catalog) from the segment objects. Safe beside running
    /// archivers and safe to repeat.
    Reindex,
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

async fn run(command: Command, cfg: ArchiverConfig) -> anyhow::Result<()> {
    match command {
        Command::Run => service::serve_with_config(cfg, logjet_archiver::serve).await?,
        Command::Reindex => {
            let store = logjet_archiver::open_store(&cfg)?;
            let r = logjet_archiver::reindex::reindex(store, &cfg.spool_dir()).await?;
            for (path, why) in &r.unreadable {
                eprintln!("unreadable, left in place: {path}: {why}");
            }
            println!(
                "reindex done: {} segments, {} already indexed, {} index objects written, {} duplicates deleted, {} rewritten without overlapping messages, {} index objects without a segment deleted, {} unreadable",
                r.segments,
                r.already_indexed,
                r.committed,
                r.duplicates_deleted,
                r.rewritten,
                r.dangling_deleted,
                r.unreadable.len()
            );
        }
    }
    Ok(())
}
