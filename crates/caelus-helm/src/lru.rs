//! A tiny bounded cache with least-recently-used eviction, bounded by entry
//! count and by the total weight (bytes) of its entries. Entries are few
//! (charts, renders), so eviction scans; no extra dependency needed.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    capacity: usize,
    max_weight: usize,
    weight: usize,
    tick: u64,
    entries: HashMap<K, (V, u64, usize)>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// At most `capacity` entries, whatever their weight.
    pub fn new(capacity: usize) -> Self {
        Self::weighted(capacity, usize::MAX)
    }

    /// At most `capacity` entries weighing `max_weight` in all.
    pub fn weighted(capacity: usize, max_weight: usize) -> Self {
        Lru {
            capacity: capacity.max(1),
            max_weight,
            weight: 0,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(v, t, _)| {
            *t = tick;
            v.clone()
        })
    }

    pub fn insert(&mut self, key: K, value: V) {
        self.insert_weighted(key, value, 0);
    }

    /// Insert an entry weighing `weight`; one heavier than the whole
    /// cache is not kept at all.
    pub fn insert_weighted(&mut self, key: K, value: V, weight: usize) {
        self.tick += 1;
        if let Some((_, _, w)) = self.entries.remove(&key) {
            self.weight -= w;
        }
        if weight > self.max_weight {
            return;
        }
        while !self.entries.is_empty()
            && (self.entries.len() >= self.capacity || self.weight + weight > self.max_weight)
        {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, t, _))| *t)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest
                && let Some((_, _, w)) = self.entries.remove(&k)
            {
                self.weight -= w;
            }
        }
        self.weight += weight;
        self.entries.insert(key, (value, self.tick, weight));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Total weight of the entries kept.
    pub fn weight(&self) -> usize {
        self.weight
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.weight = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut c = Lru::new(2);
        c.insert("a", 1);
        c.insert("b", 2);
        assert_eq!(c.get("a"), Some(1)); // a is now fresher than b
        c.insert("c", 3);
        assert_eq!(c.get("b"), None);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("c"), Some(3));
        assert_eq!(c.len(), 2);
        c.clear();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn weight_bounds_the_cache() {
        let mut c = Lru::weighted(100, 10);
        c.insert_weighted("a", 1, 4);
        c.insert_weighted("b", 2, 4);
        assert_eq!(c.weight(), 8);
        c.insert_weighted("c", 3, 4); // evicts a, the oldest
        assert_eq!(c.get("a"), None);
        assert_eq!(c.weight(), 8);
        c.insert_weighted("huge", 4, 11); // heavier than the cache: not kept
        assert_eq!(c.get("huge"), None);
        assert_eq!((c.len(), c.weight()), (2, 8));
        c.insert_weighted("b", 5, 1); // replacing re-weighs
        assert_eq!((c.get("b"), c.weight()), (Some(5), 5));
    }
}
