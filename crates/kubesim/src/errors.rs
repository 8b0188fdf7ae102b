//! API errors rendered as `metav1.Status` bodies with the API server's exact
//! messages, reasons and codes (clients such as kube-rs and kubectl branch on
//! `reason` and `code`, and humans read `message`).

use serde_json::{Value, json};

use crate::resources::ResourceInfo;

/// One field error (a `StatusCause`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, ...
    pub reason: String,
    /// The error body without the field, e.g. `Forbidden: field is immutable`.
    pub message: String,
    pub field: String,
}

impl Cause {
    /// `field.Invalid(path, value, detail)`; `value` is already rendered
    /// the way Go's `%#v`/`%q` would render it.
    pub fn invalid(field: &str, value: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value}: {detail}"),
            field: field.into(),
        }
    }
    pub fn forbidden(field: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueForbidden".into(),
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }
    pub fn required(field: &str, detail: &str) -> Cause {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: "FieldValueRequired".into(),
            message,
            field: field.into(),
        }
    }
    pub fn not_supported(field: &str, value: &str, allowed: &[&str]) -> Cause {
        let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: \"{value}\": supported values: {}",
                quoted.join(", ")
            ),
            field: field.into(),
        }
    }
    pub fn line(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429s and injected 503s).
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

fn details(info: &ResourceInfo, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": info.resource });
    if !info.group.is_empty() {
        d["group"] = json!(info.group);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            details: Some(details(info, name)),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", info.group_resource(), name),
            )
        }
    }

    /// The namespace of a create does not exist.
    pub fn namespace_not_found(ns: &str) -> ApiError {
        ApiError {
            details: Some(json!({"name": ns, "kind": "namespaces"})),
            ..ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
        }
    }

    /// Unknown path or resource.
    pub fn no_route() -> ApiError {
        ApiError {
            details: Some(json!({})),
            ..ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            details: Some(details(info, name)),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", info.group_resource(), name),
            )
        }
    }

    /// `admission.NewForbidden`: `pods "x" is forbidden: <reason>` (403).
    pub fn forbidden(info: &ResourceInfo, name: &str, reason: &str) -> ApiError {
        ApiError {
            details: Some(details(info, name)),
            ..ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{}\" is forbidden: {}",
                    info.group_resource(),
                    name,
                    reason
                ),
            )
        }
    }

    /// Optimistic-concurrency failure.
    pub fn conflict(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            details: Some(details(info, name)),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    info.group_resource(),
                    name
                ),
            )
        }
    }

    /// `StatusReasonInvalid` (422) with the field causes, like `errors.NewInvalid`.
    pub fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> ApiError {
        let agg = match causes.len() {
            0 => String::new(),
            1 => format!(": {}", causes[0].line()),
            _ => format!(
                ": [{}]",
                causes
                    .iter()
                    .map(Cause::line)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut d = json!({
            "name": name,
            "kind": info.kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        });
        if !info.group.is_empty() {
            d["group"] = json!(info.group);
        }
        ApiError {
            details: Some(d),
            ..ApiError::new(
                422,
                "Invalid",
                format!("{} \"{}\" is invalid{}", info.qualified_kind(), name, agg),
            )
        }
    }

    pub fn namespace_terminating(info: &ResourceInfo, name: &str, ns: &str) -> ApiError {
        let mut d = details(info, name);
        d["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns} is being terminated"),
            "field": "metadata.namespace",
        }]);
        ApiError {
            details: Some(d),
            ..ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    info.group_resource(),
                    name,
                    ns
                ),
            )
        }
    }

    /// 410 for a watch or list from a resourceVersion older than the history.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError {
            details: Some(json!({})),
            ..ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        }
    }

    /// 415 for a body the endpoint cannot decode, with apimachinery's
    /// `errUnsupportedMediaType` message listing what it accepts.
    pub fn unsupported_media_type(accepted: &[&str]) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError {
            details: Some(json!({"causes": [{"message": message}]})),
            ..ApiError::new(
                500,
                "InternalError",
                format!("Internal error occurred: {message}"),
            )
        }
    }

    /// 504 for a watch from a resourceVersion this cluster has not reached
    /// (it restarted empty, say), as the API server's watch cache answers.
    pub fn resource_version_too_large(requested: u64, current: u64) -> ApiError {
        ApiError {
            details: Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1
            })),
            ..ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {requested}, current: {current}"),
            )
        }
    }

    /// 504 with the API server's timeout message (used for injected timeouts).
    /// 504 for a list or watch at a resourceVersion the store has not
    /// reached (`storage.NewTooLargeResourceVersionError`).
    pub fn too_large_resource_version(rv: u64, current: u64) -> ApiError {
        ApiError {
            details: Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            })),
            ..ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {rv}, current: {current}"),
            )
        }
    }

    pub fn timeout() -> ApiError {
        ApiError {
            details: Some(json!({})),
            ..ApiError::new(
                504,
                "Timeout",
                "Timeout: request did not complete within requested timeout - context deadline exceeded",
            )
        }
    }

    pub fn service_unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    pub fn too_many_requests(retry_after: u64) -> ApiError {
        ApiError {
            details: Some(json!({"retryAfterSeconds": retry_after})),
            retry_after: Some(retry_after),
            ..ApiError::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            )
        }
    }

    /// Server-side apply conflicts, exactly as `fieldmanager.NewConflictError`.
    /// `conflicts` holds (printed manager, field path) pairs.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> ApiError {
        let message = if conflicts.len() == 1 {
            format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                conflicts[0].0, conflicts[0].1
            )
        } else {
            let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
            managers.sort();
            managers.dedup();
            let mut lines = Vec::new();
            for m in managers {
                lines.push(format!("conflicts with {m}:"));
                for (_, p) in conflicts.iter().filter(|(cm, _)| cm == m) {
                    lines.push(format!("- {p}"));
                }
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, p)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p})
            })
            .collect();
        ApiError {
            details: Some(json!({ "causes": causes })),
            ..ApiError::new(409, "Conflict", message)
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}
