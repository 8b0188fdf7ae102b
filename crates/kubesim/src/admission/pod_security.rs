//! The PodSecurity admission plugin: namespace labels
//! `pod-security.kubernetes.io/{enforce,warn,audit}[-version]` select a
//! level of the Pod Security Standards; `enforce` refuses Pods, `warn`
//! answers `Warning`s for Pods and workload templates. Checks, reasons and
//! details follow k8s.io/pod-security-admission/policy (check_*.go), and
//! the messages its admission.go builds:
//! <https://kubernetes.io/docs/concepts/security/pod-security-standards/>.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// One mode's level and version, printed `restricted:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: String,
}

impl std::fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// The namespace's policy; unset modes default to `privileged:latest`.
/// An unparsable level is evaluated as `restricted` (enforce, warn) or
/// `privileged` (audit), as `api.PolicyToEvaluate` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub warn: LevelVersion,
}

const PREFIX: &str = "pod-security.kubernetes.io/";

pub fn policy(namespace: &Value) -> Policy {
    let labels = &namespace["metadata"]["labels"];
    let mode = |m: &str| {
        let level = match labels[format!("{PREFIX}{m}")].as_str() {
            None => Level::Privileged,
            Some(l) => Level::parse(l).unwrap_or(Level::Restricted),
        };
        let version = labels[format!("{PREFIX}{m}-version")]
            .as_str()
            .filter(|v| *v == "latest" || v.starts_with("v1."))
            .unwrap_or("latest")
            .to_string();
        LevelVersion { level, version }
    };
    Policy {
        enforce: mode("enforce"),
        warn: mode("warn"),
    }
}

/// The pod metadata and spec a pod-carrying object declares (the template
/// of workloads), as the plugin's `PodSpecExtractor`.
pub fn pod_template<'a>(group: &str, resource: &str, obj: &'a Value) -> Option<&'a Value> {
    let t = match (group, resource) {
        ("", "pods") => obj,
        ("", "replicationcontrollers") | ("", "podtemplates") => &obj["spec"]["template"],
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => &obj["spec"]["template"],
        ("batch", "cronjobs") => &obj["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    if resource == "podtemplates" {
        return Some(&obj["template"]);
    }
    Some(t)
}

fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect()
}

fn name(c: &Value) -> String {
    c["name"].as_str().unwrap_or_default().to_string()
}

fn pluralize(one: &str, many: &str, n: usize) -> String {
    if n == 1 { one.into() } else { many.into() }
}

fn join_quote(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

type Violation = (&'static str, String);

fn host_namespaces(spec: &Value) -> Option<Violation> {
    let set: Vec<&str> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| spec[*k] == true)
        .collect();
    (!set.is_empty()).then(|| {
        (
            "host namespaces",
            set.iter()
                .map(|k| format!("{k}=true"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    })
}

fn privileged(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| c["securityContext"]["privileged"] == true)
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "privileged",
            format!(
                "{} {} must not set securityContext.privileged=true",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad)
            ),
        )
    })
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Value) -> Vec<String> {
    c["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn capabilities_baseline(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut caps = Vec::new();
    for c in containers(spec) {
        let extra: Vec<String> = added_capabilities(c)
            .into_iter()
            .filter(|a| !BASELINE_CAPABILITIES.contains(&a.as_str()))
            .collect();
        if !extra.is_empty() {
            bad.push(name(c));
            caps.extend(extra);
        }
    }
    (!bad.is_empty()).then(|| {
        (
            "non-default capabilities",
            format!(
                "{} {} must not include {} in securityContext.capabilities.add",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad),
                join_quote(&sorted_unique(caps))
            ),
        )
    })
}

fn host_path_volumes(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["hostPath"].is_object())
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "hostPath volumes",
            format!(
                "{} {}",
                pluralize("volume", "volumes", bad.len()),
                join_quote(&bad)
            ),
        )
    })
}

fn host_ports(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut ports = Vec::new();
    for c in containers(spec) {
        let used: Vec<i64> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["hostPort"].as_i64())
            .filter(|p| *p != 0)
            .collect();
        if !used.is_empty() {
            bad.push(name(c));
            ports.extend(used.iter().map(i64::to_string));
        }
    }
    let ports = sorted_unique(ports);
    (!bad.is_empty()).then(|| {
        (
            "hostPort",
            format!(
                "{} {} {} {} {}",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize("hostPort", "hostPorts", ports.len()),
                ports.join(", ")
            ),
        )
    })
}

fn proc_mount(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut values = Vec::new();
    for c in containers(spec) {
        if let Some(p) = c["securityContext"]["procMount"].as_str()
            && p != "Default"
        {
            bad.push(name(c));
            values.push(p.to_string());
        }
    }
    (!bad.is_empty()).then(|| {
        (
            "procMount",
            format!(
                "{} {} must not set securityContext.procMount to {}",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad),
                join_quote(&sorted_unique(values))
            ),
        )
    })
}

