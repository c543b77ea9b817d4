//! Configuration of `logjet-dashboard`: where the query service is, and who may use the
//! dashboard (docs/security.md).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    ConfigError, DEFAULT_DRAIN_TIMEOUT, ServiceConfig, describe, duration_between, positive,
    validate_drain_timeout, validate_url,
};
use crate::telemetry::LogFormat;

/// `LOGJET_DASHBOARD_AUTH`: how the dashboard knows who is using it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DashboardAuth {
    /// A sign-in page takes an API key of query scope, checks it with the query service
    /// (`GET /auth/whoami`) and exchanges it for a server-side session in an `HttpOnly`
    /// cookie; the proxy then calls the query service with that user's own key.
    #[default]
    SignIn,
    /// An authenticating proxy in front (oauth2-proxy and the like) names the user in a header;
    /// the header is believed only from `proxy_trusted_cidrs`, and the proxy calls the query
    /// service with `query_api_key`.
    Proxy,
    /// Nobody is asked (local development only): every request is proxied with
    /// `query_api_key`, when set.
    Off,
}

/// `logjet-dashboard`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DashboardConfig {
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// The query service that `/api/*` is proxied to (`http://host:port`).
    pub query_url: String,
    /// The built bundle (`scripts/build-dashboard.sh` writes `dashboard/dist`).
    pub static_dir: PathBuf,
    pub dashboard_auth: DashboardAuth,
    /// A session ends this long after sign-in (the cookie's `Max-Age` and the server's own
    /// check).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Sessions held at once; at the limit the oldest is ended by a new sign-in.
    pub max_sessions: usize,
    /// `proxy` mode: the request headers naming the user, first present wins
    /// (oauth2-proxy sends `X-Forwarded-User` and `X-Forwarded-Email`).
    pub proxy_user_headers: String,
    /// `proxy` mode: peer addresses (the authenticating proxy's, or its ingress controller's)
    /// whose identity header is believed, as comma-separated CIDR ranges. Required.
    pub proxy_trusted_cidrs: String,
    /// `proxy` mode: where the app's "Sign out" goes (oauth2-proxy: `/oauth2/sign_out`).
    pub proxy_signout_url: Option<String>,
    /// Sent by the proxy as `Authorization: Bearer <key>` to the query service in `proxy` and
    /// `off` modes (never in `sign-in` mode, where each user's own key is); never to the
    /// browser, never logged.
    pub query_api_key: Option<String>,
    /// After SIGTERM, the service stops within this: in-flight requests still waiting on a
    /// dependency are answered 503 just before it, unfinished work is left for redelivery.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            listen: "0.0.0.0:3000".parse().expect("static address"),
            log_format: LogFormat::Json,
            query_url: "http://127.0.0.1:8001".into(),
            static_dir: PathBuf::from("dashboard/dist"),
            dashboard_auth: DashboardAuth::SignIn,
            session_ttl: Duration::from_secs(8 * 3600),
            max_sessions: 10_000,
            proxy_user_headers: "X-Forwarded-User,X-Forwarded-Email".into(),
            proxy_trusted_cidrs: String::new(),
            proxy_signout_url: None,
            query_api_key: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

impl DashboardConfig {
    /// [`describe`] with the API key redacted, for the start-up log line.
    pub fn describe(&self) -> BTreeMap<String, String> {
        let mut keys = describe(self);
        if self.query_api_key.is_some() {
            keys.insert("query_api_key".into(), "<set>".into());
        }
        keys
    }

    /// The parsed `proxy_trusted_cidrs`.
    pub fn trusted_cidrs(&self) -> Result<Vec<IpNet>, ConfigError> {
        list(&self.proxy_trusted_cidrs)
            .map(|c| {
                c.parse::<IpNet>().map_err(|_| {
                    ConfigError::invalid(
                        "proxy_trusted_cidrs",
                        format!("{c:?} is not a CIDR range (like 10.0.0.0/8 or fd00::/8)"),
                    )
                })
            })
            .collect()
    }

