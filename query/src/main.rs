use clap::Parser;
use logjet_core::service;

/// mimalloc, not the C library's allocator: the images are static musl builds, and with musl's
/// allocator the pipeline ran at 38 % of its speed (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// logjet query: search, statistics and live tail over HTTP.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: service::ConfigFlag,
}

fn main() -> std::process::ExitCode {
    service::run(|| Args::parse().config, logjet_query::serve)
}
