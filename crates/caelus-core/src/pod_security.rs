//! The Pod Security Standards, checked on rendered pod templates before
//! anything is applied.
//!
//! The namespace's `pod-security.kubernetes.io/enforce` label stays the
//! cluster's own enforcement; this is the early refusal that names the
//! object, the container and the field. The checks and their order follow
//! the Pod Security admission plugin at its `latest` version
//! (k8s.io/pod-security-admission/policy, `check_*.go`) as documented in
//! <https://kubernetes.io/docs/concepts/security/pod-security-standards/>:
//! `restricted` is `baseline` plus its own checks, and replaces the
//! baseline checks it tightens (volume types for hostPath, capabilities,
//! seccomp).

use serde_json::Value;

use crate::template::PodSecurityLevel;

/// One field of a pod template that the level refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check's name as the admission plugin reports it (`host namespaces`).
    pub check: &'static str,
    /// The container at fault, `None` for pod-level fields.
    pub container: Option<String>,
    /// The field, as a path inside the pod spec (`spec.hostNetwork`,
    /// `containers[0].securityContext.privileged`).
    pub field: String,
    /// What is wrong and what is allowed.
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.container {
            Some(c) => write!(
                f,
                "{}: container {c:?} {} ({})",
                self.check, self.field, self.detail
            ),
            None => write!(f, "{}: {} ({})", self.check, self.field, self.detail),
        }
    }
}

/// The pod template a rendered object carries, with the path to it, as the
/// admission plugin's pod-spec extractor finds it: Pods themselves, the
/// `spec.template` of workloads and the job template of CronJobs.
pub fn pod_template_of(object: &Value) -> Option<(&'static str, &Value)> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let (path, template) = match kind {
        "Pod" => ("", object),
        "PodTemplate" => ("template", &object["template"]),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => ("spec.template", &object["spec"]["template"]),
        "CronJob" => (
            "spec.jobTemplate.spec.template",
            &object["spec"]["jobTemplate"]["spec"]["template"],
        ),
        _ => return None,
    };
    template.get("spec").is_some().then_some((path, template))
}

/// Every finding of `level` on one pod template (`metadata` + `spec`), in
/// the plugin's check order. `privileged` finds nothing.
pub fn check_pod_template(level: PodSecurityLevel, template: &Value) -> Vec<Finding> {
    let spec = &template["spec"];
    let mut out = Vec::new();
    if level == PodSecurityLevel::Privileged {
        return out;
    }
    let restricted = level == PodSecurityLevel::Restricted;
    if restricted {
        allow_privilege_escalation(spec, &mut out);
    }
    app_armor(template, spec, &mut out);
    if restricted {
        capabilities_restricted(spec, &mut out);
    } else {
        capabilities_baseline(spec, &mut out);
    }
    host_namespaces(spec, &mut out);
    if !restricted {
        host_path_volumes(spec, &mut out);
    }
    host_ports(spec, &mut out);
    host_process(spec, &mut out);
    privileged(spec, &mut out);
    probe_hosts(spec, &mut out);
    proc_mount(spec, &mut out);
    if restricted {
        restricted_volumes(spec, &mut out);
        run_as_non_root(spec, &mut out);
        run_as_user(spec, &mut out);
    }
    se_linux(spec, &mut out);
    if restricted {
        seccomp_restricted(spec, &mut out);
    } else {
        seccomp_baseline(spec, &mut out);
    }
    sysctls(spec, &mut out);
    out
}

/// `(field prefix, container)` for every container, init container and
/// ephemeral container.
fn containers(spec: &Value) -> Vec<(String, &Value)> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| {
            spec[*list]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(move |(i, c)| (format!("{list}[{i}]"), c))
        })
        .collect()
}

fn container_name(c: &Value) -> Option<String> {
    Some(c["name"].as_str().unwrap_or("").to_string())
}

fn finding(
    check: &'static str,
    container: Option<String>,
    field: String,
    detail: impl Into<String>,
) -> Finding {
    Finding {
        check,
        container,
        field,
        detail: detail.into(),
    }
}

fn host_namespaces(spec: &Value, out: &mut Vec<Finding>) {
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[field] == true {
            out.push(finding(
                "host namespaces",
                None,
                format!("spec.{field}"),
                format!("{field}=true shares the node's namespace; it must be unset or false"),
            ));
        }
    }
}

