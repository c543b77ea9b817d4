//! NetworkPolicy evaluation: may a pod (or an address outside the cluster) reach another on a
//! port? A connection needs the egress of its source and the ingress of its destination; a pod
//! that no policy of a direction selects is open in that direction, as in Kubernetes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Deserialize;

use super::pod::IntOrString;
use super::selector::LabelSelector;
use super::{Manifests, ModelError, NAMESPACE_NAME_LABEL, Object, Result};

/// One end of a connection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// A pod: its namespace, its labels and its named container ports.
    Pod {
        namespace: String,
        labels: BTreeMap<String, String>,
        ports: BTreeMap<String, u16>,
    },
    /// An address outside the cluster.
    External(Ipv4Addr),
}

impl Peer {
    /// A pod of a rendered workload.
    pub fn workload(w: &Object) -> Result<Peer> {
        Ok(Peer::Pod {
            namespace: w.namespace().to_string(),
            labels: w.pod_labels(),
            ports: w.pod_spec()?.ports(),
        })
    }

    /// A pod of another namespace with these labels.
    pub fn pod(namespace: &str, labels: &[(&str, &str)]) -> Peer {
        Peer::Pod {
            namespace: namespace.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ports: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    pod_selector: LabelSelector,
    #[serde(default)]
    policy_types: Option<Vec<String>>,
    #[serde(default)]
    ingress: Option<Vec<Rule>>,
    #[serde(default)]
    egress: Option<Vec<Rule>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Rule {
    from: Option<Vec<PeerSpec>>,
    to: Option<Vec<PeerSpec>>,
    ports: Option<Vec<PortSpec>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PeerSpec {
    pod_selector: Option<LabelSelector>,
    namespace_selector: Option<LabelSelector>,
    ip_block: Option<IpBlock>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct IpBlock {
    cidr: String,
    except: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PortSpec {
    protocol: Option<String>,
    port: Option<IntOrString>,
    end_port: Option<u16>,
}

/// One NetworkPolicy of the manifests.
#[derive(Clone, Debug)]
pub struct NetworkPolicy {
    pub name: String,
    pub namespace: String,
    spec: Spec,
}

impl NetworkPolicy {
    fn types(&self) -> Vec<&str> {
        match &self.spec.policy_types {
            Some(t) => t.iter().map(String::as_str).collect(),
            None if self.spec.egress.is_some() => vec!["Ingress", "Egress"],
            None => vec!["Ingress"],
        }
    }

    /// Whether it applies to this pod in this direction (`Ingress` or `Egress`).
    pub fn selects(&self, pod: &Peer, direction: &str) -> bool {
        let Peer::Pod {
            namespace, labels, ..
        } = pod
        else {
            return false;
        };
        *namespace == self.namespace
            && self.spec.pod_selector.matches(labels)
            && self.types().contains(&direction)
    }

    /// Every pod of its namespace, both directions, nothing allowed.
    pub fn is_default_deny(&self) -> bool {
        self.spec.pod_selector.is_empty()
            && self.types().len() == 2
            && self.spec.ingress.as_ref().is_none_or(Vec::is_empty)
            && self.spec.egress.as_ref().is_none_or(Vec::is_empty)
    }
}

/// The NetworkPolicies of rendered manifests, and the labels of the namespaces they select.
pub struct Policies {
    pub policies: Vec<NetworkPolicy>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

impl Policies {
    pub fn of(m: &Manifests) -> Result<Policies> {
        let policies = m
            .of_kind("NetworkPolicy")
            .map(|p| {
                Ok(NetworkPolicy {
                    name: p.name().to_string(),
                    namespace: p.namespace().to_string(),
                    spec: p.typed(&["spec"])?,
                })
            })
            .collect::<Result<_>>()?;
        let namespaces = m
            .of_kind("Namespace")
            .map(|n| (n.name().to_string(), n.labels()))
            .collect();
        Ok(Policies {
            policies,
            namespaces,
        })
    }

    /// A namespace's labels: as rendered, and the name label Kubernetes sets on every one.
    fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let mut labels = self.namespaces.get(ns).cloned().unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), ns.to_string());
        labels
    }

    /// Whether `src` may open a connection to `dst` on `port` (`protocol` TCP, UDP or SCTP).
    pub fn allows(&self, src: &Peer, dst: &Peer, port: u16, protocol: &str) -> bool {
        self.direction_allows(src, "Egress", dst, port, protocol)
            && self.direction_allows(dst, "Ingress", src, port, protocol)
    }

    /// `pod`'s side of the connection: egress towards `other`, or ingress from it.
    fn direction_allows(
        &self,
        pod: &Peer,
        direction: &str,
        other: &Peer,
        port: u16,
        protocol: &str,
    ) -> bool {
        let applying: Vec<&NetworkPolicy> = self
            .policies
            .iter()
            .filter(|p| p.selects(pod, direction))
            .collect();
        if applying.is_empty() {
            return true;
        }
        let dst = if direction == "Egress" { other } else { pod };
        applying.iter().any(|p| {
            let rules = if direction == "Egress" {
                &p.spec.egress
            } else {
                &p.spec.ingress
            };
            rules.iter().flatten().any(|r| {
                let peers = if direction == "Egress" {
                    &r.to
                } else {
                    &r.from
                };
                let peer_ok = peers
                    .as_ref()
                    .filter(|ps| !ps.is_empty())
                    .is_none_or(|ps| ps.iter().any(|s| self.peer_matches(s, &p.namespace, other)));
                let port_ok = r
                    .ports
                    .as_ref()
                    .filter(|ps| !ps.is_empty())
                    .is_none_or(|ps| ps.iter().any(|s| port_matches(s, dst, port, protocol)));
                peer_ok && port_ok
            })
        })
    }

    fn peer_matches(&self, spec: &PeerSpec, policy_ns: &str, peer: &Peer) -> bool {
        match peer {
            Peer::External(ip) => spec.ip_block.as_ref().is_some_and(|b| b.contains(*ip)),
            Peer::Pod {
                namespace, labels, ..
            } => {
                if spec.ip_block.is_some() {
                    return false;
                }
                let ns_ok = match &spec.namespace_selector {
                    Some(sel) => sel.matches(&self.namespace_labels(namespace)),
                    None => namespace == policy_ns,
                };
                let pod_ok = match &spec.pod_selector {
                    Some(sel) => sel.matches(labels),
                    None => spec.namespace_selector.is_some(),
                };
                ns_ok && pod_ok
            }
        }
    }
}

fn port_matches(spec: &PortSpec, dst: &Peer, port: u16, protocol: &str) -> bool {
    if spec.protocol.as_deref().unwrap_or("TCP") != protocol {
        return false;
    }
    match &spec.port {
        None => true,
        Some(IntOrString::Int(n)) => {
            let end = spec.end_port.map_or(*n, i64::from);
            (*n..=end).contains(&i64::from(port))
        }
        Some(IntOrString::String(name)) => match dst {
            Peer::Pod { ports, .. } => ports.get(name) == Some(&port),
            Peer::External(_) => false,
        },
    }
}

impl IpBlock {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        let inside = |cidr: &str| parse_cidr(cidr).is_ok_and(|(net, bits)| in_net(ip, net, bits));
        inside(&self.cidr) && !self.except.iter().any(|e| inside(e))
    }
}

fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u32)> {
    let bad = || ModelError::invalid("ipBlock", format!("{cidr} is not an IPv4 CIDR"));
    let (net, bits) = cidr.split_once('/').ok_or_else(bad)?;
    let bits: u32 = bits.parse().map_err(|_| bad())?;
    Ok((net.parse().map_err(|_| bad())?, bits.min(32)))
}

fn in_net(ip: Ipv4Addr, net: Ipv4Addr, bits: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICIES: &str = "
kind: NetworkPolicy
metadata: {name: deny, namespace: ns}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
kind: NetworkPolicy
metadata: {name: web, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
    - ports: [{port: http}]
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: mon}}}]
      ports: [{port: 9000, endPort: 9010}]
  egress:
    - to: [{podSelector: {matchLabels: {app: db}}}]
      ports: [{port: 5432}]
    - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
