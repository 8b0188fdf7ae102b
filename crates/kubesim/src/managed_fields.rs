//! Field ownership for server-side apply: `managedFields` in the FieldsV1
//! format, conflict detection between managers, and the apply merge.
//!
//! A field set is a set of paths. Each path element is spelled exactly as in
//! FieldsV1 (`f:spec`, `k:{"name":"app"}`, `v:"finalizer"`), so converting to and
//! from the wire format is a tree walk. Members are leaves (scalars, atomic
//! lists, empty maps) and associative-list items (the `.` entries).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::schema::{ListType, key_value, list_type, same_key};

pub type Path = Vec<String>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(pub BTreeSet<Path>);

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn union(&self, o: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&o.0).cloned().collect())
    }
    pub fn minus(&self, o: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&o.0).cloned().collect())
    }
    pub fn intersect(&self, o: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&o.0).cloned().collect())
    }

    /// Serializes to the FieldsV1 tree (`{"f:data":{"f:key":{}}}`).
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for el in path {
                node = node
                    .entry(el.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .unwrap();
            }
        }
        // A member that also has members below it is marked with ".".
        for path in &self.0 {
            let mut node = &mut root;
            for el in path {
                node = node.get_mut(el).unwrap().as_object_mut().unwrap();
            }
            if !node.is_empty() && !node.contains_key(".") {
                node.insert(".".into(), json!({}));
            }
        }
        Value::Object(root)
    }

    pub fn from_fields_v1(v: &Value) -> FieldSet {
        fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
            let Some(m) = v.as_object() else { return };
            if m.is_empty() && !path.is_empty() {
                out.insert(path.clone());
            }
            for (k, child) in m {
                if k == "." {
                    out.insert(path.clone());
                    continue;
                }
                path.push(k.clone());
                walk(child, path, out);
                path.pop();
            }
        }
        let mut out = BTreeSet::new();
        walk(v, &mut Vec::new(), &mut out);
        FieldSet(out)
    }
}

fn key_element(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        let v = key_value(item, k);
        if !v.is_null() {
            m.insert(k.to_string(), v);
        }
    }
    format!("k:{}", Value::Object(m))
}

/// The set of fields present in `obj` (which the caller has already stripped
/// of fields that are never owned, see [`strip_unowned`]).
pub fn fields_of(obj: &Value) -> FieldSet {
    fn walk(v: &Value, names: &mut Vec<String>, path: &mut Path, out: &mut BTreeSet<Path>) {
        match v {
            Value::Object(m) => {
                if m.is_empty() && !path.is_empty() {
                    out.insert(path.clone());
                }
                for (k, child) in m {
                    if child.is_null() {
                        continue;
                    }
                    names.push(k.clone());
                    path.push(format!("f:{k}"));
                    walk(child, names, path, out);
                    path.pop();
                    names.pop();
                }
            }
            Value::Array(items) => {
                let n: Vec<&str> = names.iter().map(String::as_str).collect();
                match list_type(&n) {
                    ListType::Atomic => {
                        out.insert(path.clone());
                    }
                    ListType::Set => {
                        for it in items {
                            path.push(format!("v:{it}"));
                            out.insert(path.clone());
                            path.pop();
                        }
                    }
                    ListType::Map(keys) => {
                        for it in items {
                            path.push(key_element(it, keys));
                            out.insert(path.clone());
                            walk(it, names, path, out);
                            path.pop();
                        }
                    }
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(obj, &mut Vec::new(), &mut Vec::new(), &mut out);
    FieldSet(out)
}

/// Which part of an object a request may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Main resource of a kind without a status subresource: everything.
    All,
    /// Main resource of a kind with a status subresource: everything but status.
    NoStatus,
    /// The `/status` subresource: only status.
    StatusOnly,
}

/// Removes the fields the API server never tracks ownership of.
pub fn strip_unowned(obj: &Value, scope: Scope) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        match scope {
            Scope::All => {}
            Scope::NoStatus => {
                m.remove("status");
            }
            Scope::StatusOnly => m.retain(|k, _| k == "status"),
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                meta.remove(k);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    o
}

/// Looks a path up in an object.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    let mut names: Vec<&str> = Vec::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            cur = cur.get(f)?;
            names.push(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Value = serde_json::from_str(k).ok()?;
            let keys: Vec<&str> = key.as_object()?.keys().map(String::as_str).collect();
            cur = cur
                .as_array()?
                .iter()
                .find(|it| same_key(it, &key, &keys))?;
        } else if let Some(v) = el.strip_prefix("v:") {
            let val: Value = serde_json::from_str(v).ok()?;
            cur = cur.as_array()?.iter().find(|it| **it == val)?;
        } else if let Some(i) = el.strip_prefix("i:") {
            cur = cur.as_array()?.get(i.parse::<usize>().ok()?)?;
        } else {
            return None;
        }
    }
    Some(cur)
}

/// Removes the node at `path` (a map field, a list item or a set value).
pub fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parents {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = el.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Value>(k) else {
                return;
            };
            let keys: Vec<String> = key
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|it| same_key(it, &key, &keys)))
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (serde_json::from_str::<Value>(k), cur.as_array_mut()) {
            let keys: Vec<String> = key
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            a.retain(|it| !same_key(it, &key, &keys));
        }
    } else if let Some(v) = last.strip_prefix("v:")
        && let (Ok(val), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut())
    {
        a.retain(|it| *it != val);
    }
}

