//! Helm's value coalescing: the user's values over the chart's defaults.

use serde_json::{Map, Value};

/// Merges `user` over `defaults` like Helm: maps merge key by key, anything else
/// in `user` replaces the default, and a `null` in `user` removes the key.
pub fn coalesce(defaults: &Value, user: &Value) -> Value {
    match (defaults, user) {
        (Value::Object(d), Value::Object(u)) => {
            let mut out: Map<String, Value> = d.clone();
            for (k, v) in u {
                match (out.get(k), v) {
                    (_, Value::Null) => {
                        out.remove(k);
                    }
                    (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                        let merged = coalesce(existing, v);
                        out.insert(k.clone(), merged);
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(out)
        }
        (_, Value::Null) => defaults.clone(),
        _ => user.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_values_win_and_maps_merge() {
        let d = json!({"replicaCount": 1, "image": {"repository": "nginx", "tag": "1.25"}, "keep": true});
        let u = json!({"replicaCount": 3, "image": {"tag": "1.27"}});
        assert_eq!(
            coalesce(&d, &u),
            json!({"replicaCount": 3, "image": {"repository": "nginx", "tag": "1.27"}, "keep": true})
        );
    }

    #[test]
    fn null_removes_a_default() {
        let d = json!({"resources": {"limits": {"cpu": "1"}}, "a": 1});
        assert_eq!(coalesce(&d, &json!({"resources": null})), json!({"a": 1}));
    }

    #[test]
    fn lists_are_replaced_not_merged() {
        let d = json!({"args": ["a", "b"]});
        assert_eq!(
            coalesce(&d, &json!({"args": ["c"]})),
            json!({"args": ["c"]})
        );
    }

    #[test]
    fn empty_user_values_give_the_defaults() {
        let d = json!({"x": {"y": 1}});
        assert_eq!(coalesce(&d, &json!({})), d);
    }
}
