//! What can go wrong in the engine, said so an operator can act on it.
//! The reconciler retries [`EngineError::is_transient`] errors with backoff
//! and records the others as the pass's failure.

use std::time::Duration;

use caelus_core::remediation::{FailureClass, FailureKind};
use caelus_core::status::ObjectHealth;
use caelus_helm::HookEvent;

use crate::object::ObjectRef;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The API server refused (or failed) a write or read of one object.
    #[error("{verb} {object}: {message}")]
    Object {
        verb: &'static str,
        object: Box<ObjectRef>,
        /// HTTP status of the API server's answer (0 when there was none).
        code: u16,
        /// The API server's own message, or the transport error.
        message: String,
        transient: bool,
    },
    /// A hook did not succeed; the message names the hook and quotes why.
    #[error("{event} hook {kind}/{name} failed: {message}")]
    HookFailed {
        event: HookEvent,
        kind: String,
        name: String,
        message: String,
    },
    /// Objects were not healthy within the timeout.
    #[error("not healthy after {timeout:?}: {}", summarize(unhealthy))]
    HealthTimeout {
        timeout: Duration,
        unhealthy: Vec<ObjectHealth>,
        /// Health of every object, for the revision's per-object status.
        health: Vec<ObjectHealth>,
    },
    /// Objects reached a terminal failure (a failed Job, a Deployment past
    /// its progress deadline) while waiting for health.
    #[error("objects failed: {}", summarize(failed))]
    Unhealthy {
        failed: Vec<ObjectHealth>,
        health: Vec<ObjectHealth>,
    },
    /// The request asks for something Caelus does not do (an object in
    /// another namespace, a namespace that belongs to someone else).
    #[error("refused by policy: {0}")]
    Policy(String),
    /// Objects the revision would write (or a hook would replace) exist and
    /// belong to someone else; nothing of the revision was written.
    #[error("{}", describe_conflicts(conflicts))]
    NotOwned {
        conflicts: Vec<crate::ownership::OwnershipConflict>,
    },
    /// The cluster does not serve this apiVersion/kind (a missing CRD).
    #[error("unknown kind {kind} in {api_version}: the cluster does not serve it")]
    UnknownKind { api_version: String, kind: String },
    /// A rendered object lacks what every object needs (apiVersion, kind, name).
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// The namespace is being deleted; nothing can be created in it until it is gone.
    #[error("namespace {0} is terminating")]
    NamespaceTerminating(String),
    /// Any other API call (discovery, namespace reads) that failed.
    #[error("{context}: {message}")]
    Api {
        context: String,
        code: u16,
        message: String,
        transient: bool,
    },
}

impl EngineError {
    /// Whether retrying later may succeed without anything changing: 429,
    /// 5xx, timeouts, connection failures, a namespace still terminating.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Object { transient, .. } | EngineError::Api { transient, .. } => {
                *transient
            }
            EngineError::NamespaceTerminating(_) => true,
            _ => false,
        }
    }

    /// The remediation class: transient for 5xx, 429, timeouts, conflicts
    /// (409: someone else wrote first; the next attempt reads anew) and
    /// connection errors; deterministic for everything else.
    pub fn failure_class(&self) -> FailureClass {
        let conflict = matches!(
            self,
            EngineError::Object { code: 409, .. } | EngineError::Api { code: 409, .. }
        );
        if self.is_transient() || conflict {
            FailureClass::Transient
        } else {
            FailureClass::Deterministic
        }
    }

    /// What the failure means for a deploy.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            EngineError::HookFailed { .. }
            | EngineError::HealthTimeout { .. }
            | EngineError::Unhealthy { .. } => FailureKind::Unhealthy,
            EngineError::Policy(_)
            | EngineError::InvalidObject(_)
            | EngineError::NotOwned { .. } => FailureKind::NeedsChange,
            _ => FailureKind::Api,
        }
    }

    /// Per-object health carried by health failures, for the revision's status.
    pub fn health(&self) -> Option<&[ObjectHealth]> {
        match self {
            EngineError::HealthTimeout { health, .. } | EngineError::Unhealthy { health, .. } => {
                Some(health)
            }
            _ => None,
        }
    }

    pub(crate) fn object(verb: &'static str, object: &ObjectRef, err: kube::Error) -> Self {
        let (code, message, transient) = describe(&err);
        EngineError::Object {
            verb,
            object: Box::new(object.clone()),
            code,
            message,
            transient,
        }
    }

    pub(crate) fn api(context: impl Into<String>, err: kube::Error) -> Self {
        let (code, message, transient) = describe(&err);
        EngineError::Api {
            context: context.into(),
            code,
            message,
            transient,
        }
    }
}

