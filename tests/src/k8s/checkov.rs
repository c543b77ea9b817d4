//! checkov's JSON report, judged: any failed check, parsing error or skip that is not justified in
//! its config file fails, and so does a scan that silently covered less than it should.

use serde_json::Value;

/// What a report says: the lines to show and whether it passes.
#[derive(Debug, Default)]
pub struct Verdict {
    pub lines: Vec<String>,
    pub ok: bool,
}

/// The kustomize targets scripts/k8s-validate.sh expects checkov to have scanned.
const KUSTOMIZE_TARGETS: [&str; 4] = [
    "base",
    "overlay:overlays/kind",
    "overlay:overlays/prod",
    "overlay:kind-monitoring",
];

/// The only skip allowed besides the config's skip-check list: CKV_K8S_15 by annotation in the
/// kind overlay and in kind-monitoring, which includes it (justified in infra/checkov/config.yaml;
/// checkov names the kind-monitoring overlay, an overlay of an overlay, without `overlays/`).
const JUSTIFIED_ANNOTATION_SKIP: (&str, [&str; 3]) = (
    "CKV_K8S_15",
    [
        "overlay:overlays/kind:",
        "overlay:overlays/kind-monitoring:",
        "overlay:kind-monitoring:",
    ],
);

/// Parses the report (one object, or a list of one per framework); `exit` is checkov's status.
fn reports(json: &str, exit: i32, v: &mut Verdict) -> Option<Vec<Value>> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Array(list)) => Some(list),
        Ok(one @ Value::Object(_)) => Some(vec![one]),
        _ => {
            v.lines
                .push(format!("checkov produced no JSON report (exit {exit})"));
            v.ok = false;
            None
        }
    }
}

fn list<'a>(r: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    r["results"][key].as_array().into_iter().flatten()
}

fn summary_ok(r: &Value) -> bool {
    let s = &r["summary"];
    s["failed"].as_u64() == Some(0) && s["parsing_errors"].as_u64().unwrap_or(0) == 0
}

/// The Kubernetes scan (`--framework kubernetes,kustomize`, infra/checkov/config.yaml).
pub fn kubernetes(json: &str, exit: i32) -> Verdict {
    let mut v = Verdict {
        lines: Vec::new(),
        ok: exit == 0,
    };
    let Some(reports) = reports(json, exit, &mut v) else {
        return v;
    };
    for fw in ["kubernetes", "kustomize"] {
        if !reports.iter().any(|r| r["check_type"] == fw) {
            v.lines.push(format!("checkov ran no {fw} scan"));
            v.ok = false;
        }
    }
    for r in &reports {
        for f in list(r, "failed_checks") {
            v.lines.push(format!(
                "FAILED {} {}: {} ({})",
                s(&f["check_id"]),
                s(&f["check_name"]),
                s(&f["resource"]),
                s(&f["file_path"])
            ));
        }
        for f in list(r, "skipped_checks") {
            let (id, prefixes) = JUSTIFIED_ANNOTATION_SKIP;
            let resource = s(&f["resource"]);
            if !(f["check_id"] == id && prefixes.iter().any(|p| resource.starts_with(p))) {
                v.lines.push(format!(
                    "UNJUSTIFIED SKIP {}: {resource} (justify it in infra/checkov/config.yaml first)",
                    s(&f["check_id"])
                ));
                v.ok = false;
            }
        }
        if r["check_type"] == "kustomize" {
            let scanned: Vec<&str> = list(r, "passed_checks")
                .map(|p| s(&p["resource"]).rsplit_once(':').map_or("", |(t, _)| t))
                .collect();
            for want in KUSTOMIZE_TARGETS {
                let alt = want.replace("overlay:", "overlay:overlays/");
                if !scanned.contains(&want) && !scanned.contains(&alt.as_str()) {
                    v.lines.push(format!(
                        "checkov did not scan {want} (a failed kustomize build is silently skipped)"
                    ));
                    v.ok = false;
                }
            }
        }
        v.ok &= summary_ok(r);
        let sm = &r["summary"];
        v.lines.push(format!(
            "{}: {} passed, {} failed, {} skipped",
            s(&r["check_type"]),
            sm["passed"],
            sm["failed"],
            sm["skipped"]
        ));
    }
    v
}

