//! `LOGJET_ARCHIVE_URL`: where the archive lives.
//!
//! Pure parsing, compiled in every build (configuration validates the value at start-up);
//! opening the store is [`crate::archive::store`]'s job, behind the `archive` feature.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A parsed archive location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveUrl {
    /// `off`: no archive tier (query reads Redis and the stream only; no archiver runs).
    Off,
    /// `file:///abs/path`, or `file://relative/path` relative to the working directory (kept
    /// relative here; resolved when the store is opened).
    Local(PathBuf),
    /// `s3://bucket/prefix`: AWS S3 or any S3-compatible store; endpoint, region and
    /// credentials come from the `AWS_*` environment variables, never from the URL.
    S3 { bucket: String, prefix: String },
}

/// Why an archive URL was refused. The text never repeats credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArchiveUrlError(String);

impl ArchiveUrl {
    /// `true` unless the tier is `off`.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, ArchiveUrl::Off)
    }
}

impl FromStr for ArchiveUrl {
    type Err = ArchiveUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(ArchiveUrl::Off);
        }
        let shown = crate::config::redact_url(s);
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(ArchiveUrlError(format!(
                "{shown:?} is not an archive URL (expected s3://bucket/prefix, file:///path, file://relative/path or off)"
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => parse_file(rest, &shown),
            "s3" | "s3a" => parse_s3(rest, &shown),
            "gs" | "gcs" | "az" | "azure" | "abfs" | "abfss" => Err(ArchiveUrlError(format!(
                "{scheme}:// archives are not enabled in this build (s3:// and file:// are)"
            ))),
            other => Err(ArchiveUrlError(format!(
                "scheme {other:?} is not one of s3, file (or `off`)"
            ))),
        }
    }
}

fn parse_file(rest: &str, shown: &str) -> Result<ArchiveUrl, ArchiveUrlError> {
    // `file://localhost/abs` is the same as `file:///abs`.
    let rest = match rest.strip_prefix("localhost/") {
        Some(abs) => format!("/{abs}"),
        None => rest.to_string(),
    };
    if rest.is_empty() || rest == "/" {
        return Err(ArchiveUrlError(format!("{shown:?} names no directory")));
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(ArchiveUrlError(format!(
            "{shown:?}: a file:// archive takes no query or fragment"
        )));
    }
    Ok(ArchiveUrl::Local(PathBuf::from(rest)))
}

fn parse_s3(rest: &str, shown: &str) -> Result<ArchiveUrl, ArchiveUrlError> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(ArchiveUrlError(format!(
            "{shown:?}: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )));
    }
    let bucket = authority;
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-']);
    if !valid_bucket {
        return Err(ArchiveUrlError(format!(
            "{shown:?}: {bucket:?} is not a bucket name (3 to 63 of a-z 0-9 . -)"
        )));
    }
    if path.contains('?') || path.contains('#') {
        return Err(ArchiveUrlError(format!(
            "{shown:?}: the endpoint and options come from AWS_* variables, not from the URL"
        )));
    }
    let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(bad) = segments.iter().find(|p| **p == "." || **p == "..") {
        return Err(ArchiveUrlError(format!(
            "{shown:?}: the prefix may not contain {bad:?}"
        )));
    }
    Ok(ArchiveUrl::S3 {
        bucket: bucket.to_string(),
        prefix: segments.join("/"),
    })
}

impl fmt::Display for ArchiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveUrl::Off => f.write_str("off"),
            ArchiveUrl::Local(p) => write!(f, "file://{}", p.display()),
            ArchiveUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            ArchiveUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ArchiveUrl, String> {
        s.parse::<ArchiveUrl>().map_err(|e| e.to_string())
    }

    #[test]
    fn local_directories_absolute_and_relative() {
        assert_eq!(
            parse("file:///var/lib/logjet").unwrap(),
            ArchiveUrl::Local("/var/lib/logjet".into())
        );
        assert_eq!(
            parse("file://.data/archive").unwrap(),
            ArchiveUrl::Local(".data/archive".into())
        );
        assert_eq!(
            parse("FILE://rel/dir").unwrap(),
            ArchiveUrl::Local("rel/dir".into())
        );
        assert_eq!(parse("file:///abs").unwrap().to_string(), "file:///abs");
        assert_eq!(
            parse("file://.data/archive").unwrap().to_string(),
            "file://.data/archive"
        );
        assert_eq!(
            parse("file://localhost/srv/a").unwrap(),
            ArchiveUrl::Local("/srv/a".into())
        );
        assert!(parse("file://").unwrap_err().contains("no directory"));
        assert!(parse("file:///").unwrap_err().contains("no directory"));
    }

    #[test]
    fn s3_buckets_and_prefixes() {
        assert_eq!(
            parse("s3://logs/prod/archive/").unwrap(),
            ArchiveUrl::S3 {
                bucket: "logs".into(),
                prefix: "prod/archive".into()
            }
        );
        let bare = parse("s3://my-bucket").unwrap();
        assert_eq!(
            bare,
            ArchiveUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(bare.to_string(), "s3://my-bucket");
        assert_eq!(
            parse("s3://b.c.d//x//y").unwrap().to_string(),
            "s3://b.c.d/x/y"
        );
        assert!(parse("s3://UPPER").unwrap_err().contains("bucket name"));
        assert!(parse("s3://ab").unwrap_err().contains("bucket name"));
        assert!(parse("s3://b-b/a/../x").unwrap_err().contains(".."));
        assert!(parse("s3://bbb/p?endpoint=x").unwrap_err().contains("AWS_"));
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_echoed() {
        let e = parse("s3://AKIA:s3cret@bucket/p").unwrap_err();
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn off_and_unsupported_schemes() {
        assert_eq!(parse("off").unwrap(), ArchiveUrl::Off);
        assert_eq!(parse(" OFF ").unwrap(), ArchiveUrl::Off);
        assert!(!ArchiveUrl::Off.is_enabled());
        assert!(parse("gs://bucket").unwrap_err().contains("not enabled"));
        assert!(parse("az://c/p").unwrap_err().contains("not enabled"));
        assert!(parse("http://x").unwrap_err().contains("scheme"));
        assert!(
            parse("/var/archive")
                .unwrap_err()
                .contains("not an archive URL")
        );
    }
}
