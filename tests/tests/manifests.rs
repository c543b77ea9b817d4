//! The Kubernetes manifests against the code, offline: `kubectl kustomize` renders every overlay
//! and these tests fail on any drift between what the manifests declare and what the services
//! do (ports, probe paths, config keys, stream/consumer names, scaling, network edges, PDBs), and
//! check KEDA's lag arithmetic against a live nats-server configured like the StatefulSet.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use logjet_core::config::{
    DashboardConfig, IngestConfig, ProcessorConfig, QueryConfig, ServiceConfig, known_env_vars,
};
use serde_yaml_ng::Value;

const NS: &str = "log-analytics";
const OVERLAYS: [&str; 2] = ["kustomize/overlays/kind", "kustomize/overlays/prod"];

fn render(overlay: &str) -> Vec<Value> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("kubectl")
        .args(["kustomize", &format!("{root}/{overlay}")])
        .output()
        .expect("kubectl runs (it is preinstalled on this kind of machine)");
    assert!(
        out.status.success(),
        "{overlay} does not render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::Deserializer::from_slice(&out.stdout)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or("")
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn find<'a>(docs: &'a [Value], k: &str, n: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == k && name(d) == n)
        .unwrap_or_else(|| panic!("{k}/{n} missing"))
}

/// A Secret key, as a workload references it (`valueFrom.secretKeyRef`, a `secret` volume).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SecretRef {
    name: String,
    key: String,
}

impl SecretRef {
    /// The name without the hash suffix a `secretGenerator` adds (`logjet-nats-credentials`).
    fn base(&self) -> (String, String) {
        let name = match self.name.rsplit_once('-') {
            Some((base, hash))
                if hash.len() == 10 && hash.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                base.to_string()
            }
            _ => self.name.clone(),
        };
        (name, self.key.clone())
    }
}

/// One environment variable of a container: its value as the container sees it (`$(VAR)`
/// expanded as the kubelet does; a Secret's value when the overlay renders that Secret, else a
/// `<secret NAME/KEY>` placeholder) and every Secret key that went into it.
#[derive(Clone, Debug, Default)]
struct EnvVar {
    value: String,
    secrets: BTreeSet<SecretRef>,
}

/// Standard base64 (what a Secret's `data` holds).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {s}"),
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|b| !b" \n\r=".contains(b)).collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | (val(*c) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// The value of a Secret key, when the overlay renders that Secret.
fn secret_value(docs: &[Value], r: &SecretRef) -> Option<String> {
    let secret = docs
        .iter()
        .find(|d| kind(d) == "Secret" && name(d) == r.name)?;
    if let Some(v) = secret["stringData"][r.key.as_str()].as_str() {
        return Some(v.to_string());
    }
    let data = secret["data"][r.key.as_str()]
        .as_str()
        .unwrap_or_else(|| panic!("Secret {} has no key {}", r.name, r.key));
    Some(String::from_utf8(base64_decode(data)).expect("UTF-8 secret"))
}

/// `$(VAR)` references expanded against the variables defined so far, as the kubelet does
/// (`$$` escapes, an unknown reference stays as it is).
fn expand(value: &str, env: &BTreeMap<String, EnvVar>) -> EnvVar {
    let mut out = EnvVar::default();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.value.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.value.push('$');
            rest = after;
        } else if let Some((var, after)) = tail
            .strip_prefix("$(")
            .and_then(|t| t.split_once(')'))
            .filter(|(var, _)| env.contains_key(*var))
        {
            let v = &env[var];
            out.value.push_str(&v.value);
            out.secrets.extend(v.secrets.iter().cloned());
            rest = after;
        } else {
            out.value.push('$');
            rest = &tail[1..];
        }
    }
    out.value.push_str(rest);
    out
}

/// Every environment variable a container gets: envFrom ConfigMaps, then env (values,
/// `$(VAR)` references, Secret keys).
fn env_of(docs: &[Value], c: &Value) -> BTreeMap<String, EnvVar> {
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_sequence().into_iter().flatten() {
        assert!(
            from["secretRef"].is_null(),
            "envFrom secretRef: name the variables (valueFrom.secretKeyRef) so the drift tests see them"
        );
        if let Some(cm) = from["configMapRef"]["name"].as_str() {
            let cm = find(docs, "ConfigMap", cm);
            for (k, v) in cm["data"].as_mapping().into_iter().flatten() {
                env.insert(
                    k.as_str().unwrap().to_string(),
                    EnvVar {
                        value: v.as_str().unwrap_or("").to_string(),
                        secrets: BTreeSet::new(),
                    },
                );
            }
        }
    }
    for e in c["env"].as_sequence().into_iter().flatten() {
        let var = if let Some(v) = e["value"].as_str() {
            expand(v, &env)
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_mapping() {
            let r = SecretRef {
                name: r["name"].as_str().unwrap().to_string(),
                key: r["key"].as_str().unwrap().to_string(),
            };
            EnvVar {
                value: secret_value(docs, &r)
                    .unwrap_or_else(|| format!("<secret {}/{}>", r.name, r.key)),
                secrets: BTreeSet::from([r]),
            }
        } else if let Some(p) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            EnvVar {
                value: format!("<{p}>"),
                secrets: BTreeSet::new(),
            }
        } else {
            panic!("env {e:?}: only value, secretKeyRef and fieldRef are understood here");
        };
        env.insert(e["name"].as_str().unwrap().to_string(), var);
    }
    env
}