fn privileged(spec: &Value, out: &mut Vec<Finding>) {
    for (at, c) in containers(spec) {
        if c["securityContext"]["privileged"] == true {
            out.push(finding(
                "privileged",
                container_name(c),
                format!("{at}.securityContext.privileged"),
                "privileged containers are not allowed; it must be unset or false",
            ));
        }
    }
}

/// Capabilities a baseline container may add (the Docker default set).
pub const BASELINE_CAPABILITIES: &[&str] = &[
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

fn added(c: &Value) -> Vec<String> {
    c["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn capabilities_baseline(spec: &Value, out: &mut Vec<Finding>) {
    for (at, c) in containers(spec) {
        let extra: Vec<String> = added(c)
            .into_iter()
            .filter(|a| !BASELINE_CAPABILITIES.contains(&a.as_str()))
            .collect();
        if !extra.is_empty() {
            out.push(finding(
                "non-default capabilities",
                container_name(c),
                format!("{at}.securityContext.capabilities.add"),
                format!(
                    "adds {}; only {} may be added",
                    extra.join(", "),
                    BASELINE_CAPABILITIES.join(", ")
                ),
            ));
        }
    }
}

fn capabilities_restricted(spec: &Value, out: &mut Vec<Finding>) {
    for (at, c) in containers(spec) {
        let drops_all = c["securityContext"]["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            out.push(finding(
                "unrestricted capabilities",
                container_name(c),
                format!("{at}.securityContext.capabilities.drop"),
                "must drop ALL",
            ));
        }
        let extra: Vec<String> = added(c)
            .into_iter()
            .filter(|a| a != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            out.push(finding(
                "unrestricted capabilities",
                container_name(c),
                format!("{at}.securityContext.capabilities.add"),
                format!(
                    "adds {}; only NET_BIND_SERVICE may be added",
                    extra.join(", ")
                ),
            ));
        }
    }
}

fn host_path_volumes(spec: &Value, out: &mut Vec<Finding>) {
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        if v.get("hostPath").is_some_and(|h| !h.is_null()) {
            out.push(finding(
                "hostPath volumes",
                None,
                format!("spec.volumes[{i}].hostPath"),
                format!(
                    "volume {:?} mounts a path of the node; hostPath volumes are not allowed",
                    v["name"].as_str().unwrap_or("")
                ),
            ));
        }
    }
}

fn host_ports(spec: &Value, out: &mut Vec<Finding>) {
    for (at, c) in containers(spec) {
        for (i, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
            if let Some(port) = p["hostPort"].as_i64()
                && port != 0
            {
                out.push(finding(
                    "hostPort",
                    container_name(c),
                    format!("{at}.ports[{i}].hostPort"),
                    format!("hostPort {port} binds a port of the node; it must be unset or 0"),
                ));
            }
        }
    }
}

fn host_process(spec: &Value, out: &mut Vec<Finding>) {
    if spec["securityContext"]["windowsOptions"]["hostProcess"] == true {
        out.push(finding(
            "hostProcess",
            None,
            "spec.securityContext.windowsOptions.hostProcess".into(),
            "Windows host processes are not allowed",
        ));
    }
    for (at, c) in containers(spec) {
        if c["securityContext"]["windowsOptions"]["hostProcess"] == true {
            out.push(finding(
                "hostProcess",
                container_name(c),
                format!("{at}.securityContext.windowsOptions.hostProcess"),
                "Windows host processes are not allowed",
            ));
        }
    }
}

/// Probes and lifecycle handlers may not name a host (Kubernetes 1.34's
/// `probeHost` check): the kubelet would connect from the node to it.
fn probe_hosts(spec: &Value, out: &mut Vec<Finding>) {
    for (at, c) in containers(spec) {
        let handlers = [
            ("livenessProbe", &c["livenessProbe"]),
            ("readinessProbe", &c["readinessProbe"]),
            ("startupProbe", &c["startupProbe"]),
            ("lifecycle.postStart", &c["lifecycle"]["postStart"]),
            ("lifecycle.preStop", &c["lifecycle"]["preStop"]),
        ];
        for (name, h) in handlers {
            for action in ["httpGet", "tcpSocket"] {
                if let Some(host) = h[action]["host"].as_str()
                    && !host.is_empty()
                {
                    out.push(finding(
                        "probe or lifecycle host",
                        container_name(c),
                        format!("{at}.{name}.{action}.host"),
                        format!("host {host:?} is not allowed; it must be unset"),
                    ));
                }
            }
        }
    }
}

