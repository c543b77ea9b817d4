//! A Redis group as production runs it, on loopback: a primary, a replica and three Sentinels
//! (`redis-server --sentinel`, the program Debian's `redis-sentinel` package links to), on free
//! ports with temporary directories.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::servers::{free_port, redis_server_bin};

/// The name the Sentinels monitor the primary under.
pub const MASTER_NAME: &str = "logjet";

/// One `redis-server` process (a data node or a Sentinel).
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    /// SIGKILL: nothing flushed, no replica told.
    pub async fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }
}

fn node_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Primary, replica, three Sentinels.
pub struct RedisGroup {
    pub primary: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    dir: TempDir,
}

fn spawn(args: &[String], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(redis_server_bin())
        .args(args)
        .stdout(Stdio::from(log.try_clone().expect("log file")))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server starts (install it: scripts/test.sh does)")
}

async fn client(port: u16) -> redis::aio::MultiplexedConnection {
    let start = Instant::now();
    loop {
        if let Ok(c) = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
        {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "redis on {port} did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl RedisGroup {
    /// Starts everything and waits until each Sentinel knows the replica and the two other
    /// Sentinels (before that, a failover cannot happen). `down_after`: how long the primary
    /// must be silent before the Sentinels call it down.
    pub async fn start(down_after: Duration) -> RedisGroup {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = |name: &str| {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).expect("data dir");
            d
        };
        let primary_port = free_port();
        let primary = Node {
            port: primary_port,
            child: Some(spawn(
                &node_args(primary_port, &data("primary")),
                &dir.path().join("primary.log"),
            )),
        };
        client(primary_port).await;
        let replica_port = free_port();
        let mut args = node_args(replica_port, &data("replica"));
        args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary_port.to_string(),
        ]);
        let replica = Node {
            port: replica_port,
            child: Some(spawn(&args, &dir.path().join("replica.log"))),
        };
        client(replica_port).await;

        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            // Sentinel rewrites its file with what it learns: it must be writable.
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} {}\n\
                     sentinel failover-timeout {MASTER_NAME} 10000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    data(&format!("sentinel-{i}")).display(),
                    down_after.as_millis()
                ),
            )
            .expect("sentinel config");
            let args = vec![conf.display().to_string(), "--sentinel".to_string()];
            sentinels.push(Node {
                port,
                child: Some(spawn(&args, &dir.path().join(format!("sentinel-{i}.log")))),
            });
        }
        let group = RedisGroup {
            primary,
            replica,
            sentinels,
            dir,
        };
        group.wait_discovered().await;
        group
    }

    /// Starts the (killed) primary again on its port as a replica of `master`, empty, as the
    /// prod overlay's start script does with a pod whose Redis lost its master role.
    pub async fn restart_primary_as_replica_of(&mut self, master: u16) {
        let port = self.primary.port;
        let data = self.dir.path().join("primary-again");
        std::fs::create_dir_all(&data).expect("data dir");
        let mut args = node_args(port, &data);
        args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
        self.primary.child = Some(spawn(&args, &self.dir.path().join("primary-again.log")));
        client(port).await;
    }

    /// `LOGJET_REDIS_SENTINELS`.
    pub fn sentinel_list(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn wait_discovered(&self) {
        let start = Instant::now();
        for s in &self.sentinels {
            let mut c = client(s.port).await;
            loop {
                let replicas: redis::RedisResult<Vec<redis::Value>> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg(MASTER_NAME)
                    .query_async(&mut c)
                    .await;
                let peers: redis::RedisResult<Vec<redis::Value>> = redis::cmd("SENTINEL")
                    .arg("SENTINELS")
                    .arg(MASTER_NAME)
                    .query_async(&mut c)
                    .await;
                if replicas.is_ok_and(|r| !r.is_empty()) && peers.is_ok_and(|p| p.len() == 2) {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "Sentinel on {} did not discover the replica and its peers",
                    s.port
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// The port the Sentinels name as master now (asked of the first that answers).
    pub async fn master_port(&self) -> Option<u16> {
        for s in &self.sentinels {
            if s.child.is_none() {
                continue;
            }
            let mut c = client(s.port).await;
            let addr: redis::RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER_NAME)
                .query_async(&mut c)
                .await;
            if let Ok(Some((_, port))) = addr {
                return Some(port);
            }
        }
        None
    }

    /// Waits until the Sentinels name `port` as master and it answers as one.
    pub async fn wait_master(&self, port: u16, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.master_port().await == Some(port) {
                let mut c = client(port).await;
                let role: redis::RedisResult<Vec<redis::Value>> =
                    redis::cmd("ROLE").query_async(&mut c).await;
                if let Ok(role) = role
                    && matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master")
                {
                    return;
                }
            }
            assert!(
                start.elapsed() < timeout,
                "the Sentinels did not promote {port} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
