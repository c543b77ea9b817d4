//! In-cluster addresses made local: on this machine every pod shares the host's network, so a
//! Service address (`nats:4222`, `http://query:8001`) becomes the loopback port where that
//! workload runs, and a pod's own listen address (`0.0.0.0:8000`) its loopback port.

use std::collections::BTreeMap;

use regex::{Captures, Regex};

use super::super::service::all_routes;
use super::super::{Manifests, NAMESPACE, Result};

pub struct Addresses {
    /// (Service, port) → local port.
    services: BTreeMap<(String, u16), u16>,
    host: Regex,
    listen: Regex,
}

impl Addresses {
    /// `local` maps (workload, container port) to the loopback port it runs on here.
    pub fn new(m: &Manifests, local: &BTreeMap<(String, u16), u16>) -> Result<Addresses> {
        let mut services = BTreeMap::new();
        for r in all_routes(m)? {
            if let Some(port) = local.get(&(r.workload.clone(), r.container_port)) {
                services.insert((r.service, r.port), *port);
            }
        }
        let ns = regex::escape(NAMESPACE);
        Ok(Addresses {
            services,
            // A host name after `@` or `/` (URLs), optionally qualified with the namespace.
            host: Regex::new(&format!(
                r"([@/])([a-z0-9-]+)(?:\.{ns}(?:\.svc(?:\.cluster\.local)?)?)?:(\d+)"
            ))
            .map_err(|e| super::super::ModelError::invalid("address pattern", e.to_string()))?,
            listen: Regex::new(r"^(?:0\.0\.0\.0|\[::\]|::):(\d+)$")
                .map_err(|e| super::super::ModelError::invalid("listen pattern", e.to_string()))?,
        })
    }

    /// `value` with this pod's listen address (`pod_ports`: container port → local port) and
    /// every Service address made local; anything else unchanged.
    pub fn rewrite(&self, value: &str, pod_ports: &BTreeMap<u16, u16>) -> String {
        if let Some(c) = self.listen.captures(value)
            && let Some(local) = c[1].parse().ok().and_then(|p: u16| pod_ports.get(&p))
        {
            return format!("127.0.0.1:{local}");
        }
        self.host
            .replace_all(value, |c: &Captures<'_>| {
                let key = (c[2].to_string(), c[3].parse().unwrap_or(0));
                match self.services.get(&key) {
                    Some(port) => format!("{}127.0.0.1:{port}", &c[1]),
                    None => c[0].to_string(),
                }
            })
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS: &str = "
kind: Deployment
metadata: {name: query}
spec:
  template:
    metadata: {labels: {app: query}}
    spec: {containers: [{name: query, ports: [{name: http, containerPort: 8001}]}]}
---
kind: Service
metadata: {name: query}
spec: {selector: {app: query}, ports: [{port: 8001, targetPort: http}]}
";

    #[test]
    fn service_and_listen_addresses_become_local() {
        let m = Manifests::parse(DOCS, "test").unwrap();
        let a =
            Addresses::new(&m, &BTreeMap::from([(("query".to_string(), 8001), 40001)])).unwrap();
        let own = BTreeMap::from([(3000, 40002)]);
        assert_eq!(a.rewrite("0.0.0.0:3000", &own), "127.0.0.1:40002");
        assert_eq!(a.rewrite("0.0.0.0:9999", &own), "0.0.0.0:9999");
        assert_eq!(
            a.rewrite("http://query:8001", &own),
            "http://127.0.0.1:40001"
        );
        assert_eq!(
            a.rewrite("http://query.log-analytics.svc.cluster.local:8001/x", &own),
            "http://127.0.0.1:40001/x"
        );
        assert_eq!(
            a.rewrite("nats://u:p@nats:4222", &own),
            "nats://u:p@nats:4222",
            "not running here"
        );
        assert_eq!(a.rewrite("plain text", &own), "plain text");
    }
}
