//! The rendered `nats.conf`: its users, and the same file made to run on this machine.

use std::collections::BTreeMap;
use std::path::Path;

use super::{ModelError, Result};

/// Where a local nats-server listens and keeps its files.
pub struct LocalNats<'a> {
    pub client_port: u16,
    pub monitor_port: u16,
    pub pid_file: &'a Path,
    pub store_dir: &'a Path,
}

/// The configuration with the client and monitoring ports on loopback and the paths local;
/// everything else (users, limits, JetStream settings) stays as rendered. A `listen` of the
/// cluster block (port 6222) is left alone.
pub fn localize(conf: &str, local: &LocalNats<'_>) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in conf.lines() {
        let key = line.trim().split(':').next().unwrap_or("").trim();
        out.push(match key {
            "listen" if !line.contains("6222") => {
                format!("listen: 127.0.0.1:{}", local.client_port)
            }
            "http_port" => format!("http: 127.0.0.1:{}", local.monitor_port),
            "pid_file" => format!("pid_file: {}", local.pid_file.display()),
            "store_dir" => format!("store_dir: {}", local.store_dir.display()),
            _ => line.to_string(),
        });
    }
    out.join("\n") + "\n"
}

/// The users of `authorization { users = [...] }`: user → the variable holding its password.
pub fn users(conf: &str) -> Result<BTreeMap<String, String>> {
    let mut users = BTreeMap::new();
    for line in conf.lines().map(str::trim) {
        let Some(inner) = line.strip_prefix('{').and_then(|l| l.strip_suffix('}')) else {
            continue;
        };
        let fields: BTreeMap<&str, &str> = inner
            .split(',')
            .filter_map(|kv| kv.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        if let (Some(user), Some(pass)) = (fields.get("user"), fields.get("password")) {
            let var = pass.strip_prefix('$').ok_or_else(|| {
                ModelError::invalid(
                    "nats.conf",
                    format!("{user}'s password is not a variable: {line}"),
                )
            })?;
            users.insert(user.to_string(), var.to_string());
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "server_name: $POD_NAME\nlisten: 0.0.0.0:4222\nhttp_port: 8222\n\
        pid_file: /var/run/nats/nats.pid\nauthorization {\n  users = [\n\
        { user: ingest, password: $NATS_INGEST_PASSWORD }\n  ]\n}\n\
        cluster {\n  listen: 0.0.0.0:6222\n}\njetstream {\n  store_dir: /data\n}\n";

    #[test]
    fn made_local_and_users_read() {
        let local = localize(
            CONF,
            &LocalNats {
                client_port: 1,
                monitor_port: 2,
                pid_file: Path::new("/w/nats.pid"),
                store_dir: Path::new("/w/data"),
            },
        );
        for want in [
            "listen: 127.0.0.1:1",
            "http: 127.0.0.1:2",
            "pid_file: /w/nats.pid",
            "store_dir: /w/data",
            "  listen: 0.0.0.0:6222",
        ] {
            assert!(local.lines().any(|l| l == want), "{want} in {local}");
        }
        assert_eq!(
            users(CONF).unwrap(),
            BTreeMap::from([("ingest".to_string(), "NATS_INGEST_PASSWORD".to_string())])
        );
        assert!(users("{ user: a, password: plain }").is_err());
    }
}
