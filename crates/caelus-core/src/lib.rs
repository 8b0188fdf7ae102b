//! Caelus domain rules. Pure: no Kubernetes, database or async runtime here,
//! so every rule is tested as a plain function.

pub mod allowlist;
pub mod auth_limit;
pub mod certification;
pub mod change;
pub mod chart_ref;
pub mod drift;
pub mod duration;
pub mod field_error;
pub mod identity;
pub mod lifecycle;
pub mod list_keys;
pub mod lookup_scope;
pub mod names;
pub mod orphans;
pub mod ownership;
pub mod pod_security;
pub mod quantity;
pub mod rbac;
pub mod reach;
pub mod reconcile;
pub mod remediation;
pub mod render_policy;
pub mod revision;
pub mod statefulset;
pub mod status;
pub mod template;
pub mod throttle;
pub mod upgrade;
pub mod values;

pub use field_error::{FieldError, FieldErrors};
