//! Server-side sessions: a random id in an `HttpOnly; Secure; SameSite=Strict` cookie, and here,
//! in memory, what it stands for: the signed-in key's name and the key itself (to call the query
//! service with). The key never leaves this process towards the browser.
//!
//! Sessions live in one replica's memory: behind several replicas the Ingress keeps a browser on
//! one (cookie affinity, docs/security.md); a restarted replica signs its users out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

/// The session cookie. `__Host-`: browsers accept it only with `Secure`, `Path=/` and no
/// `Domain`, so no other host (a sibling subdomain) can set or shadow it.
pub const COOKIE: &str = "__Host-logjet-session";

/// What a session stands for.
#[derive(Clone)]
pub struct Session {
    /// The key's name (safe to log).
    pub user: String,
    /// `Bearer <key>`, marked sensitive.
    pub authorization: HeaderValue,
    pub expires: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct SessionStore {
    inner: Arc<Mutex<HashMap<String, Session>>>,
    ttl: Duration,
    max: usize,
}

impl SessionStore {
    pub fn new(ttl: Duration, max: usize) -> SessionStore {
        SessionStore {
            inner: Arc::default(),
            ttl,
            max: max.max(1),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a consistent map (every change is one call).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `user`, expiring `ttl` after `now`; returns its id (256 random bits,
    /// hex). At `max` sessions, expired ones go first, then the one expiring soonest.
    pub fn create(&self, user: &str, key: &str, now: Instant) -> Option<String> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {key}")).ok()?;
        authorization.set_sensitive(true);
        let id = hex::encode(rand::random::<[u8; 32]>());
        let mut map = self.lock();
        if map.len() >= self.max {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= self.max
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                authorization,
                expires: now + self.ttl,
            },
        );
        Some(id)
    }

    /// The live session `id` stands for; an expired one is removed.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(id: &str, ttl: Duration) -> HeaderValue {
    let c = Cookie::build((COOKIE, id))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    header_value(&c)
}

/// `Set-Cookie` that ends the session cookie in the browser.
pub fn clear_cookie() -> HeaderValue {
    let c = Cookie::build((COOKIE, ""))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::ZERO)
        .build();
    header_value(&c)
}

fn header_value(c: &Cookie<'_>) -> HeaderValue {
    // A hex id and fixed attributes: always a valid header value.
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session id in the request's `Cookie` headers, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_end() {
        let store = SessionStore::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let id = store.create("alice", "k-alice", t0).unwrap();
        assert_eq!(id.len(), 64);
        let s = store.get(&id, t0 + Duration::from_secs(59)).unwrap();
        assert_eq!(s.user, "alice");
        assert_eq!(s.authorization, "Bearer k-alice");
        assert!(s.authorization.is_sensitive());
        assert!(!format!("{s:?}").contains("k-alice"));
        // Expired: gone, and removed.
        assert!(store.get(&id, t0 + Duration::from_secs(60)).is_none());
        assert!(store.is_empty());
        let id = store.create("alice", "k-alice", t0).unwrap();
        assert!(store.get("not-a-session", t0).is_none());
        assert!(store.remove(&id));
        assert!(store.get(&id, t0).is_none());
        assert!(!store.remove(&id));
    }

    #[test]
    fn ids_are_unique_and_the_store_is_bounded() {
        let store = SessionStore::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let ids: Vec<String> = (0..3u64)
            .map(|i| store.create("u", "k", t0 + Duration::from_secs(i)).unwrap())
            .collect();
        assert_ne!(ids[0], ids[1]);
        let newest = store.create("u", "k", t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(store.len(), 3);
        // The one expiring soonest made room.
        let now = t0 + Duration::from_secs(6);
        assert!(store.get(&ids[0], now).is_none());
        assert!(store.get(&ids[1], now).is_some());
        assert!(store.get(&newest, now).is_some());
        // A key that cannot be a header value makes no session.
        assert!(store.create("u", "bad\nkey", t0).is_none());
    }

    #[test]
    fn the_cookie_is_host_only_http_only_secure_strict_and_expires() {
        let c = set_cookie("abc", Duration::from_secs(900));
        let c = c.to_str().unwrap();
        assert!(c.starts_with("__Host-logjet-session=abc"), "{c}");
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=900",
        ] {
            assert!(c.contains(attr), "{attr} missing: {c}");
        }
        assert!(!c.contains("Domain"), "{c}");
        let cleared = clear_cookie();
        let cleared = cleared.to_str().unwrap();
        assert!(cleared.contains("Max-Age=0") && cleared.contains("__Host-logjet-session=;"));
    }

    #[test]
    fn the_session_id_is_read_from_any_cookie_header() {
        let mut h = HeaderMap::new();
        assert_eq!(session_id(&h), None);
        h.append(header::COOKIE, HeaderValue::from_static("theme=dark"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-logjet-session=f00d; b=2"),
        );
        assert_eq!(session_id(&h).as_deref(), Some("f00d"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("logjet-session=f00d; __Host-logjet-session="),
        );
        assert_eq!(session_id(&h), None);
    }
}
