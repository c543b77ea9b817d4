//! logjet's own defaults, from the code (`logjet_core::config::*Config::default()`): what the
//! manifests must agree with and what the scripts read through `logjet-k8s defaults`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use logjet_core::config::{
    ArchiverConfig, DashboardConfig, IngestConfig, ProcessorConfig, QueryConfig, ServiceConfig,
    describe, known_env_vars,
};

/// logjet's services, each a Deployment of the same name.
pub const SERVICES: [&str; 5] = ["ingest", "processor", "query", "dashboard", "archiver"];

/// One service's configuration defaults.
#[derive(Clone, Debug)]
pub struct ServiceDefaults {
    pub service: &'static str,
    pub listen: SocketAddr,
    /// The `LOGJET_*` variables its config knows.
    pub env_vars: Vec<String>,
    /// Every key with its default value, as the start-up log line shows it.
    pub keys: BTreeMap<String, String>,
}

fn of<T: ServiceConfig>(service: &'static str, cfg: T, listen: SocketAddr) -> ServiceDefaults {
    ServiceDefaults {
        service,
        listen,
        env_vars: known_env_vars::<T>(),
        keys: describe(&cfg),
    }
}

/// The defaults of one of [`SERVICES`] (`None` for any other name: nats, redis).
pub fn service(name: &str) -> Option<ServiceDefaults> {
    Some(match name {
        "ingest" => {
            let c = IngestConfig::default();
            of("ingest", c.clone(), c.listen)
        }
        "processor" => {
            let c = ProcessorConfig::default();
            of("processor", c.clone(), c.listen)
        }
        "query" => {
            let c = QueryConfig::default();
            of("query", c.clone(), c.listen)
        }
        "dashboard" => {
            let c = DashboardConfig::default();
            of("dashboard", c.clone(), c.listen)
        }
        "archiver" => {
            let c = ArchiverConfig::default();
            of("archiver", c.clone(), c.listen)
        }
        _ => return None,
    })
}

/// `service.key=value` lines for every service: its `port` and every config key.
pub fn lines() -> Vec<String> {
    let mut out = Vec::new();
    for d in SERVICES.iter().filter_map(|s| service(s)) {
        out.push(format!("{}.port={}", d.service, d.listen.port()));
        for (k, v) in &d.keys {
            out.push(format!("{}.{k}={v}", d.service));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_has_its_port_and_keys() {
        let lines = lines();
        for s in SERVICES {
            assert!(
                lines.iter().any(|l| l.starts_with(&format!("{s}.port="))),
                "{s}"
            );
            assert!(
                lines.iter().any(|l| l.starts_with(&format!("{s}.listen="))),
                "{s}"
            );
        }
        assert!(lines.contains(&format!(
            "processor.fetch_batch={}",
            ProcessorConfig::default().fetch_batch
        )));
        assert!(lines.iter().all(|l| !l.contains('\n')));
        assert!(service("nats").is_none());
    }
}