/// The Dockerfile scan (`--framework dockerfile`); `config` is the text of its config file,
/// where every skip-check needs a comment line starting with its id.
pub fn dockerfile(json: &str, exit: i32, config_path: &str, config: &str) -> Verdict {
    let mut v = Verdict {
        lines: Vec::new(),
        ok: exit == 0,
    };
    let settings: Value = serde_yaml_ng::from_str(config).unwrap_or(Value::Null);
    if settings["framework"] != serde_json::json!(["dockerfile"]) {
        v.lines
            .push(format!("{config_path}: framework must be [dockerfile]"));
        v.ok = false;
    }
    let skips: Vec<&str> = settings["skip-check"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for check in &skips {
        if !config.lines().any(|l| justifies(l, check)) {
            v.lines.push(format!(
                "UNJUSTIFIED SKIP {check}: explain it in a comment in {config_path}"
            ));
            v.ok = false;
        }
    }
    let Some(reports) = reports(json, exit, &mut v) else {
        return v;
    };
    if !reports.iter().any(|r| r["check_type"] == "dockerfile") {
        v.lines.push("checkov ran no dockerfile scan".into());
        v.ok = false;
    }
    let skipped = if skips.is_empty() {
        "none".to_string()
    } else {
        skips.join(", ")
    };
    for r in &reports {
        for f in list(r, "failed_checks") {
            v.lines.push(format!(
                "FAILED {} {}: {}:{}",
                s(&f["check_id"]),
                s(&f["check_name"]),
                s(&f["file_path"]),
                f["file_line_range"]
            ));
        }
        for f in list(r, "skipped_checks") {
            v.lines.push(format!(
                "UNJUSTIFIED SKIP {} (inline suppression; skip it in {config_path})",
                s(&f["check_id"])
            ));
            v.ok = false;
        }
        if r["summary"]["resource_count"].as_u64().unwrap_or(0) < 1 {
            v.lines.push("checkov scanned no Dockerfile".into());
            v.ok = false;
        }
        v.ok &= summary_ok(r);
        let sm = &r["summary"];
        v.lines.push(format!(
            "{}: {} passed, {} failed (skipped by {config_path}: {skipped})",
            s(&r["check_type"]),
            sm["passed"],
            sm["failed"]
        ));
    }
    v
}

/// `# CHECK_ID ...`: a comment line that starts with the check's id, as a whole word.
fn justifies(line: &str, check: &str) -> bool {
    line.strip_prefix('#')
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix(check))
        .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(check_type: &str, failed: &str, skipped: &str, passed: &str) -> String {
        format!(
            r#"{{"check_type": "{check_type}", "summary": {{"passed": 1, "failed": {n}, "skipped": 0,
            "parsing_errors": 0, "resource_count": 1}}, "results": {{"failed_checks": [{failed}],
            "skipped_checks": [{skipped}], "passed_checks": [{passed}]}}}}"#,
            n = if failed.is_empty() { 0 } else { 1 }
        )
    }

    const SCANNED: &str = r#"{"resource": "base:Deployment.x"}, {"resource": "overlay:overlays/kind:D.x"},
        {"resource": "overlay:overlays/prod:D.x"}, {"resource": "overlay:kind-monitoring:D.x"}"#;

    #[test]
    fn kubernetes_reports_pass_only_when_clean_and_complete() {
        let ok = format!(
            "[{}, {}]",
            report("kubernetes", "", "", ""),
            report("kustomize", "", "", SCANNED)
        );
        assert!(kubernetes(&ok, 0).ok);
        assert!(!kubernetes(&ok, 1).ok, "checkov's own exit status counts");
        assert!(!kubernetes("not json", 0).ok);
        assert!(
            !kubernetes(&report("kubernetes", "", "", ""), 0).ok,
            "no kustomize scan"
        );
        let partial = format!(
            "[{}, {}]",
            report("kubernetes", "", "", ""),
            report("kustomize", "", "", r#"{"resource": "base:D.x"}"#)
        );
        assert!(!kubernetes(&partial, 0).ok, "an overlay not scanned");
        let justified =
            r#"{"check_id": "CKV_K8S_15", "resource": "overlay:overlays/kind:Deployment.x"}"#;
        let other = r#"{"check_id": "CKV_K8S_15", "resource": "base:Deployment.x"}"#;
        let with = |skip: &str| {
            format!(
                "[{}, {}]",
                report("kubernetes", "", skip, ""),
                report("kustomize", "", "", SCANNED)
            )
        };
        assert!(kubernetes(&with(justified), 0).ok);
        let v = kubernetes(&with(other), 0);
        assert!(
            !v.ok
                && v.lines
                    .iter()
                    .any(|l| l.starts_with("UNJUSTIFIED SKIP CKV_K8S_15"))
        );
        let failed =
            r#"{"check_id": "CKV_K8S_1", "check_name": "n", "resource": "r", "file_path": "f"}"#;
        let v = kubernetes(
            &format!(
                "[{}, {}]",
                report("kubernetes", failed, "", ""),
                report("kustomize", "", "", SCANNED)
            ),
            0,
        );
        assert!(!v.ok && v.lines.contains(&"FAILED CKV_K8S_1 n: r (f)".to_string()));
    }

    #[test]
    fn dockerfile_skips_need_a_justifying_comment() {
        let config =
            "# CKV_DOCKER_2 because\nframework: [dockerfile]\nskip-check: [CKV_DOCKER_2]\n";
        let r = report("dockerfile", "", "", "");
        assert!(dockerfile(&r, 0, "c.yaml", config).ok);
        let unjustified =
            "# CKV_DOCKER_22 other\nframework: [dockerfile]\nskip-check: [CKV_DOCKER_2]\n";
        assert!(!dockerfile(&r, 0, "c.yaml", unjustified).ok);
        let inline = report("dockerfile", "", r#"{"check_id": "CKV_DOCKER_3"}"#, "");
        assert!(!dockerfile(&inline, 0, "c.yaml", config).ok);
        assert!(!dockerfile(&r, 0, "c.yaml", "framework: [kubernetes]\n").ok);
    }
}
