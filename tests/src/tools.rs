//! Where `scripts/lib.sh` installs the tools the tests use: once per machine, outside the clone
//! (`LOGJET_TOOLS`, default `~/.cache/logjet`), so a fresh clone does not install them again.

use std::path::PathBuf;

/// The machine's tool directory, resolved exactly as `scripts/lib.sh` resolves `$TOOLS`.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOGJET_TOOLS") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("logjet")
}

/// A program of a tool's venv (`tool_venv NAME` in scripts/lib.sh), e.g. `("shippers", "python")`.
pub fn tool_bin(tool: &str, program: &str) -> PathBuf {
    tools_dir().join(tool).join("bin").join(program)
}
