//! Checks the API server makes on a write before it runs the verb:
//!
//! - the request options (`fieldValidation`, `dryRun`, `fieldManager` for
//!   apply), refused with the messages of apimachinery's
//!   `ValidateCreateOptions`/`ValidateUpdateOptions`/`ValidatePatchOptions`
//!   (`staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go`);
//! - unknown fields of built-in kinds against their schemas
//!   ([`crate::wire::types`]), per the `fieldValidation` directive
//!   (<https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation>):
//!   `Strict` refuses with 400 `strict decoding error: unknown field "spec.foo"`,
//!   `Warn` (the server default) answers `Warning` headers, `Ignore` is silent.
//!   Server-side apply always refuses unknown fields (structured-merge-diff
//!   cannot represent them: `.spec.foo: field not declared in schema`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, Method, header};
use serde_json::{Value, json};

use crate::errors::{ApiError, Cause};
use crate::resources::ResourceInfo;
use crate::server::Shared;
use crate::wire::types::{Types, types};

const BODY_LIMIT: usize = 256 << 20;

fn error(e: &ApiError) -> Response {
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = http::StatusCode::from_u16(e.code).unwrap_or(http::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// What the path names: the resource, the object and the subresource.
struct Target {
    info: ResourceInfo,
    namespace: Option<String>,
    name: Option<String>,
}

fn target(s: &Shared, path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = if rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"))
    {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let info = s.api.resource(group, version, rest.first()?)?;
    Some(Target {
        info,
        namespace,
        name: rest.get(1).map(|n| n.to_string()),
    })
}

fn query_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `errors.NewInvalid(meta.k8s.io/<Kind>Options, "", errs)`.
pub fn invalid_options(kind: &str, causes: Vec<Cause>) -> ApiError {
    let info = ResourceInfo {
        group: "meta.k8s.io".into(),
        version: "v1".into(),
        resource: String::new(),
        singular: String::new(),
        kind: kind.into(),
        namespaced: false,
        short_names: vec![],
        categories: vec![],
        has_status: false,
        has_generation: false,
        crd: None,
        schema: None,
        scale: false,
    };
    ApiError::invalid(&info, "", causes)
}

/// The option errors of one write, or none.
pub fn option_causes(query: &str, is_apply: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    if is_apply
        && query_values(query, "fieldManager")
            .iter()
            .all(|m| m.is_empty())
    {
        // "This field is defaulted to "kubectl" by kubectl, but HAS TO be
        // explicitly set by controllers" (ValidatePatchOptions).
        causes.push(Cause::required(
            "fieldManager",
            "is required for apply patch",
        ));
    }
    let dry_run = query_values(query, "dryRun");
    if dry_run.iter().any(|v| v != "All") {
        let rendered: Vec<String> = dry_run.iter().map(|v| format!("\"{v}\"")).collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: []string{{{}}}: supported values: \"All\"",
                rendered.join(", ")
            ),
            field: "dryRun".into(),
        });
    }
    if let Some(v) = query_values(query, "fieldValidation").last()
        && !matches!(v.as_str(), "" | "Ignore" | "Warn" | "Strict")
    {
        causes.push(Cause::not_supported(
            "fieldValidation",
            v,
            &["", "Ignore", "Strict", "Warn"],
        ));
    }
    causes
}

/// How a JSON path is printed: the strict decoder's `spec.containers[0].x`
/// or structured-merge-diff's `.spec.containers[name="web"].x`.
#[derive(Clone, Copy, PartialEq)]
enum PathStyle {
    Strict,
    Apply,
}

const OPAQUE: &[&str] = &[
    "apimachinery.pkg.api.resource.Quantity",
    "apimachinery.pkg.apis.meta.v1.Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration",
    "apimachinery.pkg.util.intstr.IntOrString",
    "apimachinery.pkg.runtime.RawExtension",
    "apimachinery.pkg.apis.meta.v1.FieldsV1",
];

fn opaque(ty: &str) -> bool {
    OPAQUE.contains(&ty) || ty.starts_with("apiextensions_apiserver.")
}

fn find_field<'t>(t: &'t Types, msg: &str, key: &str) -> Option<&'t crate::wire::types::Field> {
    let m = t.messages.get(msg)?;
    for f in &m.fields {
        if f.inline {
            if let Some(inner) = find_field(t, f.ty.as_deref().unwrap_or_default(), key) {
                return Some(inner);
            }
        } else if f.json == key {
            return Some(f);
        }
    }
    None
}

