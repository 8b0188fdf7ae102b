//! API semantics independent of HTTP: create, get, list, update, patch
//! (including server-side apply), delete and deletecollection, with the
//! metadata rules of the real API server. The HTTP layer and the simulated
//! controllers both go through here, so controllers obey the same rules
//! (optimistic concurrency aside: they always work on the latest object).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::kinds;
use crate::managed_fields::{self, Scope, Writer};
use crate::meta::{self, finalizers, is_deleting, name_of, now_rfc3339};
use crate::patch;
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventType, Inner, Since, Store, StoreGuard};
use crate::validation;

/// Options shared by writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager`; defaults to the user agent's product name.
    pub field_manager: Option<String>,
    pub dry_run: bool,
    /// `force` for server-side apply.
    pub force: bool,
    /// Admission warnings, sent back as `Warning` headers.
    pub warnings: crate::admission::Warnings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let ct = ct.split(';').next().unwrap_or_default().trim();
        match ct {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }

    /// The canonical media type (what 415 messages list).
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// `resourceVersion` and `resourceVersionMatch` as sent (empty: unset).
    pub resource_version: String,
    pub resource_version_match: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; this is its final state.
    Gone(Value),
    /// Deletion is pending on finalizers; this is the updated object.
    Pending(Value),
}

const FOREGROUND: &str = "foregroundDeletion";

pub struct Api {
    pub store: Arc<Store>,
    next_ip: AtomicU32,
}

/// Encodes a continue token: opaque to clients, but must survive URLs.
fn encode_continue(rv: u64, key: &(String, String)) -> String {
    let raw = json!([rv, key.0, key.1]).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(tok: &str) -> Option<(u64, (String, String))> {
    let bytes: Option<Vec<u8>> = (0..tok.len())
        .step_by(2)
        .map(|i| {
            tok.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let v: Value = serde_json::from_slice(&bytes?).ok()?;
    Some((
        v[0].as_u64()?,
        (v[1].as_str()?.to_string(), v[2].as_str()?.to_string()),
    ))
}

/// Strips metadata and status to compare "spec" content for generation.
fn spec_content(v: &Value) -> Value {
    let mut o = v.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

/// Objects are compared with managedFields but without their timestamps: a
/// write that changes nothing but `time` there is a no-op, while one that
/// changes ownership (a second applier of identical values becoming a
/// co-owner, a client clearing managedFields) is a write, as in the API
/// server's `IgnoreManagedFieldsTimestampsTransformer`.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut o = v.clone();
        if let Some(m) = o["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                    e.remove("time");
                }
                // Order follows the timestamps (the API server sorts entries
                // by operation, then time), so it is not compared either.
                entries.sort_by_cached_key(Value::to_string);
            }
        }
        o
    };
    strip(a) == strip(b)
}

impl Api {
    pub fn new(store: Arc<Store>) -> Api {
        Api {
            store,
            next_ip: AtomicU32::new(10),
        }
    }