    /// The parsed `proxy_user_headers`, lower case.
    pub fn user_headers(&self) -> Result<Vec<axum::http::HeaderName>, ConfigError> {
        list(&self.proxy_user_headers)
            .map(|h| {
                axum::http::HeaderName::try_from(h.to_ascii_lowercase()).map_err(|_| {
                    ConfigError::invalid(
                        "proxy_user_headers",
                        format!("{h:?} is not a header name"),
                    )
                })
            })
            .collect()
    }
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

impl std::fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("listen", &self.listen)
            .field("log_format", &self.log_format)
            .field("query_url", &self.query_url)
            .field("static_dir", &self.static_dir)
            .field("dashboard_auth", &self.dashboard_auth)
            .field("session_ttl", &self.session_ttl)
            .field("max_sessions", &self.max_sessions)
            .field("proxy_user_headers", &self.proxy_user_headers)
            .field("proxy_trusted_cidrs", &self.proxy_trusted_cidrs)
            .field("proxy_signout_url", &self.proxy_signout_url)
            .field(
                "query_api_key",
                &self.query_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

impl ServiceConfig for DashboardConfig {
    fn log_format(&self) -> LogFormat {
        self.log_format
    }

    fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    fn validate(&self) -> Result<(), ConfigError> {
        // The proxy speaks plain HTTP (the query service is inside the cluster or on loopback).
        validate_url("query_url", &self.query_url, &["http"])?;
        if self.static_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("static_dir", "must not be empty"));
        }
        if let Some(key) = &self.query_api_key
            && (key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError::invalid(
                "query_api_key",
                "must be non-empty printable ASCII without spaces",
            ));
        }
        duration_between(
            "session_ttl",
            self.session_ttl,
            Duration::from_secs(1),
            MAX_SESSION_TTL,
        )?;
        positive("max_sessions", self.max_sessions as u64)?;
        let cidrs = self.trusted_cidrs()?;
        let headers = self.user_headers()?;
        match self.dashboard_auth {
            DashboardAuth::SignIn => {
                if self.query_api_key.is_some() {
                    return Err(ConfigError::invalid(
                        "query_api_key",
                        "not used with dashboard_auth = sign-in (each user's own key is sent): unset it",
                    ));
                }
            }
            DashboardAuth::Proxy => {
                if cidrs.is_empty() {
                    return Err(ConfigError::invalid(
                        "proxy_trusted_cidrs",
                        "required with dashboard_auth = proxy: the authenticating proxy's address ranges",
                    ));
                }
                if headers.is_empty() {
                    return Err(ConfigError::invalid(
                        "proxy_user_headers",
                        "required with dashboard_auth = proxy",
                    ));
                }
                if self.query_api_key.is_none() {
                    return Err(ConfigError::invalid(
                        "query_api_key",
                        "required with dashboard_auth = proxy: the key proxied users read with",
                    ));
                }
            }
            DashboardAuth::Off => {}
        }
        validate_drain_timeout(self.drain_timeout)
    }
}

