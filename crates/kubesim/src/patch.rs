//! The three classic patch types: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902) and Kubernetes strategic merge patch.

use serde_json::{Map, Value};

use crate::schema::{ListType, list_type, same_key};

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn pointer_parts(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer: {path:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'a>(doc: &'a mut Value, parts: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(p)
                .ok_or_else(|| format!("doc is missing path: /{}", parts.join("/")))?,
            Value::Array(a) => {
                let i: usize = p
                    .parse()
                    .map_err(|_| format!("invalid array index {p:?}"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("doc is missing path: /{}", parts.join("/")))?
            }
            _ => return Err(format!("doc is missing path: /{}", parts.join("/"))),
        };
    }
    Ok(cur)
}

fn get_at(doc: &Value, path: &str) -> Result<Value, String> {
    doc.pointer(path)
        .cloned()
        .ok_or_else(|| format!("doc is missing path: {path}"))
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, String> {
    let parts = pointer_parts(path)?;
    let (last, parents) = parts
        .split_last()
        .ok_or_else(|| "cannot remove the whole document".to_string())?;
    match parent_mut(doc, parents)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("unable to remove nonexistent key: {last}: missing value")),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("unable to remove index {i}: out of bounds"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("doc is missing path: {path}")),
    }
}

fn add_at(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<(), String> {
    let parts = pointer_parts(path)?;
    let Some((last, parents)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents)? {
        Value::Object(m) => {
            if replace && !m.contains_key(last) {
                return Err(format!(
                    "replace operation does not apply: doc is missing key: {path}"
                ));
            }
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last
                    .parse()
                    .map_err(|_| format!("invalid index {last:?}"))?;
                if replace {
                    *a.get_mut(i)
                        .ok_or_else(|| format!("index {i} out of bounds"))? = value;
                } else if i > a.len() {
                    return Err(format!("index {i} out of bounds"));
                } else {
                    a.insert(i, value);
                }
            }
        }
        _ => return Err(format!("doc is missing path: {path}")),
    }
    Ok(())
}

/// RFC 6902 JSON patch. Errors are returned as messages for a 422/400.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or_else(|| "json patch must be an array of operations".to_string())?;
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        match op["op"].as_str().unwrap_or_default() {
            "add" => add_at(doc, path, op["value"].clone(), false)?,
            "replace" => add_at(doc, path, op["value"].clone(), true)?,
            "remove" => {
                remove_at(doc, path)?;
            }
            "move" => {
                let v = remove_at(doc, op["from"].as_str().unwrap_or_default())?;
                add_at(doc, path, v, false)?;
            }
            "copy" => {
                let v = get_at(doc, op["from"].as_str().unwrap_or_default())?;
                add_at(doc, path, v, false)?;
            }
            "test" => {
                if get_at(doc, path)? != op["value"] {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

/// Strategic merge patch: like a merge patch, but lists with a merge key are
/// merged item by item, `$patch: delete|replace`, `$retainKeys`,
/// `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`
/// directives are honoured.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    smp_object(target, patch, &mut Vec::new());
}

fn smp_object(target: &mut Value, patch: &Value, path: &mut Vec<String>) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut v = patch.clone();
        v.as_object_mut().unwrap().remove("$patch");
        *target = v;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target
            .as_object_mut()
            .unwrap()
            .retain(|k, _| keep.contains(&k.as_str()));
    }
    // The live lists that `$setElementOrder` directives reorder, before the merge.
    let live_lists: Vec<(&str, &Vec<Value>, Value)> = p
        .iter()
        .filter_map(|(k, order)| {
            let field = k.strip_prefix("$setElementOrder/")?;
            Some((field, order.as_array()?, target[field].clone()))
        })
        .collect();
    for (k, v) in p {
        let t = target.as_object_mut().unwrap();
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(del)) = (t.get_mut(field), v.as_array()) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue; // $setElementOrder is applied after the merge, below
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        path.push(k.clone());
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match v {
            Value::Object(_) => smp_object(slot, v, path),
            Value::Array(items) => smp_list(slot, items, path),
            _ => *slot = v.clone(),
        }
        path.pop();
    }
    for (field, order, live) in live_lists {
        let t = target.as_object_mut().unwrap();
        let Some(Value::Array(merged)) = t.get_mut(field) else {
            continue;
        };
        path.push(field.to_string());
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        let key = match list_type(&p) {
            ListType::Map(keys) => Some(keys[0]),
            _ => None,
        };
        path.pop();
        let live = live.as_array().map(Vec::as_slice).unwrap_or_default();
        *merged = set_element_order(std::mem::take(merged), order, live, key);
    }
}

/// Where `item` is in `list`: by its merge key for lists of maps, by value
/// for primitives (apimachinery strategicpatch `index`).
fn index_in(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(k) => list
            .iter()
            .position(|e| !item[k].is_null() && e[k] == item[k]),
        None => list.iter().position(|e| e == item),
    }
}