/// Renders a path the way structured-merge-diff prints it in conflict
/// messages: `.spec.containers[name="app"].image`.
pub fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let parts: Vec<String> = key
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = el.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// Merges an applied configuration into the live object: maps recurse,
/// associative lists merge by key, sets union, everything else replaces.
pub fn apply_merge(live: &mut Value, cfg: &Value) {
    fn merge(live: &mut Value, cfg: &Value, names: &mut Vec<String>) {
        match cfg {
            Value::Object(c) => {
                if !live.is_object() {
                    *live = Value::Object(Map::new());
                }
                for (k, v) in c {
                    let l = live.as_object_mut().unwrap();
                    if v.is_null() {
                        l.remove(k);
                        continue;
                    }
                    names.push(k.clone());
                    merge(l.entry(k.clone()).or_insert(Value::Null), v, names);
                    names.pop();
                }
            }
            Value::Array(items) => {
                let n: Vec<&str> = names.iter().map(String::as_str).collect();
                let lt = list_type(&n);
                if !live.is_array() || lt == ListType::Atomic {
                    *live = cfg.clone();
                    return;
                }
                let existing = live.as_array_mut().unwrap();
                match lt {
                    ListType::Set => {
                        for it in items {
                            if !existing.contains(it) {
                                existing.push(it.clone());
                            }
                        }
                    }
                    ListType::Map(keys) => {
                        for it in items {
                            match existing.iter().position(|e| same_key(e, it, keys)) {
                                Some(i) => merge(&mut existing[i], it, names),
                                None => existing.push(it.clone()),
                            }
                        }
                    }
                    ListType::Atomic => unreachable!(),
                }
            }
            _ => *live = cfg.clone(),
        }
    }
    merge(live, cfg, &mut Vec::new())
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn same_identity(&self, manager: &str, operation: &str, sub: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == sub
    }

    /// The manager as printed in conflict messages (`printManager`).
    pub fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
            time: e["time"].as_str().unwrap_or_default().into(),
            subresource: e["subresource"].as_str().map(String::from),
            fields: FieldSet::from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.to_fields_v1(),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    let meta = crate::meta::meta_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// The entries a non-apply write starts from, as the field manager picks them
/// (apimachinery `managedfields/internal/fieldmanager.go` `Update`, and
/// <https://kubernetes.io/docs/reference/using-api/server-side-apply/#clearing-managedfields>):
/// managedFields the client sent replace the live ones, so clients can rewrite
/// ownership; a list with one empty entry (`[{}]`) strips them all; an absent
/// or empty list, or one that does not decode, keeps the live ones (so clients
/// unaware of the field cannot drop it); writes to a subresource always keep
/// the live ones.
pub fn base_entries(live: Option<&Value>, sent: &Value, sub: Option<&str>) -> Vec<Entry> {
    let keep_live = || live.map(read_entries).unwrap_or_default();
    if sub.is_some() {
        return keep_live();
    }
    let Some(list) = sent.as_array().filter(|l| !l.is_empty()) else {
        return keep_live();
    };
    if list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty) {
        return Vec::new();
    }
    // What DecodeManagedFields refuses (then the live entries are used).
    let decodes = list.iter().all(|e| {
        matches!(e["operation"].as_str(), Some("Apply" | "Update"))
            && e["apiVersion"].as_str().is_some_and(|v| !v.is_empty())
            && e["fieldsType"].as_str() == Some("FieldsV1")
            && e["fieldsV1"].is_object()
    });
    if !decodes {
        return keep_live();
    }
    read_entries(&json!({"metadata": {"managedFields": sent}}))
}

