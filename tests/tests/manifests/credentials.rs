//! Every credential from its Secret to both ends: the API keys file, the NATS users, the Redis
//! password, and which workload may read which Secret.

use std::collections::{BTreeMap, BTreeSet};

use logjet_tests::k8s::secrets::{SecretKeyRef, secret_file, secret_refs};
use logjet_tests::k8s::{Manifests, nats_conf, repo_root};

use super::{env_of, overlays};

/// `nats://user:pass@host:port` → (user, pass, host:port).
pub(crate) fn url_credentials(url: &str) -> (String, String, String) {
    let rest = url.split_once("://").expect("a URL").1;
    let (userinfo, host) = rest
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("no credentials in {url}"));
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    (
        user.to_string(),
        pass.to_string(),
        host.trim_end_matches('/').to_string(),
    )
}

/// A password that nats.conf reads as a string (not a number, size or boolean) and that needs no
/// escaping in a URL.
fn safe_password(p: &str) -> bool {
    p.len() >= 16
        && p.starts_with(|c: char| c.is_ascii_alphabetic())
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_kind(overlay: &str) -> bool {
    overlay.ends_with("/kind")
}

fn value(m: &Manifests, r: &SecretKeyRef) -> Option<String> {
    r.value(m).unwrap_or_else(|e| panic!("{e}"))
}

/// The keys file: one read-only Secret file in ingest and in query, auth on; the dashboard has
/// no key of its own; on kind, the documented dashboard sign-in key may query and nothing else, the documented development key may do both.
#[test]
fn api_keys_are_one_read_only_secret_file_in_ingest_and_query() {
    for (overlay, m) in overlays() {
        let mut key_files = BTreeSet::new();
        for svc in ["ingest", "query"] {
            let env = env_of(&m, svc, None);
            assert_ne!(
                env.value("LOGJET_AUTH"),
                Some("off"),
                "{overlay}: {svc} runs without authentication"
            );
            let path = env
                .value("LOGJET_API_KEYS_FILE")
                .unwrap_or_else(|| panic!("{overlay}: {svc} has no LOGJET_API_KEYS_FILE"));
            let spec = m.workload(svc).unwrap().pod_spec().unwrap();
            let (mount, key) = secret_file(&spec, spec.main_container().unwrap(), path)
                .unwrap_or_else(|e| panic!("{overlay}: {svc}: {e}"));
            assert!(
                mount.read_only,
                "{overlay}: {svc}: {path} must be mounted read-only"
            );
            assert!(
                mount.sub_path.is_none(),
                "{overlay}: {svc}: a subPath mount is never updated when the Secret changes"
            );
            key_files.insert(key);
        }
        assert_eq!(
            key_files.len(),
            1,
            "{overlay}: ingest and query read different key files"
        );
        let keys_ref = key_files.pop_first().unwrap();

        // The dashboard has no key of its own: users sign in with theirs (docs/security.md).
        let dash = env_of(&m, "dashboard", None);
        assert!(
            dash.get("LOGJET_QUERY_API_KEY").is_none(),
            "{overlay}: the dashboard has a shared query key"
        );
        assert_ne!(
            dash.value("LOGJET_DASHBOARD_AUTH"),
            Some("off"),
            "{overlay}: the dashboard asks nobody who they are"
        );

        if is_kind(overlay) {
            let keys = logjet_core::auth::KeyStore::parse(&value(&m, &keys_ref).unwrap())
                .expect("the development keys file parses");
            // The documented key to sign in with on kind may query and nothing else.
            let sign_in = std::fs::read_to_string(
                repo_root().join("kustomize/overlays/kind/secrets/dashboard.env"),
            )
            .unwrap();
            let sign_in = sign_in
                .lines()
                .find_map(|l| l.strip_prefix("query-api-key="))
                .expect("dashboard.env names the sign-in key");
            let dashboard = keys
                .authenticate(sign_in.trim())
                .expect("the dashboard sign-in key is in the keys file");
            assert!(
                dashboard.query && !dashboard.ingest,
                "the dashboard sign-in key may only query"
            );
            let dev = std::fs::read_to_string(
                repo_root().join("kustomize/overlays/kind/secrets/dev-api-key"),
            )
            .unwrap();
            let dev = keys
                .authenticate(dev.trim())
                .expect("the development client key is in the keys file");
            assert!(dev.ingest && dev.query);
        }
    }
}

/// NATS: every service is a user of nats.conf, with the very Secret key the server reads.
#[test]
fn every_nats_user_shares_its_secret_key_with_the_server() {
    for (overlay, m) in overlays() {
        let nats_env = env_of(&m, "nats", Some("nats"));
        let conf = m.config_file("nats.conf").unwrap();
        assert!(conf.contains("include ./nats-auth.conf"), "{overlay}");
        let conf = m.config_file("nats-auth.conf").unwrap();
        // The services' users in the account LOGJET (KEDA reads it), the operators' in SYS:
        // every user in an account, so a client without credentials is refused.
        assert!(
            conf.contains("LOGJET {")
                && conf.contains("jetstream: enabled")
                && conf.contains("system_account: SYS")
                && !conf.contains("authorization"),
            "{overlay}: nats-auth.conf: accounts LOGJET and SYS, no users outside them"
        );
        assert!(
            !conf.contains("no_auth_user"),
            "{overlay}: no_auth_user would let unauthenticated clients in"
        );
        let users = nats_conf::users(conf).unwrap();
        let mut seen_users = BTreeSet::new();
        for svc in ["ingest", "processor", "query", "archiver"] {
            let env = env_of(&m, svc, None);
            let url = env
                .get("LOGJET_NATS_URL")
                .unwrap_or_else(|| panic!("{overlay}: {svc} has no LOGJET_NATS_URL"));
            let (user, pass, host) = url_credentials(&url.value);
            assert_eq!(host, "nats:4222", "{overlay}: {svc}");
            let var = users.get(&user).unwrap_or_else(|| {
                panic!("{overlay}: {svc} connects as {user:?}, not a user of nats.conf {users:?}")
            });
            let server = nats_env
                .get(var)
                .unwrap_or_else(|| panic!("{overlay}: nats-server has no ${var}"));
            assert_eq!(
                server.secrets.len(),
                1,
                "{overlay}: ${var} is not from a Secret"
            );
            assert_eq!(
                url.secrets, server.secrets,
                "{overlay}: {svc}'s NATS password and the server's ${var} are different Secret keys"
            );
            assert!(
                seen_users.insert(user.clone()),
                "{overlay}: two services share NATS user {user}"
            );
            if is_kind(overlay) {
                assert_eq!(pass, server.value, "{overlay}: {svc}");
                assert!(
                    safe_password(&pass),
                    "{overlay}: NATS password of {user} is not safe in nats.conf/URLs"
                );
            }
        }
    }
}

/// Redis: requirepass from a Secret, its probes authenticate, the clients' URLs carry the same key.
#[test]
fn redis_requirepass_and_the_clients_share_one_secret_key() {
    for (overlay, m) in overlays() {
        let spec = m.workload("redis").unwrap().pod_spec().unwrap();
        let rc = spec.container("redis").unwrap();
        let redis_env = env_of(&m, "redis", Some("redis"));
        let at = rc
            .args
            .iter()
            .position(|a| a == "--requirepass")
            .unwrap_or_else(|| {
                panic!("{overlay}: Redis runs without --requirepass: {:?}", rc.args)
            });
        let requirepass = redis_env.expand(&rc.args[at + 1]);
        assert_eq!(
            requirepass.secrets.len(),
            1,
            "{overlay}: requirepass is not from a Secret"
        );
        for probe in [&rc.startup_probe, &rc.readiness_probe]
            .into_iter()
            .flatten()
        {
            if let Some(exec) = &probe.exec {
                let cmd = exec.command.join(" ");
                assert!(
                    cmd.contains("REDISCLI_AUTH") || cmd.contains(" -a "),
                    "{overlay}: a Redis probe does not authenticate: {cmd}"
                );
            }
        }
        for svc in ["processor", "query"] {
            let env = env_of(&m, svc, None);
            let url = env
                .get("LOGJET_REDIS_URL")
                .unwrap_or_else(|| panic!("{overlay}: {svc} has no LOGJET_REDIS_URL"));
            let (_, pass, host) = url_credentials(&url.value);
            assert_eq!(host, "redis:6379", "{overlay}: {svc}");
            assert_eq!(
                url.secrets, requirepass.secrets,
                "{overlay}: {svc}'s Redis password is not requirepass's Secret key"
            );
            if is_kind(overlay) {
                assert_eq!(pass, requirepass.value, "{overlay}: {svc}");
                assert!(
                    safe_password(&pass),
                    "{overlay}: the Redis password needs escaping in a URL"
                );
            }
        }
    }
}

/// Which Secrets each workload may read.
fn allowed_secrets(workload: &str) -> &'static [&'static str] {
    match workload {
        "ingest" => &["logjet-api-keys", "logjet-nats-credentials"],
        "processor" => &["logjet-nats-credentials", "logjet-redis-credentials"],
        // logjet-archive-s3: the prod overlay's S3 keys (kind's archive is a volume).
        "archiver" => &["logjet-nats-credentials", "logjet-archive-s3"],
        "query" => &[
            "logjet-api-keys",
            "logjet-nats-credentials",
            "logjet-redis-credentials",
        ],
        "dashboard" => &[],
        // nats-route-tls: the prod cluster's route certificates.
        "nats" => &["logjet-nats-credentials", "nats-route-tls"],
        "redis" => &["logjet-redis-credentials"],
        other => panic!("unexpected workload {other}"),
    }
}

