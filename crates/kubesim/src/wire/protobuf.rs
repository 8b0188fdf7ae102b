//! The Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! translated to and from the JSON objects kubesim stores.
//!
//! A body is the 4-byte magic `k8s\0` followed by a `runtime.Unknown` whose
//! `typeMeta` names the object and whose `raw` is the object's message
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding>).
//! Messages follow the upstream `generated.proto` files, whose layout comes
//! from `k8s-pb` (see [`super::types`]).
//!
//! Go's protobuf marshaller writes every non-pointer field, so a decoded
//! object carries `""` for strings the JSON encoder would have omitted
//! (`omitempty`); those are dropped here, which the API server's Go types
//! cannot tell apart anyway. Zero numbers and `false` are kept: for pointer
//! fields (`replicas: 0`) they are meaningful.

use base64::Engine;
use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::types::{Field, Types, types};

pub const MAGIC: &[u8; 4] = b"k8s\0";
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const QUANTITY: &str = "apimachinery.pkg.api.resource.Quantity";
const TIME: &str = "apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "apimachinery.pkg.apis.meta.v1.Duration";
const INT_OR_STRING: &str = "apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "apimachinery.pkg.runtime.RawExtension";
const FIELDS_V1: &str = "apimachinery.pkg.apis.meta.v1.FieldsV1";
const UNKNOWN: &str = "apimachinery.pkg.runtime.Unknown";

fn is_raw_json(ty: &str) -> bool {
    matches!(ty, RAW_EXTENSION | FIELDS_V1)
        || ty.starts_with("apiextensions_apiserver.") && ty.ends_with(".JSON")
}

