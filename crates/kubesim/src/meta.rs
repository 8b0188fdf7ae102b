//! Object metadata helpers: name validation with the API server's messages,
//! timestamps, and small JSON accessors used everywhere.

use serde_json::{Map, Value};

use crate::errors::Cause;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Which name rule a resource uses (`ValidateObjectMeta`'s name function).
#[derive(Debug, Clone, Copy)]
pub enum NameRule {
    Subdomain,
    Label,
    Dns1035,
}

pub fn name_rule(resource: &str) -> NameRule {
    match resource {
        "namespaces" => NameRule::Label,
        "services" => NameRule::Dns1035,
        _ => NameRule::Subdomain,
    }
}

/// Validates `metadata.name`; returns the causes the API server reports.
pub fn validate_name(name: &str, rule: NameRule) -> Vec<Cause> {
    let quoted = format!("\"{name}\"");
    let mut causes = Vec::new();
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                causes.push(Cause::invalid(
                    "metadata.name",
                    &quoted,
                    "must be no more than 253 characters",
                ));
            }
            if !name.split('.').all(is_label) {
                causes.push(Cause::invalid(
                    "metadata.name",
                    &quoted,
                    DNS1123_SUBDOMAIN_MSG,
                ));
            }
        }
        NameRule::Label => {
            if name.len() > 63 {
                causes.push(Cause::invalid(
                    "metadata.name",
                    &quoted,
                    "must be no more than 63 characters",
                ));
            }
            if !is_label(name) {
                causes.push(Cause::invalid("metadata.name", &quoted, DNS1123_LABEL_MSG));
            }
        }
        NameRule::Dns1035 => {
            if name.len() > 63 {
                causes.push(Cause::invalid(
                    "metadata.name",
                    &quoted,
                    "must be no more than 63 characters",
                ));
            }
            if !is_label(name) || !name.as_bytes()[0].is_ascii_lowercase() {
                causes.push(Cause::invalid("metadata.name", &quoted, DNS1035_LABEL_MSG));
            }
        }
    }
    causes
}

/// RFC 3339 UTC timestamp with second precision, as in `metav1.Time`.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Random lower-case alphanumeric suffix for `generateName` and ReplicaSet hashes.
pub fn random_suffix(len: usize) -> String {
    // Kubernetes avoids vowels and look-alike characters in generated names.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    (0..len)
        .map(|i| ALPHABET[bytes[i % 16] as usize % ALPHABET.len()] as char)
        .collect()
}

/// Deterministic short hash (FNV-1a) rendered like a pod-template-hash.
pub fn short_hash(v: &Value) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in v.to_string().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

pub fn name_of(v: &Value) -> &str {
    str_at(v, &["metadata", "name"]).unwrap_or_default()
}

pub fn namespace_of(v: &Value) -> &str {
    str_at(v, &["metadata", "namespace"]).unwrap_or_default()
}

pub fn uid_of(v: &Value) -> &str {
    str_at(v, &["metadata", "uid"]).unwrap_or_default()
}

/// Mutable access to `metadata`, creating it when missing.
pub fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v["metadata"].is_object() {
        v["metadata"] = Value::Object(Map::new());
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn finalizers(v: &Value) -> Vec<String> {
    v["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(v: &mut Value, f: &[String]) {
    let m = meta_mut(v);
    if f.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), Value::from(f.to_vec()));
    }
}

pub fn is_deleting(v: &Value) -> bool {
    v["metadata"]["deletionTimestamp"].is_string()
}

/// Labels as string pairs (used by selectors).
pub fn labels(v: &Value) -> Map<String, Value> {
    v["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Sets or replaces a condition of `status.conditions` by `type`, keeping
/// `lastTransitionTime` when the status did not change (as controllers do).
pub fn set_condition(obj: &mut Value, mut cond: Value) {
    if !obj["status"].is_object() {
        obj["status"] = Value::Object(Map::new());
    }
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = Value::Array(vec![]);
    }
    let conds = obj["status"]["conditions"].as_array_mut().unwrap();
    if let Some(existing) = conds.iter_mut().find(|c| c["type"] == cond["type"]) {
        if existing["status"] == cond["status"] {
            // Unchanged conditions keep their times, so re-reconciling an
            // unchanged object writes nothing.
            let same =
                existing["reason"] == cond["reason"] && existing["message"] == cond["message"];
            let keep: &[&str] = if same {
                &["lastTransitionTime", "lastUpdateTime", "lastProbeTime"]
            } else {
                &["lastTransitionTime"]
            };
            for k in keep {
                if existing.get(*k).is_some() {
                    cond[*k] = existing[*k].clone();
                }
            }
        }
        *existing = cond;
    } else {
        conds.push(cond);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("my-app.v1", NameRule::Subdomain).is_empty());
        assert_eq!(validate_name("My_App", NameRule::Subdomain).len(), 1);
        assert!(validate_name("a.b", NameRule::Label).len() == 1);
        assert!(validate_name("1abc", NameRule::Dns1035).len() == 1);
        assert!(validate_name("abc-1", NameRule::Dns1035).is_empty());
        assert_eq!(validate_name(&"a".repeat(64), NameRule::Label).len(), 1);
    }
}