/// Orders a merged list by a `$setElementOrder` list, as apimachinery's
/// `mergePatchIntoOriginal` does (strategicpatch/patch.go; design in
/// design-proposals-archive/cli/preserve-order-in-strategic-merge-patch.md):
/// items named in `order` follow it; items only on the server keep their
/// live order and are interleaved where the live list had them. The
/// precedence is `$setElementOrder` > the patch list > the live list.
fn set_element_order(
    merged: Vec<Value>,
    order: &[Value],
    live: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let (mut patch_items, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| index_in(order, item, key).is_some());
    // `normalizeSliceOrder`: a stable sort by position in the given list.
    let rank = |list: &[Value], item: &Value| index_in(list, item, key).unwrap_or(usize::MAX);
    patch_items.sort_by_key(|i| rank(order, i));
    server_only.sort_by_key(|i| rank(live, i));
    // Items the order list marks `$patch: delete` go (`extractToDeleteItems`).
    if key.is_some() {
        let deleted: Vec<Value> = order
            .iter()
            .filter(|o| o.get("$patch").and_then(Value::as_str) == Some("delete"))
            .cloned()
            .collect();
        patch_items.retain(|i| index_in(&deleted, i, key).is_none());
    }
    // `mergeSortedSlice(serverOnly, patch, live)`: a server-only item goes
    // before the next patch item only when the live list has both and had it
    // first.
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        patch_items.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_in(live, l, key), index_in(live, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

fn smp_list(target: &mut Value, items: &[Value], path: &mut Vec<String>) {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let ltype = list_type(&p);
    let replace_all = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace_all || !target.is_array() || ltype == ListType::Atomic {
        *target = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        );
        return;
    }
    let existing = target.as_array_mut().unwrap();
    match ltype {
        ListType::Set => {
            for i in items {
                if !existing.contains(i) {
                    existing.push(i.clone());
                }
            }
        }
        ListType::Map(keys) => {
            // Strategic merge identifies items by the single patchMergeKey.
            let key = &keys[..1];
            for item in items {
                let pos = existing.iter().position(|e| same_key(e, item, key));
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    existing.retain(|e| !same_key(e, item, key));
                    continue;
                }
                match pos {
                    Some(i) => smp_object(&mut existing[i], item, path),
                    None => existing.push(item.clone()),
                }
            }
        }
        ListType::Atomic => unreachable!(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_json_patch() {
        let mut d = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut d, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(d, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
        json_patch(
            &mut d,
            &json!([{"op": "add", "path": "/l/-", "value": 4}, {"op": "replace", "path": "/a/c", "value": 9}, {"op": "remove", "path": "/a/d"}]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": {"c": 9}, "l": [3, 4]}));
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/a/c", "value": 1}])).is_err());
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x:1", "env": [{"name": "E", "value": "1"}]},
            {"name": "b", "image": "y:1"}
        ]}}}});
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "x:2", "env": [{"name": "F", "value": "2"}]},
                {"name": "b", "$patch": "delete"}
            ]}}}}),
        );
        assert_eq!(
            d,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "x:2", "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]}
            ]}}}})
        );
        let mut f = json!({"metadata": {"finalizers": ["a"]}});
        strategic_merge_patch(&mut f, &json!({"metadata": {"finalizers": ["b"]}}));
        assert_eq!(f, json!({"metadata": {"finalizers": ["a", "b"]}}));
        strategic_merge_patch(
            &mut f,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(f, json!({"metadata": {"finalizers": ["b"]}}));
    }

    fn containers(names: &[&str]) -> Value {
        let cs: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "image": format!("{n}:1")}))
            .collect();
        json!({"spec": {"template": {"spec": {"containers": cs}}}})
    }

    fn names(d: &Value) -> Vec<String> {
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// What `kubectl apply` sends when only the order changed: the order list
    /// and no list at all.
    #[test]
    fn set_element_order_reorders_a_map_list() {
        let mut d = containers(&["a", "b"]);
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}}),
        );
        assert_eq!(names(&d), ["b", "a"]);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "b:1"
        );
    }

    /// New items land where the order list puts them, not at the end.
    #[test]
    fn set_element_order_places_added_items() {
        let mut d = containers(&["a", "b"]);
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}, {"name": "b"}],
                "containers": [{"name": "c", "image": "c:1"}]}}}}),
        );
        assert_eq!(names(&d), ["a", "c", "b"]);
    }

    /// Server-only items keep their place relative to the live list
    /// (`mergeSortedSlice`): one goes before the next ordered item when the
    /// live list had it first.
    #[test]
    fn set_element_order_interleaves_server_only_items() {
        let mut d = containers(&["a", "s", "b"]);
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}}),
        );
        // s (live 1) vs b (live 2): s first; then the ordered b, a.
        assert_eq!(names(&d), ["s", "b", "a"]);
        let mut d = containers(&["s", "a", "b"]);
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]}}}}),
        );
        assert_eq!(names(&d), ["s", "a", "b"]);
        let mut d = containers(&["a", "b", "s"]);
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}}),
        );
        assert_eq!(names(&d), ["b", "a", "s"]);
    }

    #[test]
    fn set_element_order_on_primitives_and_with_deletes() {
        let mut f = json!({"metadata": {"finalizers": ["x", "y"]}});
        strategic_merge_patch(
            &mut f,
            &json!({"metadata": {"$setElementOrder/finalizers": ["z", "y", "x"], "finalizers": ["z"]}}),
        );
        assert_eq!(f["metadata"]["finalizers"], json!(["z", "y", "x"]));
        let mut d = containers(&["a", "b", "c"]);
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                "containers": [{"name": "b", "$patch": "delete"}]}}}}),
        );
        assert_eq!(names(&d), ["c", "a"]);
    }
}