fn proc_mount(spec: &Value, out: &mut Vec<Finding>) {
    for (at, c) in containers(spec) {
        if let Some(p) = c["securityContext"]["procMount"].as_str()
            && p != "Default"
        {
            out.push(finding(
                "procMount",
                container_name(c),
                format!("{at}.securityContext.procMount"),
                format!("{p:?} is not allowed; it must be unset or \"Default\""),
            ));
        }
    }
}

fn app_armor(template: &Value, spec: &Value, out: &mut Vec<Finding>) {
    let ok_type = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    if let Some(t) = spec["securityContext"]["appArmorProfile"]["type"].as_str()
        && !ok_type(t)
    {
        out.push(finding(
            "appArmorProfile",
            None,
            "spec.securityContext.appArmorProfile.type".into(),
            format!("{t:?} is not allowed; use RuntimeDefault or Localhost"),
        ));
    }
    for (at, c) in containers(spec) {
        if let Some(t) = c["securityContext"]["appArmorProfile"]["type"].as_str()
            && !ok_type(t)
        {
            out.push(finding(
                "appArmorProfile",
                container_name(c),
                format!("{at}.securityContext.appArmorProfile.type"),
                format!("{t:?} is not allowed; use RuntimeDefault or Localhost"),
            ));
        }
    }
    const PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
    if let Some(annotations) = template["metadata"]["annotations"].as_object() {
        for (key, value) in annotations {
            let Some(container) = key.strip_prefix(PREFIX) else {
                continue;
            };
            let v = value.as_str().unwrap_or("");
            if !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")) {
                out.push(finding(
                    "appArmorProfile",
                    Some(container.to_string()),
                    format!("metadata.annotations[{key:?}]"),
                    format!("{v:?} is not allowed; use runtime/default or localhost/*"),
                ));
            }
        }
    }
}

fn se_linux(spec: &Value, out: &mut Vec<Finding>) {
    const TYPES: &[&str] = &[
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    let mut check = |opts: &Value, container: Option<String>, at: String| {
        if let Some(t) = opts["type"].as_str()
            && !TYPES.contains(&t)
        {
            out.push(finding(
                "seLinuxOptions",
                container.clone(),
                format!("{at}.seLinuxOptions.type"),
                format!(
                    "{t:?} is not allowed; use container_t, container_init_t, container_kvm_t or container_engine_t"
                ),
            ));
        }
        for field in ["user", "role"] {
            if opts[field].as_str().is_some_and(|s| !s.is_empty()) {
                out.push(finding(
                    "seLinuxOptions",
                    container.clone(),
                    format!("{at}.seLinuxOptions.{field}"),
                    "must be unset",
                ));
            }
        }
    };
    check(
        &spec["securityContext"]["seLinuxOptions"],
        None,
        "spec.securityContext".into(),
    );
    for (at, c) in containers(spec) {
        check(
            &c["securityContext"]["seLinuxOptions"],
            container_name(c),
            format!("{at}.securityContext"),
        );
    }
}

fn seccomp_baseline(spec: &Value, out: &mut Vec<Finding>) {
    if spec["securityContext"]["seccompProfile"]["type"] == "Unconfined" {
        out.push(finding(
            "seccompProfile",
            None,
            "spec.securityContext.seccompProfile.type".into(),
            "\"Unconfined\" is not allowed",
        ));
    }
    for (at, c) in containers(spec) {
        if c["securityContext"]["seccompProfile"]["type"] == "Unconfined" {
            out.push(finding(
                "seccompProfile",
                container_name(c),
                format!("{at}.securityContext.seccompProfile.type"),
                "\"Unconfined\" is not allowed",
            ));
        }
    }
}

fn seccomp_restricted(spec: &Value, out: &mut Vec<Finding>) {
    let valid = |v: &Value| v == "RuntimeDefault" || v == "Localhost";
    let pod = &spec["securityContext"]["seccompProfile"]["type"];
    if !pod.is_null() && !valid(pod) {
        out.push(finding(
            "seccompProfile",
            None,
            "spec.securityContext.seccompProfile.type".into(),
            format!("{pod} is not allowed; use RuntimeDefault or Localhost"),
        ));
    }
    for (at, c) in containers(spec) {
        let t = &c["securityContext"]["seccompProfile"]["type"];
        if t.is_null() {
            // Containers inherit the pod's profile; only when neither sets
            // one is the container at fault (a bad pod value is reported once).
            if pod.is_null() {
                out.push(finding(
                    "seccompProfile",
                    container_name(c),
                    format!("{at}.securityContext.seccompProfile.type"),
                    "must be RuntimeDefault or Localhost (here or on the pod)",
                ));
            }
        } else if !valid(t) {
            out.push(finding(
                "seccompProfile",
                container_name(c),
                format!("{at}.securityContext.seccompProfile.type"),
                format!("{t} is not allowed; use RuntimeDefault or Localhost"),
            ));
        }
    }
}

/// Sysctls that are namespaced and isolated between pods.
pub const SAFE_SYSCTLS: &[&str] = &[
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

fn sysctls(spec: &Value, out: &mut Vec<Finding>) {
    for (i, s) in spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = s["name"].as_str().unwrap_or("");
        if !SAFE_SYSCTLS.contains(&name) {
            out.push(finding(
                "forbidden sysctls",
                None,
                format!("spec.securityContext.sysctls[{i}]"),
                format!("{name:?} is not a safe sysctl"),
            ));
        }
    }
}

fn allow_privilege_escalation(spec: &Value, out: &mut Vec<Finding>) {
    for (at, c) in containers(spec) {
        if c["securityContext"]["allowPrivilegeEscalation"] != false {
            out.push(finding(
                "allowPrivilegeEscalation != false",
                container_name(c),
                format!("{at}.securityContext.allowPrivilegeEscalation"),
                "must be set to false",
            ));
        }
    }
}

/// Volume sources a restricted pod may use.
pub const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(spec: &Value, out: &mut Vec<Finding>) {
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let Some(obj) = v.as_object() else { continue };
        for (source, value) in obj {
            if source == "name" || value.is_null() {
                continue;
            }
            if !RESTRICTED_VOLUME_SOURCES.contains(&source.as_str()) {
                out.push(finding(
                    "restricted volume types",
                    None,
                    format!("spec.volumes[{i}].{source}"),
                    format!(
                        "volume {:?} uses {source}; only {} are allowed",
                        v["name"].as_str().unwrap_or(""),
                        RESTRICTED_VOLUME_SOURCES.join(", ")
                    ),
                ));
            }
        }
    }
}

