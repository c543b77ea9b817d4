//! A real Alertmanager (Debian's `prometheus-alertmanager`, installed by scripts/test.sh) on a
//! free loopback port with a temporary storage directory and a minimal config (one receiver that
//! notifies no one: the tests read alerts back through its API v2).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::servers::free_port;

/// `LOGJET_TEST_ALERTMANAGER`, else the Debian package's binary.
pub fn alertmanager_bin() -> PathBuf {
    std::env::var_os("LOGJET_TEST_ALERTMANAGER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-alertmanager"))
}

const CONFIG: &str = r#"route:
  receiver: "null"
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"#;

pub struct Alertmanager {
    pub port: u16,
    _dir: TempDir,
    _child: Child,
    http: reqwest::Client,
}

impl Alertmanager {
    pub async fn start() -> Alertmanager {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, CONFIG).expect("write config");
        let port = free_port();
        let child = Command::new(alertmanager_bin())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No gossip: one instance, and no port to collide with other tests.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus-alertmanager starts (scripts/test.sh installs it)");
        let am = Alertmanager {
            port,
            _dir: dir,
            _child: child,
            http: crate::http_client(),
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = am.http.get(format!("{}/-/ready", am.url())).send().await
                && r.status().is_success()
            {
                return am;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "alertmanager not ready after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /api/v2/alerts`: the alerts Alertmanager holds as active (not resolved).
    pub async fn alerts(&self) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/api/v2/alerts", self.url()))
            .send()
            .await
            .expect("alertmanager answers");
        assert!(r.status().is_success(), "{}", r.status());
        r.json::<Vec<Value>>().await.expect("a JSON array")
    }

    /// The active alerts named `name`.
    pub async fn alerts_named(&self, name: &str) -> Vec<Value> {
        self.alerts()
            .await
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .collect()
    }
}
