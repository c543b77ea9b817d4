//! Who is using the dashboard, by `dashboard_auth` mode, and which key the proxy then calls the
//! query service with.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use logjet_core::config::{ConfigError, DashboardAuth, DashboardConfig};

use crate::session::{self, SessionStore};

/// The signed-in user of a request (in its extensions once [`Gate::user`] let it through).
#[derive(Clone)]
pub struct User {
    /// The key's name (sign-in), the proxy's user header (proxy); `None` with auth off.
    pub name: Option<String>,
    /// What the proxy sends to the query service as `Authorization`.
    pub authorization: Option<HeaderValue>,
    /// The session id (sign-in mode), to end it.
    pub session: Option<String>,
}

/// Why a request has no user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Sign-in mode: no cookie, an unknown or expired session.
    NotSignedIn,
    /// Proxy mode: no identity header, or one from an address outside `proxy_trusted_cidrs`.
    NotFromProxy,
}

/// How users are recognised (one per server).
#[derive(Clone)]
pub enum Gate {
    SignIn(SessionStore),
    Proxy {
        cidrs: Vec<IpNet>,
        headers: Vec<HeaderName>,
        authorization: HeaderValue,
        signout: Option<String>,
    },
    Off {
        authorization: Option<HeaderValue>,
    },
}

fn bearer(key: &str) -> Result<HeaderValue, ConfigError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| ConfigError::invalid("query_api_key", "not a valid header value"))?;
    v.set_sensitive(true);
    Ok(v)
}

impl Gate {
    pub fn from_config(cfg: &DashboardConfig) -> Result<Gate, ConfigError> {
        let key = cfg.query_api_key.as_deref().map(bearer).transpose()?;
        Ok(match cfg.dashboard_auth {
            DashboardAuth::SignIn => {
                Gate::SignIn(SessionStore::new(cfg.session_ttl, cfg.max_sessions))
            }
            DashboardAuth::Proxy => Gate::Proxy {
                cidrs: cfg.trusted_cidrs()?,
                headers: cfg.user_headers()?,
                authorization: key.ok_or_else(|| {
                    ConfigError::invalid("query_api_key", "required with dashboard_auth = proxy")
                })?,
                signout: cfg.proxy_signout_url.clone(),
            },
            DashboardAuth::Off => Gate::Off { authorization: key },
        })
    }

    pub fn sessions(&self) -> Option<&SessionStore> {
        match self {
            Gate::SignIn(s) => Some(s),
            _ => None,
        }
    }

    /// The user of a request from `peer` (the TCP peer: never a forwarded-for header).
    pub fn user(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Result<User, Denied> {
        match self {
            Gate::Off { authorization } => Ok(User {
                name: None,
                authorization: authorization.clone(),
                session: None,
            }),
            Gate::SignIn(store) => {
                let id = session::session_id(headers).ok_or(Denied::NotSignedIn)?;
                let s = store.get(&id, now).ok_or(Denied::NotSignedIn)?;
                Ok(User {
                    name: Some(s.user),
                    authorization: Some(s.authorization),
                    session: Some(id),
                })
            }
            Gate::Proxy {
                cidrs,
                headers: names,
                authorization,
                ..
            } => {
                let peer = peer.ok_or(Denied::NotFromProxy)?;
                if !trusted(peer, cidrs) {
                    return Err(Denied::NotFromProxy);
                }
                let name = proxy_user(headers, names).ok_or(Denied::NotFromProxy)?;
                Ok(User {
                    name: Some(name),
                    authorization: Some(authorization.clone()),
                    session: None,
                })
            }
        }
    }
}

/// Whether `peer` is in one of `cidrs` (an IPv4 peer seen as `::ffff:a.b.c.d` counts as
/// `a.b.c.d`).
pub fn trusted(peer: IpAddr, cidrs: &[IpNet]) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    cidrs.iter().any(|c| c.contains(&peer))
}

