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

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

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

/// Keys presented and verified before, with the index of the stored key they matched: a client
/// sends the same key with every request, and hashing it each time was a cost per request (a
/// SHA-256 per single-event POST). Only keys that matched a stored hash get in, so it holds at
/// most one entry per stored key (unknown keys are hashed every time, as before). Lookups
/// compare against every entry in constant time, like the hashes.
#[derive(Clone, Default)]
struct VerifiedKeys(Arc<RwLock<Vec<(Box<[u8]>, usize)>>>);

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

/// How a service checks callers.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Every request is accepted as "anonymous" (local development only).
    Off,
    Keys(KeyStore),
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
            Auth::Keys(k) => k,
        };
        let presented = authorization
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|k| !k.is_empty())
            .ok_or(AuthFailure::Unauthenticated)?;
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
        let auth = Auth::Keys(store());
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