fn run_as_non_root(spec: &Value, out: &mut Vec<Finding>) {
    let pod = &spec["securityContext"]["runAsNonRoot"];
    if *pod == false {
        out.push(finding(
            "runAsNonRoot != true",
            None,
            "spec.securityContext.runAsNonRoot".into(),
            "must not be false",
        ));
    }
    for (at, c) in containers(spec) {
        match &c["securityContext"]["runAsNonRoot"] {
            Value::Bool(true) => {}
            Value::Bool(false) => out.push(finding(
                "runAsNonRoot != true",
                container_name(c),
                format!("{at}.securityContext.runAsNonRoot"),
                "must not be false",
            )),
            _ if *pod != true => out.push(finding(
                "runAsNonRoot != true",
                container_name(c),
                format!("{at}.securityContext.runAsNonRoot"),
                "must be true (here or on the pod)",
            )),
            _ => {}
        }
    }
}

fn run_as_user(spec: &Value, out: &mut Vec<Finding>) {
    if spec["securityContext"]["runAsUser"] == 0 {
        out.push(finding(
            "runAsUser=0",
            None,
            "spec.securityContext.runAsUser".into(),
            "must not be 0 (root)",
        ));
    }
    for (at, c) in containers(spec) {
        if c["securityContext"]["runAsUser"] == 0 {
            out.push(finding(
                "runAsUser=0",
                container_name(c),
                format!("{at}.securityContext.runAsUser"),
                "must not be 0 (root)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PodSecurityLevel::{Baseline, Privileged, Restricted};
    use serde_json::json;

    fn checks(level: PodSecurityLevel, template: &Value) -> Vec<(&'static str, String)> {
        check_pod_template(level, template)
            .into_iter()
            .map(|f| (f.check, f.field))
            .collect()
    }

    #[test]
    fn a_plain_container_meets_baseline_but_not_restricted() {
        let pod = json!({"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
        assert!(check_pod_template(Baseline, &pod).is_empty());
        assert_eq!(
            checks(Restricted, &pod),
            vec![
                (
                    "allowPrivilegeEscalation != false",
                    "containers[0].securityContext.allowPrivilegeEscalation".into()
                ),
                (
                    "unrestricted capabilities",
                    "containers[0].securityContext.capabilities.drop".into()
                ),
                (
                    "runAsNonRoot != true",
                    "containers[0].securityContext.runAsNonRoot".into()
                ),
                (
                    "seccompProfile",
                    "containers[0].securityContext.seccompProfile.type".into()
                ),
            ]
        );
    }

    #[test]
    fn baseline_refuses_host_access_naming_container_and_field() {
        let pod = json!({"spec": {
            "hostNetwork": true, "hostPID": true, "hostIPC": false,
            "containers": [
                {"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
            ],
            "initContainers": [{"name": "init", "securityContext": {"procMount": "Unmasked"}}],
            "volumes": [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "root", "hostPath": {"path": "/"}}],
        }});
        let found = check_pod_template(Baseline, &pod);
        let fields: Vec<&str> = found.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "containers[0].securityContext.capabilities.add",
                "spec.hostNetwork",
                "spec.hostPID",
                "spec.volumes[1].hostPath",
                "containers[0].ports[0].hostPort",
                "containers[0].securityContext.privileged",
                "initContainers[0].securityContext.procMount",
            ]
        );
        assert_eq!(found[0].container.as_deref(), Some("a"));
        assert!(
            found[0].detail.contains("NET_ADMIN")
                && !found[0].detail.starts_with("adds NET_ADMIN, CHOWN")
        );
        assert_eq!(found[1].container, None);
        assert_eq!(found[6].container.as_deref(), Some("init"));
        assert!(found[3].to_string().contains("\"root\""), "{}", found[3]);
        assert!(check_pod_template(Privileged, &pod).is_empty());
    }

    #[test]
    fn baseline_seccomp_sysctls_selinux_apparmor_hostprocess_probes() {
        let pod = json!({
            "metadata": {"annotations": {
                "container.apparmor.security.beta.kubernetes.io/app": "unconfined",
                "container.apparmor.security.beta.kubernetes.io/ok": "runtime/default",
            }},
            "spec": {
                "securityContext": {
                    "seccompProfile": {"type": "Unconfined"},
                    "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}],
                    "seLinuxOptions": {"type": "spc_t"},
                    "windowsOptions": {"hostProcess": true},
                },
                "containers": [{"name": "app",
                    "securityContext": {"appArmorProfile": {"type": "Unconfined"}, "seLinuxOptions": {"user": "root", "type": "container_t"}},
                    "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
                    "readinessProbe": {"tcpSocket": {"port": 80}}}],
            }
        });
        let found = checks(Baseline, &pod);
        let names: Vec<&str> = found.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            names,
            vec![
                "appArmorProfile",
                "appArmorProfile",
                "hostProcess",
                "probe or lifecycle host",
                "seLinuxOptions",
                "seLinuxOptions",
                "seccompProfile",
                "forbidden sysctls",
            ]
        );
        assert!(found.contains(&(
            "forbidden sysctls",
            "spec.securityContext.sysctls[1]".to_string()
        )));
        assert!(found.contains(&(
            "seLinuxOptions",
            "containers[0].securityContext.seLinuxOptions.user".to_string()
        )));
    }

    #[test]
    fn a_hardened_pod_meets_restricted() {
        let pod = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}}, {"name": "d", "persistentVolumeClaim": {"claimName": "d"}}],
        }});
        assert!(check_pod_template(Restricted, &pod).is_empty());
    }

    #[test]
    fn restricted_refuses_root_volume_types_and_capabilities() {
        let pod = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "app", "securityContext": {
                "allowPrivilegeEscalation": false, "runAsNonRoot": false,
                "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}}],
            "volumes": [{"name": "data", "nfs": {"server": "x", "path": "/"}}, {"name": "h", "hostPath": {"path": "/"}}],
        }});
        let found = checks(Restricted, &pod);
        let names: Vec<&str> = found.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            names,
            vec![
                "unrestricted capabilities",
                "restricted volume types",
                "restricted volume types",
                "runAsNonRoot != true",
                "runAsUser=0",
                "seccompProfile",
            ]
        );
        assert!(found.contains(&(
            "restricted volume types",
            "spec.volumes[1].hostPath".to_string()
        )));
    }

    #[test]
    fn pod_templates_are_found_in_every_workload_kind() {
        let spec = json!({"spec": {"containers": []}});
        for kind in [
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
        ] {
            let o = json!({"kind": kind, "spec": {"template": spec}});
            assert_eq!(pod_template_of(&o).unwrap().0, "spec.template", "{kind}");
        }
        let cron =
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": spec}}}});
        assert_eq!(
            pod_template_of(&cron).unwrap().0,
            "spec.jobTemplate.spec.template"
        );
        let pod = json!({"kind": "Pod", "spec": {"containers": []}});
        assert_eq!(pod_template_of(&pod).unwrap().0, "");
        assert!(pod_template_of(&json!({"kind": "ConfigMap"})).is_none());
    }
}
