//! What a pod spec asks of the container runtime, as `podman run` options: the user and groups,
//! the security context, the resource limits, the grace period, the volumes.

use std::path::Path;

use super::super::pod::{Container, PodSpec, SecurityContext};
use super::super::{Manifests, ModelError, Result, quantity};
use super::files::{Dir, File, volume_files};

/// The user and groups, read-only root, capabilities, privilege escalation, seccomp; `sc` is the
/// container's effective security context.
pub(super) fn security_args(spec: &PodSpec, sc: &SecurityContext) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let (uid, gid) = (sc.run_as_user, sc.run_as_group.or(sc.run_as_user));
    if let Some(u) = uid {
        args.extend(["--user".into(), format!("{u}:{}", gid.unwrap_or(u))]);
    }
    let groups = spec
        .security_context
        .fs_group
        .into_iter()
        .chain(spec.security_context.supplemental_groups.iter().copied());
    for g in groups {
        args.extend(["--group-add".into(), g.to_string()]);
    }
    if sc.read_only_root_filesystem == Some(true) {
        args.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }
    for cap in &sc.capabilities.drop {
        args.extend(["--cap-drop".into(), cap.clone()]);
    }
    for cap in &sc.capabilities.add {
        args.extend(["--cap-add".into(), cap.clone()]);
    }
    if sc.allow_privilege_escalation == Some(false) {
        args.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    if sc.privileged == Some(true) {
        args.push("--privileged".into());
    }
    if sc
        .seccomp_profile
        .as_ref()
        .is_some_and(|p| p.kind == "Unconfined")
    {
        args.extend(["--security-opt".into(), "seccomp=unconfined".into()]);
    }
    args
}

/// Memory limit and reservation, CPU limit, and the stop timeout (terminationGracePeriodSeconds).
pub(super) fn resource_args(spec: &PodSpec, c: &Container) -> Result<Vec<String>> {
    let mut args: Vec<String> = Vec::new();
    if let Some(q) = c.resources.limits.get("memory") {
        args.extend(["--memory".into(), (quantity::parse(q)? as u64).to_string()]);
    }
    if let Some(q) = c.resources.requests.get("memory") {
        args.extend([
            "--memory-reservation".into(),
            (quantity::parse(q)? as u64).to_string(),
        ]);
    }
    if let Some(q) = c.resources.limits.get("cpu") {
        args.extend(["--cpus".into(), quantity::plain(quantity::parse(q)?)]);
    }
    if let Some(t) = spec.termination_grace_period_seconds {
        args.extend(["--stop-timeout".into(), t.to_string()]);
    }

    Ok(args)
}

/// The container's volumes: `--tmpfs` for an emptyDir (its sizeLimit), `--volume` of files for
/// a Secret or ConfigMap (written under `dir/vol/<volume>`), read-only where mounted so.
pub(super) struct Mounts {
    pub args: Vec<String>,
    pub dirs: Vec<Dir>,
    pub files: Vec<File>,
    /// `path=kind` per mount, for the report.
    pub shown: Vec<String>,
}

pub(super) fn mounts(m: &Manifests, spec: &PodSpec, c: &Container, dir: &Path) -> Result<Mounts> {
    let mut out = Mounts {
        args: Vec::new(),
        dirs: Vec::new(),
        files: Vec::new(),
        shown: Vec::new(),
    };
    for mount in &c.volume_mounts {
        let v = spec
            .volume(&mount.name)
            .ok_or_else(|| ModelError::Missing(format!("{}: volume {}", c.name, mount.name)))?;
        if mount.sub_path.is_some() {
            return Err(ModelError::Unsupported(format!(
                "{}: subPath mount {}",
                c.name, mount.mount_path
            )));
        }
        if let Some(e) = &v.empty_dir {
            let size = e.size_limit.as_ref().map(quantity::parse).transpose()?;
            let size_opt = size.map_or(String::new(), |s| format!(",size={}", s as u64));
            out.args.extend([
                "--tmpfs".into(),
                format!("{}:rw,mode=1777{size_opt}", mount.mount_path),
            ]);
            let shown = e.size_limit.as_ref().map_or(String::new(), |s| {
                format!("({})", s.as_str().unwrap_or("?"))
            });
            out.shown.push(format!("{}=tmpfs{shown}", mount.mount_path));
            continue;
        }
        let src = dir.join("vol").join(&v.name);
        let planned = volume_files(m, v, &src, spec.security_context.fs_group)?
            .ok_or_else(|| ModelError::Unsupported(format!("{}: volume {}", c.name, v.name)))?;
        out.files.extend(planned);
        out.dirs.push(Dir {
            path: src.clone(),
            mode: 0o755,
        });
        let ro = if mount.read_only { "ro" } else { "rw" };
        out.args.extend([
            "--volume".into(),
            format!("{}:{}:{ro}", src.display(), mount.mount_path),
        ]);
        let kind = if v.secret.is_some() {
            "secret"
        } else {
            "configmap"
        };
        out.shown.push(format!(
            "{}={kind}{}",
            mount.mount_path,
            if mount.read_only { ":ro" } else { "" }
        ));
    }

    Ok(out)
}
