//! The service binaries as processes, as Kubernetes runs them: started with `LOGJET_*` settings,
//! their log lines captured with the time they arrived, stopped with a signal and timed.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::servers::free_port;

/// A built service binary next to the test binaries (`cargo build --bins`).
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::current_exe()
        .expect("the test binary's path")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo build --bins` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// One log line and when the test saw it.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub at: Instant,
    pub text: String,
}

impl LogLine {
    /// The JSON line's fields (the services log JSON here).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn level(&self) -> String {
        self.json()["level"].as_str().unwrap_or("").to_string()
    }

    pub fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or("").to_string()
    }
}

/// A service binary running as a child process.
pub struct ServiceProcess {
    pub name: String,
    pub url: String,
    pub port: u16,
    child: Child,
    lines: Arc<Mutex<Vec<LogLine>>>,
}

impl ServiceProcess {
    /// Starts `name` on a free port with JSON logs at INFO, authentication off and no rate
    /// limit, plus `env`. Returns at once: see [`ServiceProcess::wait_healthy`].
    pub fn spawn(name: &str, env: &[(&str, String)]) -> ServiceProcess {
        ServiceProcess::spawn_on(name, free_port(), env)
    }

    /// [`ServiceProcess::spawn`] on a given port (a restart where a client expects it).
    pub fn spawn_on(name: &str, port: u16, env: &[(&str, String)]) -> ServiceProcess {
        logjet_core::archive::install_tls_provider();
        let mut cmd = Command::new(bin(name));
        cmd.env("LOGJET_LISTEN", format!("127.0.0.1:{port}"))
            .env("LOGJET_AUTH", "off")
            .env("LOGJET_RATE_LIMIT_PER_SECOND", "0")
            .env("LOGJET_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if name == "logjet-dashboard" {
            // It asks nobody, like the services (its sign-in: tests/dashboard_auth.rs).
            cmd.env("LOGJET_DASHBOARD_AUTH", "off");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the service binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            collect(BufReader::new(out), lines.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(BufReader::new(err), lines.clone());
        }
        ServiceProcess {
            name: name.to_string(),
            url: format!("http://127.0.0.1:{port}"),
            port,
            child,
            lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("still running") as i32
    }

    /// Waits until `/healthz` answers.
    pub async fn wait_healthy(&self) {
        self.wait_for_status("/healthz", 200).await;
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        self.wait_for_status("/readyz", 200).await;
    }

    /// Waits until `/readyz` answers 503 (a dependency is seen as gone).
    pub async fn wait_unready(&self) {
        self.wait_for_status("/readyz", 503).await;
    }

    async fn wait_for_status(&self, path: &str, want: u16) {
        let http = crate::http_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = http
                .get(format!("{}{path}", self.url))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map(|r| r.status().as_u16());
            if status.as_ref().is_ok_and(|s| *s == want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {path} never answered {want} (last: {status:?}); log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Lines that arrived in `[from, to)`.
    pub fn lines_between(&self, from: Instant, to: Instant) -> Vec<LogLine> {
        self.lines()
            .into_iter()
            .filter(|l| l.at >= from && l.at < to)
            .collect()
    }

    /// The whole log, for failure messages.
    pub fn log(&self) -> String {
        self.lines()
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits up to `timeout` for a line matching `pred`.
    pub async fn wait_for_line(
        &self,
        timeout: Duration,
        pred: impl Fn(&LogLine) -> bool,
    ) -> LogLine {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no such log line within {timeout:?}; log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, signal: i32) {
        // A test harness: std has no safe call for this (signals, sysconf, clock_gettime).
        #[allow(unsafe_code)]
        // SAFETY: signalling our own child, which is still running (pid() asserts it).
        unsafe {
            libc::kill(self.pid(), signal)
        };
    }

    /// SIGTERM, then waits for the exit; how long it took. Panics (with the log) when the
    /// process is still running after `limit`.
    pub async fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let t = Instant::now();
        self.signal(libc::SIGTERM);
        self.wait_exit(t, limit).await
    }

    /// Waits for an exit that `signalled_at` started; panics after `limit`.
    pub async fn wait_exit(
        &mut self,
        signalled_at: Instant,
        limit: Duration,
    ) -> (ExitStatus, Duration) {
        let waited = limit.saturating_sub(signalled_at.elapsed());
        match tokio::time::timeout(waited, self.child.wait()).await {
            Ok(status) => (status.expect("wait for the child"), signalled_at.elapsed()),
            Err(_) => {
                let log = self.log();
                let _ = self.child.kill().await;
                panic!(
                    "{} still running {limit:?} after SIGTERM; log:\n{log}",
                    self.name
                );
            }
        }
    }
}

fn collect<R>(reader: BufReader<R>, lines: Arc<Mutex<Vec<LogLine>>>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = reader.lines();
        while let Ok(Some(text)) = reader.next_line().await {
            let line = LogLine {
                at: Instant::now(),
                text,
            };
            lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }
    });
}
