//! The pods test's plan (scripts/k8s-pods-test.sh): each logjet Deployment of the kind overlay
//! as `podman run` arguments exactly as its pod spec says (image, user and groups, read-only
//! root, capabilities, limits, the resolved environment, Secret and ConfigMap volumes as files,
//! emptyDirs as tmpfs, probes), and NATS and Redis from their StatefulSets as local servers.
//! In-cluster addresses point at the local servers and containers ([`address`]).
//!
//! Written to a work directory as files the shell reads line by line ([`Plan::write`]):
//! `ports` (`name port`), `pods/<svc>/{args,env,probes,info}`, `<nats|redis>/{args,env}`.

pub mod address;
pub mod files;
mod runtime;
mod servers;

use std::collections::BTreeMap;
use std::path::Path;

use self::address::Addresses;
use self::files::{Dir, File, lines_file};
use super::env::{EnvSource, Environment, PodIdentity};
use super::pod::{Container, PodSpec, ProbeKind, SecurityContext};
use super::{Manifests, ModelError, Result};

pub use servers::ServerPlan;

/// The loopback port of each local process: `nats`, `nats-monitor`, `redis`, and each service.
pub type LocalPorts = BTreeMap<String, u16>;

/// One logjet pod as a podman container.
#[derive(Clone, Debug)]
pub struct PodPlan {
    pub service: String,
    /// `podman run` arguments, the image and its arguments last.
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub ready_url: String,
    pub live_url: String,
    /// The startup probe's budget: how long readiness may take.
    pub budget_seconds: u64,
    /// One line for the report: image, user, root, caps, env, port, volumes.
    pub info: Vec<String>,
    pub dirs: Vec<Dir>,
    pub files: Vec<File>,
}

pub struct Plan {
    pub ports: LocalPorts,
    pub pods: Vec<PodPlan>,
    pub servers: Vec<ServerPlan>,
}

fn port(ports: &LocalPorts, name: &str) -> Result<u16> {
    ports
        .get(name)
        .copied()
        .ok_or_else(|| ModelError::Missing(format!("a local port for {name}")))
}

impl Plan {
    /// The plan for `services` (Deployments of `m`), files under `work`, containers named after
    /// `run_id`.
    pub fn new(
        m: &Manifests,
        work: &Path,
        ports: LocalPorts,
        run_id: &str,
        services: &[String],
    ) -> Result<Plan> {
        let mut local = BTreeMap::from([
            (("nats".to_string(), 4222), port(&ports, "nats")?),
            (("nats".to_string(), 8222), port(&ports, "nats-monitor")?),
            (("redis".to_string(), 6379), port(&ports, "redis")?),
        ]);
        for svc in services {
            let spec = m.find("Deployment", svc)?.pod_spec()?;
            let listen = spec
                .main_container()?
                .ports
                .first()
                .map(|p| p.container_port);
            let listen =
                listen.ok_or_else(|| ModelError::Missing(format!("{svc}: a container port")))?;
            local.insert((svc.clone(), listen), port(&ports, svc)?);
        }
        let addresses = Addresses::new(m, &local)?;
        let pods = services
            .iter()
            .map(|svc| {
                pod_plan(
                    m,
                    &addresses,
                    &work.join("pods").join(svc),
                    &ports,
                    svc,
                    run_id,
                )
            })
            .collect::<Result<_>>()?;
        let servers = vec![
            servers::nats(m, &work.join("nats"), &ports)?,
            servers::redis(m, &work.join("redis"), &ports)?,
        ];
        Ok(Plan {
            ports,
            pods,
            servers,
        })
    }

    /// Everything to the work directory.
    pub fn write(&self, work: &Path) -> Result<()> {
        let ports: Vec<String> = self.ports.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let mut out = vec![lines_file(work.join("ports"), &ports)?];
        let mut dirs = Vec::new();
        for p in &self.pods {
            let dir = work.join("pods").join(&p.service);
            let env: Vec<String> = p.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let probes = [
                p.ready_url.clone(),
                p.live_url.clone(),
                p.budget_seconds.to_string(),
            ];
            out.push(lines_file(dir.join("args"), &p.args)?);
            out.push(lines_file(dir.join("env"), &env)?);
            out.push(lines_file(dir.join("probes"), &probes)?);
            out.push(lines_file(dir.join("info"), &[p.info.join("\t")])?);
            out.extend(p.files.iter().cloned());
            dirs.extend(p.dirs.iter().cloned());
        }
        for s in &self.servers {
            let env: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(lines_file(s.dir.join("args"), &s.args)?);
            out.push(lines_file(s.dir.join("env"), &env)?);
            out.extend(s.files.iter().cloned());
            dirs.extend(s.dirs.iter().cloned());
        }
        files::write(&dirs, &out)
    }
}

