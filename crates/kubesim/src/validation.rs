//! Defaulting and validation steps of the verbs: what every kind shares
//! (list-key defaults, pod templates, label/value checks, finalizers of an
//! object being deleted), then the kind's own part from [`crate::kinds`].

use serde_json::Value;

use crate::errors::Cause;
use crate::resources::ResourceInfo;

/// Defaults applied on create and update, like the API server's defaulting.
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) {
    crate::schema::apply_defaults(obj, &mut Vec::new());
    if !info.group.is_empty() && info.crd.is_some() {
        return;
    }
    if let Some(spec) = crate::defaults::template_spec(&info.group, &info.resource, obj) {
        crate::defaults::pod_spec(spec);
    }
    crate::kinds::of(info).default(obj);
}

/// Status a built-in object has as soon as it is created. The API server
/// serializes the Go status struct, which is never omitted (`omitempty` does
/// not drop structs), and integer fields without `omitempty` — the ones the
/// OpenAPI schema lists as `required` — appear as 0 (k8s.io/api
/// apps/v1, policy/v1, autoscaling/v2 `types.go`). Clients read e.g.
/// `deployment.status.readyReplicas` right after a create; a missing status
/// breaks typed clients that a real cluster never would.
pub fn initial_status(info: &ResourceInfo) -> Option<Value> {
    crate::kinds::of(info).initial_status()
}

/// Create-time validation beyond names.
pub fn validate_create(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = crate::values::validate(info, obj);
    crate::kinds::of(info).validate_create(obj, &mut causes);
    causes
}

/// Update-time validation: immutable fields, with the API server's messages.
pub fn validate_update(info: &ResourceInfo, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = crate::values::validate(info, new);
    if crate::meta::is_deleting(old) {
        let old_f = crate::meta::finalizers(old);
        if crate::meta::finalizers(new)
            .iter()
            .any(|f| !old_f.contains(f))
        {
            causes.push(Cause::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    crate::kinds::of(info).validate_update(info, old, new, &mut causes);
    causes
}
