//! The label-selected watches, one per kind, shared by every deployment:
//! they feed the cache a quiet resync reads from (so it sends nothing to the
//! API server), and they tell the reconciler at once which deployment's
//! objects changed (the change feed, [`crate::Engine::subscribe_changes`]).
//!
//! A change is what someone else did to an object Caelus applied: an edit
//! to anything but its status and server metadata, a deletion, or an object
//! gone after a re-list (a cluster that restarted empty). Caelus's own
//! applies and deletes are recorded first and not reported; status updates
//! by controllers are not changes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

use crate::object::{DEPLOYMENT_UID_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::resolve::Resolved;

/// How many changed deployments may wait for the reconciler before more are
/// dropped (the scheduled resync still finds them).
const FEED_CAPACITY: usize = 8192;

/// What the watch cache knows about one object.
pub(crate) enum Cached {
    /// The kind's cache has not finished its first list (or lost its watch).
    NotReady,
    Absent,
    Present(Value),
}

type Key = (Option<String>, String);

/// Per object: the deployment it belongs to and a fingerprint of what
/// Caelus compares (everything but status and server metadata).
type Known = HashMap<Key, (String, u64)>;

pub(crate) struct Watches {
    client: Client,
    kinds: Mutex<HashMap<Resolved, Arc<KindWatch>>>,
    feed: Arc<Mutex<Option<mpsc::Sender<String>>>>,
}

struct KindWatch {
    /// Replaced when the watch starts over with a fresh list.
    store: Arc<Mutex<Store<DynamicObject>>>,
    ready: Arc<AtomicBool>,
    known: Arc<Mutex<Known>>,
    /// Woken on every event the watch sees (status updates included), so
    /// a health wait reacts as soon as a controller reports.
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KindWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a holder panicked; the maps stay usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key_of(obj: &Value) -> Option<Key> {
    let meta = &obj["metadata"];
    Some((
        meta["namespace"].as_str().map(str::to_string),
        meta["name"].as_str()?.to_string(),
    ))
}

fn owner_of(obj: &Value) -> Option<String> {
    obj["metadata"]["labels"][DEPLOYMENT_UID_LABEL]
        .as_str()
        .map(str::to_string)
}

/// A hash of the object without status and the metadata the server changes
/// on every write: equal fingerprints mean nothing Caelus compares changed.
pub(crate) fn fingerprint(obj: &Value) -> u64 {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["resourceVersion", "managedFields", "generation"] {
            meta.remove(k);
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

fn to_value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

impl Watches {
    pub fn new(client: Client) -> Self {
        Watches {
            client,
            kinds: Mutex::new(HashMap::new()),
            feed: Arc::new(Mutex::new(None)),
        }
    }

    /// A new change feed; the previous one, if any, stops receiving.
    pub fn subscribe(&self) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        *lock(&self.feed) = Some(tx);
        rx
    }

    /// The live object from the kind's cache, starting the kind's watch on
    /// first use.
    pub fn get(&self, kind: &Resolved, namespace: Option<&str>, name: &str) -> Cached {
        let watch = self.watch(kind);
        if !watch.ready.load(Ordering::Acquire) {
            return Cached::NotReady;
        }
        let mut key = reflector::ObjectRef::new_with(name, kind.ar.clone());
        if let (true, Some(ns)) = (kind.namespaced, namespace) {
            key = key.within(ns);
        }
        let store = lock(&watch.store).clone();
        match store.get(&key) {
            Some(obj) => serde_json::to_value(&*obj).map_or(Cached::NotReady, Cached::Present),
            None => Cached::Absent,
        }
    }

    /// Woken whenever the kind's watch sees an event; a waiter enables its
    /// `notified()` before reading the cache so no event slips between.
    pub fn changed(&self, kind: &Resolved) -> Arc<Notify> {
        self.watch(kind).changed.clone()
    }

    /// Caelus itself just wrote `obj` (the API server's answer to an apply):
    /// its watch event is not somebody else's change. Starts the kind's watch,
    /// so changes to what Caelus applies are seen from then on.
    pub fn applied(&self, kind: &Resolved, obj: &Value) {
        let (Some(key), Some(owner)) = (key_of(obj), owner_of(obj)) else {
            return;
        };
        let watch = self.watch(kind);
        lock(&watch.known).insert(key, (owner, fingerprint(obj)));
    }

    /// Caelus itself deleted an object: its deletion is not a change.
    pub fn deleted(&self, kind: &Resolved, namespace: Option<&str>, name: &str) {
        let watch = self.watch(kind);
        lock(&watch.known).remove(&(namespace.map(str::to_string), name.to_string()));
    }

    fn watch(&self, kind: &Resolved) -> Arc<KindWatch> {
        lock(&self.kinds)
            .entry(kind.clone())
            .or_insert_with(|| Arc::new(self.start(kind)))
            .clone()
    }

    fn start(&self, kind: &Resolved) -> KindWatch {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kind.ar);
        let first = reflector::store::Writer::new(kind.ar.clone());
        let store = Arc::new(Mutex::new(first.as_reader()));
        let ready = Arc::new(AtomicBool::new(false));
        let known: Arc<Mutex<Known>> = Arc::new(Mutex::new(HashMap::new()));
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn(run_watch(
            api,
            first,
            store.clone(),
            Signals {
                ready: ready.clone(),
                changed: changed.clone(),
            },
            known.clone(),
            self.feed.clone(),
            kind.ar.clone(),
        ));
        KindWatch {
            store,
            ready,
            known,
            changed,
            task,
        }
    }
}

/// What a kind's watch tells its readers: whether the cache can be read,
/// and that something happened.
struct Signals {
    ready: Arc<AtomicBool>,
    changed: Arc<Notify>,
}

/// Keeps one kind's watch running. A cluster that restarted empty answers a
/// watch resumed from before with "too large resource version" (an ERROR
/// event), on which kube's watcher would resume for ever (it lists again only
/// on 410; client-go's reflector lists again): the watch starts over with a
/// fresh list and cache instead, so the re-list reports every object that
/// vanished.
async fn run_watch(
    api: Api<DynamicObject>,
    mut writer: reflector::store::Writer<DynamicObject>,
    store: Arc<Mutex<Store<DynamicObject>>>,
    signals: Signals,
    known: Arc<Mutex<Known>>,
    feed: Arc<Mutex<Option<mpsc::Sender<String>>>>,
    ar: kube::discovery::ApiResource,
) {
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    let mut listed_once = false;
    loop {
        let stream = watcher(api.clone(), watcher::Config::default().labels(&selector))
            .default_backoff()
            // Managed fields are most of an object's size and never compared.
            .modify(|o: &mut DynamicObject| o.metadata.managed_fields = None)
            .reflect(writer);
        let ended = follow(stream, &signals, &known, &feed, &ar.kind, &mut listed_once).await;
        if ended == Ended::StreamClosed {
            return;
        }
        signals.ready.store(false, Ordering::Release);
        writer = reflector::store::Writer::new(ar.clone());
        *lock(&store) = writer.as_reader();
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    StreamClosed,
    /// The cluster is behind what the watch saw: start over.
    ClusterBehind,
}

/// The API server's answer to a watch from a resourceVersion it has not
/// reached (its watch cache's `ResourceVersionTooLarge`).
fn cluster_behind(e: &watcher::Error) -> bool {
    let status = match e {
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.as_ref(),
        watcher::Error::WatchError(s) => s.as_ref(),
        _ => return false,
    };
    status.message.starts_with("Too large resource version")
        || status.details.as_ref().is_some_and(|d| {
            d.causes
                .iter()
                .any(|c| c.reason == "ResourceVersionTooLarge")
        })
}

/// Reads one kind's watch: keeps the ready flag, and reports the
/// deployments whose objects someone else changed.
async fn follow(
    stream: impl futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>>,
    signals: &Signals,
    known: &Mutex<Known>,
    feed: &Mutex<Option<mpsc::Sender<String>>>,
    kind_name: &str,
    listed_once: &mut bool,
) -> Ended {
    let report = |uid: String| {
        if let Some(tx) = lock(feed).as_ref()
            && tx.try_send(uid).is_err()
        {
            tracing::debug!("change feed full; the scheduled resync will catch up");
        }
    };
    let mut stream = std::pin::pin!(stream);
    // Objects of the list in progress; `None` outside a (re-)list.
    let mut relist: Option<Known> = None;
    let ready = &signals.ready;
    while let Some(event) = stream.next().await {
        // The reflector has stored the event by now: waiters read it.
        signals.changed.notify_waiters();
        match event {
            Ok(watcher::Event::Apply(obj)) => {
                ready.store(true, Ordering::Release);
                let obj = to_value(&obj);
                let (Some(key), Some(owner)) = (key_of(&obj), owner_of(&obj)) else {
                    continue;
                };
                let fp = fingerprint(&obj);
                let previous = lock(known).insert(key, (owner.clone(), fp));
                if previous.is_none_or(|(_, old)| old != fp) {
                    report(owner);
                }
            }
            Ok(watcher::Event::Delete(obj)) => {
                ready.store(true, Ordering::Release);
                let obj = to_value(&obj);
                let Some(key) = key_of(&obj) else { continue };
                // Unknown means Caelus deleted it itself (or never saw it).
                if let Some((owner, _)) = lock(known).remove(&key) {
                    report(owner);
                }
            }
            Ok(watcher::Event::Init) => relist = Some(HashMap::new()),
            Ok(watcher::Event::InitApply(obj)) => {
                let obj = to_value(&obj);
                if let (Some(list), Some(key), Some(owner)) =
                    (relist.as_mut(), key_of(&obj), owner_of(&obj))
                {
                    let fp = fingerprint(&obj);
                    list.insert(key, (owner, fp));
                }
            }
            Ok(watcher::Event::InitDone) => {
                ready.store(true, Ordering::Release);
                let listed = relist.take().unwrap_or_default();
                let mut known = lock(known);
                if *listed_once {
                    // After a re-list: whatever vanished or changed meanwhile.
                    for (key, (owner, fp)) in known.iter() {
                        if listed.get(key).is_none_or(|(_, now)| now != fp) {
                            report(owner.clone());
                        }
                    }
                    for (key, (owner, _)) in &listed {
                        if !known.contains_key(key) {
                            report(owner.clone());
                        }
                    }
                }
                *known = listed;
                *listed_once = true;
            }
            Err(e) if cluster_behind(&e) => {
                tracing::info!(kind = %kind_name, error = %e, "the cluster is behind the drift watch (restarted?); listing again");
                return Ended::ClusterBehind;
            }
            Err(e) => {
                // Until the watch is back, reads go to the API server.
                ready.store(false, Ordering::Release);
                tracing::debug!(kind = %kind_name, error = %e, "drift watch interrupted");
            }
        }
    }
    Ended::StreamClosed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: serde_json::Value) -> Box<kube::core::Status> {
        Box::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn only_a_too_large_resource_version_starts_the_watch_over() {
        let too_large = status(serde_json::json!({
            "status": "Failure", "code": 504, "reason": "Timeout",
            "message": "Too large resource version: 45, current: 15",
            "details": {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]}
        }));
        assert!(cluster_behind(&watcher::Error::WatchError(
            too_large.clone()
        )));
        assert!(cluster_behind(&watcher::Error::WatchStartFailed(
            kube::Error::Api(too_large)
        )));
        let timeout = status(serde_json::json!({
            "status": "Failure", "code": 504, "reason": "Timeout",
            "message": "Timeout: request did not complete within requested timeout"
        }));
        assert!(!cluster_behind(&watcher::Error::WatchError(timeout)));
        let gone = status(serde_json::json!({
            "status": "Failure", "code": 410, "reason": "Expired", "message": "too old resource version"
        }));
        assert!(!cluster_behind(&watcher::Error::WatchError(gone)));
    }
}
