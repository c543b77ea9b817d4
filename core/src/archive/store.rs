//! Opening the archive's object store, and the few operations the archive needs from it.
//!
//! - `file://dir`: a local directory (created if missing), relative paths against the working
//!   directory. Writes are atomic (temporary file, then rename); empty directories left by
//!   deletes are removed.
//! - `s3://bucket/prefix`: `AmazonS3Builder::from_env()`, so `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` (MinIO,
//!   RustFS, Ceph, R2…), `AWS_ALLOW_HTTP=true` (a plain-HTTP endpoint) and the rest of
//!   object_store's `AWS_*` keys apply. Requests are path-style (`endpoint/bucket/key`), which
//!   every S3-compatible server accepts, unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` says
//!   otherwise. HTTPS is rustls with the *ring* provider, installed here as the process default
//!   if none is.
//!
//! GCS and Azure are not compiled in (object_store's `gcp`/`azure` features pull aws-lc-rs);
//! adding them is a feature flag and a match arm here.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::{ArchiveError, ArchiveUrl};

/// The archive's store: an object store and the prefix every archive path lives under.
#[derive(Clone)]
pub struct ArchiveStore {
    store: Arc<dyn ObjectStore>,
    prefix: Option<ObjectPath>,
    display: String,
}

/// An object found by [`ArchiveStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    /// Relative to the store prefix, e.g. `index/2026-11-29/07/api.….idx`.
    pub path: String,
    pub size: u64,
    pub last_modified_ms: i64,
}

impl ArchiveStore {
    /// Opens the store an archive URL names; `None` for `off`.
    pub fn open(url: &ArchiveUrl) -> Result<Option<ArchiveStore>, ArchiveError> {
        match url {
            ArchiveUrl::Off => Ok(None),
            ArchiveUrl::Local(dir) => Ok(Some(ArchiveStore::local(dir.clone())?)),
            ArchiveUrl::S3 { bucket, prefix } => {
                install_ring_provider();
                // These client options replace the ones `from_env` read, so AWS_ALLOW_HTTP is
                // carried over here (without it a plain-HTTP endpoint fails every request with
                // "builder error").
                let allow_http = std::env::var("AWS_ALLOW_HTTP")
                    .is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(
                        ClientOptions::new()
                            .with_allow_http(allow_http)
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_timeout(Duration::from_secs(60)),
                    )
                    .with_retry(RetryConfig {
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(30),
                        ..RetryConfig::default()
                    });
                if std::env::var_os("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_none() {
                    b = b.with_virtual_hosted_style_request(false);
                }
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .ok();
                let store = b.build()?;
                let display = match endpoint {
                    Some(e) => format!("{url} (endpoint {})", crate::config::redact_url(&e)),
                    None => url.to_string(),
                };
                Ok(Some(ArchiveStore::new(Arc::new(store), prefix, display)))
            }
        }
    }

    /// [`ArchiveStore::open`] for a service that only reads the archive (query): a local
    /// directory that does not exist and cannot be created (a read-only root file system, the
    /// default `file://.data/archive` in a container) means no archive to read — said once in the
    /// log, not a reason to refuse to start.
    pub fn open_reader(url: &ArchiveUrl) -> Result<Option<ArchiveStore>, ArchiveError> {
        match url {
            ArchiveUrl::Local(dir) => match ArchiveStore::local(dir.clone()) {
                Ok(store) => Ok(Some(store)),
                Err(ArchiveError::Io(e)) => {
                    tracing::warn!(
                        directory = %dir.display(),
                        error = %e,
                        "the archive directory cannot be opened: searches read Redis and the stream only"
                    );
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            _ => ArchiveStore::open(url),
        }
    }

    /// A local directory, created if missing; relative paths against the working directory.
    pub fn local(dir: PathBuf) -> Result<ArchiveStore, ArchiveError> {
        let dir = if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir()?.join(dir)
        };
        std::fs::create_dir_all(&dir)?;
        let store = LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true);
        let display = format!("file://{}", dir.display());
        Ok(ArchiveStore::new(Arc::new(store), "", display))
    }

    /// Any object store (tests, or a store built elsewhere) under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, display: String) -> ArchiveStore {
        let prefix = prefix.trim_matches('/');
        ArchiveStore {
            store,
            prefix: (!prefix.is_empty()).then(|| ObjectPath::from(prefix)),
            display,
        }
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full object path of an archive path.
    pub fn path(&self, rel: &str) -> ObjectPath {
        match &self.prefix {
            Some(p) => ObjectPath::from(format!("{p}/{rel}")),
            None => ObjectPath::from(rel),
        }
    }

