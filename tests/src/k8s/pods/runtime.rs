//! What a pod spec asks of the container runtime, as `podman run` options: the user and groups,
//! the security context, the resource limits, the grace period.

use super::super::pod::{Container, PodSpec, SecurityContext};
use super::super::{Result, quantity};

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