---
kind: NetworkPolicy
metadata: {name: db, namespace: ns}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}}]}]
";

    fn pod(app: &str, ports: &[(&str, u16)]) -> Peer {
        Peer::Pod {
            namespace: "ns".into(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            ports: ports.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
        }
    }

    #[test]
    fn evaluates_both_directions() {
        let p = Policies::of(&Manifests::parse(POLICIES, "test").unwrap()).unwrap();
        let (web, db) = (pod("web", &[("http", 8080)]), pod("db", &[]));
        let client = Peer::External("203.0.113.7".parse().unwrap());
        let mon = Peer::pod("mon", &[]);
        assert!(p.allows(&client, &web, 8080, "TCP"), "a named port");
        assert!(!p.allows(&client, &web, 8081, "TCP"));
        assert!(!p.allows(&client, &web, 8080, "UDP"));
        assert!(p.allows(&mon, &web, 9005, "TCP"), "a port range");
        assert!(!p.allows(&Peer::pod("other", &[]), &web, 9005, "TCP"));
        assert!(
            p.allows(&web, &db, 5432, "TCP"),
            "egress and the db's ingress"
        );
        assert!(
            !p.allows(&db, &web, 8080, "TCP"),
            "db's egress is denied by default"
        );
        assert!(p.allows(
            &web,
            &Peer::External("10.2.3.4".parse().unwrap()),
            443,
            "TCP"
        ));
        assert!(!p.allows(
            &web,
            &Peer::External("10.1.3.4".parse().unwrap()),
            443,
            "TCP"
        ));
        assert!(!p.allows(&web, &client, 443, "TCP"));
        // db's policy names no policyTypes and no egress: only its ingress is restricted by it.
        let db_policy = p.policies.iter().find(|x| x.name == "db").unwrap();
        assert!(db_policy.selects(&db, "Ingress") && !db_policy.selects(&db, "Egress"));
        assert!(p.policies[0].is_default_deny() && !p.policies[1].is_default_deny());
    }

    #[test]
    fn a_pod_no_policy_selects_is_open() {
        let p = Policies::of(&Manifests::default()).unwrap();
        assert!(p.allows(&pod("a", &[]), &pod("b", &[]), 1, "TCP"));
    }
}
