//! The in-memory object store: objects per group-resource keyed by
//! (namespace, name), one global resourceVersion counter, and a bounded,
//! contiguous event history that watches replay from.
//!
//! Storage is per group-resource rather than per version: like etcd behind a
//! real API server, one stored object is served in every version of its
//! resource (CRDs here use the `None` conversion strategy, so only
//! `apiVersion` changes). Every mutation bumps the resourceVersion by exactly
//! one and appends exactly one event, so the history is indexed by
//! `rv - first_rv` and a watch resumes in O(1).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::resources::{Registry, ResourceInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub object: Arc<Value>,
    /// The object before a MODIFIED event (for watch selector transitions).
    pub prev: Option<Arc<Value>>,
}

/// (group, resource)
pub type GroupResource = (String, String);
/// (namespace, name); namespace is empty for cluster-scoped objects.
pub type ObjectKey = (String, String);

pub struct Inner {
    objects: HashMap<GroupResource, BTreeMap<ObjectKey, Arc<Value>>>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    pub registry: Registry,
}

fn gr(info: &ResourceInfo) -> GroupResource {
    (info.group.clone(), info.resource.clone())
}

/// Result of looking for events after a resourceVersion.
pub enum Since {
    Events(Vec<Arc<Event>>),
    /// The requested version is older than the retained history.
    Expired {
        oldest: u64,
    },
}

impl Inner {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(&gr(info))?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a resource in key order, optionally within one namespace,
    /// starting strictly after `after`.
    pub fn range<'a>(
        &'a self,
        info: &ResourceInfo,
        ns: Option<&'a str>,
        after: Option<&ObjectKey>,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a> {
        match self.objects.get(&gr(info)) {
            Some(map) => range_of(map, ns, after),
            None => Box::new(std::iter::empty()),
        }
    }

    /// The objects of a resource as they were at resourceVersion `rv`, rebuilt
    /// from the current state by undoing the retained history newer than `rv`
    /// (what etcd's MVCC gives the API server for an `Exact` list or a
    /// continued one). `None` when `rv` is older than the history.
    pub fn snapshot(
        &self,
        info: &ResourceInfo,
        rv: u64,
    ) -> Option<BTreeMap<ObjectKey, Arc<Value>>> {
        let Since::Events(events) = self.events_since(rv) else {
            return None;
        };
        let mut map = self.objects.get(&gr(info)).cloned().unwrap_or_default();
        for e in events.iter().rev() {
            if e.group != info.group || e.resource != info.resource {
                continue;
            }
            let key = (
                e.namespace.clone(),
                crate::meta::name_of(&e.object).to_string(),
            );
            match (&e.kind, &e.prev) {
                (_, Some(prev)) => {
                    map.insert(key, prev.clone());
                }
                (EventType::Added, None) => {
                    map.remove(&key);
                }
                _ => {}
            }
        }
        Some(map)
    }
    pub fn count(&self, info: &ResourceInfo) -> usize {
        self.objects.get(&gr(info)).map_or(0, BTreeMap::len)
    }

