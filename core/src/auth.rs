//! API keys: who may send logs and who may read them.
//!
//! Keys are presented as `Authorization: Bearer <key>`. The server only ever holds their SHA-256
//! hashes, read from a file (in Kubernetes, a Secret mounted as a file), one key per line:
//!
//! ```text
//! # name        scopes          sha256 of the key
//! fluent-bit    ingest          sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
//! dashboard     query           sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9
//! admin         ingest,query    sha256:...
//! ```
//!
//! `scripts/new-api-key.sh` makes a key and prints its line. A presented key is hashed and
//! compared with every stored hash in constant time, so neither the key nor its position leaks
//! through timing, and a key is never logged.
//!
//! The file is re-read when it changes ([`LiveKeys::spawn_reload`], every
//! [`RELOAD_EVERY`]): Kubernetes updates a mounted Secret in place, so a key is added or revoked
//! without a restart. A file that does not parse (or cannot be read) keeps the keys in use, says
//! why in a WARN line and counts `logjet_api_keys_reloads_total{result="error"}`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Ingest,
    Query,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Query => "query",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored key: its name (safe to log), scopes and hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    pub ingest: bool,
    pub query: bool,
    hash: [u8; 32],
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the hash either: it is what an attacker would need to brute-force.
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("ingest", &self.ingest)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    pub fn allows(&self, scope: Scope) -> bool {
        match scope {
            Scope::Ingest => self.ingest,
            Scope::Query => self.query,
        }
    }
}

/// SHA-256 of a key, as stored.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The line of the keys file for a key (what `scripts/new-api-key.sh` prints).
pub fn key_line(name: &str, scopes: &str, key: &str) -> String {
    format!("{name} {scopes} sha256:{}", hex::encode(hash_key(key)))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFileError {
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    #[error("no keys in the file")]
    Empty,
    #[error("reading {0}")]
    Io(String),
}

/// The keys a service accepts.
#[derive(Clone, Debug, Default)]
pub struct KeyStore {
    keys: Vec<ApiKey>,
    verified: VerifiedKeys,
}

/// A presented key that matched, and the index of the stored key it matched.
type Verified = (Box<[u8]>, usize);

/// Keys presented and verified before, with the index of the stored key they matched: a client
/// sends the same key with every request, and hashing it each time was a cost per request (a
/// SHA-256 per single-event POST). Only keys that matched a stored hash get in, so it holds at
/// most one entry per stored key (unknown keys are hashed every time, as before). Lookups
/// compare against every entry in constant time, like the hashes.
#[derive(Clone, Default)]
struct VerifiedKeys(Arc<RwLock<Vec<Verified>>>);

impl fmt::Debug for VerifiedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The presented keys are secrets: only their number.
        let n = self.0.read().map_or(0, |v| v.len());
        write!(f, "VerifiedKeys({n})")
    }
}

impl VerifiedKeys {
    fn find(&self, presented: &[u8]) -> Option<usize> {
        let cached = self.0.read().ok()?;
        let mut found = None;
        for (key, index) in cached.iter() {
            if bool::from(key.as_ref().ct_eq(presented)) {
                found = Some(*index);
            }
        }
        found
    }

    fn remember(&self, presented: &[u8], index: usize, capacity: usize) {
        if let Ok(mut cached) = self.0.write()
            && cached.len() < capacity
            && !cached.iter().any(|(k, _)| k.as_ref() == presented)
        {
            cached.push((presented.into(), index));
        }
    }
}

