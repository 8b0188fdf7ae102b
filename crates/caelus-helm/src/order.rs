//! Helm's install order for kinds (`releaseutil.InstallOrder`), so objects
//! are applied the way `helm install` would apply them.

/// Kinds in the order Helm installs them. `PriorityClass` comes first as in
/// current Helm: pods that name one are refused until it exists.
pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Position of `kind` in [`INSTALL_ORDER`], or `None` for kinds Helm does
/// not know (custom resources), which go last.
pub fn install_rank(kind: &str) -> Option<usize> {
    INSTALL_ORDER.iter().position(|k| *k == kind)
}

/// Helm's `lessByKind`: known kinds by rank; unknown kinds after all known
/// ones, alphabetically by kind among themselves.
pub fn compare_kinds(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (install_rank(a), install_rank(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Stable sort in install order: objects of the same kind keep their input
/// order (template path, then position in the file).
pub fn sort_in_install_order<T>(items: &mut [T], kind_of: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| compare_kinds(kind_of(a), kind_of(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_known_kinds_then_unknown_alphabetically() {
        let mut kinds = vec![
            "Deployment",
            "Widget",
            "Service",
            "ConfigMap",
            "Apple",
            "Namespace",
            "Ingress",
            "CustomResourceDefinition",
            "ServiceAccount",
        ];
        sort_in_install_order(&mut kinds, |k| k);
        assert_eq!(
            kinds,
            vec![
                "Namespace",
                "ServiceAccount",
                "ConfigMap",
                "CustomResourceDefinition",
                "Service",
                "Deployment",
                "Ingress",
                "Apple",
                "Widget",
            ]
        );
    }

    #[test]
    fn same_kind_keeps_input_order() {
        let mut items = vec![
            ("Service", 1),
            ("ConfigMap", 2),
            ("Service", 3),
            ("ConfigMap", 4),
        ];
        sort_in_install_order(&mut items, |i| i.0);
        assert_eq!(
            items.iter().map(|i| i.1).collect::<Vec<_>>(),
            vec![2, 4, 1, 3]
        );
    }

    #[test]
    fn stateful_before_job() {
        assert!(compare_kinds("StatefulSet", "Job").is_lt());
        assert!(compare_kinds("Secret", "ConfigMap").is_lt());
    }
}
