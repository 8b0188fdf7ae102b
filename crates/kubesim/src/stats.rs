//! Request counters by verb and by (verb, resource), for tests that assert
//! how many calls a client made (e.g. "a quiet resync performs no writes").

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub total: u64,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub by_verb: BTreeMap<String, u64>,
    /// Keyed `"<verb> <resource>"`, e.g. `"patch deployments"`.
    pub by_resource: BTreeMap<String, u64>,
}

impl StatsSnapshot {
    pub fn verb(&self, verb: &str) -> u64 {
        self.by_verb.get(verb).copied().unwrap_or(0)
    }

    pub fn verb_resource(&self, verb: &str, resource: &str) -> u64 {
        self.by_resource
            .get(&format!("{verb} {resource}"))
            .copied()
            .unwrap_or(0)
    }

    /// create + update + patch + delete + deletecollection.
    pub fn writes(&self) -> u64 {
        ["create", "update", "patch", "delete", "deletecollection"]
            .iter()
            .map(|v| self.verb(v))
            .sum()
    }
}

#[derive(Default)]
pub struct Stats(Mutex<StatsSnapshot>);

impl Stats {
    pub fn record(&self, verb: &str, resource: &str) {
        let mut s = self.0.lock().unwrap();
        s.total += 1;
        *s.by_verb.entry(verb.to_string()).or_default() += 1;
        *s.by_resource
            .entry(format!("{verb} {resource}"))
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.0.lock().unwrap().clone()
    }

    pub fn reset(&self) {
        *self.0.lock().unwrap() = StatsSnapshot::default();
    }
}