    /// The archive path of a full object path (`None` outside the prefix).
    fn relative(&self, full: &ObjectPath) -> Option<String> {
        match &self.prefix {
            Some(p) => full
                .as_ref()
                .strip_prefix(p.as_ref())
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_string),
            None => Some(full.as_ref().to_string()),
        }
    }

    pub async fn get(&self, rel: &str) -> Result<Bytes, ArchiveError> {
        Ok(self.store.get(&self.path(rel)).await?.bytes().await?)
    }

    pub async fn get_range(&self, rel: &str, range: Range<u64>) -> Result<Bytes, ArchiveError> {
        Ok(self.store.get_range(&self.path(rel), range).await?)
    }

    /// Several ranges of one object (object_store coalesces nearby ranges into one request).
    pub async fn get_ranges(
        &self,
        rel: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, ArchiveError> {
        Ok(self.store.get_ranges(&self.path(rel), ranges).await?)
    }

    /// Writes an object whole (atomically: readers see the old object or the new one).
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<(), ArchiveError> {
        self.store
            .put(&self.path(rel), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Deletes an object; `Ok(false)` when it was not there (deletes are idempotent).
    pub async fn delete(&self, rel: &str) -> Result<bool, ArchiveError> {
        match self.store.delete(&self.path(rel)).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under an archive path prefix (a directory, e.g. `index/2026-11-29/07`).
    pub async fn list(&self, rel_dir: &str) -> Result<Vec<ListedObject>, ArchiveError> {
        let dir = self.path(rel_dir.trim_end_matches('/'));
        let found: Vec<_> = match self.store.list(Some(&dir)).try_collect().await {
            Ok(v) => v,
            // A local directory that does not exist yet lists as nothing.
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(found
            .into_iter()
            .filter_map(|m| {
                Some(ListedObject {
                    path: self.relative(&m.location)?,
                    size: m.size,
                    last_modified_ms: m.last_modified.timestamp_millis(),
                })
            })
            .collect())
    }
}

/// Installs *ring* as rustls's process-wide crypto provider, unless one is installed already.
///
/// The `archive` feature builds reqwest with `rustls-no-provider` (so aws-lc-rs is never
/// compiled), and such a reqwest **panics when any `Client` is built before a provider is
/// installed**, for plain-HTTP clients too. Feature unification extends that to every reqwest
/// client in a binary that enables `archive` (the archiver, query, the system tests): call this
/// first thing in `main` (and in test set-up). [`ArchiveStore::open`] calls it too. Idempotent.
pub fn install_tls_provider() {
    install_ring_provider()
}

fn install_ring_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl fmt::Display for ArchiveStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Debug for ArchiveStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArchiveStore({})", self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_creates_its_directory_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let url: ArchiveUrl = format!("file://{}", dir.display()).parse().unwrap();
        let store = ArchiveStore::open(&url).unwrap().unwrap();
        assert!(dir.is_dir());
        assert_eq!(store.to_string(), format!("file://{}", dir.display()));
        assert!(store.list("index").await.unwrap().is_empty());
        store
            .put("index/2026-01-01/00/x.idx", Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(
            store.get("index/2026-01-01/00/x.idx").await.unwrap(),
            Bytes::from_static(b"hello")
        );
        assert_eq!(
            store
                .get_range("index/2026-01-01/00/x.idx", 1..3)
                .await
                .unwrap(),
            Bytes::from_static(b"el")
        );
        let listed = store.list("index/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].path, "index/2026-01-01/00/x.idx");
        assert_eq!(listed[0].size, 5);
        assert!(store.delete("index/2026-01-01/00/x.idx").await.unwrap());
        assert!(!store.delete("index/2026-01-01/00/x.idx").await.unwrap());
        let missing = store.get("index/nope").await.unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        assert!(ArchiveStore::open(&ArchiveUrl::Off).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_prefix_scopes_every_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Arc::new(LocalFileSystem::new_with_prefix(tmp.path()).unwrap());
        let store = ArchiveStore::new(root.clone(), "/team/a/", "test".into());
        store
            .put("segments/x", Bytes::from_static(b"1"))
            .await
            .unwrap();
        assert!(tmp.path().join("team/a/segments/x").is_file());
        assert_eq!(store.list("segments").await.unwrap()[0].path, "segments/x");
        let other = ArchiveStore::new(root, "team/b", "test".into());
        assert!(other.list("segments").await.unwrap().is_empty());
    }

    #[test]
    fn reqwest_clients_build_once_the_provider_is_installed() {
        install_tls_provider();
        install_tls_provider();
        let client = reqwest::Client::builder().build();
        assert!(client.is_ok());
    }

    #[test]
    fn s3_opens_from_the_environment_without_network() {
        // Building the client does no I/O; the display shows the endpoint, never a secret.
        let url: ArchiveUrl = "s3://logs/prod".parse().unwrap();
        let store = ArchiveStore::open(&url).unwrap().unwrap();
        assert!(store.to_string().starts_with("s3://logs/prod"), "{store}");
        assert_eq!(store.path("index/x").as_ref(), "prod/index/x");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