    pub fn lock(&self) -> StoreGuard<'_> {
        self.store.lock()
    }

    /// The stored resource for a (group, resource) pair, in its first served version.
    pub fn info_for(&self, group: &str, resource: &str) -> Option<ResourceInfo> {
        self.lock()
            .registry
            .group_resources()
            .into_iter()
            .find(|r| r.group == group && r.resource == resource)
            .cloned()
    }

    /// Resolves a served resource.
    pub fn resource(&self, group: &str, version: &str, resource: &str) -> Option<ResourceInfo> {
        self.lock().registry.find(group, version, resource).cloned()
    }

    /// A stored object as `info`'s version serves it.
    pub fn with_version(info: &ResourceInfo, obj: &Value) -> Value {
        crate::conversion::from_storage(info, obj)
    }

    /// The storage version's resource when `info` is served by conversion.
    fn storage_of(&self, info: &ResourceInfo) -> Option<ResourceInfo> {
        crate::conversion::storage_version(info)
            .and_then(|v| self.resource(&info.group, v, &info.resource))
    }

    /// An object sent in `info`'s version, checked and converted to `st`'s.
    fn convert_in(info: &ResourceInfo, st: &ResourceInfo, obj: Value) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        check_type_meta(info, &obj)?;
        crate::conversion::to_storage(info, st, obj).map_err(ApiError::bad_request)
    }

    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> ApiResult<Value> {
        let g = self.lock();
        g.get(info, ns, name)
            .map(|o| Self::with_version(info, o))
            .ok_or_else(|| ApiError::not_found(info, name))
    }

    pub fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<Value> {
        let (metadata, items) = self.list_shared(info, ns, opts)?;
        Ok(json!({
            "kind": info.list_kind(),
            "apiVersion": info.api_version(),
            "metadata": metadata,
            "items": items.iter().map(|o| Self::with_version(info, o)).collect::<Vec<_>>(),
        }))
    }

    /// Serializes a list straight from the stored objects: large lists are
    /// not deep-cloned first (the HTTP path uses this).
    pub fn list_json(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<Vec<u8>> {
        let (metadata, items) = self.list_shared(info, ns, opts)?;
        let mut out = Vec::with_capacity(64 + items.len() * 512);
        let head = json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": metadata});
        let head = serde_json::to_vec(&head).expect("serializable");
        out.extend_from_slice(&head[..head.len() - 1]);
        out.extend_from_slice(b",\"items\":[");
        let av = info.api_version();
        for (i, o) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if o["apiVersion"].as_str() == Some(av.as_str()) {
                serde_json::to_writer(&mut out, &**o).expect("serializable");
            } else {
                serde_json::to_writer(&mut out, &Self::with_version(info, o))
                    .expect("serializable");
            }
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// The matching stored objects (shared, not copied) and the list metadata.
    fn list_shared(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<(Value, Vec<Arc<Value>>)> {
        let g = self.lock();
        let current = g.resource_version();
        // https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-get-and-list
        // A continue token is pinned to its list's resourceVersion; an
        // `Exact` list (or, legacy, a paginated list with a resourceVersion
        // and no match) is served at that version; otherwise the list is
        // the most recent state (`NotOlderThan`/`Any`/unset).
        let rv_sent = opts.resource_version.as_str();
        let (list_rv, after) = match &opts.continue_token {
            Some(tok) if !tok.is_empty() => {
                if !rv_sent.is_empty() && rv_sent != "0" {
                    return Err(ApiError::bad_request(
                        "specifying resource version is not allowed when using continue",
                    ));
                }
                let (rv, key) = decode_continue(tok).ok_or_else(|| {
                    ApiError::bad_request("continue key is not valid: illegal base64 data")
                })?;
                if rv < g.oldest_resumable() {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                (rv, Some(key))
            }
            _ if rv_sent.is_empty() || rv_sent == "0" => (current, None),
            _ => {
                let rv: u64 = rv_sent.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid resource version: strconv.ParseUint: parsing {rv_sent:?}: invalid syntax"
                    ))
                })?;
                if rv > current {
                    // The watch cache waits for the version, then gives up
                    // (storage.NewTooLargeResourceVersionError); kubesim's
                    // store is always current, so it would never arrive.
                    return Err(ApiError::too_large_resource_version(rv, current));
                }
                let exact = opts.resource_version_match == "Exact"
                    || opts.resource_version_match.is_empty() && opts.limit.is_some_and(|l| l > 0);
                if exact { (rv, None) } else { (current, None) }
            }
        };
        let snapshot;
        let objects = if list_rv < current {
            snapshot = g.snapshot(info, list_rv).ok_or_else(|| {
                ApiError::expired("The resourceVersion for the provided list is too old.")
            })?;
            crate::store::range_of(&snapshot, ns, after.as_ref())
        } else {
            g.range(info, ns, after.as_ref())
        };
        let limit = opts.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        // remainingItemCount is set only for lists without selectors, as the
        // etcd3 store does; only then is the rest of the range counted.
        let count_rest = opts.label_selector.is_empty() && opts.field_selector.is_empty();
        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0usize;
        let mut more = false;
        for (key, obj) in objects {
            if !opts.label_selector.matches(obj) || !opts.field_selector.matches(obj) {
                continue;
            }
            if items.len() == limit {
                more = true;
                if !count_rest {
                    break;
                }
                remaining += 1;
                continue;
            }
            items.push(obj.clone());
            last_key = Some(key.clone());
        }
        let mut metadata = json!({"resourceVersion": list_rv.to_string()});
        if more && let Some(k) = last_key {
            metadata["continue"] = json!(encode_continue(list_rv, &k));
            if count_rest {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
        Ok((metadata, items))
    }

    /// Events after `rv` (for watches), or 410 when `rv` fell out of the history.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<crate::store::Event>>, ApiError> {
        match self.lock().events_since(rv) {
            Since::Events(e) => Ok(e),
            Since::Expired { oldest } => Err(ApiError::expired(format!(
                "too old resource version: {rv} ({oldest})"
            ))),
        }
    }

    fn check_namespace(g: &Inner, info: &ResourceInfo, ns: &str, name: &str) -> ApiResult<()> {
        if !info.namespaced {
            return Ok(());
        }
        let ns_info = g
            .registry
            .find("", "v1", "namespaces")
            .expect("namespaces are built in");
        match g.get(ns_info, "", ns) {
            None => Err(ApiError::namespace_not_found(ns)),
            Some(n) if is_deleting(n) => Err(ApiError::namespace_terminating(info, name, ns)),
            Some(_) => Ok(()),
        }
    }

    fn allocate_cluster_ip(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed);
        format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }

    /// Common checks and metadata for a new object.
    fn prepare_create(
        &self,
        g: &Inner,
        info: &ResourceInfo,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        check_type_meta(info, &obj)?;
        obj["apiVersion"] = json!(info.api_version());
        obj["kind"] = json!(info.kind);
        let mut generated_from = None;
        let m = meta::meta_mut(&mut obj);
        if info.namespaced {
            match m.get("namespace").and_then(Value::as_str) {
                Some(bns) if !bns.is_empty() && bns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        if m.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            match m.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    generated_from = Some(prefix.to_string());
                    let n = format!("{prefix}{}", meta::random_suffix(5));
                    m.insert("name".into(), json!(n));
                }
                _ => {
                    return Err(ApiError::invalid(
                        info,
                        "",
                        vec![Cause::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            }
        }
        let name = name_of(&obj).to_string();
        let mut causes = meta::validate_name(&name, meta::name_rule(&info.resource));
        causes.extend(validation::validate_create(info, &obj));
        if let Some(schema) = info.crd.as_ref().and(info.schema.as_ref()) {
            causes.extend(crate::structural::admit(schema, &mut obj));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(info, &name, causes));
        }
        Self::check_namespace(g, info, ns, &name)?;
        if g.get(info, ns, &name).is_some() {
            return Err(ApiError::already_exists(info, &name));
        }
        let now = now_rfc3339();
        let m = meta::meta_mut(&mut obj);
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(now));
        m.remove("deletionTimestamp");
        m.remove("resourceVersion");
        m.remove("selfLink");
        if info.has_generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if info.has_status {
            // Status is owned by controllers; a create cannot set it.
            obj.as_object_mut().unwrap().remove("status");
        }
        if let Some(s) = validation::initial_status(info) {
            obj["status"] = s;
        }
        validation::apply_defaults(info, &mut obj);
        kinds::of(info).on_create(&mut obj, &|| self.allocate_cluster_ip());
        // Admission errors name a generated object by its prefix: the
        // API server generates names after admission (admission/errors.go).
        let display = generated_from.unwrap_or_else(|| name.clone());
        for w in crate::admission::admit_create(g, info, ns, &display, &mut obj)? {
            opts.warnings.push(w);
        }
        Ok(obj)
    }

    /// Creates an object (POST).
    pub fn create(
        &self,
        info: &ResourceInfo,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        if let Some(st) = self.storage_of(info) {
            let obj = Self::convert_in(info, &st, obj)?;
            return self
                .create(&st, ns, obj, opts)
                .map(|o| Self::with_version(info, &o));
        }
        let mut g = self.lock();
        let mut obj = self.prepare_create(&g, info, ns, obj, opts)?;
        let now = now_rfc3339();
        let manager = opts.field_manager.clone().unwrap_or_default();
        let scope = if info.has_status {
            Scope::NoStatus
        } else {
            Scope::All
        };
        managed_fields::track_update(
            None,
            &mut obj,
            &Writer {
                manager: &manager,
                api_version: &info.api_version(),
                subresource: None,
                scope,
                now: &now,
            },
        );
        if opts.dry_run {
            return Ok(obj);
        }
        let stored = self.commit(&mut g, info, None, obj)?;
        Ok(Self::with_version(info, &stored))
    }

    /// Applies the shared update rules to `new` and stores it.
    /// `sub` is `None`, `Some("status")` or `Some("finalize")`.
    fn finish_update(
        &self,
        g: &mut StoreGuard,
        info: &ResourceInfo,
        old: &Value,
        mut new: Value,
        sub: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let dry_run = opts.dry_run;
        let name = name_of(old).to_string();
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        // Subresources only carry their own part of the object.
        match sub {
            Some("status") => {
                let status = new["status"].clone();
                let mf = new["metadata"]["managedFields"].clone();
                new = old.clone();
                new["status"] = status;
                meta::meta_mut(&mut new).insert("managedFields".into(), mf);
            }
            Some("finalize") => {
                let f = new["spec"]["finalizers"].clone();
                new = old.clone();
                new["spec"]["finalizers"] = f;
            }
            _ => {
                if info.has_status {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            new.as_object_mut().unwrap().remove("status");
                        }
                    }
                }
            }
        }
        new["apiVersion"] = json!(info.api_version());
        new["kind"] = json!(info.kind);
        let om = old["metadata"].as_object().cloned().unwrap_or_default();
        let m = meta::meta_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "generation",
        ] {
            match om.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.insert("name".into(), json!(name));
        if m.get("managedFields").is_some_and(Value::is_null) {
            m.remove("managedFields");
        }
        validation::apply_defaults(info, &mut new);
        kinds::of(info).on_update(old, &mut new);
        let mut causes = validation::validate_update(info, old, &new);
        if let Some(schema) = info.crd.as_ref().and(info.schema.as_ref()) {
            causes.extend(crate::structural::admit(schema, &mut new));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(info, &name, causes));
        }
        if info.has_generation && spec_content(old) != spec_content(&new) {
            let next_gen = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta::meta_mut(&mut new).insert("generation".into(), json!(next_gen));
        }
        if same_content(old, &new) {
            // Nothing changed: no write, no new resourceVersion, no event.
            return Ok(Self::with_version(info, old));
        }
        if sub.is_none() {
            for w in crate::admission::admit_update(g, info, old, &mut new)? {
                opts.warnings.push(w);
            }
        }
        if dry_run {
            return Ok(new);
        }
        let stored = self.commit(g, info, Some(old), new)?;
        Ok(Self::with_version(info, &stored))
    }

    /// Stores a created or updated object, finishing a pending deletion when
    /// its last finalizer went away.
    fn commit(
        &self,
        g: &mut StoreGuard,
        info: &ResourceInfo,
        old: Option<&Value>,
        new: Value,
    ) -> ApiResult<Value> {
        let ns = meta::namespace_of(&new).to_string();
        let name = name_of(&new).to_string();
        let behaviour = kinds::of(info);
        let spec_finalizers_empty = new["spec"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
            || !behaviour.spec_finalizers_hold_deletion();
        if is_deleting(&new) && finalizers(&new).is_empty() && spec_finalizers_empty {
            let gone = g.remove_as(info, &ns, &name, Some(new)).expect("exists");
            self.after_remove(g, info, &gone);
            return Ok((*gone).clone());
        }
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        let stored = g.put(info, new, kind);
        behaviour.after_commit(g, old.is_none(), &stored);
        if !ns.is_empty() && crate::admission::quota::is_counted(&info.group, &info.resource) {
            crate::admission::refresh_quotas(g, &ns);
        }
        Ok((*stored).clone())
    }

    fn after_remove(&self, g: &mut StoreGuard, info: &ResourceInfo, gone: &Value) {
        let ns = meta::namespace_of(gone);
        if !ns.is_empty() && crate::admission::quota::is_counted(&info.group, &info.resource) {
            crate::admission::refresh_quotas(g, ns);
        }
        kinds::of(info).after_remove(g, gone);
    }

    /// Replaces an object (PUT), with optimistic concurrency on resourceVersion.
    pub fn update(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        body: Value,
        sub: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        if let Some(st) = self.storage_of(info) {
            let body = Self::convert_in(info, &st, body)?;
            return self
                .update(&st, ns, name, body, sub, opts)
                .map(|o| Self::with_version(info, &o));
        }
        let mut g = self.lock();
        let old = g
            .get(info, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if let Some(bn) = body["metadata"]["name"].as_str()
            && bn != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({bn}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(info, name));
        }
        let mut new = body;
        // managedFields the client sent are the starting point of ownership
        // (see managed_fields::base_entries); the change is tracked on top.
        self.track(info, &old, &mut new, sub, opts);
        self.finish_update(&mut g, info, &old, new, sub, opts)
    }

    fn track(
        &self,
        info: &ResourceInfo,
        old: &Value,
        new: &mut Value,
        sub: Option<&str>,
        opts: &WriteOptions,
    ) {
        let scope = match sub {
            Some("status") => Scope::StatusOnly,
            _ if info.has_status => Scope::NoStatus,
            _ => Scope::All,
        };
        let manager = opts.field_manager.clone().unwrap_or_default();
        let now = now_rfc3339();
        managed_fields::track_update(
            Some(old),
            new,
            &Writer {
                manager: &manager,
                api_version: &info.api_version(),
                subresource: sub,
                scope,
                now: &now,
            },
        );
    }

    /// PATCH. Returns the object and whether it was created (apply only).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        ptype: PatchType,
        body: &Value,
        sub: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, bool)> {
        // A patch applies to the object as the client's version shows it;
        // the result is converted back to the storage version (the API
        // server's patcher does the same through its internal type).
        let st = self.storage_of(info);
        let st_info = st.as_ref().unwrap_or(info);
        let mut g = self.lock();
        let old = g.get(st_info, ns, name).cloned();
        if ptype == PatchType::Apply {
            let (obj, created) = self.apply(
                &mut g,
                info,
                st_info,
                ns,
                name,
                old.as_deref(),
                body,
                sub,
                opts,
            )?;
            return Ok((Self::with_version(info, &obj), created));
        }
        let old = old.ok_or_else(|| ApiError::not_found(info, name))?;
        let mut new = match &st {
            Some(_) => Self::with_version(info, &old),
            None => (*old).clone(),
        };
        match ptype {
            PatchType::Merge => patch::merge_patch(&mut new, body),
            PatchType::Strategic => patch::strategic_merge_patch(&mut new, body),
            PatchType::Json => {
                patch::json_patch(&mut new, body).map_err(|e| ApiError::new(422, "Invalid", e))?
            }
            PatchType::Apply => unreachable!(),
        }
        if st.is_some() {
            new = Self::convert_in(info, st_info, new)?;
        }
        let (req_info, info) = (info, st_info);
        // A resourceVersion in the patch is a precondition.
        if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(info, name));
        }
        if let Some(n) = new["metadata"]["name"].as_str()
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        self.track(info, &old, &mut new, sub, opts);
        let out = self.finish_update(&mut g, info, &old, new, sub, opts)?;
        Ok((Self::with_version(req_info, &out), false))
    }

    /// Server-side apply of `cfg`, sent in `info`'s version, to the object
    /// stored as `st` (the same resource unless `info` is served by conversion).
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        g: &mut StoreGuard,
        info: &ResourceInfo,
        st: &ResourceInfo,
        ns: &str,
        name: &str,
        old: Option<&Value>,
        cfg: &Value,
        sub: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, bool)> {
        let manager = match &opts.field_manager {
            Some(m) if !m.is_empty() => m.clone(),
            _ => {
                return Err(ApiError::bad_request(
                    "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
                ));
            }
        };
        if !cfg.is_object() {
            return Err(ApiError::bad_request(
                "apply patch must be a YAML or JSON object",
            ));
        }
        for (field, expected) in [
            ("apiVersion", info.api_version()),
            ("kind", info.kind.clone()),
        ] {
            match cfg[field].as_str() {
                None | Some("") => {
                    return Err(ApiError::bad_request(format!(
                        "invalid object type: /, Kind={}",
                        cfg["kind"].as_str().unwrap_or_default()
                    )));
                }
                Some(v) if v != expected => {
                    return Err(ApiError::bad_request(format!(
                        "the {} in the data ({v}) does not match the expected {} ({expected})",
                        if field == "kind" {
                            "kind"
                        } else {
                            "API version"
                        },
                        if field == "kind" {
                            "kind"
                        } else {
                            "API version"
                        },
                    )));
                }
                _ => {}
            }
        }
        if let Some(n) = cfg["metadata"]["name"].as_str()
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let scope = match sub {
            Some("status") => Scope::StatusOnly,
            _ if info.has_status => Scope::NoStatus,
            _ => Scope::All,
        };
        let now = now_rfc3339();
        let w = Writer {
            manager: &manager,
            api_version: &info.api_version(),
            subresource: sub,
            scope,
            now: &now,
        };
        let converted = info.version != st.version;
        match old {
            None => {
                if sub.is_some() {
                    return Err(ApiError::not_found(info, name));
                }
                // Apply creates: the skeleton goes through the create path,
                // then the applied configuration is merged into it.
                let mut skeleton = json!({
                    "apiVersion": info.api_version(),
                    "kind": info.kind,
                    "metadata": {"name": name},
                });
                if info.namespaced {
                    skeleton["metadata"]["namespace"] = json!(ns);
                }
                let mut merged = managed_fields::apply(&skeleton, cfg, opts.force, &w)
                    .map_err(|c| ApiError::apply_conflict(&c))?;
                let mf = merged["metadata"]["managedFields"].clone();
                if converted {
                    merged = Self::convert_in(info, st, merged)?;
                }
                let mut created = self.prepare_create(g, st, ns, merged.clone(), opts)?;
                meta::meta_mut(&mut created).insert("managedFields".into(), mf);
                merged = created;
                if opts.dry_run {
                    return Ok((merged, true));
                }
                let stored = self.commit(g, st, None, merged)?;
                Ok((stored, true))
            }
            Some(old) => {
                if let Some(rv) = cfg["metadata"]["resourceVersion"].as_str()
                    && Some(rv) != old["metadata"]["resourceVersion"].as_str()
                {
                    return Err(ApiError::conflict(info, name));
                }
                let mut merged = if converted {
                    let view = Self::with_version(info, old);
                    let m = managed_fields::apply(&view, cfg, opts.force, &w);
                    m.map_err(|c| ApiError::apply_conflict(&c))
                        .and_then(|m| Self::convert_in(info, st, m))?
                } else {
                    managed_fields::apply(old, cfg, opts.force, &w)
                        .map_err(|c| ApiError::apply_conflict(&c))?
                };
                if converted {
                    merged["apiVersion"] = json!(st.api_version());
                }
                let out = self.finish_update(g, st, old, merged, sub, opts)?;
                Ok((out, false))
            }
        }
    }

    /// DELETE of one object.
    pub fn delete(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let mut g = self.lock();
        self.delete_locked(&mut g, info, ns, name, opts)
    }

    fn delete_locked(
        &self,
        g: &mut StoreGuard,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let old = g
            .get(info, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if let Some(uid) = &opts.precondition_uid
            && uid != meta::uid_of(&old)
        {
            return Err(ApiError {
                message: format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid_of(&old)
                ),
                ..ApiError::conflict(info, name)
            });
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError {
                message: format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    old["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                ),
                ..ApiError::conflict(info, name)
            });
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(Self::with_version(info, &old)));
        }
        let mut new = (*old).clone();
        if is_deleting(&old) {
            // Already being deleted; a foreground request may still add its finalizer.
            if opts.propagation == Some(Propagation::Foreground) {
                let mut f = finalizers(&new);
                if !f.iter().any(|x| x == FOREGROUND) {
                    f.push(FOREGROUND.into());
                    meta::set_finalizers(&mut new, &f);
                    let stored = g.put(info, new, EventType::Modified);
                    return Ok(Deleted::Pending(Self::with_version(info, &stored)));
                }
            }
            return Ok(Deleted::Pending(Self::with_version(info, &old)));
        }
        let uid = meta::uid_of(&old).to_string();
        let propagation = opts.propagation.unwrap_or_default();
        if propagation == Propagation::Orphan {
            self.orphan_dependents(g, &uid);
        }
        let mut fins = finalizers(&new);
        if propagation == Propagation::Foreground && !g.dependents_of(&uid).is_empty() {
            fins.push(FOREGROUND.into());
            meta::set_finalizers(&mut new, &fins);
        }
        let behaviour = kinds::of(info);
        let spec_fins = new["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if !fins.is_empty() || (behaviour.spec_finalizers_hold_deletion() && spec_fins) {
            let m = meta::meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            behaviour.on_deletion_started(&mut new);
            let stored = g.put(info, new, EventType::Modified);
            return Ok(Deleted::Pending(Self::with_version(info, &stored)));
        }
        // No finalizers: the object goes away now, with a single DELETED event.
        let gone = g.remove(info, ns, name).expect("present");
        self.after_remove(g, info, &gone);
        Ok(Deleted::Gone(Self::with_version(info, &gone)))
    }

    /// Removes ownerReferences to `uid` from all dependents (orphan propagation).
    fn orphan_dependents(&self, g: &mut StoreGuard, uid: &str) {
        for ((group, resource), dep) in g.dependents_of(uid) {
            let Some(dinfo) = g
                .registry
                .group_resources()
                .into_iter()
                .find(|r| r.group == group && r.resource == resource)
                .cloned()
            else {
                continue;
            };
            let mut d = (*dep).clone();
            if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != uid);
                if refs.is_empty() {
                    meta::meta_mut(&mut d).remove("ownerReferences");
                }
            }
            g.put(&dinfo, d, EventType::Modified);
        }
    }

    /// DELETE on a collection: deletes every matching object.
    pub fn delete_collection(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let mut g = self.lock();
        let keys: Vec<(String, String)> = g
            .range(info, ns, None)
            .filter(|(_, o)| list.label_selector.matches(o) && list.field_selector.matches(o))
            .map(|(k, _)| k.clone())
            .collect();
        let mut items = Vec::new();
        for (kns, name) in keys {
            match self.delete_locked(&mut g, info, &kns, &name, opts)? {
                Deleted::Gone(o) | Deleted::Pending(o) => items.push(o),
            }
        }
        Ok(json!({
            "kind": info.list_kind(),
            "apiVersion": info.api_version(),
            "metadata": {"resourceVersion": g.resource_version().to_string()},
            "items": items,
        }))
    }

    /// Used by the simulated controllers: read-modify-write on the latest
    /// version with a closure, as a `Update` by `manager`. Returns `None` if
    /// the object is gone. A closure returning `None` means "no change".
    pub fn modify(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        manager: &str,
        f: impl FnOnce(&Value) -> Option<Value>,
    ) -> ApiResult<Option<Value>> {
        let mut g = self.lock();
        let Some(old) = g.get(info, ns, name).cloned() else {
            return Ok(None);
        };
        let Some(mut new) = f(&old) else {
            return Ok(Some((*old).clone()));
        };
        let opts = WriteOptions {
            field_manager: Some(manager.into()),
            ..Default::default()
        };
        self.track(info, &old, &mut new, sub, &opts);
        self.finish_update(&mut g, info, &old, new, sub, &opts)
            .map(Some)
    }
}

/// The body's apiVersion and kind, when set, must be the endpoint's.
fn check_type_meta(info: &ResourceInfo, obj: &Value) -> ApiResult<()> {
    if let Some(av) = obj["apiVersion"].as_str()
        && av != info.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    if let Some(k) = obj["kind"].as_str()
        && k != info.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            info.kind
        )));
    }
    Ok(())
}
