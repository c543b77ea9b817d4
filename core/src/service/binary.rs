//! What every service binary does around its service: the allocator tuning, `--config`, the
//! layered configuration, logging, the signal handler and the exit code.

use std::error::Error;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{self, ServiceConfig};

/// The `--config` flag of every service binary: flatten it into the binary's own clap `Parser`
/// (which keeps the binary's name, version and description in `--help`).
#[derive(clap::Args, Debug, Default)]
pub struct ConfigFlag {
    /// TOML config file (also LOGJET_CONFIG); LOGJET_* variables override it.
    #[arg(long = "config", value_name = "CONFIG", global = true)]
    pub path: Option<PathBuf>,
}

/// How long after its drain timeout a service that is still stopping is given up on: the
/// server's own bound ([`super::HttpServer::serve_then`]) ends it at the drain timeout, this is
/// the backstop for whatever a service awaits after that.
const STOP_BACKSTOP: Duration = Duration::from_millis(300);
/// Blocking tasks (a DNS lookup of a NATS host that does not answer) are not waited for longer
/// than this when the runtime shuts down.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(200);

/// Runs a service binary until SIGTERM or SIGINT: `parse_args` reads the command line, then
/// the config is loaded (defaults < file < `LOGJET_*`), logging starts in its `log_format`, and
/// `serve` runs with a token cancelled by the first signal ([`serve_until_signal`]: the process
/// exits within the config's `drain_timeout` of the signal). An error is printed as `Error: …`
/// with its causes and exits with status 1.
pub fn run<C, Fut, E>(
    parse_args: impl FnOnce() -> ConfigFlag,
    serve: impl FnOnce(C, CancellationToken) -> Fut,
) -> ExitCode
where
    C: ServiceConfig,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Box<dyn Error + Send + Sync>>,
{
    run_command(
        || (parse_args(), ()),
        |(), cfg: C| serve_with_config(cfg, serve),
    )
}

/// Runs `serve` with a token cancelled by the first SIGTERM or SIGINT, and returns at the latest
/// shortly after `drain_timeout` has passed since the signal, whatever `serve` still waits for.
/// For a binary with subcommands, around the one that runs the service.
pub async fn serve_until_signal<Fut, E>(
    drain_timeout: Duration,
    serve: impl FnOnce(CancellationToken) -> Fut,
) -> Result<(), E>
where
    Fut: Future<Output = Result<(), E>>,
{
    let shutdown = crate::shutdown::on_signals();
    let serving = serve(shutdown.clone());
    let given_up = async {
        shutdown.cancelled().await;
        tokio::time::sleep(drain_timeout + STOP_BACKSTOP).await;
    };
    tokio::select! {
        result = serving => result,
        () = given_up => {
            tracing::warn!(?drain_timeout, "still stopping after the drain timeout; exiting");
            Ok(())
        }
    }
}

/// [`serve_until_signal`] with the config's `drain_timeout`: what a binary's subcommand that
/// runs the service calls (`Command::Run => serve_with_config(cfg, logjet_processor::serve)`).
pub async fn serve_with_config<C, Fut, E>(
    cfg: C,
    serve: impl FnOnce(C, CancellationToken) -> Fut,
) -> Result<(), E>
where
    C: ServiceConfig,
    Fut: Future<Output = Result<(), E>>,
{
    let drain_timeout = cfg.drain_timeout();
    serve_until_signal(drain_timeout, move |shutdown| serve(cfg, shutdown)).await
}

/// [`run`] for a binary with subcommands (the processor's `rebuild`, `dlq replay`):
/// `parse_args` also returns what to do, and `run` gets it with the config. It installs the
/// signal handler itself where it needs one (`crate::shutdown::on_signals`): a one-shot command
/// keeps the default, Ctrl-C ends it at once.
pub fn run_command<T, C, Fut, E>(
    parse_args: impl FnOnce() -> (ConfigFlag, T),
    run: impl FnOnce(T, C) -> Fut,
) -> ExitCode
where
    C: ServiceConfig,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Box<dyn Error + Send + Sync>>,
{
    // First, before the allocator maps anything big: see `tune_allocator`.
    crate::telemetry::tune_allocator();
    // Before any HTTP client exists.
    crate::archive::install_tls_provider();
    let (flag, command) = parse_args();
    // Before the runtime: it is sized by the config.
    let cfg: C = match config::load(flag.path.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => return fail(e.into()),
    };
    let runtime = match build_runtime(cfg.worker_threads()) {
        Ok(rt) => rt,
        Err(e) => return fail(e.into()),
    };
    let result: Result<(), Box<dyn Error + Send + Sync>> = runtime.block_on(async {
        crate::telemetry::init(cfg.log_format());
        run(command, cfg).await.map_err(Into::into)
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// The multi-threaded runtime, with `worker_threads` threads (`None`: one per core).
fn build_runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder.enable_all().build()
}

/// Prints an error and its causes the way `anyhow` prints one returned from `main`.
fn fail(err: Box<dyn Error + Send + Sync>) -> ExitCode {
    eprintln!("Error: {}", report(err.as_ref()));
    ExitCode::FAILURE
}

/// `message`, then `Caused by:` and each cause (numbered when there are several).
fn report(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let causes: Vec<String> = std::iter::successors(err.source(), |e| (*e).source())
        .map(ToString::to_string)
        .collect();
    match causes.as_slice() {
        [] => {}
        [one] => out.push_str(&format!("\n\nCaused by:\n    {one}")),
        many => {
            out.push_str("\n\nCaused by:");
            for (i, cause) in many.iter().enumerate() {
                out.push_str(&format!("\n    {i}: {cause}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn the_runtime_has_the_threads_the_config_asks_for() {
        let one = build_runtime(Some(1)).unwrap();
        assert_eq!(one.metrics().num_workers(), 1);
        let three = build_runtime(Some(3)).unwrap();
        assert_eq!(three.metrics().num_workers(), 3);
        let default = build_runtime(None).unwrap();
        assert_eq!(
            default.metrics().num_workers(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }

    #[test]
    fn errors_are_reported_with_their_causes_as_anyhow_does() {
        let plain = std::io::Error::other("plain");
        assert_eq!(report(&plain), "plain");
        let one = Middle(std::io::Error::other("root"));
        assert_eq!(report(&one), "middle\n\nCaused by:\n    root");
        let two = Outer(Middle(std::io::Error::other("root")));
        assert_eq!(
            report(&two),
            "outer\n\nCaused by:\n    0: middle\n    1: root"
        );
    }
}
