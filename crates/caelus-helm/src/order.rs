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

/// The apply wave of `kind`: objects of one wave go out together, waves one
/// after the other, lowest first. Helm sends kinds one at a time in
/// [`INSTALL_ORDER`], but only a few of its orderings are dependencies the
/// API server checks when an object is written; the waves keep exactly
/// those and let the rest go out at once (one round trip instead of one per
/// kind):
/// - 0, what others name: priority classes, quotas and limit ranges (pod
///   admission reads them), service accounts (pods naming one are
///   refused until it exists), secrets and config maps, storage classes
///   and volumes, CRDs, roles, Services (a pod gets the environment
///   variables of the Services that exist when it starts), ingress classes;
/// - 1, what names them: claims (bound to a class or volume), role
///   bindings (the API server's escalation check reads the role);
/// - 2, workloads and Ingresses (they name services, claims, accounts);
/// - 3, API services and admission webhooks, once what serves them exists
///   (a webhook registered earlier would intercept this release's writes);
/// - 4, kinds Helm does not know (custom resources), last as in Helm.
pub fn apply_wave(kind: &str) -> u8 {
    match kind {
        "PersistentVolumeClaim"
        | "ClusterRoleBinding"
        | "ClusterRoleBindingList"
        | "RoleBinding"
        | "RoleBindingList" => 1,
        "DaemonSet"
        | "Pod"
        | "ReplicationController"
        | "ReplicaSet"
        | "Deployment"
        | "HorizontalPodAutoscaler"
        | "StatefulSet"
        | "Job"
        | "CronJob"
        | "Ingress" => 2,
        "APIService" | "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => 3,
        k if install_rank(k).is_some() => 0,
        _ => 4,
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
    fn waves_keep_the_orderings_the_api_server_checks() {
        let before = |a: &str, b: &str| apply_wave(a) < apply_wave(b);
        assert!(before("ServiceAccount", "Deployment"));
        assert!(before("PriorityClass", "Pod"));
        assert!(before("LimitRange", "StatefulSet"));
        assert!(before("Role", "RoleBinding"));
        assert!(before("ClusterRole", "ClusterRoleBinding"));
        assert!(before("StorageClass", "PersistentVolumeClaim"));
        assert!(before("PersistentVolumeClaim", "StatefulSet"));
        assert!(before("Service", "Deployment"));
        assert!(before("Deployment", "ValidatingWebhookConfiguration"));
        assert!(before("CustomResourceDefinition", "Widget"));
        assert!(before("MutatingWebhookConfiguration", "Widget"));
        // podinfo's objects: two round trips instead of five.
        let waves: std::collections::BTreeSet<u8> = [
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "Deployment",
            "Ingress",
        ]
        .iter()
        .map(|k| apply_wave(k))
        .collect();
        assert_eq!(waves.len(), 2);
    }

    #[test]
    fn stateful_before_job() {
        assert!(compare_kinds("StatefulSet", "Job").is_lt());
        assert!(compare_kinds("Secret", "ConfigMap").is_lt());
    }
}
