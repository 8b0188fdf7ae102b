//! HTTP front end: routes Kubernetes API paths onto [`crate::api::Api`],
//! streams watches, serves discovery and OpenAPI, and the `/kubesim/*`
//! admin endpoints. Faults and request counters are applied here, so they
//! only ever affect clients.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use crate::api::{DeleteOptions, Deleted, ListOptions, PatchType, Propagation, WriteOptions};
use crate::errors::{ApiError, ApiResult};
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::{discovery, openapi};

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            crate::request_validation::check,
        ))
        .layer(axum::middleware::from_fn(crate::wire::negotiate))
        .with_state(shared)
}

fn json_response(code: u16, v: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap()
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn text(code: u16, s: &str) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(s.to_string()))
        .unwrap()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(())
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn is_true(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

/// A parsed resource request path.
struct Target {
    info: ResourceInfo,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = parse_query(req.uri().query());
    tracing::debug!(method = %req.method(), %path, "request");
    match path.as_str() {
        "/version" => return json_response(200, &discovery::version()),
        "/healthz" | "/readyz" | "/livez" => return text(200, "ok"),
        "/api" | "/apis" => {
            let reg = s.api.lock().registry.clone();
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if discovery::wants_aggregated(accept) {
                let mut resp = json_response(200, &discovery::aggregated(&reg, path == "/api"));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(discovery::AGGREGATED_V2),
                );
                return resp;
            }
            return if path == "/api" {
                json_response(200, &discovery::api_versions(&s.addr.to_string()))
            } else {
                json_response(200, &discovery::api_group_list(&reg))
            };
        }
        "/openapi/v3" => {
            let reg = s.api.lock().registry.clone();
            return json_response(200, &openapi::index(&reg));
        }
        "/openapi/v2" => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // kube-openapi's handler: 406 with no body when no accepted
            // type can be served, and `Vary: Accept` on every answer.
            let mut resp = if openapi::v2_accepts_json(accept) {
                let reg = s.api.lock().registry.clone();
                json_response(200, &openapi::v2(&reg))
            } else {
                Response::builder().status(406).body(Body::empty()).unwrap()
            };
            resp.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            return resp;
        }
        "/kubesim/faults" | "/kubesim/faults/drop-watches" | "/kubesim/stats" => {
            return admin(&s, req, &path).await;
        }
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        | "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
        | "/apis/authentication.k8s.io/v1/selfsubjectreviews"
            if req.method() == Method::POST =>
        {
            return self_review(req, &path).await;
        }
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3/") {
        let parts: Vec<&str> = rest.split('/').collect();
        let (g, v) = match parts.as_slice() {
            ["api", v] => ("", *v),
            ["apis", g, v] => (*g, *v),
            _ => return error_response(&ApiError::no_route()),
        };
        let reg = s.api.lock().registry.clone();
        return match openapi::document(&reg, g, v) {
            Some(d) => json_response(200, &d),
            None => error_response(&ApiError::no_route()),
        };
    }
    let segs: Vec<String> = path.split('/').skip(1).map(percent_decode).collect();
    let (group, version, rest) = match segs.first().map(String::as_str) {
        Some("api") if segs.len() >= 2 => (String::new(), segs[1].clone(), &segs[2..]),
        Some("apis") if segs.len() == 2 => {
            let reg = s.api.lock().registry.clone();
            return match discovery::api_group(&reg, &segs[1]) {
                Some(g) => json_response(200, &g),
                None => error_response(&ApiError::no_route()),
            };
        }
        Some("apis") if segs.len() >= 3 => (segs[1].clone(), segs[2].clone(), &segs[3..]),
        _ => return error_response(&ApiError::no_route()),
    };
    if rest.is_empty() {
        let reg = s.api.lock().registry.clone();
        return match discovery::resource_list(&reg, &group, &version) {
            Some(l) => json_response(200, &l),
            None => error_response(&ApiError::no_route()),
        };
    }
    let (namespace, rest) = if rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2].as_str(), "status" | "finalize"))
    {
        (Some(rest[1].clone()), &rest[2..])
    } else {
        (None, rest)
    };
    let Some(info) = s.api.resource(&group, &version, &rest[0]) else {
        return error_response(&ApiError::no_route());
    };
    if namespace.is_some() && !info.namespaced || rest.len() > 3 {
        return error_response(&ApiError::no_route());
    }
    let sub = rest.get(2).cloned();
    if let Some(sb) = &sub {
        let ok = (sb == "status" && info.has_status)
            || (sb == "finalize" && info.resource == "namespaces" && info.group.is_empty())
            || (sb == "scale" && crate::subresources::scale_paths(&s.api.lock(), &info).is_some())
            || (sb == "log" && info.resource == "pods" && info.group.is_empty());
        if !ok {
            return error_response(&ApiError::no_route());
        }
    }
    let target = Target {
        info,
        namespace,
        name: rest.get(1).cloned(),
        sub,
    };
    let method = req.method().clone();
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if is_true(&query, "watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return error_response(&ApiError::method_not_allowed()),
    };
    s.stats.record(verb, &target.info.resource);
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let rbac_resource = match &target.sub {
        Some(sub) => format!("{}/{sub}", target.info.resource),
        None => target.info.resource.clone(),
    };
    if let Err(e) = s.rbac.authorize(
        token,
        verb,
        &target.info.group,
        &rbac_resource,
        target.namespace.as_deref(),
        target.name.as_deref().unwrap_or_default(),
    ) {
        return error_response(&e);
    }
    let decision = s.faults.decide(verb, &target.info.resource);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if let Some(e) = decision.error {
        return error_response(&e);
    }
    if matches!(verb, "list" | "watch" | "deletecollection")
        && let Err(e) = check_field_labels(&s, &target.info, &query)
    {
        return error_response(&e);
    }
    let table_request = crate::table::requested(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        query.get("includeObject").map(String::as_str),
    )
    .filter(|_| target.sub.is_none());
    if verb == "watch" {
        return watch(s, target, &query, table_request);
    }
    if target.sub.as_deref() == Some("log") {
        return pod_log(&s, &target, &query);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if content_type.contains("protobuf") {
        // `wire::negotiate` decoded every protobuf body of a built-in kind;
        // what is left is a custom resource, which the API server's CRD
        // handler only decodes from JSON or YAML (client-go retries with JSON).
        return error_response(&ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ]));
    }
    let body = match axum::body::to_bytes(req.into_body(), 256 << 20).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::bad_request(e.to_string())),
    };
    let s2 = s.clone();
    let warnings = crate::admission::Warnings::default();
    let run = || {
        serve(
            &s2,
            verb,
            &target,
            &query,
            &content_type,
            &user_agent,
            &body,
            &warnings,
        )
    };
    if let Some((after, commit)) = decision.timeout {
        if commit {
            let _ = run();
        }
        tokio::time::sleep(after).await;
        return error_response(&ApiError::timeout());
    }
    if verb == "list" {
        // Large lists are serialized straight from the store.
        let t = &target;
        return match list_options(&query)
            .and_then(|o| s.api.list_json(&t.info, t.namespace.as_deref(), &o))
        {
            Ok(bytes) if table_request.is_some() => {
                let list: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let table = as_table(&s, table_request, &t.info, &items, list["metadata"].clone());
                json_response(200, &table)
            }
            Ok(bytes) => Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(bytes))
                .unwrap(),
            Err(e) => error_response(&e),
        };
    }
    let mut resp = match run() {
        Ok((200, v)) if verb == "get" && table_request.is_some() => {
            let meta = json!({"resourceVersion": v["metadata"]["resourceVersion"]});
            json_response(200, &as_table(&s, table_request, &target.info, &[v], meta))
        }
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error_response(&e),
    };
    for w in warnings.take() {
        // `Warning: 299 - "text"`, as the API server sends admission warnings.
        let text = w.replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// The CustomResourceDefinition serving a custom resource.
fn crd_of(s: &Shared, info: &ResourceInfo) -> Option<Value> {
    let crd_name = info.crd.as_deref()?;
    let g = s.api.lock();
    let crds = g
        .registry
        .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .cloned()?;
    g.get(&crds, "", crd_name).map(|c| (**c).clone())
}

/// `objects` as the Table the client asked for (see [`crate::table`]).
fn as_table(
    s: &Shared,
    req: Option<crate::table::TableRequest>,
    info: &ResourceInfo,
    objects: &[Value],
    meta: Value,
) -> Value {
    let Some(req) = req else {
        return Value::Null;
    };
    let crd = crd_of(s, info);
    let now = time::OffsetDateTime::now_utc();
    crate::table::table(req, info, crd.as_ref(), objects, meta, true, now)
}

fn parse_body(body: &Bytes, content_type: &str) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(e) if content_type.contains("yaml") => {
            let s = std::str::from_utf8(body).map_err(|_| ApiError::bad_request(e.to_string()))?;
            yaml_serde::from_str(s)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "the object provided is unrecognized: {e}"
        ))),
    }
}