/// Every environment variable a workload's first container gets, as values.
fn container_env(docs: &[Value], workload: &Value) -> BTreeMap<String, String> {
    env_of(docs, &workload["spec"]["template"]["spec"]["containers"][0])
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .collect()
}

fn container_ports(workload: &Value) -> BTreeMap<String, u16> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_sequence().into_iter().flatten())
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["containerPort"].as_u64().unwrap() as u16,
            )
        })
        .collect()
}

/// Defaults (port) and known variables of each of our services' config.
fn service_contract(service: &str) -> Option<(u16, Vec<String>)> {
    fn of<T: ServiceConfig>(port: u16) -> (u16, Vec<String>) {
        (port, known_env_vars::<T>())
    }
    Some(match service {
        "ingest" => of::<IngestConfig>(IngestConfig::default().listen.port()),
        "processor" => of::<ProcessorConfig>(ProcessorConfig::default().listen.port()),
        "query" => of::<QueryConfig>(QueryConfig::default().listen.port()),
        "dashboard" => of::<DashboardConfig>(DashboardConfig::default().listen.port()),
        _ => return None,
    })
}

#[test]
fn ports_probes_and_env_match_the_code() {
    for overlay in OVERLAYS {
        let docs = render(overlay);
        for d in of_kind(&docs, "Deployment") {
            let svc = name(d);
            let env = container_env(&docs, d);
            let ports = container_ports(d);
            let listen = env
                .get("LOGJET_LISTEN")
                .unwrap_or_else(|| panic!("{overlay}: {svc} has no LOGJET_LISTEN"));
            let listen_port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
            assert!(
                ports.values().any(|p| *p == listen_port),
                "{overlay}: {svc} listens on {listen_port} but declares {ports:?}"
            );
            if let Some((default_port, known)) = service_contract(svc) {
                assert_eq!(
                    listen_port, default_port,
                    "{overlay}: {svc}'s port differs from the code's default"
                );
                for var in env.keys().filter(|k| k.starts_with("LOGJET_")) {
                    assert!(
                        known.contains(var),
                        "{overlay}: {svc} sets {var}, which its config does not know"
                    );
                }
            }
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                let get = s(c, &[probe, "httpGet"])
                    .unwrap_or_else(|| panic!("{overlay}: {svc} has no {probe}"));
                let path = get["path"].as_str().unwrap();
                let want = if probe == "readinessProbe" {
                    "/readyz"
                } else {
                    "/healthz"
                };
                assert_eq!(path, want, "{overlay}: {svc} {probe}");
                let port = match &get["port"] {
                    Value::Number(n) => n.as_u64().unwrap() as u16,
                    Value::String(named) => ports[named],
                    other => panic!("{svc}: probe port {other:?}"),
                };
                assert_eq!(port, listen_port, "{overlay}: {svc} {probe} port");
            }
            // The Service in front of it targets the same port.
            let service = find(&docs, "Service", svc);
            for p in service["spec"]["ports"].as_sequence().unwrap() {
                let target = match &p["targetPort"] {
                    Value::Number(n) => n.as_u64().unwrap() as u16,
                    Value::String(named) => ports[named],
                    _ => p["port"].as_u64().unwrap() as u16,
                };
                assert_eq!(target, listen_port, "{overlay}: Service {svc}");
            }
        }
    }
}

/// What each service would load from its rendered environment (kind, where the development
/// Secrets are rendered): the config is valid, authentication is on and the keys file is named.
#[test]
fn the_rendered_environment_loads_in_every_service() {
    let docs = render("kustomize/overlays/kind");
    let env = |svc: &str| -> Vec<(String, String)> {
        container_env(&docs, find(&docs, "Deployment", svc))
            .into_iter()
            .filter(|(k, _)| k.starts_with("LOGJET_"))
            .collect()
    };
    let load = |svc: &str| -> Result<(), String> {
        let e = env(svc);
        let r = match svc {
            "ingest" => logjet_core::config::load_from::<IngestConfig>(None, e).map(|c| {
                assert_eq!(c.api.auth, logjet_core::config::AuthSetting::On, "{svc}");
                assert!(c.api.api_keys_file.is_some(), "{svc}");
            }),
            "processor" => logjet_core::config::load_from::<ProcessorConfig>(None, e).map(|_| ()),
            "query" => logjet_core::config::load_from::<QueryConfig>(None, e).map(|c| {
                assert_eq!(c.api.auth, logjet_core::config::AuthSetting::On, "{svc}");
                assert!(c.api.api_keys_file.is_some(), "{svc}");
            }),
            "dashboard" => logjet_core::config::load_from::<DashboardConfig>(None, e).map(|c| {
                assert!(c.query_api_key.is_some(), "the dashboard has a query key");
            }),
            other => panic!("unexpected Deployment {other}"),
        };
        r.map_err(|e| e.to_string())
    };
    for d in of_kind(&docs, "Deployment") {
        let svc = name(d);
        load(svc).unwrap_or_else(|e| panic!("{svc}: the rendered environment does not load: {e}"));
    }
}

