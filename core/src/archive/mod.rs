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

pub use retention::{RetentionError, RetentionRules};
pub use url::{ArchiveUrl, ArchiveUrlError};
