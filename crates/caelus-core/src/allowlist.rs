//! The values allowlist: which value paths a user may set on a deployment.
//!
//! Entries are dotted paths. `replicaCount` allows exactly that value (whatever its
//! type); `resources.*` allows anything below `resources`, including `resources` itself.

use crate::FieldError;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Exact(Vec<String>),
    Subtree(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Allowlist {
    /// Parses the entries, reporting each bad one under `field[i]`.
    pub fn parse(field: &str, entries: &[String]) -> Result<Allowlist, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        for (i, raw) in entries.iter().enumerate() {
            let mut segments: Vec<String> = raw.split('.').map(str::to_string).collect();
            let subtree = segments.last().is_some_and(|s| s == "*");
            if subtree {
                segments.pop();
            }
            if segments.is_empty() || !segments.iter().all(|s| valid_segment(s)) {
                errors.push(FieldError::new(
                    format!("{field}[{i}]"),
                    format!(
                        "'{raw}' is not a value path: use dotted keys of letters, digits, '_' or '-', optionally ending in .* for a subtree"
                    ),
                ));
                continue;
            }
            parsed.push(if subtree {
                Entry::Subtree(segments)
            } else {
                Entry::Exact(segments)
            });
        }
        if errors.is_empty() {
            Ok(Allowlist { entries: parsed })
        } else {
            Err(errors)
        }
    }

    fn allows(&self, path: &[String]) -> bool {
        self.entries.iter().any(|e| match e {
            Entry::Exact(p) => p.as_slice() == path,
            Entry::Subtree(p) => path.starts_with(p),
        })
    }

    /// Every path in `values` that the allowlist does not cover, in document order.
    /// An object at an allowed path is accepted whole; otherwise the walk goes into it,
    /// so the report names the deepest offending keys.
    pub fn disallowed_paths(&self, values: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        if let Value::Object(map) = values {
            for (k, v) in map {
                path.push(k.clone());
                self.walk(&mut path, v, &mut out);
                path.pop();
            }
        }
        out
    }

    fn walk(&self, path: &mut Vec<String>, value: &Value, out: &mut Vec<String>) {
        if self.allows(path) {
            return;
        }
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    path.push(k.clone());
                    self.walk(path, v, out);
                    path.pop();
                }
            }
            _ => out.push(path.join(".")),
        }
    }
}

/// Checks user values against an allowlist; the error lists every offending path.
pub fn check_values(field: &str, allowlist: &Allowlist, values: &Value) -> Result<(), FieldError> {
    if !values.is_object() {
        return Err(FieldError::new(field, "must be a JSON object"));
    }
    let bad = allowlist.disallowed_paths(values);
    if bad.is_empty() {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "these value paths are not in the template's allowlist: {}",
                bad.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::parse(
            "values_allowlist",
            &entries.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn exact_paths_allow_only_themselves() {
        let a = list(&["replicaCount", "image.tag"]);
        assert!(a.disallowed_paths(&json!({"replicaCount": 3})).is_empty());
        assert!(
            a.disallowed_paths(&json!({"image": {"tag": "2"}}))
                .is_empty()
        );
        assert_eq!(
            a.disallowed_paths(&json!({"image": {"tag": "2", "repository": "evil"}})),
            vec!["image.repository"]
        );
    }

    #[test]
    fn subtrees_allow_everything_below_and_the_root() {
        let a = list(&["resources.*"]);
        assert!(
            a.disallowed_paths(&json!({"resources": {"limits": {"cpu": "1"}}}))
                .is_empty()
        );
        assert!(a.disallowed_paths(&json!({"resources": null})).is_empty());
        assert_eq!(
            a.disallowed_paths(&json!({"resourcesX": 1})),
            vec!["resourcesX"]
        );
    }

    #[test]
    fn reports_every_offending_path() {
        let a = list(&["replicaCount"]);
        let bad = a.disallowed_paths(&json!({
            "replicaCount": 1,
            "securityContext": {"privileged": true, "runAsUser": 0},
            "hostNetwork": true
        }));
        assert_eq!(
            bad,
            vec![
                "hostNetwork",
                "securityContext.privileged",
                "securityContext.runAsUser"
            ]
        );
    }

    #[test]
    fn arrays_and_empty_objects_at_unlisted_paths_are_refused() {
        let a = list(&["x"]);
        assert_eq!(a.disallowed_paths(&json!({"args": ["a"]})), vec!["args"]);
        assert_eq!(a.disallowed_paths(&json!({"extra": {}})), vec!["extra"]);
    }

    #[test]
    fn empty_allowlist_allows_only_empty_values() {
        let a = list(&[]);
        assert!(check_values("values", &a, &json!({})).is_ok());
        let e = check_values("values", &a, &json!({"a": 1})).unwrap_err();
        assert_eq!(e.field, "values");
        assert!(e.reason.contains("a"));
    }

    #[test]
    fn values_must_be_an_object() {
        let a = list(&["x"]);
        assert!(check_values("values", &a, &json!([1])).is_err());
        assert!(check_values("values", &a, &json!("x")).is_err());
    }

    #[test]
    fn bad_entries_are_named_by_index() {
        let errs = Allowlist::parse(
            "values_allowlist",
            &[
                "ok".into(),
                "".into(),
                "a..b".into(),
                "*".into(),
                "a.*.b".into(),
                "sp ace".into(),
            ],
        )
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "values_allowlist[1]",
                "values_allowlist[2]",
                "values_allowlist[3]",
                "values_allowlist[4]",
                "values_allowlist[5]"
            ]
        );
    }
}
