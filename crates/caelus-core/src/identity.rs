//! Kubernetes names of a deployment, derived from its uid only.
//!
//! Display names and domains change; these must not, because they name the namespace
//! and the Helm release forever. They are derived from the random uid, nothing else.

/// The uid's 32 hex digits, lowercase, without hyphens. `None` if `uid` is not a UUID.
fn uid_hex(uid: &str) -> Option<String> {
    let hex: String = uid.chars().filter(|c| *c != '-').collect();
    let shaped = uid.len() == 36
        && uid
            .char_indices()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
    (shaped && hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

pub fn is_deployment_uid(uid: &str) -> bool {
    uid_hex(uid).is_some()
}

/// Namespace of a deployment: `caelus-` + the uid's 32 hex digits (39 characters).
pub fn namespace_name(uid: &str) -> Option<String> {
    uid_hex(uid).map(|h| format!("caelus-{h}"))
}

/// Helm release name: short, because charts build object names from it (and those
/// are limited to 63 characters). Unique enough: each release has its own namespace.
pub fn release_name(uid: &str) -> Option<String> {
    uid_hex(uid).map(|h| format!("d-{}", &h[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::is_dns1123_label;

    const UID: &str = "3f2b8c1e-9a7d-4e6f-8b1a-0c2d4e6f8a9b";

    #[test]
    fn derives_stable_dns_labels() {
        let ns = namespace_name(UID).unwrap();
        let rel = release_name(UID).unwrap();
        assert_eq!(ns, "caelus-3f2b8c1e9a7d4e6f8b1a0c2d4e6f8a9b");
        assert_eq!(rel, "d-3f2b8c1e9a7d");
        assert!(is_dns1123_label(&ns) && is_dns1123_label(&rel));
        assert_eq!(namespace_name(UID), namespace_name(UID));
    }

    #[test]
    fn uppercase_uids_map_to_the_same_names() {
        assert_eq!(namespace_name(&UID.to_uppercase()), namespace_name(UID));
    }

    #[test]
    fn refuses_non_uids() {
        for bad in [
            "",
            "my-wiki",
            "3f2b8c1e9a7d4e6f8b1a0c2d4e6f8a9b",
            "3f2b8c1e-9a7d-4e6f-8b1a-0c2d4e6f8a9g",
        ] {
            assert!(namespace_name(bad).is_none(), "{bad}");
            assert!(!is_deployment_uid(bad));
        }
    }
}
