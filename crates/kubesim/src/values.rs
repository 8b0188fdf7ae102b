//! Value validation for fields charts get wrong, with the API server's
//! 422 causes: label and annotation keys and label values
//! (k8s.io/apimachinery/pkg/util/validation), negative replica counts,
//! and port ranges (pkg/apis/core/validation, pkg/apis/apps/validation).

use serde_json::Value;

use crate::errors::Cause;
use crate::resources::ResourceInfo;

/// `validation.RegexError`: examples each followed by `, ` and joined by ` or `.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        ex.join(" or ")
    )
}

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter()
            .all(|c| alnum(*c) || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// `IsQualifiedName`: `[prefix/]name`.
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if key.matches('/').count() > 1 {
        errs.push(regex_error(
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]",
            &["MyName", "my.name", "123-abc"],
        ) + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
        return errs;
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".into());
        } else if !is_dns_subdomain(p) {
            errs.push(format!(
                "prefix part {}",
                regex_error(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                    &["example.com"],
                )
            ));
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".into());
    }
    if !name.is_empty() && !is_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]",
                &["MyName", "my.name", "123-abc"],
            )
        ));
    }
    errs
}

pub fn label_value_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !v.is_empty() && !is_name_part(v) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn meta_causes(obj: &Value, prefix: &str, out: &mut Vec<Cause>) {
    let m = &obj["metadata"];
    for (k, v) in m["labels"].as_object().into_iter().flatten() {
        for e in qualified_name_errors(k) {
            out.push(Cause::invalid(
                &format!("{prefix}metadata.labels"),
                &format!("{k:?}"),
                &e,
            ));
        }
        for e in label_value_errors(v.as_str().unwrap_or_default()) {
            out.push(Cause::invalid(
                &format!("{prefix}metadata.labels"),
                &format!("{:?}", v.as_str().unwrap_or_default()),
                &e,
            ));
        }
    }
    for k in m["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        for e in qualified_name_errors(&k.to_lowercase()) {
            out.push(Cause::invalid(
                &format!("{prefix}metadata.annotations"),
                &format!("{k:?}"),
                &e,
            ));
        }
    }
}

fn port_causes(field: &str, v: &Value, out: &mut Vec<Cause>) {
    if let Some(p) = v.as_i64()
        && !(1..=65535).contains(&p)
    {
        out.push(Cause::invalid(
            field,
            &p.to_string(),
            "must be between 1 and 65535, inclusive",
        ));
    }
}

fn pod_spec_causes(spec: &Value, prefix: &str, out: &mut Vec<Cause>) {
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
                port_causes(
                    &format!("{prefix}{list}[{i}].ports[{j}].containerPort"),
                    &p["containerPort"],
                    out,
                );
            }
        }
    }
}

/// Causes for an object being created or updated.
pub fn validate(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    meta_causes(obj, "", &mut out);
    if info.crd.is_some() {
        return out;
    }
    let template_spec = match (info.group.as_str(), info.resource.as_str()) {
        ("apps", "deployments" | "statefulsets" | "replicasets")
        | ("", "replicationcontrollers") => {
            if let Some(r) = obj["spec"]["replicas"].as_i64()
                && r < 0
            {
                out.push(Cause::invalid(
                    "spec.replicas",
                    &r.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
            Some("spec.template.spec.")
        }
        ("apps", "daemonsets") | ("batch", "jobs") => Some("spec.template.spec."),
        ("", "pods") => Some("spec."),
        ("", "services") => {
            for (i, p) in obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                port_causes(&format!("spec.ports[{i}].port"), &p["port"], &mut out);
                if p["targetPort"].is_i64() {
                    port_causes(
                        &format!("spec.ports[{i}].targetPort"),
                        &p["targetPort"],
                        &mut out,
                    );
                }
            }
            None
        }
        _ => None,
    };
    if let Some(prefix) = template_spec {
        if prefix.starts_with("spec.template") {
            meta_causes(&obj["spec"]["template"], "spec.template.", &mut out);
            pod_spec_causes(&obj["spec"]["template"]["spec"], prefix, &mut out);
        } else {
            pod_spec_causes(&obj["spec"], prefix, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_syntax_messages_match_apimachinery() {
        assert!(qualified_name_errors("app.kubernetes.io/name").is_empty());
        assert!(label_value_errors("").is_empty());
        assert_eq!(
            label_value_errors("bad value!"),
            [
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ]
        );
        assert_eq!(
            qualified_name_errors("Example.com/x"),
            [
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        assert_eq!(
            qualified_name_errors(&"a".repeat(64)),
            ["name part must be no more than 63 characters"]
        );
    }
}
