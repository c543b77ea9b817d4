//! NATS and Redis as their StatefulSets declare them, run as local processes: the rendered config
//! file with listen addresses, ports and paths made local, the declared args (`$(VAR)` expanded,
//! mount paths made local) and the declared environment, so both enforce the same
//! authentication as in the cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::files::{Dir, File, volume_files};
use super::{LocalPorts, port};
use crate::k8s::env::{Environment, PodIdentity};
use crate::k8s::nats_conf::{LocalNats, localize};
use crate::k8s::{Manifests, ModelError, Result};

/// One server process.
#[derive(Clone, Debug)]
pub struct ServerPlan {
    pub name: String,
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub dirs: Vec<Dir>,
    pub files: Vec<File>,
}

/// The StatefulSet `name`'s container of the same name, with `conf_file` (a path inside the
/// container) rewritten by `patch`.
fn server(
    m: &Manifests,
    name: &str,
    dir: &Path,
    conf_file: &str,
    patch: impl Fn(&str) -> String,
) -> Result<ServerPlan> {
    let spec = m.find("StatefulSet", name)?.pod_spec()?;
    let c = spec.container(name)?;
    let env = Environment::of(m, c, &PodIdentity::local(&format!("{name}-0")))?;
    let mut dirs = vec![Dir {
        path: dir.join("data"),
        mode: 0o755,
    }];
    let mut files = Vec::new();
    // Mount path in the container → its directory here.
    let mut paths: Vec<(String, PathBuf)> = Vec::new();
    for mount in &c.volume_mounts {
        let planned = match spec.volume(&mount.name) {
            Some(v) => {
                let local = dir.join("vol").join(&v.name);
                volume_files(m, v, &local, None)?.map(|f| (local, f))
            }
            // A volumeClaimTemplate (the PVC).
            None => None,
        };
        let local = match planned {
            Some((local, f)) => {
                files.extend(f);
                local
            }
            None => dir.join("data").join(&mount.name),
        };
        dirs.push(Dir {
            path: local.clone(),
            mode: 0o755,
        });
        paths.push((mount.mount_path.trim_end_matches('/').to_string(), local));
    }
    let local_path = |p: &str| -> String {
        for (mount, local) in &paths {
            if p == mount {
                return local.display().to_string();
            }
            if let Some(rest) = p.strip_prefix(&format!("{mount}/")) {
                return local.join(rest).display().to_string();
            }
        }
        p.to_string()
    };
    let conf = PathBuf::from(local_path(conf_file));
    let f = files.iter_mut().find(|f| f.path == conf).ok_or_else(|| {
        ModelError::Missing(format!("{name}: {conf_file} from a ConfigMap volume"))
    })?;
    f.content = patch(&f.content);
    let args = c
        .args
        .iter()
        .map(|a| local_path(&env.expand(a).value))
        .collect();
    Ok(ServerPlan {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        args,
        env: env.values(),
        dirs,
        files,
    })
}

/// nats-server from the StatefulSet `nats` and the rendered `nats.conf`.
pub(super) fn nats(m: &Manifests, dir: &Path, ports: &LocalPorts) -> Result<ServerPlan> {
    let (client_port, monitor_port) = (port(ports, "nats")?, port(ports, "nats-monitor")?);
    let (pid_file, store_dir) = (dir.join("nats.pid"), dir.join("data").join("data"));
    server(m, "nats", dir, "/etc/nats/nats.conf", |conf| {
        localize(
            conf,
            &LocalNats {
                client_port,
                monitor_port,
                pid_file: &pid_file,
                store_dir: &store_dir,
            },
        )
    })
}

/// redis-server from the StatefulSet `redis` and the rendered `redis.conf`.
pub(super) fn redis(m: &Manifests, dir: &Path, ports: &LocalPorts) -> Result<ServerPlan> {
    let port = port(ports, "redis")?;
    let data = dir.join("data").join("data");
    server(m, "redis", dir, "/etc/redis/redis.conf", |conf| {
        let mut out = String::new();
        for line in conf.lines() {
            let line = match line.trim().split(' ').next().unwrap_or("") {
                "bind" => "bind 127.0.0.1".to_string(),
                "port" => format!("port {port}"),
                "dir" => format!("dir {}", data.display()),
                _ => line.to_string(),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    })
}
