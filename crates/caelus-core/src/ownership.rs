//! Who owns a live cluster object, and whether a deployment may write it
//! (design §8: "Caelus never writes what it does not own").
//!
//! Ownership is read from the labels Caelus stamps on everything it applies
//! — the deployment's uid and the installation id — the way Helm reads its
//! `meta.helm.sh/release-name` / `release-namespace` annotations and refuses
//! an object whose metadata names another release ("invalid ownership
//! metadata", helm `pkg/action/validate.go`, `existingResourceConflict`).
//! An object that exists and is not this deployment's is never created over,
//! patched, replaced by a hook or deleted: taking one over is an explicit
//! admin action, never a side effect of a forced server-side apply.

use std::fmt;

/// The ownership metadata of a live object, as read from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// `caelus.io/deployment-uid`.
    pub deployment_uid: Option<&'a str>,
    /// `caelus.io/installation`.
    pub installation: Option<&'a str>,
    /// `app.kubernetes.io/managed-by` (any manager, not only Caelus).
    pub managed_by: Option<&'a str>,
    /// Helm's `meta.helm.sh/release-name` annotation.
    pub helm_release: Option<&'a str>,
    /// Helm's `meta.helm.sh/release-namespace` annotation.
    pub helm_release_namespace: Option<&'a str>,
}

/// Who a live object belongs to, from the point of view of one deployment
/// of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This deployment of this installation: Caelus may write it.
    This,
    /// Another deployment (of this installation, or of one that did not
    /// record its id).
    Deployment { uid: String },
    /// Another Caelus installation sharing the cluster.
    Installation {
        installation: String,
        deployment_uid: Option<String>,
    },
    /// A Helm release (Helm's own ownership annotations).
    HelmRelease {
        name: String,
        namespace: Option<String>,
    },
    /// Another manager that says who it is (`app.kubernetes.io/managed-by`).
    Manager { name: String },
    /// No ownership metadata at all: created by hand or by an operator.
    Unmanaged,
}

impl Owner {
    pub fn is_this(&self) -> bool {
        matches!(self, Owner::This)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::This => f.write_str("this deployment"),
            Owner::Deployment { uid } => write!(f, "deployment {uid}"),
            Owner::Installation {
                installation,
                deployment_uid: Some(uid),
            } => write!(f, "deployment {uid} of Caelus installation {installation}"),
            Owner::Installation {
                installation,
                deployment_uid: None,
            } => write!(f, "Caelus installation {installation}"),
            Owner::HelmRelease {
                name,
                namespace: Some(ns),
            } => write!(f, "Helm release {name} in {ns}"),
            Owner::HelmRelease {
                name,
                namespace: None,
            } => write!(f, "Helm release {name}"),
            Owner::Manager { name } => write!(f, "{name} (app.kubernetes.io/managed-by)"),
            Owner::Unmanaged => f.write_str("no one (it carries no Caelus ownership labels)"),
        }
    }
}

/// Who owns an object stamped `stamp`, for deployment `deployment_uid` of
/// installation `installation_id`.
///
/// The installation label is checked first: deployment uids are random, but
/// an object of another installation is never this one's whatever its uid
/// says. An object with this deployment's uid and no installation label is
/// this deployment's: the uid alone identifies it, and objects written
/// before the installation label existed carry only the uid.
pub fn owner_of(stamp: &Stamp<'_>, deployment_uid: &str, installation_id: &str) -> Owner {
    let present = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(installation) = present(stamp.installation)
        && installation != installation_id
    {
        return Owner::Installation {
            installation,
            deployment_uid: present(stamp.deployment_uid),
        };
    }
    match present(stamp.deployment_uid) {
        Some(uid) if uid == deployment_uid => Owner::This,
        Some(uid) => Owner::Deployment { uid },
        None => {
            if let Some(name) = present(stamp.helm_release) {
                Owner::HelmRelease {
                    name,
                    namespace: present(stamp.helm_release_namespace),
                }
            } else if let Some(name) = present(stamp.managed_by) {
                Owner::Manager { name }
            } else {
                Owner::Unmanaged
            }
        }
    }
}

