//! What Helm's `lookup` may read during a deployment's render: the
//! deployment's own namespace, read-only, plus API discovery (which Helm
//! needs to map a kind to a resource). Everything else is answered as
//! "not found", which Helm turns into an empty result — exactly what a
//! chart sees for an object that does not exist — so a tenant value
//! evaluated by `tpl` cannot read another namespace's Secrets.
//!
//! Request paths follow the Kubernetes API conventions
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris>):
//! `/api/v1/namespaces/{ns}/{resource}[/{name}]` for the core group and
//! `/apis/{group}/{version}/namespaces/{ns}/{resource}[/{name}]` otherwise.

/// How a lookup request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupAccess {
    /// API discovery (`/version`, `/api`, `/apis`, group versions): forwarded.
    Discovery,
    /// A get or list of a namespaced resource in the render's own namespace: forwarded.
    OwnNamespace,
    /// Anything else (other namespaces, cluster-scoped objects, lists across
    /// namespaces, subresources, watches): answered 404 Not Found.
    NotFound,
}

/// Classifies a GET of `path` (with its raw `query`) for a render in `namespace`.
/// Only GETs reach this question: every other verb is refused outright.
pub fn classify(path: &str, query: Option<&str>, namespace: &str) -> LookupAccess {
    if query.is_some_and(is_watch) {
        return LookupAccess::NotFound;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return LookupAccess::NotFound;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains('%'))
    {
        return LookupAccess::NotFound;
    }
    // Everything after the group version.
    let tail = match segments.as_slice() {
        ["version"] | ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _] => {
            return LookupAccess::Discovery;
        }
        ["api", _, tail @ ..] => tail,
        ["apis", _, _, tail @ ..] => tail,
        _ => return LookupAccess::NotFound,
    };
    match tail {
        ["namespaces", ns, _] | ["namespaces", ns, _, _] if *ns == namespace => {
            LookupAccess::OwnNamespace
        }
        _ => LookupAccess::NotFound,
    }
}

fn is_watch(query: &str) -> bool {
    query.split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key == "watch" && value != "false" && value != "0"
    })
}

#[cfg(test)]
mod tests {
    use super::LookupAccess::*;
    use super::*;

    const NS: &str = "cae-1234";

    #[test]
    fn the_own_namespace_is_readable() {
        for path in [
            "/api/v1/namespaces/cae-1234/secrets/wp-mariadb",
            "/api/v1/namespaces/cae-1234/secrets",
            "/apis/apps/v1/namespaces/cae-1234/statefulsets/db",
        ] {
            assert_eq!(classify(path, None, NS), OwnNamespace, "{path}");
        }
        assert_eq!(
            classify(
                "/api/v1/namespaces/cae-1234/configmaps",
                Some("limit=500"),
                NS
            ),
            OwnNamespace
        );
    }

    #[test]
    fn discovery_is_forwarded() {
        for path in [
            "/version",
            "/api",
            "/apis",
            "/api/v1",
            "/apis/apps/v1",
            "/apis/apps",
        ] {
            assert_eq!(classify(path, None, NS), Discovery, "{path}");
        }
    }

    #[test]
    fn everything_else_is_not_found() {
        for path in [
            // Another tenant's Secrets, by get or by list.
            "/api/v1/namespaces/cae-other/secrets/db",
            "/api/v1/namespaces/cae-other/secrets",
            // Across all namespaces, and cluster-scoped objects.
            "/api/v1/secrets",
            "/apis/apps/v1/deployments",
            "/api/v1/namespaces/cae-1234",
            "/api/v1/nodes/n1",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            // Subresources and tricks with the path.
            "/api/v1/namespaces/cae-1234/pods/web/log",
            "/api/v1/namespaces/cae-1234/../cae-other/secrets",
            "/api/v1/namespaces/cae-1234%2F..%2Fcae-other/secrets",
            "/api/v1/namespaces//secrets",
            "api/v1/namespaces/cae-1234/secrets",
            "/openapi/v2",
            "/",
        ] {
            assert_eq!(classify(path, None, NS), NotFound, "{path}");
        }
        assert_eq!(
            classify(
                "/api/v1/namespaces/cae-1234/secrets",
                Some("watch=true"),
                NS
            ),
            NotFound
        );
        assert_eq!(
            classify(
                "/api/v1/namespaces/cae-1234/secrets",
                Some("watch=false"),
                NS
            ),
            OwnNamespace
        );
    }
}