/// Decodes a `k8s\0` protobuf body into the JSON object a JSON client would
/// have sent (with `apiVersion` and `kind` from the envelope).
pub fn decode_object(body: &[u8]) -> Result<Value, String> {
    let t = types()?;
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or("provided object is not protobuf: missing the k8s\\0 prefix")?;
    let envelope = decode_message(t, UNKNOWN, rest)?;
    let api_version = envelope
        .pointer("/typeMeta/apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = envelope
        .pointer("/typeMeta/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let raw = envelope
        .get("raw")
        .and_then(Value::as_str)
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let message = t
        .message_for(&api_version, &kind)
        .ok_or_else(|| format!("no kind \"{kind}\" is registered for version \"{api_version}\""))?;
    let mut obj = match decode_message(t, message, &raw)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut out = Map::new();
    if !api_version.is_empty() {
        out.insert("apiVersion".into(), Value::String(api_version));
    }
    if !kind.is_empty() {
        out.insert("kind".into(), Value::String(kind));
    }
    out.append(&mut obj);
    Ok(Value::Object(out))
}

/// Encodes a stored JSON object (with `apiVersion`/`kind`) as a `k8s\0`
/// protobuf body; `None` for kinds without a protobuf message (custom
/// resources), which the API server answers with 406.
pub fn encode_object(obj: &Value) -> Result<Option<Vec<u8>>, String> {
    let t = types()?;
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(message) = t.message_for(api_version, kind) else {
        return Ok(None);
    };
    let mut raw = Vec::new();
    encode_message(t, message, obj, &mut raw)?;
    let mut type_meta = Vec::new();
    encode_len(1, api_version.as_bytes(), &mut type_meta);
    encode_len(2, kind.as_bytes(), &mut type_meta);
    let mut out = MAGIC.to_vec();
    encode_len(1, &type_meta, &mut out);
    encode_len(2, &raw, &mut out);
    // contentEncoding and contentType are empty strings, written as Go does.
    encode_len(3, b"", &mut out);
    encode_len(4, b"", &mut out);
    Ok(Some(out))
}

// ---------------------------------------------------------------- decoding

enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    /// Not used by any Kubernetes message (no `float`/`fixed32` fields); skipped.
    Fixed32,
    Len(&'a [u8]),
}

fn fields(mut buf: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, String> {
    let mut out = Vec::new();
    while buf.has_remaining() {
        let (tag, wt) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        let w = match wt {
            WireType::Varint => Wire::Varint(decode_varint(&mut buf).map_err(|e| e.to_string())?),
            WireType::SixtyFourBit => {
                if buf.len() < 8 {
                    return Err("truncated fixed64".into());
                }
                Wire::Fixed64(buf.get_u64_le())
            }
            WireType::ThirtyTwoBit => {
                if buf.len() < 4 {
                    return Err("truncated fixed32".into());
                }
                buf.advance(4);
                Wire::Fixed32
            }
            WireType::LengthDelimited => {
                let n = decode_varint(&mut buf).map_err(|e| e.to_string())? as usize;
                if buf.len() < n {
                    return Err("truncated length-delimited field".into());
                }
                let (b, rest) = buf.split_at(n);
                buf = rest;
                Wire::Len(b)
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err("protobuf groups are not used by the Kubernetes API".into());
            }
        };
        out.push((tag, w));
    }
    Ok(out)
}

fn decode_message(t: &Types, name: &str, buf: &[u8]) -> Result<Value, String> {
    let msg = t
        .messages
        .get(name)
        .ok_or_else(|| format!("unknown protobuf message {name}"))?;
    let mut obj = Map::new();
    for (tag, w) in fields(buf)? {
        // Unknown tags are skipped, as proto2 parsers do.
        let Some(f) = msg.fields.iter().find(|f| f.tag == tag) else {
            continue;
        };
        if f.map {
            let Wire::Len(entry) = w else {
                return Err(format!(
                    "{name}.{}: map entry is not length-delimited",
                    f.json
                ));
            };
            let (mut key, mut val) = (String::new(), None);
            for (etag, ew) in fields(entry)? {
                match (etag, ew) {
                    (1, Wire::Len(k)) => key = String::from_utf8_lossy(k).into_owned(),
                    (2, ew) => val = Some(scalar(t, f, ew)?),
                    _ => {}
                }
            }
            let val = val.unwrap_or_else(|| zero(f));
            let m = obj
                .entry(f.json.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = m {
                m.insert(key, val);
            }
        } else if f.repeated {
            let arr = obj
                .entry(f.json.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(arr) = arr else { continue };
            match w {
                // Packed numbers (proto3 style), accepted as parsers must.
                Wire::Len(b) if matches!(f.kind.as_str(), "int32" | "int64" | "bool") => {
                    let mut b = b;
                    while b.has_remaining() {
                        let v = decode_varint(&mut b).map_err(|e| e.to_string())?;
                        arr.push(scalar(t, f, Wire::Varint(v))?);
                    }
                }
                w => arr.push(scalar(t, f, w)?),
            }
        } else if f.inline {
            if let Value::Object(mut inner) = scalar(t, f, w)? {
                obj.append(&mut inner);
            }
        } else {
            let v = scalar(t, f, w)?;
            if v.is_null() || v.as_str() == Some("") {
                obj.remove(&f.json);
            } else {
                obj.insert(f.json.clone(), v);
            }
        }
    }
    Ok(Value::Object(obj))
}

fn zero(f: &Field) -> Value {
    match f.kind.as_str() {
        "string" | "bytes" => Value::String(String::new()),
        "bool" => Value::Bool(false),
        "int32" | "int64" | "double" => Value::from(0),
        _ => Value::Object(Map::new()),
    }
}

fn scalar(t: &Types, f: &Field, w: Wire<'_>) -> Result<Value, String> {
    let bad = || format!("field {}: wrong wire type for {}", f.json, f.kind);
    Ok(match (f.kind.as_str(), w) {
        ("string", Wire::Len(b)) => Value::String(
            std::str::from_utf8(b)
                .map_err(|_| format!("field {}: invalid UTF-8", f.json))?
                .to_string(),
        ),
        ("bytes", Wire::Len(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        ("bool", Wire::Varint(v)) => Value::Bool(v != 0),
        ("int32", Wire::Varint(v)) => Value::from(v as i32),
        ("int64", Wire::Varint(v)) => Value::from(v as i64),
        ("double", Wire::Fixed64(v)) => serde_json::Number::from_f64(f64::from_bits(v))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        ("message", Wire::Len(b)) => {
            let ty = f.ty.as_deref().unwrap_or_default();
            special_decode(t, ty, b)?
        }
        _ => return Err(bad()),
    })
}

fn special_decode(t: &Types, ty: &str, b: &[u8]) -> Result<Value, String> {
    let int = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    Ok(match ty {
        QUANTITY => decode_message(t, ty, b)?
            .get("string")
            .cloned()
            .unwrap_or(Value::Null),
        TIME | MICRO_TIME => {
            let v = decode_message(t, ty, b)?;
            let (secs, nanos) = (int(&v, "seconds"), int(&v, "nanos"));
            if secs == 0 && nanos == 0 {
                // The zero time, which Go's JSON encoder writes as null.
                return Ok(Value::Null);
            }
            Value::String(format_time(secs, nanos, ty == MICRO_TIME)?)
        }
        DURATION => Value::String(go_duration(int(&decode_message(t, ty, b)?, "duration"))),
        INT_OR_STRING => {
            let v = decode_message(t, ty, b)?;
            if int(&v, "type") == 1 {
                v.get("strVal")
                    .cloned()
                    .unwrap_or(Value::String(String::new()))
            } else {
                Value::from(int(&v, "intVal"))
            }
        }
        _ if is_raw_json(ty) => {
            let raw = fields(b)?
                .into_iter()
                .find_map(|(tag, w)| match (tag, w) {
                    (1, Wire::Len(r)) => Some(r),
                    _ => None,
                })
                .unwrap_or_default();
            if raw.is_empty() {
                Value::Null
            } else if raw.starts_with(MAGIC) {
                decode_object(raw)?
            } else {
                serde_json::from_slice(raw).map_err(|e| format!("{ty}: {e}"))?
            }
        }
        _ if ty.ends_with("JSONSchemaPropsOrArray")
            || ty.ends_with("JSONSchemaPropsOrBool")
            || ty.ends_with("JSONSchemaPropsOrStringArray") =>
        {
            // One-of wrappers: the JSON form is the schema, or the list/bool.
            let v = decode_message(t, ty, b)?;
            if let Some(s) = v.get("schema") {
                s.clone()
            } else if let Some(a) = v.get("allows") {
                a.clone()
            } else {
                v.as_object()
                    .and_then(|m| m.values().next().cloned())
                    .unwrap_or(Value::Null)
            }
        }
        _ => decode_message(t, ty, b)?,
    })
}

fn format_time(secs: i64, nanos: i64, micro: bool) -> Result<String, String> {
    let at = OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string())?;
    let base = at
        .replace_nanosecond(0)
        .map_err(|e| e.to_string())?
        .format(&Rfc3339)
        .map_err(|e| e.to_string())?;
    if !micro {
        return Ok(base);
    }
    // metav1.MicroTime: RFC3339 with exactly six fractional digits.
    let stem = base.trim_end_matches('Z');
    Ok(format!("{stem}.{:06}Z", nanos / 1000))
}

/// Go's `time.Duration.String()`, e.g. `1h0m0s`, `1.5s`, `300ms`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", trim_frac(n, div));
    }
    let secs = n / 1_000_000_000;
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = trim_frac(n % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

fn trim_frac(n: u64, div: u64) -> String {
    let (whole, frac) = (n / div, n % div);
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{frac:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

// ---------------------------------------------------------------- encoding

fn encode_len(tag: u32, b: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn encode_message(t: &Types, name: &str, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let msg = t
        .messages
        .get(name)
        .ok_or_else(|| format!("unknown protobuf message {name}"))?;
    let Some(obj) = v.as_object() else {
        return Ok(());
    };
    for f in &msg.fields {
        if f.inline {
            let mut b = Vec::new();
            encode_message(t, f.ty.as_deref().unwrap_or_default(), v, &mut b)?;
            encode_len(f.tag, &b, out);
            continue;
        }
        let Some(val) = obj.get(&f.json) else {
            continue;
        };
        if val.is_null() {
            continue;
        }
        if f.map {
            let Some(m) = val.as_object() else { continue };
            for (k, item) in m {
                let mut entry = Vec::new();
                encode_len(1, k.as_bytes(), &mut entry);
                encode_value(t, f, 2, item, &mut entry)?;
                encode_len(f.tag, &entry, out);
            }
        } else if f.repeated {
            let Some(items) = val.as_array() else {
                continue;
            };
            for item in items {
                encode_value(t, f, f.tag, item, out)?;
            }
        } else {
            encode_value(t, f, f.tag, val, out)?;
        }
    }
    Ok(())
}

fn encode_value(
    t: &Types,
    f: &Field,
    tag: u32,
    v: &Value,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match f.kind.as_str() {
        "string" => {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            encode_len(tag, s.as_bytes(), out);
        }
        "bytes" => {
            let b = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .map_err(|e| format!("{}: {e}", f.json))?;
            encode_len(tag, &b, out);
        }
        "bool" => {
            encode_key(tag, WireType::Varint, out);
            encode_varint(u64::from(v.as_bool().unwrap_or(false)), out);
        }
        "int32" | "int64" => {
            encode_key(tag, WireType::Varint, out);
            encode_varint(v.as_i64().unwrap_or(0) as u64, out);
        }
        "double" => {
            encode_key(tag, WireType::SixtyFourBit, out);
            out.extend_from_slice(&v.as_f64().unwrap_or(0.0).to_bits().to_le_bytes());
        }
        _ => {
            let mut b = Vec::new();
            special_encode(t, f.ty.as_deref().unwrap_or_default(), v, &mut b)?;
            encode_len(tag, &b, out);
        }
    }
    Ok(())
}

fn special_encode(t: &Types, ty: &str, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match ty {
        QUANTITY => {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            encode_len(1, s.as_bytes(), out);
        }
        TIME | MICRO_TIME => {
            let at = OffsetDateTime::parse(v.as_str().unwrap_or_default(), &Rfc3339)
                .map_err(|e| format!("time {v}: {e}"))?;
            encode_key(1, WireType::Varint, out);
            encode_varint(at.unix_timestamp() as u64, out);
            if ty == MICRO_TIME {
                encode_key(2, WireType::Varint, out);
                encode_varint(u64::from(at.nanosecond()), out);
            }
        }
        INT_OR_STRING => match v {
            Value::String(s) => {
                encode_key(1, WireType::Varint, out);
                encode_varint(1, out);
                encode_len(3, s.as_bytes(), out);
            }
            other => {
                encode_key(1, WireType::Varint, out);
                encode_varint(0, out);
                encode_key(2, WireType::Varint, out);
                encode_varint(other.as_i64().unwrap_or(0) as u64, out);
            }
        },
        _ if is_raw_json(ty) => {
            let raw = serde_json::to_vec(v).map_err(|e| e.to_string())?;
            encode_len(1, &raw, out);
        }
        _ => encode_message(t, ty, v, out)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_round_trip_through_protobuf() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "creationTimestamp": "2024-05-01T10:20:30Z"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                      "resources": {"limits": {"cpu": "500m"}},
                                      "ports": [{"containerPort": 80}]}],
                                      "volumes": [{"name": "c", "configMap": {"name": "cm"}}]}}}
        });
        let pb = encode_object(&obj).unwrap().unwrap();
        assert!(pb.starts_with(MAGIC));
        assert_eq!(decode_object(&pb).unwrap(), obj);
    }

    #[test]
    fn secrets_bytes_and_lists_round_trip() {
        let obj = json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "aGk="}}]});
        let pb = encode_object(&obj).unwrap().unwrap();
        assert_eq!(decode_object(&pb).unwrap(), obj);
        let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget"});
        assert_eq!(encode_object(&cr).unwrap(), None);
    }

    #[test]
    fn times_and_durations_render_as_go_does() {
        assert_eq!(
            format_time(0, 5_000, true).unwrap(),
            "1970-01-01T00:00:00.000005Z"
        );
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(300_000_000), "300ms");
    }

    #[test]
    fn refuses_bodies_without_the_magic_prefix() {
        assert!(decode_object(b"{}").unwrap_err().contains("k8s\\0"));
    }
}