fn join(path: &str, key: &str, style: PathStyle) -> String {
    match (style, path.is_empty()) {
        (PathStyle::Strict, true) => key.to_string(),
        _ => format!("{path}.{key}"),
    }
}

fn walk(
    t: &Types,
    msg: &str,
    v: &Value,
    path: &str,
    style: PathStyle,
    patch: bool,
    out: &mut Vec<String>,
) {
    if opaque(msg) {
        return;
    }
    let Some(obj) = v.as_object() else { return };
    for (key, val) in obj {
        // Strategic-merge directives (`$patch`, `$setElementOrder/…`, `$retainKeys`).
        if patch && key.starts_with('$') {
            continue;
        }
        // Embedded objects (volumeClaimTemplates) carry their TypeMeta.
        if matches!(key.as_str(), "apiVersion" | "kind") && t.kind_of(msg).is_some() {
            continue;
        }
        let Some(f) = find_field(t, msg, key) else {
            out.push(join(path, key, style));
            continue;
        };
        let Some(ty) = f.ty.as_deref().filter(|_| f.kind == "message") else {
            continue;
        };
        let here = join(path, key, style);
        if f.map {
            for (k, item) in val.as_object().into_iter().flatten() {
                walk(t, ty, item, &join(&here, k, style), style, patch, out);
            }
        } else if f.repeated {
            for (i, item) in val.as_array().into_iter().flatten().enumerate() {
                let index = match (style, &f.list_map_keys) {
                    (PathStyle::Apply, Some(keys)) => {
                        let parts: Vec<String> = keys
                            .iter()
                            .filter_map(|k| item.get(k).map(|v| format!("{k}={v}")))
                            .collect();
                        format!("[{}]", parts.join(","))
                    }
                    _ => format!("[{i}]"),
                };
                walk(t, ty, item, &format!("{here}{index}"), style, patch, out);
            }
        } else {
            walk(t, ty, val, &here, style, patch, out);
        }
    }
}

/// Unknown fields of a built-in object (or patch), `None` when the kind has
/// no schema here (custom resources).
fn unknown_fields(
    info: &ResourceInfo,
    body: &Value,
    style: PathStyle,
    patch: bool,
) -> Option<Vec<String>> {
    if info.crd.is_some() {
        // Custom resources: what structural-schema pruning would drop.
        let schema = info.schema.as_ref()?;
        return Some(
            crate::structural::unknown_fields(schema, body)
                .into_iter()
                .map(|p| match style {
                    PathStyle::Apply => format!(".{p}"),
                    PathStyle::Strict => p,
                })
                .collect(),
        );
    }
    let t = types().ok()?;
    let msg = t
        .kinds
        .get(&format!("{}/{}", info.api_version(), info.kind))?;
    let mut out = Vec::new();
    walk(t, msg, body, "", style, patch, &mut out);
    Some(out)
}

