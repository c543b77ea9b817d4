//! logjet-k8s: the checks and plans the scripts need from logjet's Kubernetes model
//! (`logjet_tests::k8s`) and from the code's defaults, printed as lines the shell reads with
//! `read`/`mapfile`. Every check prints `ok   <what>: ...` or `FAIL <what>` and one indented line
//! per finding, and exits 1 on any finding.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use logjet_tests::container_start::run_until_ready;
use logjet_tests::grafana::{PanelQuery, panel_queries, recording_rules};
use logjet_tests::k8s::schema::Schema;
use logjet_tests::k8s::{Manifests, checkov, defaults, keda, monitoring, pods};

#[derive(Parser)]
#[command(about = "logjet's Kubernetes model for the scripts (scripts/k8s-validate.sh and others)")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Prints the objects of rendered YAML that are not KEDA's or the Prometheus operator's
    /// (what kubernetes-validate has schemas for).
    CoreObjects { rendered: PathBuf },
    /// KEDA objects against KEDA's CRD schema (SCHEMAS/ScaledObject.json), the trigger
    /// allow-list and the cross-object rules (lagThreshold, stream, consumer, HPAs, PDBs).
    CheckKeda {
        #[arg(long)]
        schemas: PathBuf,
        rendered: Vec<PathBuf>,
    },
    /// The Prometheus operator's objects against their CRD schemas (SCHEMAS/<Kind>.json) and
    /// what makes them useful; a rendering without them is skipped unless named by --require.
    CheckMonitoring {
        #[arg(long)]
        schemas: PathBuf,
        /// File stems (e.g. overlays-kind-monitoring) that must hold operator objects.
        #[arg(long)]
        require: Vec<String>,
        rendered: Vec<PathBuf>,
    },
    /// Judges checkov's JSON report of the Kubernetes scan.
    CheckovKubernetes { report: PathBuf, exit: i32 },
    /// Judges checkov's JSON report of the Dockerfile scan against its config file.
    CheckovDockerfile {
        report: PathBuf,
        exit: i32,
        config: PathBuf,
    },
    /// Plans scripts/k8s-pods-test.sh: picks free loopback ports and writes WORK/ports,
    /// WORK/pods/<svc>/{args,env,probes,info} and WORK/<nats|redis>/{args,env}.
    PlanPods {
        /// An overlay directory (rendered with kubectl kustomize).
        #[arg(long, default_value = logjet_tests::k8s::KIND_OVERLAY)]
        overlay: String,
        #[arg(long)]
        work: PathBuf,
        #[arg(long)]
        run_id: String,
        services: Vec<String>,
    },
    /// Prints `<service>.port=N` and `<service>.<key>=<default>` for every service.
    Defaults,
    /// Writes every panel query of the dashboards as a recording rule to OUT (for promtool).
    PanelRules {
        out: PathBuf,
        dashboards: Vec<PathBuf>,
    },
    /// `podman run -d --name NAME ARGS...`, then GET http://127.0.0.1:PORT/PATH until 200;
    /// prints "<run->ready ms> <process start->ready ms>" ("?" when /proc cannot tell).
    RunReady {
        name: String,
        port: u16,
        path: String,
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    Ok(match Args::parse().command {
        Cmd::CoreObjects { rendered } => {
            let m = Manifests::read(&rendered)?;
            let core = m.objects.iter().filter(|o| {
                !o.api_version().starts_with("keda.sh/") && !monitoring::is_operator_object(o)
            });
            print!("{}", Manifests::to_yaml(core)?);
            ExitCode::SUCCESS
        }
        Cmd::CheckKeda { schemas, rendered } => {
            let schema = Schema::read(&schemas.join("ScaledObject.json"))?;
            report(&rendered, |m| {
                let (n, errors) = keda::keda_findings(m, &schema)?;
                Ok(Some((
                    errors,
                    format!("{n} KEDA object(s) valid, no unknown fields, cross-object rules hold"),
                )))
            })?
        }
        Cmd::CheckMonitoring {
            schemas,
            require,
            rendered,
        } => {
            let schemas: BTreeMap<String, Schema> = monitoring::KINDS
                .iter()
                .map(|k| {
                    Ok((
                        k.to_string(),
                        Schema::read(&schemas.join(format!("{k}.json")))?,
                    ))
                })
                .collect::<anyhow::Result<_>>()?;
            let mut labels = rendered.iter().map(|p| stem(p));
            report(&rendered, |m| {
                let label = labels.next().unwrap_or_default();
                let (n, errors) = monitoring::operator_findings(m, &schemas)?;
                // Only the monitoring overlay carries them (the others apply without the operator).
                if n == 0 && !require.contains(&label) {
                    return Ok(None);
                }
                let ok = format!(
                    "{n} operator objects valid, no unknown fields, every service scraped, alerts and dashboard well-formed"
                );
                Ok(Some((errors, ok)))
            })?
        }
        Cmd::CheckovKubernetes { report, exit } => {
            let json = std::fs::read_to_string(&report).unwrap_or_default();
            verdict(checkov::kubernetes(&json, exit))
        }
        Cmd::CheckovDockerfile {
            report,
            exit,
            config,
        } => {
            let json = std::fs::read_to_string(&report).unwrap_or_default();
            let text =
                std::fs::read_to_string(&config).with_context(|| config.display().to_string())?;
            verdict(checkov::dockerfile(
                &json,
                exit,
                &config.display().to_string(),
                &text,
            ))
        }
        Cmd::PlanPods {
            overlay,
            work,
            run_id,
            services,
        } => {
            let m = Manifests::render(&overlay)?;
            let mut ports = pods::LocalPorts::new();
            for name in ["nats", "nats-monitor", "redis"]
                .into_iter()
                .chain(services.iter().map(String::as_str))
            {
                // Each pick is released at once, so the system may hand the same port out
                // twice (seen: ingest and the dashboard on one port); every process needs its own.
                let port = loop {
                    let p = logjet_tests::servers::free_port();
                    if !ports.values().any(|&taken| taken == p) {
                        break p;
                    }
                };
                ports.insert(name.to_string(), port);
            }
            let plan = pods::Plan::new(&m, &work, ports, &run_id, &services)?;
            plan.write(&work)?;
            ExitCode::SUCCESS
        }
        Cmd::Defaults => {
            for line in defaults::lines() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Cmd::PanelRules { out, dashboards } => {
            let mut queries: Vec<(String, PanelQuery)> = Vec::new();
            for d in &dashboards {
                let text = std::fs::read_to_string(d).with_context(|| d.display().to_string())?;
                let json = serde_json::from_str(&text).with_context(|| d.display().to_string())?;
                queries.extend(
                    panel_queries(&json)
                        .into_iter()
                        .map(|q| (d.display().to_string(), q)),
                );
            }
            if queries.is_empty() {
                bail!("no panel expressions found");
            }
            std::fs::write(&out, recording_rules(&queries))
                .with_context(|| out.display().to_string())?;
            println!("{} panel expressions", queries.len());
            ExitCode::SUCCESS
        }
        Cmd::RunReady {
            name,
            port,
            path,
            args,
        } => {
            let t = run_until_ready(&name, port, &path, &args, Duration::from_secs(30))?;
            let start = t
                .start_to_ready
                .map_or("?".to_string(), |d| d.as_millis().to_string());
            println!("{} {start}", t.run_to_ready.as_millis());
            ExitCode::SUCCESS
        }
    })
}

/// A file's name without `.yaml`: how the checks name a rendering (`overlays-kind`).
fn stem(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".yaml").to_string())
        .unwrap_or_default()
}

/// Runs `check` on each rendered file (`None`: not applicable) and prints its verdict.
fn report(
    rendered: &[PathBuf],
    mut check: impl FnMut(&Manifests) -> anyhow::Result<Option<(Vec<String>, String)>>,
) -> anyhow::Result<ExitCode> {
    let mut status = ExitCode::SUCCESS;
    for path in rendered {
        let m = Manifests::read(path)?;
        // A model error (an object it cannot read) is a finding like the others.
        let (errors, ok) = match check(&m) {
            Ok(Some(verdict)) => verdict,
            Ok(None) => continue,
            Err(e) => (vec![e.to_string()], String::new()),
        };
        if errors.is_empty() {
            println!("ok   {}: {ok}", stem(path));
        } else {
            status = ExitCode::FAILURE;
            println!("FAIL {}", stem(path));
            for e in errors {
                println!("    {e}");
            }
        }
    }
    Ok(status)
}

fn verdict(v: checkov::Verdict) -> ExitCode {
    for line in &v.lines {
        println!("{line}");
    }
    if v.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
