//! A real S3-compatible server for the archive tests: `s3s-fs` (crates.io, installed once per
//! machine into `~/.cargo/bin` by `scripts/test.sh`), serving a temporary directory on a free
//! loopback port. Never a mock of the S3 API.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::servers::free_port;

pub const ACCESS_KEY: &str = "logjet-test";
pub const SECRET_KEY: &str = "logjet-test-secret";
pub const BUCKET: &str = "logjet";

/// `LOGJET_TEST_S3S_FS`, else `~/.cargo/bin/s3s-fs`, else whatever is on PATH.
pub fn s3s_fs_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LOGJET_TEST_S3S_FS") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        let p = home.join("bin").join("s3s-fs");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("s3s-fs")
}

/// An `s3s-fs` process with one bucket, [`BUCKET`].
pub struct S3Server {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl S3Server {
    pub async fn start() -> S3Server {
        logjet_core::archive::install_tls_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(BUCKET)).expect("bucket directory");
        let mut s = S3Server {
            port: free_port(),
            dir,
            child: None,
        };
        s.spawn().await;
        s
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory the bucket's objects are files in.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join(BUCKET)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `LOGJET_ARCHIVE_URL` and the `AWS_*` variables a service needs to use this server,
    /// under `prefix`.
    pub fn env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("LOGJET_ARCHIVE_URL", format!("s3://{BUCKET}/{prefix}")),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    async fn spawn(&mut self) {
        let child = Command::new(s3s_fs_bin())
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("s3s-fs starts (install it: scripts/test.sh does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen within 20s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: the store is gone.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Starts again on the same port with the same data.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }
}
