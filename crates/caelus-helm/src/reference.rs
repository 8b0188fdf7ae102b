//! OCI chart references (`oci://host[:port]/path/name[:tag|@sha256:…]`) and
//! content digests. Pure parsing, no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::HelmError;

/// A `sha256:<64 lowercase hex>` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        use sha2::{Digest as _, Sha256};
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }
}

impl FromStr for Digest {
    type Err = HelmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| HelmError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| invalid("digest must start with sha256:"))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(
                "digest must be sha256: followed by 64 lowercase hex characters",
            ));
        }
        Ok(Digest(s.to_string()))
    }
}

impl TryFrom<String> for Digest {
    type Error = HelmError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed `oci://` chart reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChartReference {
    /// `host` or `host:port`.
    pub registry: String,
    /// Repository path inside the registry, ending in the chart name.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ChartReference {
    /// The chart name (last path segment of the repository).
    pub fn chart_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    /// `oci://registry/repository` without tag or digest.
    pub fn repository_url(&self) -> String {
        format!("oci://{}/{}", self.registry, self.repository)
    }

    /// `registry/repository`: what the chart cache is keyed by, with the digest.
    pub fn repository_key(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest` (tag dropped).
    pub fn with_digest(&self, digest: Digest) -> Self {
        ChartReference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// True for registries on the loopback interface, which are spoken to
    /// over plain HTTP unless configured otherwise.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

pub(crate) fn is_loopback_host(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.split(':').next().unwrap_or(registry)
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

impl FromStr for ChartReference {
    type Err = HelmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| HelmError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        let rest = s
            .strip_prefix("oci://")
            .ok_or_else(|| invalid("must start with oci://"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("must be oci://REGISTRY/PATH/CHART"))?;
        if registry.is_empty() || path.is_empty() {
            return Err(invalid("must be oci://REGISTRY/PATH/CHART"));
        }
        let (path, digest) = match path.split_once('@') {
            Some((p, d)) => (p, Some(d.parse::<Digest>()?)),
            None => (path, None),
        };
        // A tag follows the last ':' of the last path segment.
        let last_slash = path.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repository, tag) = match path[last_slash..].find(':') {
            Some(i) => (&path[..last_slash + i], Some(&path[last_slash + i + 1..])),
            None => (path, None),
        };
        if repository.is_empty()
            || repository.split('/').any(|seg| seg.is_empty())
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            return Err(invalid(
                "repository path must be lowercase letters, digits, '.', '_', '-' and '/'",
            ));
        }
        let tag = match tag {
            Some(t) if t.is_empty() || t.len() > 128 => {
                return Err(invalid("empty or overlong tag"));
            }
            Some(t)
                if !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b)) =>
            {
                return Err(invalid("tag has characters outside [A-Za-z0-9._+-]"));
            }
            // OCI tags cannot hold '+'; Helm stores semver build metadata as '_'.
            Some(t) => Some(t.replace('+', "_")),
            None => None,
        };
        if tag.is_none() && digest.is_none() {
            return Err(invalid("needs a :TAG or an @sha256:DIGEST"));
        }
        Ok(ChartReference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }
}

impl fmt::Display for ChartReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ffd34801ee0cd52a7dc34fc961856f4818786baa49db58a81c686e170e934d8f";

    #[test]
    fn parses_tag_reference() {
        let r: ChartReference = "oci://127.0.0.1:5000/charts/web:1.0.0".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "charts/web");
        assert_eq!(r.tag.as_deref(), Some("1.0.0"));
        assert_eq!(r.digest, None);
        assert_eq!(r.chart_name(), "web");
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/charts/web:1.0.0");
    }

    #[test]
    fn parses_digest_reference() {
        let s = format!("oci://registry.example.com/a/b/web@{D}");
        let r: ChartReference = s.parse().unwrap();
        assert_eq!(r.repository, "a/b/web");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().as_str(), D);
        assert!(!r.is_loopback());
        assert_eq!(r.to_string(), s);
    }

    #[test]
    fn parses_tag_and_digest() {
        let r: ChartReference = format!("oci://localhost:5000/web:2.0.0@{D}")
            .parse()
            .unwrap();
        assert_eq!(r.tag.as_deref(), Some("2.0.0"));
        assert!(r.digest.is_some());
        assert_eq!(r.with_digest(r.digest.clone().unwrap()).tag, None);
    }

    #[test]
    fn build_metadata_plus_becomes_underscore() {
        let r: ChartReference = "oci://h/web:1.0.0+abc".parse().unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.0.0_abc"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "https://h/web:1",
            "oci://h",
            "oci://h/web",
            "oci:///web:1",
            "oci://h/Web:1",
            "oci://h//web:1",
            "oci://h/web:",
            "oci://h/web@sha256:abc",
            "oci://h/web@md5:00",
        ] {
            assert!(
                bad.parse::<ChartReference>().is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn digest_rules() {
        assert!(D.parse::<Digest>().is_ok());
        assert!(D.to_uppercase().parse::<Digest>().is_err());
        let d = Digest::of_bytes(b"");
        assert_eq!(
            d.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("localhost:5000"));
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("registry.example.com:443"));
    }
}