/// The default field manager is the user agent's product name, as in the API server.
fn write_options(
    q: &HashMap<String, String>,
    user_agent: &str,
    warnings: &crate::admission::Warnings,
) -> WriteOptions {
    let manager = q.get("fieldManager").cloned().or_else(|| {
        let p = user_agent.split('/').next().unwrap_or_default();
        Some(if p.is_empty() {
            "unknown".to_string()
        } else {
            p.to_string()
        })
    });
    WriteOptions {
        field_manager: manager,
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        force: is_true(q, "force"),
        warnings: warnings.clone(),
    }
}

/// Refuses a field selector on a label the kind does not support, with the
/// list handler's message (`Unable to find {"" "v1" "pods"} that match …:
/// field label not supported: spec.foo`). Custom resources take
/// `metadata.name`, `metadata.namespace` and their version's
/// `selectableFields`.
fn check_field_labels(
    s: &Shared,
    info: &ResourceInfo,
    q: &HashMap<String, String>,
) -> ApiResult<()> {
    let opts = list_options(q)?;
    let selectable: Vec<String> = match &info.crd {
        Some(crd_name) => {
            let g = s.api.lock();
            let crds = g
                .registry
                .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                .cloned();
            crds.and_then(|c| g.get(&c, "", crd_name).cloned())
                .map(|crd| {
                    crd["spec"]["versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|v| v["name"] == info.version.as_str())
                        .flat_map(|v| {
                            v["selectableFields"]
                                .as_array()
                                .cloned()
                                .unwrap_or_default()
                        })
                        .filter_map(|f| {
                            f["jsonPath"]
                                .as_str()
                                .map(|p| p.trim_start_matches('.').to_string())
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        None => crate::selector::extra_field_labels(&info.group, &info.resource)
            .iter()
            .map(|l| l.to_string())
            .collect(),
    };
    let supported = |label: &str| {
        matches!(label, "metadata.name" | "metadata.namespace")
            || selectable.iter().any(|l| l == label)
    };
    match opts.field_selector.unsupported_label(supported) {
        None => Ok(()),
        Some(label) => Err(ApiError::bad_request(format!(
            "Unable to find {{{:?} {:?} {:?}}} that match label selector {:?}, field selector {:?}: field label not supported: {label}",
            info.group,
            info.version,
            info.resource,
            q.get("labelSelector").map_or("", String::as_str),
            q.get("fieldSelector").map_or("", String::as_str),
        ))),
    }
}

/// List options, checked as apimachinery's `ValidateListOptions` does
/// (`pkg/apis/meta/internalversion/validation`).
fn list_options(q: &HashMap<String, String>) -> ApiResult<ListOptions> {
    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
    let rv_match = q.get("resourceVersionMatch").cloned().unwrap_or_default();
    if !rv_match.is_empty() && !is_true(q, "watch") {
        use crate::errors::Cause;
        let mut causes = Vec::new();
        if rv.is_empty() {
            causes.push(Cause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if q.get("continue").is_some_and(|c| !c.is_empty()) {
            causes.push(Cause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if rv_match != "Exact" && rv_match != "NotOlderThan" {
            causes.push(Cause::not_supported(
                "resourceVersionMatch",
                &rv_match,
                &["Exact", "NotOlderThan", ""],
            ));
        }
        if rv_match == "Exact" && rv == "0" {
            causes.push(Cause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        if !causes.is_empty() {
            return Err(crate::request_validation::invalid_options(
                "ListOptions",
                causes,
            ));
        }
    }
    Ok(ListOptions {
        resource_version: rv,
        resource_version_match: rv_match,
        label_selector: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        field_selector: FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))?,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_token: q.get("continue").cloned(),
    })
}

fn delete_options(q: &HashMap<String, String>, body: &Value) -> ApiResult<DeleteOptions> {
    let policy = body["propagationPolicy"]
        .as_str()
        .map(String::from)
        .or_else(|| q.get("propagationPolicy").cloned())
        .or_else(|| {
            (body["orphanDependents"] == json!(true)
                || q.get("orphanDependents").is_some_and(|v| v == "true"))
            .then(|| "Orphan".to_string())
        });
    let propagation = match policy.as_deref() {
        None => None,
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(p) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    let dry = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"))
        || q.get("dryRun").is_some_and(|v| v == "All");
    Ok(DeleteOptions {
        propagation,
        precondition_uid: body["preconditions"]["uid"].as_str().map(String::from),
        precondition_rv: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from),
        dry_run: dry,
    })
}

fn success_status(info: &ResourceInfo, obj: &Value) -> Value {
    let mut details = json!({
        "name": crate::meta::name_of(obj),
        "kind": info.resource,
        "uid": crate::meta::uid_of(obj),
    });
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// Serves a non-watch resource request; returns (HTTP code, body).
#[allow(clippy::too_many_arguments)]
fn serve(
    s: &Shared,
    verb: &str,
    t: &Target,
    q: &HashMap<String, String>,
    content_type: &str,
    user_agent: &str,
    body: &Bytes,
    warnings: &crate::admission::Warnings,
) -> ApiResult<(u16, Value)> {
    let api = &s.api;
    let ns = t.namespace.as_deref().unwrap_or_default();
    let name = t.name.as_deref().unwrap_or_default();
    let sub = t.sub.as_deref();
    let info = &t.info;
    if sub == Some("scale") {
        return scale(s, verb, t, q, content_type, user_agent, body, warnings);
    }
    match verb {
        "get" => Ok((200, api.get(info, ns, name)?)),
        "list" => Ok((
            200,
            api.list(info, t.namespace.as_deref(), &list_options(q)?)?,
        )),
        "create" => {
            if info.namespaced && t.namespace.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let obj = parse_body(body, content_type)?;
            let opts = write_options(q, user_agent, warnings);
            let created = api.create(info, ns, obj, &opts)?;
            Ok((201, add_stuck_finalizers(s, info, created, opts.dry_run)))
        }
        "update" => {
            let obj = parse_body(body, content_type)?;
            Ok((
                200,
                api.update(
                    info,
                    ns,
                    name,
                    obj,
                    sub,
                    &write_options(q, user_agent, warnings),
                )?,
            ))
        }
        "patch" => {
            let accepted = patch_types(info);
            let ptype = PatchType::from_content_type(content_type)
                .filter(|p| accepted.contains(&p.media_type()))
                .ok_or_else(|| ApiError::unsupported_media_type(&accepted))?;
            let patch = if ptype == PatchType::Apply {
                parse_body(body, "yaml")?
            } else {
                parse_body(body, content_type)?
            };
            let opts = write_options(q, user_agent, warnings);
            if ptype != PatchType::Apply && q.contains_key("force") {
                return Err(ApiError::bad_request(
                    "force: Forbidden: may not be specified for non-apply patch",
                ));
            }
            let (obj, created) = api.patch(info, ns, name, ptype, &patch, sub, &opts)?;
            if created {
                Ok((201, add_stuck_finalizers(s, info, obj, opts.dry_run)))
            } else {
                Ok((200, obj))
            }
        }
        "delete" => {
            let b = parse_body(body, "application/json")?;
            match api.delete(info, ns, name, &delete_options(q, &b)?)? {
                Deleted::Pending(o) => Ok((200, o)),
                Deleted::Gone(o) if info.crd.is_some() => Ok((200, o)),
                Deleted::Gone(o) => Ok((200, success_status(info, &o))),
            }
        }
        "deletecollection" => {
            let b = parse_body(body, "application/json")?;
            Ok((
                200,
                api.delete_collection(
                    info,
                    t.namespace.as_deref(),
                    &list_options(q)?,
                    &delete_options(q, &b)?,
                )?,
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The patch types an endpoint accepts, in the API server's order. Strategic
/// merge needs Go struct tags, so custom resources do not take it: the CRD
/// handler (apiextensions-apiserver `customresource_handler.go`) lists only
/// JSON patch, merge patch and apply, and answers others with 415.
fn patch_types(info: &crate::resources::ResourceInfo) -> Vec<&'static str> {
    let mut all = vec![
        PatchType::Json.media_type(),
        PatchType::Merge.media_type(),
        PatchType::Strategic.media_type(),
        PatchType::Apply.media_type(),
    ];
    if info.crd.is_some() {
        all.retain(|m| *m != PatchType::Strategic.media_type());
    }
    all
}

/// `/scale` of a workload or a custom resource that declares it.
#[allow(clippy::too_many_arguments)]
fn scale(
    s: &Shared,
    verb: &str,
    t: &Target,
    q: &HashMap<String, String>,
    content_type: &str,
    user_agent: &str,
    body: &Bytes,
    warnings: &crate::admission::Warnings,
) -> ApiResult<(u16, Value)> {
    use crate::subresources::{ScaleChange, get_scale, write_scale};
    let ns = t.namespace.as_deref().unwrap_or_default();
    let name = t.name.as_deref().unwrap_or_default();
    let mut opts = write_options(q, user_agent, warnings);
    let change_body;
    let change = match verb {
        "get" => return Ok((200, get_scale(&s.api, &t.info, ns, name)?)),
        "update" => {
            change_body = parse_body(body, content_type)?;
            ScaleChange::Replace(&change_body)
        }
        "patch" => {
            let accepted: Vec<&str> = patch_types(&t.info)
                .into_iter()
                .filter(|m| *m != PatchType::Apply.media_type())
                .collect();
            let ptype = PatchType::from_content_type(content_type)
                .filter(|p| accepted.contains(&p.media_type()))
                .ok_or_else(|| ApiError::unsupported_media_type(&accepted))?;
            change_body = parse_body(body, content_type)?;
            ScaleChange::Patch(ptype, &change_body)
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    opts.force = false;
    Ok((200, write_scale(&s.api, &t.info, ns, name, change, &opts)?))
}

/// kubesim has no authentication or authorization: every request is
/// allowed, and `kubectl auth can-i` / `auth whoami` say so.
async fn self_review(req: Request, path: &str) -> Response {
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let mut review: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    let (api_version, kind, status) = if path.ends_with("selfsubjectaccessreviews") {
        (
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            json!({"allowed": true, "reason": "kubesim authorizes every request"}),
        )
    } else if path.ends_with("selfsubjectrulesreviews") {
        (
            "authorization.k8s.io/v1",
            "SelfSubjectRulesReview",
            json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            }),
        )
    } else {
        (
            "authentication.k8s.io/v1",
            "SelfSubjectReview",
            json!({"userInfo": {"username": "kubesim-admin", "groups": ["system:masters", "system:authenticated"]}}),
        )
    };
    if !review.is_object() {
        review = json!({});
    }
    review["apiVersion"] = json!(api_version);
    review["kind"] = json!(kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    json_response(201, &review)
}

/// `pods/{name}/log` as text.
fn pod_log(s: &Shared, t: &Target, q: &HashMap<String, String>) -> Response {
    let res = crate::subresources::pod_log(
        &s.api,
        &t.info,
        t.namespace.as_deref().unwrap_or_default(),
        t.name.as_deref().unwrap_or_default(),
        q.get("container").map(String::as_str),
        q.get("tailLines").and_then(|n| n.parse().ok()),
        is_true(q, "timestamps"),
    );
    match res {
        Ok(text) => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(text))
            .unwrap(),
        Err(e) => error_response(&e),
    }
}

/// Fault: finalizers the simulator attaches to new objects and never removes.
fn add_stuck_finalizers(s: &Shared, info: &ResourceInfo, obj: Value, dry_run: bool) -> Value {
    let name = crate::meta::name_of(&obj).to_string();
    let extra = s.faults.stuck_finalizers(&info.resource, &name);
    if extra.is_empty() || dry_run {
        return obj;
    }
    let ns = crate::meta::namespace_of(&obj).to_string();
    let res = s.api.modify(info, &ns, &name, None, "kubesim-faults", |o| {
        let mut n = o.clone();
        let mut f = crate::meta::finalizers(o);
        for e in &extra {
            if !f.contains(e) {
                f.push(e.clone());
            }
        }
        crate::meta::set_finalizers(&mut n, &f);
        Some(n)
    });
    match res {
        Ok(Some(o)) => o,
        _ => obj,
    }
}

fn event_line(kind: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(info: &ResourceInfo, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta}),
    )
}

/// A watch: an HTTP 200 whose body is a stream of JSON event lines.
fn watch(
    s: Arc<Shared>,
    t: Target,
    q: &HashMap<String, String>,
    table: Option<crate::table::TableRequest>,
) -> Response {
    let opts = match list_options(q) {
        Ok(o) => o,
        Err(e) => return error_response(&e),
    };
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let send_initial = is_true(q, "sendInitialEvents");
    let bookmarks = is_true(q, "allowWatchBookmarks");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let start = if rv_param.is_empty() || rv_param == "0" || send_initial {
        None
    } else {
        match rv_param.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: \"{rv_param}\": must be a non-negative integer"
                )));
            }
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let info = &t.info;
        let ns = t.namespace.as_deref();
        // Table watches: one row per event, column definitions with the
        // first event only (apiserver handlers/watch.go).
        let crd = table.and_then(|_| crd_of(&s, info));
        let mut first = true;
        let mut shape = |o: Value| -> Value {
            let Some(req) = table else { return o };
            let meta = json!({"resourceVersion": o["metadata"]["resourceVersion"]});
            let now = time::OffsetDateTime::now_utc();
            let v = crate::table::table(req, info, crd.as_ref(), &[o], meta, first, now);
            first = false;
            v
        };
        let matches = |o: &Value| {
            ns.is_none_or(|n| crate::meta::namespace_of(o) == n)
                && t.name
                    .as_deref()
                    .is_none_or(|n| crate::meta::name_of(o) == n)
                && opts.label_selector.matches(o)
                && opts.field_selector.matches(o)
        };
        let mut notify = s.api.store.subscribe();
        notify.borrow_and_update();
        let mut epoch = s.faults.watch_epoch();
        epoch.borrow_and_update();
        let mut last = match start {
            // A resourceVersion this cluster has not reached (it restarted
            // empty): the watch cache answers with an ERROR event, which
            // clients take as "list again" (client-go's reflector does).
            Some(rv) if rv > s.api.lock().resource_version() => {
                let current = s.api.lock().resource_version();
                let e = ApiError::resource_version_too_large(rv, current);
                let _ = tx.send(event_line("ERROR", &e.to_status())).await;
                return;
            }
            Some(rv) => rv,
            None => {
                // Synthetic ADDED events for the current state.
                let (rv, objs) = {
                    let g = s.api.lock();
                    let objs: Vec<Value> = g
                        .range(info, ns, None)
                        .filter(|(_, o)| matches(o))
                        .map(|(_, o)| crate::api::Api::with_version(info, o))
                        .collect();
                    (g.resource_version(), objs)
                };
                for o in objs {
                    if tx.send(event_line("ADDED", &shape(o))).await.is_err() {
                        return;
                    }
                }
                if send_initial && bookmarks && tx.send(bookmark(info, rv, true)).await.is_err() {
                    return;
                }
                rv
            }
        };
        let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
        let drop_at = s
            .faults
            .drop_watches_after()
            .map(|d| tokio::time::Instant::now() + d);
        let mut tick = tokio::time::interval(s.config.bookmark_interval);
        tick.tick().await;
        loop {
            let events = match s.api.events_since(last) {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx.send(event_line("ERROR", &e.to_status())).await;
                    return;
                }
            };
            for e in events {
                last = e.rv;
                if e.group != info.group || e.resource != info.resource {
                    continue;
                }
                // Selector transitions as the watch cache sends them
                // (cacher.go convertToWatchEvent): an object that starts
                // matching is ADDED; one that stops matching is DELETED, with
                // its previous content at the event's resourceVersion.
                let now = matches(&e.object);
                let before = e.prev.as_deref().is_some_and(&matches);
                let (kind, o) = match (e.kind, now, before) {
                    (crate::store::EventType::Modified, true, false) => {
                        ("ADDED", (*e.object).clone())
                    }
                    (crate::store::EventType::Modified, false, true) => {
                        let mut p = e.prev.as_deref().cloned().unwrap_or_default();
                        p["metadata"]["resourceVersion"] = json!(e.rv.to_string());
                        ("DELETED", p)
                    }
                    (_, true, _) => (e.kind.as_str(), (*e.object).clone()),
                    _ => continue,
                };
                let o = crate::api::Api::with_version(info, &o);
                if tx.send(event_line(kind, &shape(o))).await.is_err() {
                    return;
                }
            }
            let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
            tokio::select! {
                r = notify.changed() => if r.is_err() { return },
                _ = tick.tick(), if bookmarks => {
                    let rv = s.api.lock().resource_version().max(last);
                    // Events up to `rv` for this resource were already sent
                    // (or will be skipped), so resuming from rv is safe.
                    let pending = s.api.events_since(last).map(|e| e.is_empty()).unwrap_or(false);
                    if pending && tx.send(bookmark(info, rv, false)).await.is_err() { return }
                    if pending { last = rv; }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => return,
                _ = tokio::time::sleep_until(drop_at.unwrap_or(far)) => return,
                _ = epoch.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// `/kubesim/faults` (GET, POST, DELETE), `/kubesim/faults/drop-watches`
/// (POST) and `/kubesim/stats` (GET, DELETE).
async fn admin(s: &Shared, req: Request, path: &str) -> Response {
    let method = req.method().clone();
    match (path, method) {
        ("/kubesim/faults", Method::GET) => json_response(200, &json!(s.faults.get())),
        ("/kubesim/faults", Method::POST) | ("/kubesim/faults", Method::PUT) => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            match serde_json::from_slice::<crate::faults::FaultConfig>(&body) {
                Ok(cfg) => {
                    s.faults.set(cfg);
                    json_response(200, &json!(s.faults.get()))
                }
                Err(e) => error_response(&ApiError::bad_request(format!(
                    "invalid fault configuration: {e}"
                ))),
            }
        }
        ("/kubesim/faults", Method::DELETE) => {
            s.faults.clear();
            json_response(200, &json!(s.faults.get()))
        }
        ("/kubesim/faults/drop-watches", Method::POST) => {
            s.faults.drop_watches_now();
            json_response(200, &json!({"dropped": true}))
        }
        ("/kubesim/stats", Method::GET) => json_response(200, &json!(s.stats.snapshot())),
        ("/kubesim/stats", Method::DELETE) => {
            s.stats.reset();
            json_response(200, &json!(s.stats.snapshot()))
        }
        _ => error_response(&ApiError::method_not_allowed()),
    }
}