/// Parameters of one write, for ownership bookkeeping.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub scope: Scope,
    pub now: &'a str,
}

/// Records a non-apply write (create, update, patch): changed fields move to
/// the writer's `Update` entry; removed fields leave every entry.
pub fn track_update(old: Option<&Value>, new: &mut Value, w: &Writer) {
    let mut entries = base_entries(old, &new["metadata"]["managedFields"], w.subresource);
    let old_s = old
        .map(|o| strip_unowned(o, w.scope))
        .unwrap_or(Value::Null);
    let new_s = strip_unowned(new, w.scope);
    let old_set = if old.is_some() {
        fields_of(&old_s)
    } else {
        FieldSet::default()
    };
    let new_set = fields_of(&new_s);
    let changed = FieldSet(
        new_set
            .0
            .iter()
            .filter(|p| !old_set.0.contains(*p) || value_at(&old_s, p) != value_at(&new_s, p))
            .cloned()
            .collect(),
    );
    let removed = old_set.minus(&new_set);
    for e in entries.iter_mut() {
        e.fields = e.fields.minus(&removed);
        if !e.same_identity(w.manager, "Update", w.subresource) {
            e.fields = e.fields.minus(&changed);
        }
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.same_identity(w.manager, "Update", w.subresource))
        {
            Some(e) => {
                e.fields = e.fields.union(&changed);
                e.time = w.now.into();
                e.api_version = w.api_version.into();
            }
            None => entries.push(Entry {
                manager: w.manager.into(),
                operation: "Update".into(),
                api_version: w.api_version.into(),
                time: w.now.into(),
                subresource: w.subresource.map(String::from),
                fields: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// Server-side apply of `cfg` onto `live` (an empty object for a create).
/// Returns the merged object with updated managedFields, or the conflicts as
/// (printed manager, path) pairs.
pub fn apply(
    live: &Value,
    cfg: &Value,
    force: bool,
    w: &Writer,
) -> Result<Value, Vec<(String, String)>> {
    let mut entries = read_entries(live);
    let cfg_s = strip_unowned(cfg, w.scope);
    let live_s = strip_unowned(live, w.scope);
    let cfg_set = fields_of(&cfg_s);

    let is_me = |e: &Entry| e.same_identity(w.manager, "Apply", w.subresource);
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !is_me(e)) {
        for p in e.fields.intersect(&cfg_set).0 {
            // Associative-list items are identities, not values: two managers
            // may both list an item. Only leaf values can conflict.
            if p.last().is_some_and(|l| l.starts_with("k:")) {
                continue;
            }
            if value_at(&live_s, &p) != value_at(&cfg_s, &p) {
                conflicts.push((e.printed(), path_string(&p), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts.into_iter().map(|(m, p, _)| (m, p)).collect());
    }
    // With force, the applier takes the conflicting fields away from the others.
    let taken = FieldSet(conflicts.into_iter().map(|(_, _, p)| p).collect());
    for e in entries.iter_mut().filter(|e| !is_me(e)) {
        e.fields = e.fields.minus(&taken);
    }

    let prev = entries
        .iter()
        .find(|e| is_me(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others = entries
        .iter()
        .filter(|e| !is_me(e))
        .fold(FieldSet::default(), |acc, e| acc.union(&e.fields));

    let mut merged = live.clone();
    apply_merge(&mut merged, &cfg_s);
    // Fields this manager applied before, no longer applies, and nobody
    // else owns are removed from the object. Deepest paths go first.
    let mut drop: Vec<Path> = prev.minus(&cfg_set).minus(&others).0.into_iter().collect();
    drop.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in drop {
        // A removed item/leaf under a parent that is itself still applied
        // stays removed; a parent that is dropped takes its children with it.
        remove_path(&mut merged, &p);
    }

    entries.retain(|e| !is_me(e));
    // Apply entries come first, as the API server orders them.
    entries.insert(
        0,
        Entry {
            manager: w.manager.into(),
            operation: "Apply".into(),
            api_version: w.api_version.into(),
            time: w.now.into(),
            subresource: w.subresource.map(String::from),
            fields: cfg_set,
        },
    );
    write_entries(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<'a>(m: &'a str) -> Writer<'a> {
        Writer {
            manager: m,
            api_version: "v1",
            subresource: None,
            scope: Scope::All,
            now: "2024-01-01T00:00:00Z",
        }
    }

    #[test]
    fn fields_v1_roundtrip() {
        let obj = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}});
        let set = fields_of(&obj);
        let v1 = set.to_fields_v1();
        assert_eq!(v1["spec"]["f:containers"], Value::Null);
        assert!(v1["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["."].is_object());
        assert!(v1["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["."].is_object());
        assert!(v1["f:metadata"]["f:finalizers"]["v:\"x\""].is_object());
        assert_eq!(FieldSet::from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_conflicts_and_force() {
        let a = apply(
            &json!({}),
            &json!({"data": {"k": "a", "other": "x"}}),
            false,
            &w("a"),
        )
        .unwrap();
        let err = apply(&a, &json!({"data": {"k": "b"}}), false, &w("b")).unwrap_err();
        assert_eq!(err, vec![("\"a\"".to_string(), ".data.k".to_string())]);
        // Same value: shared ownership, no conflict.
        assert!(apply(&a, &json!({"data": {"k": "a"}}), false, &w("b")).is_ok());
        let forced = apply(&a, &json!({"data": {"k": "b"}}), true, &w("b")).unwrap();
        assert_eq!(forced["data"]["k"], "b");
        // a no longer owns data.k, so a re-apply without it keeps b's value.
        let again = apply(&forced, &json!({"data": {"other": "x"}}), false, &w("a")).unwrap();
        assert_eq!(again["data"], json!({"k": "b", "other": "x"}));
        // a drops "other": removed since nobody else owns it.
        let dropped = apply(&again, &json!({"data": {}}), false, &w("a")).unwrap();
        assert_eq!(dropped["data"], json!({"k": "b"}));
    }

    #[test]
    fn update_moves_ownership() {
        let a = apply(&json!({}), &json!({"data": {"k": "a"}}), false, &w("a")).unwrap();
        let mut b = a.clone();
        b["data"]["k"] = json!("edited");
        track_update(Some(&a), &mut b, &w("editor"));
        let entries = read_entries(&b);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "editor");
        let err = apply(&b, &json!({"data": {"k": "a2"}}), false, &w("a")).unwrap_err();
        assert_eq!(err[0].0, "\"editor\" using v1");
    }
}