    /// Stores `obj` (setting its resourceVersion) and records the event.
    pub fn put(&mut self, info: &ResourceInfo, mut obj: Value, kind: EventType) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        crate::meta::meta_mut(&mut obj)
            .insert("resourceVersion".into(), Value::from(rv.to_string()));
        let ns = crate::meta::namespace_of(&obj).to_string();
        let name = crate::meta::name_of(&obj).to_string();
        let obj = Arc::new(obj);
        let prev = self
            .objects
            .entry(gr(info))
            .or_default()
            .insert((ns.clone(), name), obj.clone());
        self.record(info, ns, kind, obj.clone(), prev);
        obj
    }

    /// Removes an object; the DELETED event carries a new resourceVersion.
    pub fn remove(&mut self, info: &ResourceInfo, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.remove_as(info, ns, name, None)
    }

    /// Removes an object; the DELETED event carries `last` (the state that
    /// caused the deletion, e.g. with its last finalizer gone) if given.
    pub fn remove_as(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        last: Option<Value>,
    ) -> Option<Arc<Value>> {
        let old = self
            .objects
            .get_mut(&gr(info))?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let mut obj = last.unwrap_or_else(|| (*old).clone());
        crate::meta::meta_mut(&mut obj)
            .insert("resourceVersion".into(), Value::from(self.rv.to_string()));
        let obj = Arc::new(obj);
        // The stored state before the deletion, for snapshots of older versions.
        self.record(
            info,
            ns.to_string(),
            EventType::Deleted,
            obj.clone(),
            Some(old),
        );
        Some(obj)
    }

    /// Drops every object of a group-resource (CRD deletion) with DELETED events.
    pub fn remove_all(&mut self, info: &ResourceInfo) {
        let keys: Vec<ObjectKey> = self
            .objects
            .get(&gr(info))
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in keys {
            self.remove(info, &ns, &name);
        }
    }

    fn record(
        &mut self,
        info: &ResourceInfo,
        namespace: String,
        kind: EventType,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        if self.history.len() >= self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back(Arc::new(Event {
            rv: self.rv,
            kind,
            group: info.group.clone(),
            resource: info.resource.clone(),
            namespace,
            object,
            prev,
        }));
    }

    /// The oldest resourceVersion a watch can still resume from.
    pub fn oldest_resumable(&self) -> u64 {
        self.history.front().map_or(self.rv, |e| e.rv - 1)
    }

    pub fn events_since(&self, rv: u64) -> Since {
        if rv >= self.rv {
            return Since::Events(vec![]);
        }
        let oldest = self.oldest_resumable();
        if rv < oldest {
            return Since::Expired { oldest };
        }
        let first = self.history.front().map_or(0, |e| e.rv);
        let skip = (rv + 1 - first) as usize;
        Since::Events(self.history.iter().skip(skip).cloned().collect())
    }

    /// Every object, for the controllers' full resyncs.
    pub fn all_of(&self, group: &str, resource: &str) -> Vec<Arc<Value>> {
        self.objects
            .get(&(group.to_string(), resource.to_string()))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object in a namespace, across resources (namespace deletion).
    pub fn in_namespace(&self, ns: &str) -> Vec<(GroupResource, Arc<Value>)> {
        let mut out = Vec::new();
        for (gr, map) in &self.objects {
            let lower = (ns.to_string(), String::new());
            for ((kns, _), v) in map.range(lower..) {
                if kns != ns {
                    break;
                }
                out.push((gr.clone(), v.clone()));
            }
        }
        out
    }

    /// Objects whose ownerReferences point at `uid` (garbage collection).
    pub fn dependents_of(&self, uid: &str) -> Vec<(GroupResource, Arc<Value>)> {
        let mut out = Vec::new();
        for (gr, map) in &self.objects {
            for v in map.values() {
                if let Some(refs) = v["metadata"]["ownerReferences"].as_array()
                    && refs.iter().any(|r| r["uid"] == uid)
                {
                    out.push((gr.clone(), v.clone()));
                }
            }
        }
        out
    }
}

pub struct Store {
    inner: Mutex<Inner>,
    /// Publishes the latest resourceVersion so watchers wake up.
    notify: tokio::sync::watch::Sender<u64>,
}

impl Store {
    pub fn new(history_cap: usize) -> Store {
        let (notify, _) = tokio::sync::watch::channel(0);
        Store {
            inner: Mutex::new(Inner {
                objects: HashMap::new(),
                rv: 0,
                history: VecDeque::new(),
                history_cap: history_cap.max(1),
                registry: Registry::default(),
            }),
            notify,
        }
    }

    /// Locks the store. Callers must not hold the guard across an `.await`.
    pub fn lock(&self) -> StoreGuard<'_> {
        StoreGuard {
            guard: self.inner.lock().unwrap_or_else(|e| e.into_inner()),
            notify: &self.notify,
        }
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }
}

/// A lock on the store that wakes watchers when released after a change.
pub struct StoreGuard<'a> {
    guard: MutexGuard<'a, Inner>,
    notify: &'a tokio::sync::watch::Sender<u64>,
}

impl std::ops::Deref for StoreGuard<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.guard
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        let rv = self.guard.rv;
        self.notify.send_if_modified(|cur| {
            if *cur != rv {
                *cur = rv;
                true
            } else {
                false
            }
        });
    }
}

/// Objects of one map in key order, optionally within one namespace,
/// starting strictly after `after`.
pub fn range_of<'a>(
    map: &'a BTreeMap<ObjectKey, Arc<Value>>,
    ns: Option<&'a str>,
    after: Option<&ObjectKey>,
) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a> {
    use std::ops::Bound;
    let lower = match (after, ns) {
        (Some(k), _) => Bound::Excluded(k.clone()),
        (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
        (None, None) => Bound::Unbounded,
    };
    let it = map
        .range((lower, Bound::Unbounded))
        .take_while(move |((kns, _), _)| ns.is_none_or(|ns| kns == ns));
    Box::new(it)
}