// --- secrets ---------------------------------------------------------------------------------

/// `nats://user:pass@host:port` → (user, pass, host:port).
fn url_credentials(url: &str) -> (String, String, String) {
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

/// The users of nats.conf's `authorization { users = [...] }`: user → variable of its password.
fn nats_users(conf: &str) -> BTreeMap<String, String> {
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
            let var = pass.strip_prefix('$').unwrap_or_else(|| {
                panic!("nats.conf: {user}'s password is not a variable: {line}")
            });
            users.insert(user.to_string(), var.to_string());
        }
    }
    users
}

fn container<'a>(workload: &'a Value, container: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == container)
        .unwrap_or_else(|| panic!("{}: no container {container}", name(workload)))
}

/// The Secret key a file comes from: the volume mounted (read-only) above `path`.
fn secret_file(workload: &Value, c: &Value, path: &str) -> SecretRef {
    let mount = c["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| path.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
        .unwrap_or_else(|| panic!("{}: nothing mounted above {path}", name(workload)));
    assert_eq!(
        mount["readOnly"].as_bool(),
        Some(true),
        "{}: {path} must be mounted read-only",
        name(workload)
    );
    assert!(
        mount["subPath"].is_null(),
        "{}: a subPath mount is never updated when the Secret changes",
        name(workload)
    );
    let file = &path[mount["mountPath"].as_str().unwrap().len() + 1..];
    let volume = workload["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let secret = &volume["secret"];
    let secret_name = secret["secretName"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: {path} is not from a Secret", name(workload)));
    let key = match secret["items"].as_sequence() {
        Some(items) => items
            .iter()
            .find(|i| i["path"] == file)
            .and_then(|i| i["key"].as_str())
            .unwrap_or_else(|| panic!("{}: no item for {file}", name(workload))),
        None => file,
    };
    SecretRef {
        name: secret_name.to_string(),
        key: key.to_string(),
    }
}

/// Every Secret key a workload uses (environment and volumes).
fn secret_refs(workload: &Value) -> BTreeSet<SecretRef> {
    let spec = &workload["spec"]["template"]["spec"];
    let mut refs = BTreeSet::new();
    for c in spec["containers"].as_sequence().into_iter().flatten() {
        for e in c["env"].as_sequence().into_iter().flatten() {
            if let Some(r) = e["valueFrom"]["secretKeyRef"].as_mapping() {
                refs.insert(SecretRef {
                    name: r["name"].as_str().unwrap().to_string(),
                    key: r["key"].as_str().unwrap().to_string(),
                });
            }
        }
    }
    for v in spec["volumes"].as_sequence().into_iter().flatten() {
        if let Some(n) = v["secret"]["secretName"].as_str() {
            for i in v["secret"]["items"].as_sequence().into_iter().flatten() {
                refs.insert(SecretRef {
                    name: n.to_string(),
                    key: i["key"].as_str().unwrap().to_string(),
                });
            }
        }
    }
    refs
}

/// A password that nats.conf reads as a string (not a number, size or boolean) and that needs no
/// escaping in a URL.
fn safe_password(p: &str) -> bool {
    p.len() >= 16
        && p.starts_with(|c: char| c.is_ascii_alphabetic())
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[test]
fn credentials_come_from_secrets_and_match_on_both_ends() {
    let docs_by_overlay: Vec<(&str, Vec<Value>)> =
        OVERLAYS.iter().map(|o| (*o, render(o))).collect();
    for (overlay, docs) in &docs_by_overlay {
        let docs = docs.as_slice();
        let kind_overlay = overlay.ends_with("/kind");
        let deployment = |n: &str| find(docs, "Deployment", n);

        // API keys: a read-only Secret file in ingest and query, auth on.
        let mut key_files = BTreeSet::new();
        for svc in ["ingest", "query"] {
            let d = deployment(svc);
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            let env = env_of(docs, c);
            assert_ne!(
                env.get("LOGJET_AUTH").map(|v| v.value.as_str()),
                Some("off"),
                "{overlay}: {svc} runs without authentication"
            );
            let path = &env
                .get("LOGJET_API_KEYS_FILE")
                .unwrap_or_else(|| panic!("{overlay}: {svc} has no LOGJET_API_KEYS_FILE"))
                .value;
            key_files.insert(secret_file(d, c, path));
        }
        assert_eq!(
            key_files.len(),
            1,
            "{overlay}: ingest and query read different key files"
        );
        let keys_ref = key_files.pop_first().unwrap();

        // The dashboard's query key comes from a Secret, as an environment variable.
        let dash = env_of(
            docs,
            &deployment("dashboard")["spec"]["template"]["spec"]["containers"][0],
        );
        let dash_key = dash
            .get("LOGJET_QUERY_API_KEY")
            .unwrap_or_else(|| panic!("{overlay}: the dashboard has no LOGJET_QUERY_API_KEY"));
        assert_eq!(
            dash_key.secrets.len(),
            1,
            "{overlay}: the dashboard's key is not from a Secret"
        );

        // NATS: every service is a user of nats.conf, with the very Secret key the server reads.
        let nats = find(docs, "StatefulSet", "nats");
        let nats_env = env_of(docs, container(nats, "nats"));
        let conf = docs
            .iter()
            .find(|d| kind(d) == "ConfigMap" && d["data"]["nats.conf"].is_string())
            .unwrap()["data"]["nats.conf"]
            .as_str()
            .unwrap();
        assert!(
            !conf.lines().any(|l| l.trim_start().starts_with("accounts")),
            "{overlay}: nats.conf defines accounts; KEDA reads the global account $G"
        );
        assert!(
            !conf.contains("no_auth_user"),
            "{overlay}: no_auth_user would let unauthenticated clients in"
        );
        let users = nats_users(conf);
        let mut seen_users = BTreeSet::new();
        for svc in ["ingest", "processor", "query"] {
            let env = env_of(
                docs,
                &deployment(svc)["spec"]["template"]["spec"]["containers"][0],
            );
            let url = &env[&"LOGJET_NATS_URL".to_string()];
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
            if kind_overlay {
                assert_eq!(pass, server.value, "{overlay}: {svc}");
                assert!(
                    safe_password(&pass),
                    "{overlay}: NATS password of {user} is not safe in nats.conf/URLs"
                );
            }
        }

        // Redis: requirepass from a Secret, and the clients' URLs carry the same key.
        let redis = find(docs, "StatefulSet", "redis");
        let rc = container(redis, "redis");
        let redis_env = env_of(docs, rc);
        let args: Vec<&str> = rc["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let at = args
            .iter()
            .position(|a| *a == "--requirepass")
            .unwrap_or_else(|| panic!("{overlay}: Redis runs without --requirepass: {args:?}"));
        let requirepass = expand(args[at + 1], &redis_env);
        assert_eq!(
            requirepass.secrets.len(),
            1,
            "{overlay}: requirepass is not from a Secret"
        );
        for probe in ["startupProbe", "readinessProbe"] {
            let cmd = rc[probe]["exec"]["command"].as_sequence().map(|c| {
                c.iter()
                    .map(|a| a.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            if let Some(cmd) = cmd {
                assert!(
                    cmd.contains("REDISCLI_AUTH") || cmd.contains(" -a "),
                    "{overlay}: the Redis {probe} does not authenticate: {cmd}"
                );
            }
        }
        for svc in ["processor", "query"] {
            let env = env_of(
                docs,
                &deployment(svc)["spec"]["template"]["spec"]["containers"][0],
            );
            let url = &env[&"LOGJET_REDIS_URL".to_string()];
            let (_, pass, host) = url_credentials(&url.value);
            assert_eq!(host, "redis:6379", "{overlay}: {svc}");
            assert_eq!(
                url.secrets, requirepass.secrets,
                "{overlay}: {svc}'s Redis password is not requirepass's Secret key"
            );
            if kind_overlay {
                assert_eq!(pass, requirepass.value, "{overlay}: {svc}");
                assert!(
                    safe_password(&pass),
                    "{overlay}: the Redis password needs escaping in a URL"
                );
            }
        }

        // Nobody else gets a secret, and every workload's Secret keys exist where rendered.
        for w in docs
            .iter()
            .filter(|d| ["Deployment", "StatefulSet"].contains(&kind(d)))
        {
            let refs = secret_refs(w);
            let allowed: BTreeSet<String> = match name(w) {
                "ingest" => ["logjet-api-keys", "logjet-nats-credentials"]
                    .map(String::from)
                    .into(),
                "processor" => ["logjet-nats-credentials", "logjet-redis-credentials"]
                    .map(String::from)
                    .into(),
                "query" => [
                    "logjet-api-keys",
                    "logjet-nats-credentials",
                    "logjet-redis-credentials",
                ]
                .map(String::from)
                .into(),
                "dashboard" => ["logjet-dashboard-key"].map(String::from).into(),
                "nats" => ["logjet-nats-credentials"].map(String::from).into(),
                "redis" => ["logjet-redis-credentials"].map(String::from).into(),
                other => panic!("unexpected workload {other}"),
            };
            for r in &refs {
                assert!(
                    allowed.contains(&r.base().0),
                    "{overlay}: {} reads {r:?}, which it has no use for",
                    name(w)
                );
                if kind_overlay {
                    assert!(
                        secret_value(docs, r).is_some(),
                        "{overlay}: Secret {} is not rendered",
                        r.name
                    );
                }
            }
        }

        if kind_overlay {
            // The development keys: the dashboard's may query and nothing else; the documented
            // development client key may do both.
            let keys = logjet_core::auth::KeyStore::parse(&secret_value(docs, &keys_ref).unwrap())
                .expect("the development keys file parses");
            let dashboard = keys
                .authenticate(&dash_key.value)
                .expect("the dashboard's key is in the keys file");
            assert!(
                dashboard.query && !dashboard.ingest,
                "the dashboard's key may only query"
            );
            let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
            let dev = std::fs::read_to_string(format!(
                "{root}/kustomize/overlays/kind/secrets/dev-api-key"
            ))
            .unwrap();
            let dev = keys
                .authenticate(dev.trim())
                .expect("the development client key is in the keys file");
            assert!(dev.ingest && dev.query);
        } else {
            // Production Secrets are the operator's: none is rendered, each one used is documented.
            assert!(
                of_kind(docs, "Secret").is_empty(),
                "{overlay}: renders a Secret; production Secrets are not checked in"
            );
            let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
            let doc = std::fs::read_to_string(format!("{root}/docs/kubernetes.md")).unwrap();
            let script = std::fs::read_to_string(format!("{root}/scripts/k8s-secrets.sh")).unwrap();
            for w in docs
                .iter()
                .filter(|d| ["Deployment", "StatefulSet"].contains(&kind(d)))
            {
                for r in secret_refs(w) {
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
    // The same Secret keys in every overlay (kind's carry a name hash).
    let refs = |docs: &[Value]| -> BTreeSet<(String, String)> {
        docs.iter()
            .filter(|d| ["Deployment", "StatefulSet"].contains(&kind(d)))
            .flat_map(secret_refs)
            .map(|r| r.base())
            .collect()
    };
    let first = refs(&docs_by_overlay[0].1);
    for (overlay, docs) in &docs_by_overlay[1..] {
        assert_eq!(
            refs(docs),
            first,
            "{overlay} uses other Secret keys than {}",
            docs_by_overlay[0].0
        );
    }
}

/// The probe paths the manifests declare are routes the services answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_paths_are_real_routes() {
    let p = logjet_tests::platform::Platform::start(1).await;
    for base in [p.ingest_url(), p.query_url(), p.processors[0].url()] {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let r = p.http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{base}{path}");
        }
    }
}

#[test]
fn scaling_is_keda_for_the_processor_and_hpa_for_the_rest() {
    for overlay in OVERLAYS {
        let docs = render(overlay);
        let sos = of_kind(&docs, "ScaledObject");
        assert_eq!(sos.len(), 1, "{overlay}: exactly one ScaledObject");
        let so = sos[0];
        assert_eq!(so["spec"]["scaleTargetRef"]["name"], "processor");
        let triggers = so["spec"]["triggers"].as_sequence().unwrap();
        let types: BTreeSet<&str> = triggers
            .iter()
            .map(|t| t["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            BTreeSet::from(["nats-jetstream", "cpu"]),
            "{overlay}"
        );
        let nats = triggers
            .iter()
            .find(|t| t["type"] == "nats-jetstream")
            .unwrap();
        let m = &nats["metadata"];
        let pcfg = ProcessorConfig::default();
        let processor = find(&docs, "Deployment", "processor");
        let env = container_env(&docs, processor);
        let stream = env
            .get("LOGJET_STREAM")
            .cloned()
            .unwrap_or(pcfg.stream.stream.clone());
        let consumer = env
            .get("LOGJET_CONSUMER")
            .cloned()
            .unwrap_or(pcfg.consumer.clone());
        assert_eq!(
            m["stream"].as_str(),
            Some(stream.as_str()),
            "{overlay}: stream"
        );
        assert_eq!(
            m["consumer"].as_str(),
            Some(consumer.as_str()),
            "{overlay}: consumer"
        );
        assert_eq!(m["account"].as_str(), Some("$G"), "{overlay}: account");
        assert!(
            m["natsServerMonitoringEndpoint"]
                .as_str()
                .unwrap()
                .ends_with(":8222")
        );
        let lag: u64 = m["lagThreshold"].as_str().unwrap().parse().unwrap();
        let window: u64 = env
            .get("LOGJET_FETCH_BATCH")
            .map_or(pcfg.fetch_batch as u64, |v| v.parse().unwrap());
        assert!(
            lag > window,
            "{overlay}: lagThreshold {lag} must exceed one replica's in-flight window {window}"
        );
        assert!(
            m["activationLagThreshold"].as_str().is_some(),
            "{overlay}: activation threshold"
        );

        for hpa in of_kind(&docs, "HorizontalPodAutoscaler") {
            let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
            assert_ne!(
                target, "processor",
                "{overlay}: an HPA targets the processor beside KEDA"
            );
            assert!(
                ["ingest", "query"].contains(&target),
                "{overlay}: unexpected HPA on {target}"
            );
            assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
            assert!(
                s(
                    hpa,
                    &[
                        "spec",
                        "behavior",
                        "scaleDown",
                        "stabilizationWindowSeconds"
                    ]
                )
                .is_some()
            );
        }
        let hpa_targets: BTreeSet<&str> = of_kind(&docs, "HorizontalPodAutoscaler")
            .iter()
            .map(|h| h["spec"]["scaleTargetRef"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            hpa_targets,
            BTreeSet::from(["ingest", "query"]),
            "{overlay}"
        );
    }
}

/// Fewest replicas a workload can run with.
fn min_replicas(docs: &[Value], workload: &str) -> u64 {
    if let Some(h) = of_kind(docs, "HorizontalPodAutoscaler")
        .into_iter()
        .find(|h| h["spec"]["scaleTargetRef"]["name"] == workload)
    {
        return h["spec"]["minReplicas"].as_u64().unwrap_or(1);
    }
    if let Some(so) = of_kind(docs, "ScaledObject")
        .into_iter()
        .find(|so| so["spec"]["scaleTargetRef"]["name"] == workload)
    {
        return so["spec"]["minReplicaCount"].as_u64().unwrap_or(0);
    }
    docs.iter()
        .find(|d| ["Deployment", "StatefulSet"].contains(&kind(d)) && name(d) == workload)
        .map(|d| d["spec"]["replicas"].as_u64().unwrap_or(1))
        .unwrap_or_else(|| panic!("no workload {workload}"))
}

#[test]
fn pdbs_never_block_every_eviction() {
    for overlay in OVERLAYS {
        let docs = render(overlay);
        let workloads: Vec<&str> = docs
            .iter()
            .filter(|d| ["Deployment", "StatefulSet"].contains(&kind(d)))
            .map(name)
            .collect();
        let pdbs = of_kind(&docs, "PodDisruptionBudget");
        for w in &workloads {
            let pdb = pdbs
                .iter()
                .find(|p| p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == *w);
            let Some(pdb) = pdb else {
                assert_eq!(*w, "redis", "{overlay}: {w} has no PDB");
                continue;
            };
            let min = min_replicas(&docs, w);
            if let Some(ma) = pdb["spec"]["minAvailable"].as_u64() {
                assert!(
                    ma < min.max(1),
                    "{overlay}: PDB {w} minAvailable {ma} blocks evictions at {min} replicas"
                );
            }
            match &pdb["spec"]["maxUnavailable"] {
                Value::Number(n) => assert!(n.as_u64().unwrap() >= 1, "{overlay}: {w}"),
                Value::String(p) => assert!(
                    p.trim_end_matches('%').parse::<u64>().unwrap() > 0,
                    "{overlay}: {w}"
                ),
                Value::Null => assert!(pdb["spec"]["minAvailable"].is_number(), "{overlay}: {w}"),
                other => panic!("{other:?}"),
            }
        }
    }
}

// --- network policies ----------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    /// A pod of ours, by its app.kubernetes.io/name.
    Pod(String),
    /// Something in another namespace (by name), or outside the cluster ("").
    Outside(String),
}

fn labels_match(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(m) = selector["matchLabels"].as_mapping() else {
        return selector.as_mapping().is_none_or(|m| m.is_empty())
            || selector["matchExpressions"].is_null();
    };
    m.iter()
        .all(|(k, v)| labels.get(k.as_str().unwrap()).map(String::as_str) == v.as_str())
}

fn pod_labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_string(), app.to_string())])
}

/// Whether a NetworkPolicy peer (`from`/`to` entry) matches.
fn peer_matches(entry: &Value, peer: &Peer) -> bool {
    let ns_sel = &entry["namespaceSelector"];
    let pod_sel = &entry["podSelector"];
    match peer {
        Peer::Pod(app) => {
            if !ns_sel.is_null() {
                // Our own namespace, selected by its name label.
                let ns =
                    BTreeMap::from([("kubernetes.io/metadata.name".to_string(), NS.to_string())]);
                return labels_match(ns_sel, &ns)
                    && (pod_sel.is_null() || labels_match(pod_sel, &pod_labels(app)));
            }
            !pod_sel.is_null() && labels_match(pod_sel, &pod_labels(app))
        }
        Peer::Outside(ns) => {
            if ns.is_empty() {
                return !entry["ipBlock"].is_null();
            }
            let l = BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.clone())]);
            !ns_sel.is_null() && labels_match(ns_sel, &l)
        }
    }
}

fn rule_allows(rule: &Value, peer_key: &str, peer: &Peer, port: u16) -> bool {
    let ports_ok = rule["ports"].as_sequence().is_none_or(|ps| {
        ps.iter()
            .any(|p| p["port"].as_u64().is_none_or(|n| n == u64::from(port)))
    });
    let peers_ok = rule[peer_key]
        .as_sequence()
        .is_none_or(|ps| ps.iter().any(|e| peer_matches(e, peer)));
    ports_ok && peers_ok
}

/// Whether traffic from `src` to `dst` on `port` is allowed by every policy that applies.
fn allowed(policies: &[&Value], src: &Peer, dst: &Peer, port: u16) -> bool {
    let applies = |p: &Value, who: &Peer, ty: &str| -> bool {
        let Peer::Pod(app) = who else { return false };
        labels_match(&p["spec"]["podSelector"], &pod_labels(app))
            && p["spec"]["policyTypes"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|t| t == ty)
    };
    let egress = {
        let ps: Vec<&&Value> = policies
            .iter()
            .filter(|p| applies(p, src, "Egress"))
            .collect();
        ps.is_empty() && matches!(src, Peer::Outside(_))
            || ps.iter().any(|p| {
                p["spec"]["egress"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|r| rule_allows(r, "to", dst, port))
            })
    };
    let ingress = {
        let ps: Vec<&&Value> = policies
            .iter()
            .filter(|p| applies(p, dst, "Ingress"))
            .collect();
        ps.is_empty() && matches!(dst, Peer::Outside(_))
            || ps.iter().any(|p| {
                p["spec"]["ingress"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|r| rule_allows(r, "from", src, port))
            })
    };
    egress && ingress
}

#[test]
fn network_policies_allow_exactly_the_data_flow() {
    for overlay in OVERLAYS {
        let docs = render(overlay);
        let policies = of_kind(&docs, "NetworkPolicy");
        let workloads: Vec<(&str, Vec<u16>)> = docs
            .iter()
            .filter(|d| ["Deployment", "StatefulSet"].contains(&kind(d)))
            .map(|d| (name(d), container_ports(d).into_values().collect()))
            .collect();
        // Default deny for every pod, both directions.
        for (w, _) in &workloads {
            let denied = policies.iter().any(|p| {
                labels_match(&p["spec"]["podSelector"], &pod_labels(w))
                    && p["spec"]["podSelector"]
                        .as_mapping()
                        .is_none_or(|m| m.is_empty() || m.get("matchLabels").is_none())
                    && p["spec"]["ingress"].is_null()
                    && p["spec"]["egress"].is_null()
                    && p["spec"]["policyTypes"].as_sequence().unwrap().len() == 2
            });
            assert!(denied, "{overlay}: {w} is not under a default-deny policy");
        }
        let sources: Vec<Peer> = workloads
            .iter()
            .map(|(w, _)| Peer::Pod(w.to_string()))
            .chain(["", "keda", "monitoring", "some-app"].map(|n| Peer::Outside(n.to_string())))
            .collect();
        let mut targets: Vec<(Peer, u16)> = workloads
            .iter()
            .flat_map(|(w, ports)| ports.iter().map(move |p| (Peer::Pod(w.to_string()), *p)))
            .collect();
        targets.push((Peer::Outside("kube-system".into()), 53));
        targets.push((Peer::Outside("".into()), 443));

        let pod = |s: &str| Peer::Pod(s.to_string());
        let outside = |s: &str| Peer::Outside(s.to_string());
        let mut expected: BTreeSet<(Peer, Peer, u16)> = BTreeSet::new();
        for src in &sources {
            if let Peer::Outside(_) = src {
                // Clients, from anywhere outside the namespace.
                expected.insert((src.clone(), pod("ingest"), 8000));
                expected.insert((src.clone(), pod("dashboard"), 3000));
            } else {
                // DNS for every pod.
                expected.insert((src.clone(), outside("kube-system"), 53));
            }
        }
        expected.insert((pod("dashboard"), pod("query"), 8001));
        for s in ["ingest", "processor", "query"] {
            expected.insert((pod(s), pod("nats"), 4222));
        }
        for s in ["processor", "query"] {
            expected.insert((pod(s), pod("redis"), 6379));
        }
        expected.insert((outside("keda"), pod("nats"), 8222));
        // NATS cluster routes (the prod overlay runs three servers).
        expected.insert((pod("nats"), pod("nats"), 6222));
        for (svc, port) in [
            ("ingest", 8000),
            ("query", 8001),
            ("processor", 9100),
            ("dashboard", 3000),
            ("nats", 8222),
            // The prometheus-nats-exporter sidecar.
            ("nats", 7777),
        ] {
            expected.insert((outside("monitoring"), pod(svc), port));
        }

        let mut actual = BTreeSet::new();
        for src in &sources {
            for (dst, port) in &targets {
                // Traffic that never touches the namespace is not ours to police.
                let ours = matches!(src, Peer::Pod(_)) || matches!(dst, Peer::Pod(_));
                if ours && allowed(&policies, src, dst, *port) {
                    actual.insert((src.clone(), dst.clone(), *port));
                }
            }
        }
        let unexpected: Vec<_> = actual.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&actual).collect();
        assert!(
            unexpected.is_empty() && missing.is_empty(),
            "{overlay}:\nallowed but not a data-flow edge: {unexpected:#?}\nmissing edges: {missing:#?}"
        );
    }
}

// --- KEDA's arithmetic against a live nats-server ------------------------------------------

/// What KEDA's nats-jetstream scaler reads: `/jsz?acc=<account>&consumers=true&config=true`, the
/// account, the stream, the consumer, and `num_pending + num_ack_pending` (the stream's last
/// sequence when the consumer is missing).
async fn keda_lag(monitor: &str, account: &str, stream: &str, consumer: &str) -> u64 {
    let url = format!("{monitor}/jsz?acc={account}&consumers=true&config=true");
    let v: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    for acc in v["account_details"].as_array().into_iter().flatten() {
        if acc["name"] != account {
            continue;
        }
        for st in acc["stream_detail"].as_array().into_iter().flatten() {
            if st["name"] != stream {
                continue;
            }
            for c in st["consumer_detail"].as_array().into_iter().flatten() {
                if c["name"] == consumer {
                    return c["num_pending"].as_u64().unwrap()
                        + c["num_ack_pending"].as_u64().unwrap();
                }
            }
            return st["state"]["last_seq"].as_u64().unwrap();
        }
    }
    panic!("stream {stream} not in {url}: {v}");
}

/// The replicas the HPA that KEDA creates would want for this lag (AverageValue target).
fn keda_replicas(lag: u64, threshold: u64, activation: u64, min: u64, max: u64) -> u64 {
    let active = lag > activation;
    let wanted = if active { lag.div_ceil(threshold) } else { 0 };
    wanted.clamp(min, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_would_scale_the_processor_by_lag_as_configured() {
    let docs = render("kustomize/overlays/kind");
    let so = find(&docs, "ScaledObject", "processor");
    let m = &so["spec"]["triggers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "nats-jetstream")
        .unwrap()["metadata"];
    let threshold: u64 = m["lagThreshold"].as_str().unwrap().parse().unwrap();
    let activation: u64 = m["activationLagThreshold"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let min = so["spec"]["minReplicaCount"].as_u64().unwrap();
    let max = so["spec"]["maxReplicaCount"].as_u64().unwrap();

    // nats-server with the StatefulSet's own config file, paths and ports made local.
    let cm = docs
        .iter()
        .find(|d| kind(d) == "ConfigMap" && d["data"]["nats.conf"].is_string())
        .expect("the NATS ConfigMap");
    let conf = cm["data"]["nats.conf"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (port, mport) = (
        logjet_tests::servers::free_port(),
        logjet_tests::servers::free_port(),
    );
    let local: String = conf
        .lines()
        .map(|l| match l.trim_start().split(':').next().unwrap_or("") {
            "listen" => format!("listen: 127.0.0.1:{port}"),
            "http_port" => format!("http_port: {mport}"),
            "pid_file" => format!("pid_file: {}/nats.pid", dir.path().display()),
            "store_dir" => format!("store_dir: {}", dir.path().display()),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let conf_path = dir.path().join("nats.conf");
    std::fs::write(&conf_path, local).unwrap();
    // The StatefulSet's environment: the users' passwords from the development Secrets.
    let nats = find(&docs, "StatefulSet", "nats");
    let mut server = tokio::process::Command::new(logjet_tests::servers::nats_server_bin());
    server
        .arg("--config")
        .arg(&conf_path)
        .env("POD_NAME", "nats-0");
    for (k, v) in env_of(&docs, container(nats, "nats")) {
        if k.starts_with("NATS_") {
            server.env(k, v.value);
        }
    }
    let mut child = server.kill_on_drop(true).spawn().unwrap();
    let monitor = format!("http://127.0.0.1:{mport}");
    for _ in 0..200 {
        if reqwest::get(format!("{monitor}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let varz: serde_json::Value = reqwest::get(format!("{monitor}/varz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(varz["server_name"], "nats-0", "server_name is the pod name");

    // The stream and the consumer exactly as the processor creates them, with the processor's
    // configuration from the manifests.
    let processor = find(&docs, "Deployment", "processor");
    // Its LOGJET_NATS_URL (user processor, password from the Secret) with the host made local.
    let env: Vec<(String, String)> = container_env(&docs, processor)
        .into_iter()
        .map(|(k, v)| {
            let v = v.replace("@nats:4222", &format!("@127.0.0.1:{port}"));
            (k, v)
        })
        .collect();
    let pcfg: ProcessorConfig =
        logjet_core::config::load_from(None, env).expect("the manifest's config loads");
    assert!(
        pcfg.nats_url.starts_with("nats://processor:"),
        "{}",
        logjet_core::config::redact_url(&pcfg.nats_url)
    );
    // The user and password of the URL, given to the client explicitly (async-nats 0.51 does not
    // read credentials embedded in a URL).
    let (user, pass, _) = url_credentials(&pcfg.nats_url);
    let plain = format!("nats://127.0.0.1:{port}");
    // Without credentials, or with a wrong password, the server refuses.
    assert!(
        async_nats::connect(&plain).await.is_err(),
        "NATS accepted a client without credentials"
    );
    assert!(
        async_nats::ConnectOptions::with_user_and_password(user.clone(), "wrong-password".into())
            .connect(&plain)
            .await
            .is_err(),
        "NATS accepted a wrong password"
    );
    let client = async_nats::ConnectOptions::with_user_and_password(user, pass)
        .connect(&plain)
        .await
        .expect("the processor's NATS user and password from the manifests");
    let js = logjet_core::jetstream::context(client.clone(), Duration::from_secs(5));
    logjet_core::jetstream::ensure_stream(
        &js,
        logjet_core::jetstream::logs_stream_config(&pcfg.stream),
    )
    .await
    .unwrap();
    let mut consumer = logjet_core::jetstream::ensure_processor_consumer(&js, &pcfg)
        .await
        .unwrap();

    let mut published = 0u64;
    for (target_lag, want) in [(5u64, min), (3_500, 4), (25_000, max)] {
        while published < target_lag {
            js.publish("logs.keda", "unprocessed".into())
                .await
                .unwrap()
                .await
                .unwrap();
            published += 1;
        }
        let lag = keda_lag(
            &monitor,
            m["account"].as_str().unwrap(),
            m["stream"].as_str().unwrap(),
            m["consumer"].as_str().unwrap(),
        )
        .await;
        let info = consumer.info().await.unwrap();
        assert_eq!(
            lag,
            info.num_pending + info.num_ack_pending as u64,
            "KEDA and the consumer agree"
        );
        assert_eq!(lag, target_lag);
        assert_eq!(
            keda_replicas(lag, threshold, activation, min, max),
            want,
            "lag {lag}"
        );
    }
    // In-flight messages count too: a replica holding a batch is still lag.
    let batch = consumer.fetch().max_messages(100).messages().await.unwrap();
    let held: Vec<_> = futures::StreamExt::collect::<Vec<_>>(batch).await;
    assert_eq!(held.len(), 100);
    let lag = keda_lag(&monitor, "$G", "LOGS", "processor").await;
    assert_eq!(
        lag, 25_000,
        "num_pending fell by 100, num_ack_pending rose by 100"
    );
    let _ = child.kill().await;
}