/// HTTP code (0 without an answer), message and transience of a kube error.
pub(crate) fn describe(err: &kube::Error) -> (u16, String, bool) {
    match err {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            (status.code, message, is_transient_code(status.code))
        }
        // No answer from the server: connection refused/reset, timeouts,
        // a watch or body cut short. Retrying is the documented remedy.
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            (0, err.to_string(), true)
        }
        other => (0, other.to_string(), false),
    }
}

pub(crate) fn is_transient_code(code: u16) -> bool {
    code == 429 || ((500..=599).contains(&code) && code != 501)
}

pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

fn describe_conflicts(conflicts: &[crate::ownership::OwnershipConflict]) -> String {
    conflicts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn summarize(objects: &[ObjectHealth]) -> String {
    objects
        .iter()
        .map(|h| {
            if h.message.is_empty() {
                format!("{}/{} {}", h.kind, h.name, h.health)
            } else {
                format!("{}/{} {} ({})", h.kind, h.name, h.health, h.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient_client_errors_are_not() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [400, 403, 404, 409, 422, 501] {
            assert!(!is_transient_code(code), "{code}");
        }
    }

    #[test]
    fn health_timeout_names_each_unhealthy_object_and_why() {
        let h = ObjectHealth {
            kind: "Deployment".into(),
            name: "web".into(),
            health: "Progressing".into(),
            message: "0 of 2 replicas available".into(),
        };
        let e = EngineError::HealthTimeout {
            timeout: Duration::from_secs(30),
            unhealthy: vec![h.clone()],
            health: vec![h],
        };
        assert_eq!(
            e.to_string(),
            "not healthy after 30s: Deployment/web Progressing (0 of 2 replicas available)"
        );
        assert!(!e.is_transient());
        assert_eq!(e.failure_class(), FailureClass::Deterministic);
        assert_eq!(e.failure_kind(), FailureKind::Unhealthy);
    }

    #[test]
    fn failure_classes() {
        let object = |code, transient| EngineError::Object {
            verb: "apply",
            object: Box::new(ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("ns".into()),
                name: "web".into(),
            }),
            code,
            message: String::new(),
            transient,
        };
        for code in [429, 500, 503] {
            assert_eq!(
                object(code, is_transient_code(code)).failure_class(),
                FailureClass::Transient
            );
        }
        assert_eq!(object(409, false).failure_class(), FailureClass::Transient);
        assert_eq!(
            object(0, true).failure_class(),
            FailureClass::Transient,
            "connection error"
        );
        assert_eq!(
            object(422, false).failure_class(),
            FailureClass::Deterministic
        );
        assert_eq!(object(422, false).failure_kind(), FailureKind::Api);
        let invalid = EngineError::InvalidObject("no kind".into());
        assert_eq!(invalid.failure_class(), FailureClass::Deterministic);
        assert_eq!(invalid.failure_kind(), FailureKind::NeedsChange);
        let policy = EngineError::Policy("namespace of someone else".into());
        assert_eq!(policy.failure_kind(), FailureKind::NeedsChange);
        let not_owned = EngineError::NotOwned {
            conflicts: vec![crate::ownership::OwnershipConflict {
                object: ObjectRef {
                    api_version: "rbac.authorization.k8s.io/v1".into(),
                    kind: "ClusterRole".into(),
                    namespace: None,
                    name: "edit".into(),
                },
                hook: Some(HookEvent::PreInstall),
                owner: caelus_core::ownership::Owner::Unmanaged,
            }],
        };
        assert_eq!(not_owned.failure_class(), FailureClass::Deterministic);
        assert_eq!(not_owned.failure_kind(), FailureKind::NeedsChange);
        assert!(
            not_owned.to_string().starts_with(
                "pre-install hook ClusterRole/edit already exists and belongs to no one"
            ),
            "{not_owned}"
        );
        let hook = EngineError::HookFailed {
            event: HookEvent::PreUpgrade,
            kind: "Job".into(),
            name: "migrate".into(),
            message: "BackoffLimitExceeded".into(),
        };
        assert_eq!(hook.failure_class(), FailureClass::Deterministic);
        assert_eq!(hook.failure_kind(), FailureKind::Unhealthy);
        assert_eq!(
            EngineError::NamespaceTerminating("ns".into()).failure_class(),
            FailureClass::Transient
        );
    }
}