impl KeyStore {
    pub fn load(path: &Path) -> Result<KeyStore, KeyFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyFileError::Io(format!("{}: {e}", path.display())))?;
        KeyStore::parse(&text)
    }

    pub fn parse(text: &str) -> Result<KeyStore, KeyFileError> {
        let mut keys = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |problem: &str| KeyFileError::Line {
                line: i + 1,
                problem: problem.to_string(),
            };
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [name, scopes, hash] = parts[..] else {
                return Err(err("expected `<name> <scopes> sha256:<hex>`"));
            };
            let (mut ingest, mut query) = (false, false);
            for s in scopes.split(',') {
                match s {
                    "ingest" => ingest = true,
                    "query" => query = true,
                    other => return Err(err(&format!("unknown scope {other:?} (ingest, query)"))),
                }
            }
            let hex_hash = hash
                .strip_prefix("sha256:")
                .ok_or_else(|| err("the key must be stored as sha256:<hex>, never in the clear"))?;
            let bytes = hex::decode(hex_hash).map_err(|_| err("the hash is not hex"))?;
            let hash: [u8; 32] = bytes
                .try_into()
                .map_err(|_| err("a SHA-256 hash has 64 hex digits"))?;
            if keys.iter().any(|k: &ApiKey| k.name == name) {
                return Err(err(&format!("duplicate key name {name:?}")));
            }
            keys.push(ApiKey {
                name: name.to_string(),
                ingest,
                query,
                hash,
            });
        }
        if keys.is_empty() {
            return Err(KeyFileError::Empty);
        }
        Ok(KeyStore {
            keys,
            verified: VerifiedKeys::default(),
        })
    }

    /// The key matching `presented`, comparing against every stored hash in constant time (or,
    /// for a key verified before, against the verified keys, without hashing it again).
    pub fn authenticate(&self, presented: &str) -> Option<&ApiKey> {
        if let Some(i) = self.verified.find(presented.as_bytes()) {
            return self.keys.get(i);
        }
        let h = hash_key(presented);
        let mut found = None;
        for (i, k) in self.keys.iter().enumerate() {
            if bool::from(k.hash.ct_eq(&h)) {
                found = Some(i);
            }
        }
        let i = found?;
        self.verified
            .remember(presented.as_bytes(), i, self.keys.len());
        self.keys.get(i)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// How often [`LiveKeys::spawn_reload`] looks at the keys file.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The keys file's metrics: `logjet_api_keys_reloads_total{result}` and `logjet_api_keys`,
/// registered by every service that checks keys (zero when authentication is off), so the
/// metrics contract holds whatever the configuration.
pub struct KeyMetrics {
    reloads: prometheus::IntCounterVec,
    count: prometheus::IntGauge,
}

impl KeyMetrics {
    pub fn register(registry: &prometheus::Registry, auth: &Auth) -> KeyMetrics {
        let reloads = crate::metrics::counter_vec(
            registry,
            "logjet_api_keys_reloads_total",
            "Changes of the API keys file seen, by result: ok (the new keys are in use), error (the old keys stay; the log says why).",
            &["result"],
        );
        for r in ["ok", "error"] {
            reloads.with_label_values(&[r]);
        }
        let count = crate::metrics::gauge(
            registry,
            "logjet_api_keys",
            "API keys in use (from the keys file, re-read when it changes).",
        );
        if let Auth::Keys(keys) = auth {
            count.set(keys.current().len() as i64);
        }
        KeyMetrics { reloads, count }
    }
}

/// The keys in use, replaced when their file changes.
#[derive(Clone, Debug)]
pub struct LiveKeys {
    current: Arc<RwLock<Arc<KeyStore>>>,
    /// The file they came from (none for keys given in code).
    path: Option<PathBuf>,
}

impl LiveKeys {
    /// Fixed keys (no file to follow).
    pub fn fixed(keys: KeyStore) -> LiveKeys {
        LiveKeys {
            current: Arc::new(RwLock::new(Arc::new(keys))),
            path: None,
        }
    }

    /// The keys of `path`, which [`LiveKeys::spawn_reload`] then follows.
    pub fn load(path: &Path) -> Result<LiveKeys, KeyFileError> {
        let keys = KeyStore::load(path)?;
        Ok(LiveKeys {
            path: Some(path.to_path_buf()),
            ..LiveKeys::fixed(keys)
        })
    }

    /// The keys in use now.
    pub fn current(&self) -> Arc<KeyStore> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, keys: KeyStore) {
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        *cur = Arc::new(keys);
    }

    /// Re-reads the file every `every` while these keys are in use (the task ends when the last
    /// clone is dropped) and swaps in what it holds when it changed and parses, counting in
    /// `metrics`. Needs a Tokio runtime; does nothing for fixed keys.
    pub fn spawn_reload(&self, every: Duration, metrics: KeyMetrics) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let KeyMetrics { reloads, count } = metrics;
        let weak: Weak<RwLock<Arc<KeyStore>>> = Arc::downgrade(&self.current);
        let mut last = std::fs::read(&path).ok();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(current) = weak.upgrade() else {
                    return;
                };
                let live = LiveKeys {
                    current,
                    path: Some(path.clone()),
                };
                let text = tokio::fs::read(&path).await;
                match reload_step(&live, &path, text, &mut last) {
                    Reload::Unchanged => {}
                    Reload::Ok(n) => {
                        reloads.with_label_values(&["ok"]).inc();
                        count.set(n as i64);
                        tracing::info!(path = %path.display(), keys = n, "API keys file changed: new keys in use");
                    }
                    Reload::Failed(e) => {
                        reloads.with_label_values(&["error"]).inc();
                        tracing::warn!(path = %path.display(), error = %e, "API keys file changed but cannot be used: the previous keys stay in use");
                    }
                }
            }
        });
    }
}

enum Reload {
    Unchanged,
    Ok(usize),
    Failed(KeyFileError),
}