/// `pod`, `container "a"` ... that set `field` to a value `ok` refuses.
fn bad_setters(
    spec: &Value,
    field: &str,
    sub: Option<&str>,
    ok: impl Fn(&Value) -> bool,
) -> (Vec<String>, Vec<String>) {
    let get = |sc: &Value| match sub {
        Some(s) => sc[field][s].clone(),
        None => sc[field].clone(),
    };
    let mut setters = Vec::new();
    let mut values = Vec::new();
    let pod = get(&spec["securityContext"]);
    if !pod.is_null() && !ok(&pod) {
        setters.push("pod".to_string());
        values.push(pod.as_str().map(String::from).unwrap_or(pod.to_string()));
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        let v = get(&c["securityContext"]);
        if !v.is_null() && !ok(&v) {
            bad.push(name(c));
            values.push(v.as_str().map(String::from).unwrap_or(v.to_string()));
        }
    }
    if !bad.is_empty() {
        setters.push(format!(
            "{} {}",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad)
        ));
    }
    (setters, sorted_unique(values))
}

fn seccomp_baseline(spec: &Value) -> Option<Violation> {
    let (setters, values) =
        bad_setters(spec, "seccompProfile", Some("type"), |v| v != "Unconfined");
    (!setters.is_empty()).then(|| {
        (
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        )
    })
}

const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

fn sysctls(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(String::from)
        .collect();
    (!bad.is_empty()).then(|| ("forbidden sysctls", bad.join(", ")))
}

fn allow_privilege_escalation(spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| c["securityContext"]["allowPrivilegeEscalation"] != false)
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "allowPrivilegeEscalation != false",
            format!(
                "{} {} must set securityContext.allowPrivilegeEscalation=false",
                pluralize("container", "containers", bad.len()),
                join_quote(&bad)
            ),
        )
    })
}

fn capabilities_restricted(spec: &Value) -> Option<Violation> {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut caps = Vec::new();
    for c in containers(spec) {
        let drops_all = c["securityContext"]["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            missing_drop.push(name(c));
        }
        let extra: Vec<String> = added_capabilities(c)
            .into_iter()
            .filter(|a| a != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(name(c));
            caps.extend(extra);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} {} must set securityContext.capabilities.drop=[\"ALL\"]",
            pluralize("container", "containers", missing_drop.len()),
            join_quote(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} {} must not include {} in securityContext.capabilities.add",
            pluralize("container", "containers", adding.len()),
            join_quote(&adding),
            join_quote(&sorted_unique(caps))
        ));
    }
    (!details.is_empty()).then(|| ("unrestricted capabilities", details.join("; ")))
}

const ALLOWED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = Vec::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let Some(obj) = v.as_object() else { continue };
        let sources: Vec<&String> = obj.keys().filter(|k| *k != "name").collect();
        if sources
            .iter()
            .any(|k| ALLOWED_VOLUME_SOURCES.contains(&k.as_str()))
        {
            continue;
        }
        bad.push(name(v));
        types.push(
            sources
                .first()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
        );
    }
    let types = sorted_unique(types);
    (!bad.is_empty()).then(|| {
        (
            "restricted volume types",
            format!(
                "{} {} {} {} {}",
                pluralize("volume", "volumes", bad.len()),
                join_quote(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize(
                    "restricted volume type",
                    "restricted volume types",
                    types.len()
                ),
                join_quote(&types)
            ),
        )
    })
}

fn run_as_non_root(spec: &Value) -> Option<Violation> {
    let pod = &spec["securityContext"]["runAsNonRoot"];
    let mut setters = Vec::new();
    if *pod == false {
        setters.push("pod".to_string());
    }
    let pod_ok = *pod == true;
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match &c["securityContext"]["runAsNonRoot"] {
            Value::Bool(false) => explicit.push(name(c)),
            Value::Bool(true) => {}
            _ if !pod_ok => implicit.push(name(c)),
            _ => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(format!(
            "{} {}",
            pluralize("container", "containers", explicit.len()),
            join_quote(&explicit)
        ));
    }
    if !setters.is_empty() {
        return Some((
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        (
            "runAsNonRoot != true",
            format!(
                "pod or {} {} must set securityContext.runAsNonRoot=true",
                pluralize("container", "containers", implicit.len()),
                join_quote(&implicit)
            ),
        )
    })
}

fn run_as_user(spec: &Value) -> Option<Violation> {
    let (setters, _) = bad_setters(spec, "runAsUser", None, |v| v != 0);
    (!setters.is_empty()).then(|| {
        (
            "runAsUser=0",
            format!("{} must not set runAsUser=0", setters.join(" and ")),
        )
    })
}

fn seccomp_restricted(spec: &Value) -> Option<Violation> {
    let valid = |v: &Value| v == "RuntimeDefault" || v == "Localhost";
    let (setters, values) = bad_setters(spec, "seccompProfile", Some("type"), valid);
    if !setters.is_empty() {
        return Some((
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        ));
    }
    let pod_ok = valid(&spec["securityContext"]["seccompProfile"]["type"]);
    let implicit: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| c["securityContext"]["seccompProfile"].is_null() && !pod_ok)
        .map(name)
        .collect();
    (!implicit.is_empty()).then(|| {
        (
            "seccompProfile",
            format!(
                "pod or {} {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                pluralize("container", "containers", implicit.len()),
                join_quote(&implicit)
            ),
        )
    })
}

