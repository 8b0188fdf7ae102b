//! OCI chart references: `oci://host[:port]/path/chart@sha256:<64 hex>` or `…/chart:tag`.

use crate::FieldError;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartReference {
    /// A manifest digest, `sha256:<64 lowercase hex>`: content-addressed, immutable.
    Digest(String),
    /// A tag: mutable, so it must be resolved to a digest before it is stored.
    Tag(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartRef {
    /// `host` or `host:port`.
    pub registry: String,
    /// Repository path inside the registry, ending with the chart name.
    pub repository: String,
    pub reference: ChartReference,
}

impl ChartRef {
    /// The chart name: the last path segment of the repository.
    pub fn chart_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    /// `oci://host/repo` without tag or digest.
    pub fn base(&self) -> String {
        format!("oci://{}/{}", self.registry, self.repository)
    }

    pub fn digest(&self) -> Option<&str> {
        match &self.reference {
            ChartReference::Digest(d) => Some(d),
            ChartReference::Tag(_) => None,
        }
    }

    /// The same chart pinned to `digest`.
    pub fn pinned(&self, digest: &str) -> ChartRef {
        ChartRef {
            reference: ChartReference::Digest(digest.to_string()),
            ..self.clone()
        }
    }
}

impl fmt::Display for ChartRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            ChartReference::Digest(d) => write!(f, "{}@{d}", self.base()),
            ChartReference::Tag(t) => write!(f, "{}:{t}", self.base()),
        }
    }
}

/// `sha256:` followed by exactly 64 lowercase hex digits.
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn is_path_component(s: &str) -> bool {
    // OCI distribution spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn is_tag(s: &str) -> bool {
    // OCI distribution spec: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}; Helm maps '+' in versions to '_'.
    !s.is_empty()
        && s.len() <= 128
        && (s.as_bytes()[0].is_ascii_alphanumeric() || s.as_bytes()[0] == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_registry_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

/// Parses any OCI chart reference (tag or digest).
pub fn parse(field: &str, input: &str) -> Result<ChartRef, FieldError> {
    let err = |reason: String| FieldError::new(field, reason);
    let rest = input.strip_prefix("oci://").ok_or_else(|| {
        err(format!(
            "'{input}' is not an OCI chart reference: it must start with oci://"
        ))
    })?;
    let (location, reference) = if let Some((loc, digest)) = rest.split_once('@') {
        if !is_sha256_digest(digest) {
            return Err(err(format!(
                "'{digest}' is not a manifest digest: expected sha256: followed by 64 lowercase hex digits"
            )));
        }
        (loc, ChartReference::Digest(digest.to_string()))
    } else {
        // The tag separator is the last ':' after the last '/', so a registry port is not a tag.
        let slash = rest.rfind('/').unwrap_or(0);
        match rest[slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[slash + i + 1..];
                if !is_tag(tag) {
                    return Err(err(format!("'{tag}' is not a valid tag")));
                }
                (&rest[..slash + i], ChartReference::Tag(tag.to_string()))
            }
            None => {
                return Err(err(format!(
                    "'{input}' names no version: append @sha256:<digest> (or :tag when publishing)"
                )));
            }
        }
    };
    let (registry, repository) = location.split_once('/').ok_or_else(|| {
        err(format!(
            "'{input}' has no repository path: expected oci://host[:port]/path/chart"
        ))
    })?;
    if !is_registry_host(registry) {
        return Err(err(format!(
            "'{registry}' is not a valid registry host[:port]"
        )));
    }
    if let Some(bad) = repository.split('/').find(|c| !is_path_component(c)) {
        return Err(err(format!(
            "'{bad}' is not a valid repository path component: use lowercase letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(ChartRef {
        registry: registry.to_string(),
        repository: repository.to_string(),
        reference,
    })
}

/// Parses a reference that must already be pinned by digest.
pub fn parse_pinned(field: &str, input: &str) -> Result<ChartRef, FieldError> {
    let r = parse(field, input)?;
    match r.reference {
        ChartReference::Digest(_) => Ok(r),
        ChartReference::Tag(ref t) => Err(FieldError::new(
            field,
            format!(
                "'{input}' uses the tag '{t}', which can change: pin the chart by its manifest digest (oci://…/chart@sha256:<64 hex>)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_digest_reference_with_port() {
        let r = parse_pinned("chart", &format!("oci://127.0.0.1:5000/charts/web@{D}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "charts/web");
        assert_eq!(r.chart_name(), "web");
        assert_eq!(r.digest(), Some(D));
        assert_eq!(
            r.to_string(),
            format!("oci://127.0.0.1:5000/charts/web@{D}")
        );
    }

    #[test]
    fn parses_tag_reference_and_port_is_not_a_tag() {
        let r = parse("chart", "oci://registry.example.com:5000/a/b/web:1.2.3").unwrap();
        assert_eq!(r.registry, "registry.example.com:5000");
        assert_eq!(r.repository, "a/b/web");
        assert_eq!(r.reference, ChartReference::Tag("1.2.3".into()));
        assert!(parse("chart", "oci://registry.example.com:5000/a/web").is_err());
    }

    #[test]
    fn pinned_refuses_tags_and_says_why() {
        let e = parse_pinned("chart", "oci://r.io/web:1.0.0").unwrap_err();
        assert_eq!(e.field, "chart");
        assert!(e.reason.contains("manifest digest"), "{}", e.reason);
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "https://r.io/web@sha256:00",
            "oci://r.io/web@sha256:abc",
            &format!(
                "oci://r.io/web@{}",
                D.to_uppercase().replace("SHA256", "sha256")
            ),
            &format!("oci://r.io@{D}"),
            &format!("oci://r.io/Web@{D}"),
            &format!("oci://r.io:99999/web@{D}"),
            &format!("oci://-r.io/web@{D}"),
            "oci://r.io/web",
            "oci://r.io/web:",
            "",
        ] {
            assert!(parse_pinned("chart", bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn digest_shape() {
        assert!(is_sha256_digest(D));
        assert!(!is_sha256_digest(&D[..70]));
        assert!(!is_sha256_digest(&D.replace("sha256", "sha512")));
    }

    #[test]
    fn pinning_a_tag() {
        let r = parse("chart", "oci://r.io/web:1.0.0").unwrap();
        assert_eq!(r.pinned(D).to_string(), format!("oci://r.io/web@{D}"));
    }
}