/// One look at the file: what changed since `last` (its bytes then) and what was done.
fn reload_step(
    live: &LiveKeys,
    path: &Path,
    read: std::io::Result<Vec<u8>>,
    last: &mut Option<Vec<u8>>,
) -> Reload {
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            // Reported once per disappearance, not every tick.
            if last.take().is_none() {
                return Reload::Unchanged;
            }
            return Reload::Failed(KeyFileError::Io(format!("{}: {e}", path.display())));
        }
    };
    if last.as_ref() == Some(&bytes) {
        return Reload::Unchanged;
    }
    *last = Some(bytes.clone());
    let parsed = std::str::from_utf8(&bytes)
        .map_err(|_| KeyFileError::Io(format!("{}: not UTF-8", path.display())))
        .and_then(KeyStore::parse);
    match parsed {
        Ok(keys) => {
            let n = keys.len();
            live.replace(keys);
            Reload::Ok(n)
        }
        Err(e) => Reload::Failed(e),
    }
}

/// How a service checks callers.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Every request is accepted as "anonymous" (local development only).
    Off,
    Keys(LiveKeys),
}

/// Who is calling, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The key's name, or `anonymous` when auth is off. Safe to log and to rate-limit by.
    pub name: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No key, or an unknown one: 401.
    Unauthenticated,
    /// A valid key without the scope: 403.
    Forbidden { key: String, scope: Scope },
}

impl Auth {
    /// Checks an `Authorization` header value for a scope.
    pub fn check(&self, authorization: Option<&str>, scope: Scope) -> Result<Caller, AuthFailure> {
        let keys = match self {
            Auth::Off => {
                return Ok(Caller {
                    name: "anonymous".into(),
                });
            }
            Auth::Keys(k) => k.current(),
        };
        let presented = bearer(authorization).ok_or(AuthFailure::Unauthenticated)?;
        let key = keys
            .authenticate(presented)
            .ok_or(AuthFailure::Unauthenticated)?;
        if !key.allows(scope) {
            return Err(AuthFailure::Forbidden {
                key: key.name.clone(),
                scope,
            });
        }
        Ok(Caller {
            name: key.name.clone(),
        })
    }
}

impl Auth {
    /// The key an `Authorization` header presents, whatever its scopes (`GET /auth/whoami`):
    /// `None` for no key or an unknown one. With authentication off, `anonymous` with every
    /// scope.
    pub fn identify(&self, authorization: Option<&str>) -> Option<Identity> {
        match self {
            Auth::Off => Some(Identity {
                name: "anonymous".into(),
                scopes: vec![Scope::Ingest, Scope::Query],
                authentication: false,
            }),
            Auth::Keys(keys) => {
                let keys = keys.current();
                let key = keys.authenticate(bearer(authorization)?)?;
                let scopes = [Scope::Ingest, Scope::Query]
                    .into_iter()
                    .filter(|s| key.allows(*s))
                    .collect();
                Some(Identity {
                    name: key.name.clone(),
                    scopes,
                    authentication: true,
                })
            }
        }
    }
}

/// What [`Auth::identify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// False when authentication is off.
    pub authentication: bool,
}

