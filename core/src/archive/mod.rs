//! The archive tier: Parquet segments and their index objects in object storage.
//!
//! `docs/archive.md` is the contract this module implements; read it first. In short: the
//! archiver cuts **segments** (the events of one service from a set of stream messages) into
//! Parquet files ([`segment::SegmentWriter`]), uploads them, then writes each segment's **index
//! object** ([`index`]: its header, its message sequences and a token filter), whose existence
//! is the commit. Query keeps every header in memory ([`catalog::Catalog`]), prunes by time,
//! service, level counts and the token filter, and reads only the segments that may match
//! ([`segment::SegmentReader`]).
//!
//! [`url`] and [`retention`] are always compiled (configuration validates them at start-up in
//! every service); everything else needs the `archive` cargo feature, which brings in Arrow,
//! Parquet and `object_store`.

pub mod retention;
pub mod url;

#[cfg(feature = "archive")]
pub mod bloom;
#[cfg(feature = "archive")]
pub mod catalog;
#[cfg(feature = "archive")]
pub mod header;
#[cfg(feature = "archive")]
pub mod index;
#[cfg(feature = "archive")]
pub mod layout;
#[cfg(feature = "archive")]
pub mod sample;
#[cfg(feature = "archive")]
pub mod segment;
#[cfg(feature = "archive")]
pub mod store;

pub use retention::{RetentionError, RetentionRules};

/// Installs rustls's crypto provider when this build has the `archive` feature, and does
/// nothing otherwise. With the feature, reqwest is built with `rustls-no-provider` and panics
/// on any `Client` built before a provider is installed; cargo's feature unification gives that
/// reqwest to every crate of a build that includes query or the archiver (the dashboard's
/// proxy client, the system tests), so they call this, and [`crate::service::run`] calls it
/// first for every service binary. Idempotent.
pub fn install_tls_provider() {
    #[cfg(feature = "archive")]
    store::install_tls_provider();
}
pub use url::{ArchiveUrl, ArchiveUrlError};

#[cfg(feature = "archive")]
pub use catalog::{Catalog, CatalogOptions, Probe, SegmentMeta};
#[cfg(feature = "archive")]
pub use header::SegmentHeader;
#[cfg(feature = "archive")]
pub use segment::{
    ArchivedEvent, FinishedSegment, SegmentOptions, SegmentReader, SegmentWriter, TsRange,
};
#[cfg(feature = "archive")]
pub use store::ArchiveStore;

/// What can go wrong reading or writing the archive.
#[cfg(feature = "archive")]
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The object store refused or failed (network, permissions, missing object…).
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// An object exists but is not what the format says (truncated, corrupt, wrong version).
    #[error("{object}: {problem}")]
    Corrupt { object: String, problem: String },
    /// A line handed to a segment writer that is not a canonical event of its service.
    #[error("not a canonical event line: {0}")]
    BadLine(String),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
    #[error("archive url: {0}")]
    Url(#[from] ArchiveUrlError),
}

#[cfg(feature = "archive")]
impl ArchiveError {
    pub fn corrupt(object: impl Into<String>, problem: impl Into<String>) -> ArchiveError {
        ArchiveError::Corrupt {
            object: object.into(),
            problem: problem.into(),
        }
    }

    /// Whether the object was simply not there (deleted by retention, or never committed).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ArchiveError::Store(object_store::Error::NotFound { .. })
        )
    }
}