type Check = fn(&Value) -> Option<Violation>;

/// Checks of a level in check-ID order (the order the plugin reports them);
/// restricted checks replace the baseline checks they override
/// (restrictedVolumes → hostPathVolumes, capabilities_restricted →
/// capabilities_baseline, seccompProfile_restricted → seccompProfile_baseline).
fn checks(level: Level) -> Vec<Check> {
    match level {
        Level::Privileged => vec![],
        Level::Baseline => vec![
            capabilities_baseline,
            host_namespaces,
            host_path_volumes,
            host_ports,
            privileged,
            proc_mount,
            seccomp_baseline,
            sysctls,
        ],
        Level::Restricted => vec![
            allow_privilege_escalation,
            capabilities_restricted,
            host_namespaces,
            host_ports,
            privileged,
            proc_mount,
            restricted_volumes,
            run_as_non_root,
            run_as_user,
            seccomp_restricted,
            sysctls,
        ],
    }
}

/// `reason (detail), reason (detail)` for the template, or `None` if it
/// meets the level.
pub fn evaluate(level: Level, template: &Value) -> Option<String> {
    let spec = &template["spec"];
    let found: Vec<String> = checks(level)
        .into_iter()
        .filter_map(|c| c(spec))
        .map(|(reason, detail)| format!("{reason} ({detail})"))
        .collect();
    (!found.is_empty()).then(|| found.join(", "))
}

/// The outcome of admitting one object.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `violates PodSecurity "restricted:latest": ...` when enforce refuses.
    pub refused: Option<String>,
    pub warnings: Vec<String>,
}

/// Evaluates a Pod (`enforce` applies) or a workload (only `warn`).
pub fn admit(policy: &Policy, template: &Value, is_pod: bool) -> Outcome {
    let mut out = Outcome::default();
    if is_pod && let Some(v) = evaluate(policy.enforce.level, template) {
        out.refused = Some(format!("violates PodSecurity \"{}\": {v}", policy.enforce));
        // No warnings on a request that is refused anyway.
        return out;
    }
    if let Some(v) = evaluate(policy.warn.level, template) {
        out.warnings.push(format!(
            "would violate PodSecurity \"{}\": {v}",
            policy.warn
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_plain_container_violates_restricted_as_the_docs_show() {
        let pod = json!({"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
        assert_eq!(
            evaluate(Level::Restricted, &pod).unwrap(),
            "allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert_eq!(evaluate(Level::Baseline, &pod), None);
    }

    #[test]
    fn baseline_refuses_privileged_host_access() {
        let pod = json!({"spec": {
            "hostNetwork": true,
            "containers": [
                {"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "securityContext": {"privileged": true}},
            ],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        }});
        assert_eq!(
            evaluate(Level::Baseline, &pod).unwrap(),
            "non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), \
             host namespaces (hostNetwork=true), hostPath volumes (volume \"root\"), \
             hostPort (container \"a\" uses hostPort 8080), \
             privileged (containers \"a\", \"b\" must not set securityContext.privileged=true)"
        );
    }

    #[test]
    fn a_hardened_pod_meets_restricted() {
        let pod = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}}],
        }});
        assert_eq!(evaluate(Level::Restricted, &pod), None);
        let bad = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "app", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "data", "nfs": {"server": "x", "path": "/"}}],
        }});
        assert_eq!(
            evaluate(Level::Restricted, &bad).unwrap(),
            "restricted volume types (volume \"data\" uses restricted volume type \"nfs\"), \
             runAsUser=0 (pod must not set runAsUser=0), \
             seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
    }

    #[test]
    fn namespace_labels_select_the_policy() {
        let ns = json!({"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/warn-version": "v1.32",
        }}});
        let p = policy(&ns);
        assert_eq!(p.enforce.to_string(), "baseline:latest");
        assert_eq!(p.warn.to_string(), "restricted:v1.32");
        let none = policy(&json!({"metadata": {}}));
        assert_eq!(none.enforce.level, Level::Privileged);
        assert_eq!(none.warn.level, Level::Privileged);
    }
}
