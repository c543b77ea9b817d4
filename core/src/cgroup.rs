//! The memory a process may use: its container's limit, read from the cgroup (v2 `memory.max`
//! or v1 `memory.limit_in_bytes`), and the machine's memory (`/proc/meminfo`). Ingest sizes its
//! memory budget from these (`config::IngestMemorySettings`).
//!
//! Everything is read under a root directory (`/` in production, a fixture directory in tests).
//! "No limit" is `None`: v2 writes `max`, v1 a huge page-rounded number (9223372036854771712),
//! and any value at or above [`UNLIMITED_FROM`] or above the machine's memory counts as none.

use std::path::{Path, PathBuf};

/// Limits at or above this (4 EiB) are "no limit" (v1's unlimited is `i64::MAX` page-rounded).
pub const UNLIMITED_FROM: u64 = 1 << 62;

/// Where a limit came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitSource {
    /// cgroup v2 `memory.max` at this path.
    V2(PathBuf),
    /// cgroup v1 `memory.limit_in_bytes` at this path.
    V1(PathBuf),
}

/// A container memory limit and the file it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    pub bytes: u64,
    pub source: LimitSource,
}

/// What the process may use: the cgroup limit (if any) and the machine's memory (if known).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryLimits {
    pub cgroup: Option<MemoryLimit>,
    pub host_bytes: Option<u64>,
}

impl MemoryLimits {
    /// Reads the limits of this process.
    pub fn detect() -> MemoryLimits {
        MemoryLimits::detect_under(Path::new("/"))
    }

    /// Reads the limits with `root` as `/` (fixtures in tests).
    pub fn detect_under(root: &Path) -> MemoryLimits {
        let host_bytes = host_memory(root);
        let cgroup = cgroup_limit(root).filter(|l| host_bytes.is_none_or(|h| l.bytes < h));
        MemoryLimits { cgroup, host_bytes }
    }
}

/// `MemTotal` of `<root>/proc/meminfo`, in bytes.
pub fn host_memory(root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("proc/meminfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut it = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    match it.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// The memory limit of this process's cgroup, v2 first, then v1; `None` when there is none.
pub fn cgroup_limit(root: &Path) -> Option<MemoryLimit> {
    let cgroups = std::fs::read_to_string(root.join("proc/self/cgroup")).unwrap_or_default();
    v2_limit(root, &cgroups).or_else(|| v1_limit(root, &cgroups))
}

/// A limit file's value: a number of bytes, or `None` for `max` and "unlimited" numbers.
pub fn parse_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse::<u64>().ok().filter(|&n| n < UNLIMITED_FROM)
}

/// The smallest limit on the way from `dir` up to `top` (a cgroup is held to its ancestors'
/// limits too); directories outside `top` are not looked at.
fn smallest_limit(top: &Path, dir: &Path, file: &str) -> Option<(u64, PathBuf)> {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut at = Some(dir);
    while let Some(d) = at {
        if !d.starts_with(top) {
            break;
        }
        let path = d.join(file);
        if let Some(n) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse_limit(&t))
            && best.as_ref().is_none_or(|(b, _)| n < *b)
        {
            best = Some((n, path));
        }
        at = d.parent();
    }
    best
}

/// cgroup v2: the `0::<path>` line; the limit in `/sys/fs/cgroup/<path>/memory.max` (inside a
/// container with its own cgroup namespace the path is `/`).
fn v2_limit(root: &Path, cgroups: &str) -> Option<MemoryLimit> {
    let top = root.join("sys/fs/cgroup");
    // A v2 hierarchy has cgroup.controllers at its top.
    if !top.join("cgroup.controllers").exists() {
        return None;
    }
    let rel = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    let dir = top.join(rel.trim().trim_start_matches('/'));
    let (bytes, path) = smallest_limit(&top, &dir, "memory.max")
        .or_else(|| smallest_limit(&top, &top, "memory.max"))?;
    Some(MemoryLimit {
        bytes,
        source: LimitSource::V2(strip_root(root, path)),
    })
}

/// cgroup v1: the `N:…memory…:<path>` line; the limit in
/// `/sys/fs/cgroup/memory/<path>/memory.limit_in_bytes`, or at the top of the memory mount
/// (podman and Docker mount the container's own cgroup there).
fn v1_limit(root: &Path, cgroups: &str) -> Option<MemoryLimit> {
    let top = root.join("sys/fs/cgroup/memory");
    let rel = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.trim().to_string())
    });
    let file = "memory.limit_in_bytes";
    let nested =
        rel.and_then(|rel| smallest_limit(&top, &top.join(rel.trim_start_matches('/')), file));
    let at_top = smallest_limit(&top, &top, file);
    let (bytes, path) = match (nested, at_top) {
        (Some(a), Some(b)) => {
            if a.0 <= b.0 {
                a
            } else {
                b
            }
        }
        (a, b) => a.or(b)?,
    };
    Some(MemoryLimit {
        bytes,
        source: LimitSource::V1(strip_root(root, path)),
    })
}

fn strip_root(root: &Path, path: PathBuf) -> PathBuf {
    match path.strip_prefix(root) {
        Ok(rel) => Path::new("/").join(rel),
        Err(_) => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/cgroup")
            .join(name)
    }

    #[test]
    fn limit_values() {
        assert_eq!(parse_limit("268435456\n"), Some(268_435_456));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712"), None);
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn v1_container_limit_at_the_top_of_the_memory_mount() {
        let l = MemoryLimits::detect_under(&fixture("v1"));
        assert_eq!(l.host_bytes, Some(24_684_028 * 1024));
        let c = l.cgroup.unwrap();
        assert_eq!(c.bytes, 256 * 1024 * 1024);
        assert_eq!(
            c.source,
            LimitSource::V1("/sys/fs/cgroup/memory/memory.limit_in_bytes".into())
        );
    }

    #[test]
    fn v1_host_without_limit() {
        let l = MemoryLimits::detect_under(&fixture("v1-unlimited"));
        assert_eq!(l.cgroup, None);
        assert!(l.host_bytes.is_some());
    }

    #[test]
    fn v2_limit_of_the_process_cgroup_and_its_ancestors() {
        let l = MemoryLimits::detect_under(&fixture("v2"));
        let c = l.cgroup.unwrap();
        // The pod's slice (512 MiB) holds the container (1 GiB) to less.
        assert_eq!(c.bytes, 512 * 1024 * 1024);
        assert_eq!(
            c.source,
            LimitSource::V2("/sys/fs/cgroup/kubepods.slice/memory.max".into())
        );
    }

    #[test]
    fn v2_max_is_no_limit() {
        let l = MemoryLimits::detect_under(&fixture("v2-max"));
        assert_eq!(l.cgroup, None);
    }

    #[test]
    fn a_limit_above_the_machine_is_no_limit() {
        let l = MemoryLimits::detect_under(&fixture("v1-above-host"));
        assert_eq!(l.cgroup, None);
        assert_eq!(l.host_bytes, Some(1024 * 1024 * 1024));
    }

    #[test]
    fn nothing_readable_is_nothing_known() {
        let l = MemoryLimits::detect_under(&fixture("does-not-exist"));
        assert_eq!(l, MemoryLimits::default());
    }
}