/// Nobody gets a Secret it has no use for; kind renders every one used, prod none and documents
/// each (docs/kubernetes.md, scripts/k8s-secrets.sh).
#[test]
fn workloads_read_only_the_secrets_they_need() {
    let doc = std::fs::read_to_string(repo_root().join("docs/kubernetes.md")).unwrap();
    let script = std::fs::read_to_string(repo_root().join("scripts/k8s-secrets.sh")).unwrap();
    for (overlay, m) in overlays() {
        if !is_kind(overlay) {
            assert_eq!(
                m.of_kind("Secret").count(),
                0,
                "{overlay}: renders a Secret; production Secrets are not checked in"
            );
        }
        for w in m.workloads() {
            for r in secret_refs(&w.pod_spec().unwrap()) {
                assert!(
                    allowed_secrets(w.name()).contains(&r.base_name()),
                    "{overlay}: {} reads {r:?}, which it has no use for",
                    w.name()
                );
                if is_kind(overlay) {
                    assert!(
                        value(&m, &r).is_some(),
                        "{overlay}: Secret {} is not rendered",
                        r.name
                    );
                } else {
                    for (what, text) in [
                        ("docs/kubernetes.md", &doc),
                        ("scripts/k8s-secrets.sh", &script),
                    ] {
                        assert!(
                            text.contains(&r.name) && text.contains(&r.key),
                            "{overlay}: Secret {}/{} is not in {what}",
                            r.name,
                            r.key
                        );
                    }
                }
            }
        }
    }
}

/// The same Secret keys in every overlay (kind's names carry a hash).
#[test]
fn every_overlay_uses_the_same_secret_keys() {
    let keys = |m: &Manifests| -> BTreeMap<String, BTreeSet<(String, String)>> {
        m.workloads()
            .map(|w| {
                let refs = secret_refs(&w.pod_spec().unwrap())
                    .into_iter()
                    // The one difference by design: only the prod overlay's archive is in S3
                    // (kind's is a volume, no credentials).
                    .filter(|r| r.base_name() != "logjet-archive-s3")
                    // Nor the route certificates: only the prod overlay runs a cluster.
                    .filter(|r| r.base_name() != "nats-route-tls")
                    .map(|r| (r.base_name().to_string(), r.key.clone()))
                    .collect();
                (w.name().to_string(), refs)
            })
            .collect()
    };
    let all = overlays();
    let first = keys(&all[0].1);
    for (overlay, m) in &all[1..] {
        assert_eq!(
            keys(m),
            first,
            "{overlay} uses other Secret keys than {}",
            all[0].0
        );
    }
}