/// The refusal of a write to an object owned by `owner`, naming both, in
/// the words the deployment's status shows. `object` is how the caller
/// names it (`ConfigMap/web in d-1`, with the hook event when it is a hook).
pub fn refusal(object: &str, owner: &Owner) -> String {
    format!(
        "{object} already exists and belongs to {owner}; Caelus never writes or deletes \
         an object it does not own (rename it in the chart, remove the existing object, \
         or have an admin adopt it)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "3f1c2b7e-0000-4000-8000-000000000001";
    const INSTALL: &str = "prod";

    fn owner(stamp: Stamp<'_>) -> Owner {
        owner_of(&stamp, UID, INSTALL)
    }

    #[test]
    fn this_deployment_of_this_installation_owns_its_objects() {
        let ours = Stamp {
            deployment_uid: Some(UID),
            installation: Some(INSTALL),
            managed_by: Some("caelus"),
            ..Default::default()
        };
        assert_eq!(owner(ours), Owner::This);
        // Written before the installation label existed: the uid decides.
        let uid_only = Stamp {
            deployment_uid: Some(UID),
            ..Default::default()
        };
        assert!(owner(uid_only).is_this());
    }

    #[test]
    fn another_deployment_is_named_by_its_uid() {
        let theirs = Stamp {
            deployment_uid: Some("other-uid"),
            installation: Some(INSTALL),
            managed_by: Some("caelus"),
            ..Default::default()
        };
        assert_eq!(
            owner(theirs),
            Owner::Deployment {
                uid: "other-uid".into()
            }
        );
        assert_eq!(owner(theirs).to_string(), "deployment other-uid");
    }

    #[test]
    fn another_installation_wins_over_a_matching_uid() {
        let foreign = Stamp {
            deployment_uid: Some(UID),
            installation: Some("staging"),
            ..Default::default()
        };
        let o = owner(foreign);
        assert_eq!(
            o,
            Owner::Installation {
                installation: "staging".into(),
                deployment_uid: Some(UID.into())
            }
        );
        assert_eq!(
            o.to_string(),
            format!("deployment {UID} of Caelus installation staging")
        );
    }

    #[test]
    fn objects_without_caelus_labels_belong_to_no_deployment() {
        assert_eq!(owner(Stamp::default()), Owner::Unmanaged);
        // Empty labels are no labels.
        let empty = Stamp {
            deployment_uid: Some(""),
            installation: Some(""),
            ..Default::default()
        };
        assert_eq!(owner(empty), Owner::Unmanaged);
        // Caelus's managed-by label alone does not make it this deployment's.
        let forged = Stamp {
            managed_by: Some("caelus"),
            ..Default::default()
        };
        assert_eq!(
            owner(forged),
            Owner::Manager {
                name: "caelus".into()
            }
        );
        let helm = Stamp {
            managed_by: Some("Helm"),
            helm_release: Some("prometheus"),
            helm_release_namespace: Some("monitoring"),
            ..Default::default()
        };
        assert_eq!(
            owner(helm).to_string(),
            "Helm release prometheus in monitoring"
        );
        let operator = Stamp {
            managed_by: Some("cert-manager"),
            ..Default::default()
        };
        assert_eq!(
            owner(operator).to_string(),
            "cert-manager (app.kubernetes.io/managed-by)"
        );
    }

    #[test]
    fn the_refusal_names_object_and_owner() {
        let m = refusal("ClusterRole/edit", &Owner::Unmanaged);
        assert!(
            m.starts_with("ClusterRole/edit already exists and belongs to no one"),
            "{m}"
        );
        assert!(m.contains("adopt"), "{m}");
    }
}