fn pod_plan(
    m: &Manifests,
    addresses: &Addresses,
    dir: &Path,
    ports: &LocalPorts,
    svc: &str,
    run_id: &str,
) -> Result<PodPlan> {
    let spec = m.find("Deployment", svc)?.pod_spec()?;
    let c = spec.main_container()?;
    let pod_name = format!("{svc}-{run_id}");
    let sc = SecurityContext::effective(&spec.security_context, &c.security_context);
    let (uid, gid) = (sc.run_as_user, sc.run_as_group.or(sc.run_as_user));
    if sc.run_as_non_root == Some(true) && uid.is_none_or(|u| u == 0) {
        return Err(ModelError::invalid(
            svc,
            "runAsNonRoot without a non-zero runAsUser",
        ));
    }
    let local = port(ports, svc)?;
    let pod_ports: BTreeMap<u16, u16> = c.ports.iter().map(|p| (p.container_port, local)).collect();

    let resolved = Environment::of(m, c, &PodIdentity::local(&pod_name))?;
    if let Some((name, v)) = resolved.vars.iter().find(|(_, v)| !v.unrendered.is_empty()) {
        return Err(ModelError::Missing(format!(
            "{svc}: {name} needs {:?}: the kind overlay must generate it",
            v.unrendered
        )));
    }
    let mut env = resolved.clone();
    for v in env.vars.values_mut() {
        v.value = addresses.rewrite(&v.value, &pod_ports);
    }

    let mut args: Vec<String> = ["--pull", "never", "--network", "host", "--env-file"]
        .map(String::from)
        .into();
    args.push(dir.join("env").display().to_string());
    args.extend(["--hostname".to_string(), pod_name.clone()]);
    args.extend(runtime::security_args(&spec, &sc));
    args.extend(runtime::resource_args(&spec, c)?);

    let mounts = runtime::mounts(m, &spec, c, dir)?;
    args.extend(mounts.args);

    if !c.command.is_empty() {
        let command: Vec<String> = c.command.iter().map(|a| env.expand(a).value).collect();
        let json =
            serde_json::to_string(&command).map_err(|e| ModelError::invalid(svc, e.to_string()))?;
        args.extend(["--entrypoint".into(), json]);
    }
    args.push(c.image.clone());
    args.extend(
        c.args
            .iter()
            .map(|a| addresses.rewrite(&env.expand(a).value, &pod_ports)),
    );

    let url = |which| probe_url(&spec, c, which, &pod_ports);
    let (ready_url, cport) = url(ProbeKind::Readiness)?;
    let (live_url, _) = url(ProbeKind::Liveness)?;
    let budget_seconds = c.startup_probe.clone().unwrap_or_default().budget_seconds();

    let show = |x: Option<i64>| x.map_or("-".to_string(), |x| x.to_string());
    let counts =
        [EnvSource::ConfigMap, EnvSource::Secret, EnvSource::Value].map(|s| resolved.count(s));
    let info = vec![
        c.image.clone(),
        format!("{}:{}", show(uid), show(gid)),
        if sc.read_only_root_filesystem == Some(true) {
            "ro"
        } else {
            "rw"
        }
        .to_string(),
        format!("-{}", sc.capabilities.drop.join(",")),
        format!("{}c/{}s/{}v", counts[0], counts[1], counts[2]),
        format!("{cport}->{local}"),
        if mounts.shown.is_empty() {
            "-".to_string()
        } else {
            mounts.shown.join(",")
        },
    ];
    Ok(PodPlan {
        service: svc.to_string(),
        args,
        env: env.values(),
        ready_url,
        live_url,
        budget_seconds,
        info,
        dirs: mounts.dirs,
        files: mounts.files,
    })
}

/// A probe's URL on this machine, and the container port it names.
fn probe_url(
    spec: &PodSpec,
    c: &Container,
    which: ProbeKind,
    pod_ports: &BTreeMap<u16, u16>,
) -> Result<(String, u16)> {
    let what = format!("{}: {}", c.name, which.field());
    let get = c
        .probe(which)
        .and_then(|p| p.http_get.as_ref())
        .ok_or_else(|| ModelError::Missing(format!("{what} with httpGet")))?;
    if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
        return Err(ModelError::Unsupported(format!("{what}: not plain HTTP")));
    }
    let cport = spec.resolve_port(&get.port)?;
    let lport = pod_ports
        .get(&cport)
        .ok_or_else(|| ModelError::Missing(format!("{what}: port {cport}")))?;
    Ok((format!("http://127.0.0.1:{lport}{}", get.path), cport))
}