/// The longest `session_ttl`.
pub(super) const MAX_SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::super::load_from;
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        load_from::<DashboardConfig>(None, env(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn dashboard_config_defaults_env_and_secret() {
        let d: DashboardConfig = load_from(None, env(&[])).unwrap();
        assert_eq!(d.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(d.query_url, "http://127.0.0.1:8001");
        assert_eq!(d.static_dir, PathBuf::from("dashboard/dist"));
        assert_eq!(d.query_api_key, None);
        // Nobody reads logs without signing in unless told otherwise.
        assert_eq!(d.dashboard_auth, DashboardAuth::SignIn);
        assert_eq!(d.session_ttl, Duration::from_secs(8 * 3600));
        let d: DashboardConfig = load_from(
            None,
            env(&[
                ("LOGJET_QUERY_URL", "http://query:8001"),
                ("LOGJET_STATIC_DIR", "/srv/dist"),
                ("LOGJET_DASHBOARD_AUTH", "off"),
                ("LOGJET_QUERY_API_KEY", "s3cret-key"),
                ("LOGJET_SESSION_TTL", "15m"),
            ]),
        )
        .unwrap();
        assert_eq!(d.query_url, "http://query:8001");
        assert_eq!(d.static_dir, PathBuf::from("/srv/dist"));
        assert_eq!(d.query_api_key.as_deref(), Some("s3cret-key"));
        assert_eq!(d.session_ttl, Duration::from_secs(900));
        // The key never reaches a log line.
        assert!(!format!("{d:?}").contains("s3cret"));
        assert_eq!(d.describe()["query_api_key"], "<set>");
        let e = err(&[("LOGJET_QUERY_URL", "query:8001")]);
        assert!(e.contains("LOGJET_QUERY_URL"), "{e}");
        let e = err(&[
            ("LOGJET_DASHBOARD_AUTH", "off"),
            ("LOGJET_QUERY_API_KEY", "a b"),
        ]);
        assert!(e.contains("query_api_key"), "{e}");
    }

    #[test]
    fn auth_modes_are_validated_naming_the_key() {
        let e = err(&[("LOGJET_DASHBOARD_AUTH", "maybe")]);
        assert!(e.contains("dashboard_auth"), "{e}");
        // sign-in: a shared key would be a way around the sign-in.
        let e = err(&[("LOGJET_QUERY_API_KEY", "k")]);
        assert!(e.contains("query_api_key") && e.contains("sign-in"), "{e}");
        let e = err(&[("LOGJET_SESSION_TTL", "0s")]);
        assert!(e.contains("LOGJET_SESSION_TTL"), "{e}");
        let e = err(&[("LOGJET_SESSION_TTL", "30d")]);
        assert!(e.contains("session_ttl"), "{e}");
        // proxy: the ranges and the key are required, and must parse.
        let e = err(&[
            ("LOGJET_DASHBOARD_AUTH", "proxy"),
            ("LOGJET_QUERY_API_KEY", "k"),
        ]);
        assert!(
            e.contains("proxy_trusted_cidrs") && e.contains("required"),
            "{e}"
        );
        let e = err(&[
            ("LOGJET_DASHBOARD_AUTH", "proxy"),
            ("LOGJET_PROXY_TRUSTED_CIDRS", "10.0.0.0/8"),
        ]);
        assert!(e.contains("LOGJET_QUERY_API_KEY"), "{e}");
        let e = err(&[
            ("LOGJET_DASHBOARD_AUTH", "proxy"),
            ("LOGJET_QUERY_API_KEY", "k"),
            ("LOGJET_PROXY_TRUSTED_CIDRS", "10.0.0.0/8, ingress-nginx"),
        ]);
        assert!(
            e.contains("proxy_trusted_cidrs") && e.contains("ingress-nginx"),
            "{e}"
        );
        let e = err(&[
            ("LOGJET_DASHBOARD_AUTH", "proxy"),
            ("LOGJET_QUERY_API_KEY", "k"),
            ("LOGJET_PROXY_TRUSTED_CIDRS", "10.0.0.0/8"),
            ("LOGJET_PROXY_USER_HEADERS", "bad header"),
        ]);
        assert!(e.contains("proxy_user_headers"), "{e}");
        let d: DashboardConfig = load_from(
            None,
            env(&[
                ("LOGJET_DASHBOARD_AUTH", "proxy"),
                ("LOGJET_QUERY_API_KEY", "k"),
                (
                    "LOGJET_PROXY_TRUSTED_CIDRS",
                    "10.0.0.0/8, 127.0.0.1/32,fd00::/8",
                ),
                ("LOGJET_PROXY_USER_HEADERS", "X-Auth-Request-User"),
            ]),
        )
        .unwrap();
        assert_eq!(d.trusted_cidrs().unwrap().len(), 3);
        assert_eq!(d.user_headers().unwrap()[0].as_str(), "x-auth-request-user");
    }
}
