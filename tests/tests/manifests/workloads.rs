//! Each Deployment against its service's code: ports, probes, the Service in front of it, the
//! environment its config loads.

use logjet_core::config::{
    ArchiverConfig, AuthSetting, DashboardAuth, DashboardConfig, IngestConfig, ProcessorConfig,
    QueryConfig, load_from,
};
use logjet_tests::k8s::pod::ProbeKind;
use logjet_tests::k8s::{KIND_OVERLAY, defaults, service};

use super::{env_of, overlays, render};

#[test]
fn ports_probes_and_env_match_the_code() {
    for (overlay, m) in overlays() {
        for d in m.of_kind("Deployment") {
            let svc = d.name();
            let spec = d.pod_spec().unwrap();
            let env = env_of(&m, svc, None);
            let ports = spec.ports();
            let listen = env
                .value("LOGJET_LISTEN")
                .unwrap_or_else(|| panic!("{overlay}: {svc} has no LOGJET_LISTEN"));
            let listen_port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
            assert!(
                ports.values().any(|p| *p == listen_port),
                "{overlay}: {svc} listens on {listen_port} but declares {ports:?}"
            );
            if let Some(code) = defaults::service(svc) {
                assert_eq!(
                    listen_port,
                    code.listen.port(),
                    "{overlay}: {svc}'s port differs from the code's default"
                );
                for var in env.vars.keys().filter(|k| k.starts_with("LOGJET_")) {
                    assert!(
                        code.env_vars.contains(var),
                        "{overlay}: {svc} sets {var}, which its config does not know"
                    );
                }
            }
            let c = spec.main_container().unwrap();
            for probe in ProbeKind::ALL {
                let get = c
                    .probe(probe)
                    .and_then(|p| p.http_get.as_ref())
                    .unwrap_or_else(|| panic!("{overlay}: {svc} has no {}", probe.field()));
                let want = if probe == ProbeKind::Readiness {
                    "/readyz"
                } else {
                    "/healthz"
                };
                assert_eq!(get.path, want, "{overlay}: {svc} {}", probe.field());
                let port = spec.resolve_port(&get.port).unwrap();
                assert_eq!(port, listen_port, "{overlay}: {svc} {} port", probe.field());
            }
            // The Service in front of it targets the same port.
            let routes = service::routes(&m, m.find("Service", svc).unwrap()).unwrap();
            assert!(
                !routes.is_empty(),
                "{overlay}: Service {svc} selects no pods"
            );
            for r in routes {
                assert_eq!(
                    r.workload, svc,
                    "{overlay}: Service {svc} selects {}",
                    r.workload
                );
                assert_eq!(r.container_port, listen_port, "{overlay}: Service {svc}");
            }
        }
    }
}

/// Credentials are named variable by variable (`valueFrom.secretKeyRef`), never a whole Secret
/// (`envFrom.secretRef`), so the credential tests see every one.
#[test]
fn no_container_takes_a_whole_secret_as_its_environment() {
    for (overlay, m) in overlays() {
        for w in m.workloads() {
            for c in w.pod_spec().unwrap().containers {
                assert!(
                    c.env_from.iter().all(|f| f.secret_ref.is_none()),
                    "{overlay}: {}/{} has envFrom secretRef: name the variables instead",
                    w.name(),
                    c.name
                );
            }
        }
    }
}

/// What each service would load from its rendered environment (kind, where the development
/// Secrets are rendered): the config is valid, authentication is on and the keys file is named.
#[test]
fn the_rendered_environment_loads_in_every_service() {
    let m = render(KIND_OVERLAY);
    for d in m.of_kind("Deployment") {
        let svc = d.name();
        let env: Vec<(String, String)> = env_of(&m, svc, None)
            .values()
            .into_iter()
            .filter(|(k, _)| k.starts_with("LOGJET_"))
            .collect();
        let loaded = match svc {
            "ingest" => load_from::<IngestConfig>(None, env).map(|c| {
                assert_eq!(c.api.auth, AuthSetting::On, "{svc}");
                assert!(c.api.api_keys_file.is_some(), "{svc}");
            }),
            "processor" => load_from::<ProcessorConfig>(None, env).map(|_| ()),
            "archiver" => load_from::<ArchiverConfig>(None, env).map(|_| ()),
            "query" => load_from::<QueryConfig>(None, env).map(|c| {
                assert_eq!(c.api.auth, AuthSetting::On, "{svc}");
                assert!(c.api.api_keys_file.is_some(), "{svc}");
            }),
            "dashboard" => load_from::<DashboardConfig>(None, env).map(|c| {
                assert_eq!(c.dashboard_auth, DashboardAuth::SignIn, "{svc}");
                assert!(c.query_api_key.is_none(), "the dashboard has a shared key");
            }),
            other => panic!("unexpected Deployment {other}"),
        };
        loaded.unwrap_or_else(|e| panic!("{svc}: the rendered environment does not load: {e}"));
    }
}

/// The probe paths the manifests declare are routes the services answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_paths_are_real_routes() {
    let p = logjet_tests::platform::Platform::start(1).await;
    for base in [p.ingest_url(), p.query_url(), p.processors[0].url()] {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let r = p.http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{base}{path}");
        }
    }
}
