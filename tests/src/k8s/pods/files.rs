//! The files a pod gets from its Secret and ConfigMap volumes, planned as data and written once.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::super::pod::Volume;
use super::super::{Manifests, ModelError, Result};

/// A file to write: its content, mode and group (the pod's `fsGroup`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub path: PathBuf,
    pub content: String,
    pub mode: u32,
    pub group: Option<u32>,
}

/// A directory to create with its mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dir {
    pub path: PathBuf,
    pub mode: u32,
}

/// A Secret or ConfigMap volume as files in `dir`, with the declared modes (`items`, else every
/// key), group `fs_group`; `None` for any other kind of volume.
pub fn volume_files(
    m: &Manifests,
    v: &Volume,
    dir: &Path,
    fs_group: Option<i64>,
) -> Result<Option<Vec<File>>> {
    let (data, default_mode, items) = if let Some(s) = &v.secret {
        let data = m.secret(&s.secret_name).ok_or_else(|| {
            ModelError::Missing(format!("Secret/{} (volume {})", s.secret_name, v.name))
        })??;
        (data, s.default_mode, &s.items)
    } else if let Some(c) = &v.config_map {
        (m.config_map(&c.name)?, c.default_mode, &c.items)
    } else {
        return Ok(None);
    };
    let group = fs_group
        .map(|g| u32::try_from(g).map_err(|_| ModelError::invalid("fsGroup", g.to_string())))
        .transpose()?;
    let default_mode = default_mode.unwrap_or(0o644);
    let entries: Vec<(String, String, u32)> = if items.is_empty() {
        data.keys()
            .map(|k| (k.clone(), k.clone(), default_mode))
            .collect()
    } else {
        items
            .iter()
            .map(|i| {
                (
                    i.key.clone(),
                    i.path.clone(),
                    i.mode.unwrap_or(default_mode),
                )
            })
            .collect()
    };
    let mut files = Vec::new();
    for (key, path, mode) in entries {
        let content = data
            .get(&key)
            .cloned()
            .ok_or_else(|| ModelError::Missing(format!("key {key} for volume {}", v.name)))?;
        files.push(File {
            path: dir.join(path),
            content,
            mode,
            group,
        });
    }
    Ok(Some(files))
}

/// Creates the directories, then writes the files with their modes and groups.
pub fn write(dirs: &[Dir], files: &[File]) -> Result<()> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e| ModelError::Io(p, e)
    };
    for d in dirs {
        std::fs::create_dir_all(&d.path).map_err(io(&d.path))?;
    }
    for f in files {
        if let Some(parent) = f.path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&f.path, &f.content).map_err(io(&f.path))?;
        std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(f.mode))
            .map_err(io(&f.path))?;
        if let Some(g) = f.group {
            std::os::unix::fs::chown(&f.path, None, Some(g)).map_err(io(&f.path))?;
        }
    }
    for d in dirs {
        std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(d.mode))
            .map_err(io(&d.path))?;
    }
    Ok(())
}

/// Lines of a file the shell reads line by line: a value holding a newline cannot pass.
pub fn lines_file(path: PathBuf, lines: &[String]) -> Result<File> {
    if let Some(bad) = lines.iter().find(|l| l.contains('\n')) {
        let first = bad.lines().next().unwrap_or("");
        return Err(ModelError::invalid(
            path.display().to_string(),
            format!("a value holds a newline, which this test cannot pass on: {first}..."),
        ));
    }
    Ok(File {
        path,
        content: lines.iter().map(|l| format!("{l}\n")).collect(),
        mode: 0o600,
        group: None,
    })
}