/// The middleware.
pub async fn check(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    if !matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return next.run(req).await;
    }
    let Some(t) = target(&s, req.uri().path()) else {
        return next.run(req).await;
    };
    let query = req.uri().query().unwrap_or_default().to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let is_apply = method == Method::PATCH && content_type.starts_with("application/apply-patch");
    let options_kind = match method {
        Method::POST => "CreateOptions",
        Method::PUT => "UpdateOptions",
        Method::DELETE => "DeleteOptions",
        _ => "PatchOptions",
    };
    let causes = option_causes(&query, is_apply);
    if !causes.is_empty() {
        return error(&invalid_options(options_kind, causes));
    }
    if method == Method::DELETE {
        return next.run(req).await;
    }
    let directive = query_values(&query, "fieldValidation")
        .last()
        .cloned()
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return error(&ApiError::bad_request(e.to_string())),
    };
    let parsed: Option<Value> = if is_apply {
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| yaml_serde::from_str(s).ok())
    } else if content_type.starts_with("application/json-patch") {
        None // an RFC 6902 patch is a list of operations, not an object
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    let mut warnings = Vec::new();
    if let Some(body) = parsed {
        let style = if is_apply {
            PathStyle::Apply
        } else {
            PathStyle::Strict
        };
        let is_patch = method == Method::PATCH;
        if let Some(unknown) = unknown_fields(&t.info, &body, style, is_patch)
            && !unknown.is_empty()
        {
            if is_apply {
                let name = t.name.clone().unwrap_or_default();
                let object = match &t.namespace {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name,
                };
                let lines: Vec<String> = unknown
                    .iter()
                    .map(|p| format!("{p}: field not declared in schema"))
                    .collect();
                let detail = if lines.len() == 1 {
                    lines[0].clone()
                } else {
                    format!("errors:\n  {}", lines.join("\n  "))
                };
                let gv = if t.info.group.is_empty() {
                    format!("/{}", t.info.version)
                } else {
                    t.info.api_version()
                };
                return error(&ApiError::bad_request(format!(
                    "failed to create typed patch object ({object}; {gv}, Kind={}): {detail}",
                    t.info.kind
                )));
            }
            let fields: Vec<String> = unknown
                .iter()
                .map(|p| format!("unknown field \"{p}\""))
                .collect();
            match directive.as_str() {
                "Strict" => {
                    let strict = format!("strict decoding error: {}", fields.join(", "));
                    let message = if is_patch {
                        strict
                    } else {
                        // create/update: transformDecodeError in the handlers.
                        let k = &t.info.kind;
                        format!(
                            "{k} in version \"{}\" cannot be handled as a {k}: {strict}",
                            t.info.version
                        )
                    };
                    return error(&ApiError::bad_request(message));
                }
                "Ignore" => {}
                _ => warnings = fields,
            }
        }
    }
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    for w in warnings {
        // RFC 7234 warn-code 299 with agent "-", as the API server writes them.
        let value = format!("299 - {}", json!(w));
        if let Ok(h) = HeaderValue::from_str(&value) {
            resp.headers_mut().append(header::WARNING, h);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment_info() -> ResourceInfo {
        ResourceInfo {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            singular: "deployment".into(),
            kind: "Deployment".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            has_status: true,
            has_generation: true,
            crd: None,
            schema: None,
            scale: false,
        }
    }

    #[test]
    fn finds_unknown_fields_with_their_paths() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "bogus": 1},
            "spec": {"replicas": 1, "foo": true, "template": {"spec": {"containers": [
                {"name": "web", "image": "x", "imagePullPolicy": "Always", "colour": "red",
                 "resources": {"limits": {"cpu": "1"}}}],
                "volumes": [{"name": "v", "configMap": {"name": "c"}}]}}}});
        let strict = unknown_fields(&deployment_info(), &d, PathStyle::Strict, false).unwrap();
        assert_eq!(
            strict,
            vec![
                "metadata.bogus",
                "spec.foo",
                "spec.template.spec.containers[0].colour"
            ]
        );
        let sts = json!({"spec": {"volumeClaimTemplates": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}}]}});
        let mut info = deployment_info();
        info.kind = "StatefulSet".into();
        assert!(
            unknown_fields(&info, &sts, PathStyle::Apply, false)
                .unwrap()
                .is_empty()
        );
        let apply = unknown_fields(&deployment_info(), &d, PathStyle::Apply, false).unwrap();
        assert_eq!(
            apply[2],
            ".spec.template.spec.containers[name=\"web\"].colour"
        );
    }

    #[test]
    fn patch_directives_are_not_fields() {
        let p = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"name": "web", "$patch": "delete"}]}}}});
        let u = unknown_fields(&deployment_info(), &p, PathStyle::Strict, true).unwrap();
        assert!(u.is_empty(), "{u:?}");
    }

    #[test]
    fn options_are_validated_with_the_api_servers_messages() {
        let c = option_causes("", true);
        assert_eq!(c[0].field, "fieldManager");
        assert_eq!(c[0].message, "Required value: is required for apply patch");
        let c = option_causes("dryRun=Bogus", false);
        assert_eq!(
            c[0].message,
            "Unsupported value: []string{\"Bogus\"}: supported values: \"All\""
        );
        let c = option_causes("fieldValidation=Loose", false);
        assert_eq!(
            c[0].message,
            "Unsupported value: \"Loose\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
        assert!(option_causes("dryRun=All&fieldValidation=Strict", false).is_empty());
        let e = invalid_options("CreateOptions", option_causes("dryRun=x", false));
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .starts_with("CreateOptions.meta.k8s.io \"\" is invalid: dryRun"),
            "{}",
            e.message
        );
    }
}
