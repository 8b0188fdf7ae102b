//! Keyset pagination: a page of items and an opaque cursor to the next one.

use crate::{Result, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Position after the last item returned: its sort key (a time or number) and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.key, self.id))
    }

    pub fn decode(s: &str) -> Result<Cursor> {
        let bad = || StoreError::Corrupt("cursor".into());
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (key, id) = text.split_once(':').ok_or_else(bad)?;
        Ok(Cursor {
            key: key.parse().map_err(|_| bad())?,
            id: id.to_string(),
        })
    }
}

/// Fetches `limit + 1` rows, keeps `limit`, and derives the next cursor from the last kept.
pub(crate) fn paginate<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| key(r).encode())
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

pub fn clamp_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let c = Cursor {
            key: 1_700_000_000_123,
            id: "a:b-c".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("!!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("nocolon")).is_err());
    }

    #[test]
    fn paginate_sets_cursor_only_when_more_remain() {
        let key = |n: &i64| Cursor {
            key: *n,
            id: n.to_string(),
        };
        let p = paginate(vec![1, 2, 3], 2, key);
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(Cursor::decode(&p.next_cursor.unwrap()).unwrap().key, 2);
        let p = paginate(vec![1, 2], 2, key);
        assert!(p.next_cursor.is_none());
    }
}