/// The key of `Authorization: Bearer <key>` (any case of `Bearer`), if one is there.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> KeyStore {
        KeyStore::parse(&format!(
            "# comment\n{}\n{}  # trailing comment\n\n{}\n",
            key_line("shipper", "ingest", "k-ingest"),
            key_line("grafana", "query", "k-query"),
            key_line("admin", "ingest,query", "k-admin"),
        ))
        .unwrap()
    }

    #[test]
    fn keys_authenticate_by_hash_and_scope() {
        let auth = Auth::Keys(LiveKeys::fixed(store()));
        assert_eq!(
            auth.check(Some("Bearer k-ingest"), Scope::Ingest)
                .unwrap()
                .name,
            "shipper"
        );
        assert_eq!(
            auth.check(Some("bearer  k-admin "), Scope::Query)
                .unwrap()
                .name,
            "admin"
        );
        assert_eq!(
            auth.check(Some("Bearer k-query"), Scope::Ingest),
            Err(AuthFailure::Forbidden {
                key: "grafana".into(),
                scope: Scope::Ingest
            })
        );
        assert_eq!(
            auth.check(None, Scope::Query),
            Err(AuthFailure::Unauthenticated)
        );
        assert_eq!(
            auth.check(Some("Bearer nope"), Scope::Query),
            Err(AuthFailure::Unauthenticated)
        );
        assert_eq!(
            auth.check(Some("Basic k-admin"), Scope::Query),
            Err(AuthFailure::Unauthenticated)
        );
        assert_eq!(
            auth.check(Some("Bearer "), Scope::Query),
            Err(AuthFailure::Unauthenticated)
        );
        assert_eq!(
            Auth::Off.check(None, Scope::Ingest).unwrap().name,
            "anonymous"
        );
    }

    #[test]
    fn identify_names_the_key_and_its_scopes_whatever_they_are() {
        let auth = Auth::Keys(LiveKeys::fixed(store()));
        let id = auth.identify(Some("Bearer k-ingest")).unwrap();
        assert_eq!(
            (id.name.as_str(), id.scopes, id.authentication),
            ("shipper", vec![Scope::Ingest], true)
        );
        let id = auth.identify(Some("Bearer k-admin")).unwrap();
        assert_eq!(id.scopes, vec![Scope::Ingest, Scope::Query]);
        assert_eq!(auth.identify(Some("Bearer nope")), None);
        assert_eq!(auth.identify(None), None);
        assert_eq!(auth.identify(Some("k-admin")), None);
        let off = Auth::Off.identify(None).unwrap();
        assert!(!off.authentication);
    }

    #[test]
    fn key_file_errors_name_the_line() {
        let bad = |t: &str| KeyStore::parse(t).unwrap_err().to_string();
        assert!(bad("a ingest plaintextkey").contains("line 1"));
        assert!(bad("a ingest plaintextkey").contains("never in the clear"));
        assert!(bad("\na write sha256:00").contains("line 2: unknown scope"));
        assert!(bad("a ingest sha256:zz").contains("not hex"));
        assert!(bad("a ingest sha256:00").contains("64 hex digits"));
        assert!(bad("only two").contains("expected"));
        assert_eq!(
            KeyStore::parse("# nothing\n").unwrap_err(),
            KeyFileError::Empty
        );
        let dup = format!(
            "{}\n{}",
            key_line("a", "ingest", "x"),
            key_line("a", "query", "y")
        );
        assert!(bad(&dup).contains("duplicate"));
    }

    /// The file is followed: a key added works, a removed key stops working within seconds, a
    /// malformed file keeps the old keys and is counted as an error.
    #[tokio::test]
    async fn the_keys_file_is_reloaded_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-keys");
        let write = |lines: &[String]| {
            // As Kubernetes does: a new file swapped in, never a half-written one.
            let tmp = dir.path().join("api-keys.tmp");
            std::fs::write(&tmp, lines.join("\n")).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        };
        write(&[key_line("old", "query", "k-old")]);
        let registry = prometheus::Registry::new();
        let auth = Auth::Keys(LiveKeys::load(&path).unwrap());
        let Auth::Keys(live) = &auth else {
            unreachable!()
        };
        live.spawn_reload(
            Duration::from_millis(50),
            KeyMetrics::register(&registry, &auth),
        );
        let works = |k: &str| {
            auth.check(Some(&format!("Bearer {k}")), Scope::Query)
                .is_ok()
        };
        assert!(works("k-old"));
        let metric = |result: &str| {
            registry
                .gather()
                .iter()
                .find(|f| f.name() == "logjet_api_keys_reloads_total")
                .and_then(|f| {
                    f.get_metric()
                        .iter()
                        .find(|m| m.get_label()[0].value() == result)
                        .map(|m| m.get_counter().get_value() as u64)
                })
                .unwrap_or(0)
        };

        // A key rotated: the new one works, the removed one stops working.
        write(&[key_line("new", "query", "k-new")]);
        within_async(|| works("k-new") && !works("k-old")).await;
        assert_eq!(metric("ok"), 1);

        // Malformed: the keys in use stay, the error is counted.
        write(&["new query k-new-in-the-clear".to_string()]);
        within_async(|| metric("error") == 1).await;
        assert!(works("k-new"));
        // Unchanged afterwards: counted once, not on every look.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(metric("error"), 1);

        // Fixed again: in use.
        write(&[key_line("third", "query", "k-third")]);
        within_async(|| works("k-third") && !works("k-new")).await;
    }

    async fn within_async(cond: impl Fn() -> bool) {
        for _ in 0..100 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not within 2 s");
    }

    #[test]
    fn verified_keys_are_remembered_and_only_they() {
        let store = store();
        for _ in 0..3 {
            assert_eq!(store.authenticate("k-admin").unwrap().name, "admin");
            assert_eq!(store.authenticate("k-query").unwrap().name, "grafana");
            assert!(store.authenticate("nope").is_none());
            assert!(store.authenticate("k-admin ").is_none());
        }
        // One entry per key that matched; a clone shares them.
        assert_eq!(store.verified.find(b"k-admin"), Some(2));
        assert_eq!(store.verified.find(b"nope"), None);
        assert_eq!(store.clone().verified.find(b"k-query"), Some(1));
        assert_eq!(store.verified.0.read().unwrap().len(), 2);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let st = store();
        assert!(st.authenticate("k-ingest").is_some());
        let s = format!("{:?}", st);
        assert!(s.contains("shipper"));
        assert!(!s.contains(&hex::encode(hash_key("k-ingest"))));
        assert!(!s.contains("k-ingest"));
    }
}