/// The first of `names` present with a usable value (visible ASCII, at most 256 bytes).
pub fn proxy_user(headers: &HeaderMap, names: &[HeaderName]) -> Option<String> {
    names.iter().find_map(|n| {
        let v = headers.get(n)?.to_str().ok()?.trim();
        (!v.is_empty() && v.len() <= 256).then(|| v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::header;

    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn cidr_ranges_admit_only_their_addresses() {
        let cidrs = nets(&["10.244.0.0/16", "fd00::/8"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(trusted(ip("10.244.3.7"), &cidrs));
        assert!(!trusted(ip("10.245.0.1"), &cidrs));
        assert!(!trusted(ip("127.0.0.1"), &cidrs));
        assert!(trusted(ip("fd12::1"), &cidrs));
        assert!(!trusted(ip("fe80::1"), &cidrs));
        // A dual-stack listener sees IPv4 peers as mapped addresses.
        assert!(trusted(ip("::ffff:10.244.0.9"), &cidrs));
        assert!(!trusted(ip("::ffff:192.168.0.9"), &cidrs));
        assert!(!trusted(ip("10.244.0.1"), &[]));
    }

    fn proxy_gate() -> Gate {
        Gate::Proxy {
            cidrs: nets(&["127.0.0.0/8"]),
            headers: vec![
                HeaderName::from_static("x-forwarded-user"),
                HeaderName::from_static("x-forwarded-email"),
            ],
            authorization: bearer("proxied-key").unwrap(),
            signout: None,
        }
    }

    #[test]
    fn the_identity_header_counts_only_from_trusted_peers() {
        let gate = proxy_gate();
        let now = Instant::now();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-email",
            HeaderValue::from_static("a@example.com"),
        );
        let local = Some("127.0.0.1".parse().unwrap());
        let u = gate.user(&h, local, now).unwrap();
        assert_eq!(u.name.as_deref(), Some("a@example.com"));
        assert_eq!(u.authorization.unwrap(), "Bearer proxied-key");
        // The first configured header wins.
        h.insert("x-forwarded-user", HeaderValue::from_static("alice"));
        assert_eq!(
            gate.user(&h, local, now).unwrap().name.as_deref(),
            Some("alice")
        );
        // Same header from elsewhere, or no peer address known: refused.
        let remote = Some("192.0.2.1".parse().unwrap());
        assert_eq!(gate.user(&h, remote, now).err(), Some(Denied::NotFromProxy));
        assert_eq!(gate.user(&h, None, now).err(), Some(Denied::NotFromProxy));
        // Trusted peer without the header (or an empty one): refused.
        let mut empty = HeaderMap::new();
        empty.insert("x-forwarded-user", HeaderValue::from_static("  "));
        assert_eq!(
            gate.user(&empty, local, now).err(),
            Some(Denied::NotFromProxy)
        );
    }

    #[test]
    fn sign_in_mode_needs_a_live_session() {
        let store = SessionStore::new(Duration::from_secs(10), 10);
        let gate = Gate::SignIn(store.clone());
        let now = Instant::now();
        let mut h = HeaderMap::new();
        // The proxy's header means nothing in this mode.
        h.insert("x-forwarded-user", HeaderValue::from_static("alice"));
        let local = Some("127.0.0.1".parse().unwrap());
        assert_eq!(gate.user(&h, local, now).err(), Some(Denied::NotSignedIn));
        let id = store.create("bob", "k-bob", now).unwrap();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{}={id}", session::COOKIE)).unwrap(),
        );
        let u = gate.user(&h, None, now).unwrap();
        assert_eq!(u.name.as_deref(), Some("bob"));
        assert_eq!(u.session.as_deref(), Some(id.as_str()));
        assert_eq!(
            gate.user(&h, None, now + Duration::from_secs(10)).err(),
            Some(Denied::NotSignedIn)
        );
    }
}
