//! Wire formats other than JSON, as a layer in front of the JSON API:
//! protobuf request bodies become the JSON object kubesim stores, and JSON
//! answers become protobuf when the client accepts nothing else.
//!
//! kubectl's typed commands and client-go clientsets (Helm's release
//! Secrets) send `application/vnd.kubernetes.protobuf`
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#alternate-representations-of-resources>).

pub mod protobuf;
pub mod schemas;
pub mod types;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, header};

use crate::errors::ApiError;

const BODY_LIMIT: usize = 256 << 20;

fn error(e: &ApiError) -> Response {
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = http::StatusCode::from_u16(e.code).unwrap_or(http::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// True when every media range the client accepts is protobuf (client-go
/// sends `application/vnd.kubernetes.protobuf, */*` or `…, application/json`
/// when it can take JSON too, and then gets JSON).
pub fn accepts_only_protobuf(accept: &str) -> bool {
    let ranges: Vec<&str> = accept
        .split(',')
        .map(|r| r.split(';').next().unwrap_or_default().trim())
        .filter(|r| !r.is_empty())
        .collect();
    !ranges.is_empty() && ranges.iter().all(|r| *r == protobuf::CONTENT_TYPE)
}

fn is_watch(req: &Request) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

/// The middleware: decode protobuf bodies, encode protobuf answers.
pub async fn negotiate(req: Request, next: Next) -> Response {
    let header_str = |req: &Request, h| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_type = header_str(&req, header::CONTENT_TYPE);
    let want_protobuf = accepts_only_protobuf(&header_str(&req, header::ACCEPT)) && !is_watch(&req);
    let req = if content_type.starts_with(protobuf::CONTENT_TYPE) {
        let (mut parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
            Ok(b) => b,
            Err(e) => return error(&ApiError::bad_request(e.to_string())),
        };
        let json = if bytes.is_empty() {
            Vec::new()
        } else {
            match protobuf::decode_object(&bytes)
                .and_then(|v| serde_json::to_vec(&v).map_err(|e| e.to_string()))
            {
                Ok(j) => j,
                Err(e) => {
                    return error(&ApiError::bad_request(format!(
                        "the object provided is unrecognized: {e}"
                    )));
                }
            }
        };
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        parts.headers.remove(header::CONTENT_LENGTH);
        Request::from_parts(parts, Body::from(json))
    } else {
        req
    };
    let resp = next.run(req).await;
    if !want_protobuf {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return error(&ApiError::internal("could not read the response body"));
    };
    let encoded = serde_json::from_slice(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|v| protobuf::encode_object(&v));
    match encoded {
        Ok(Some(pb)) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(protobuf::CONTENT_TYPE),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(pb))
        }
        // Custom resources have no protobuf form: the API server answers 406.
        Ok(None) => error(&ApiError::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml",
        )),
        Err(e) => error(&ApiError::internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_only_when_nothing_else_is_accepted() {
        assert!(accepts_only_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(!accepts_only_protobuf(
            "application/vnd.kubernetes.protobuf, */*"
        ));
        assert!(!accepts_only_protobuf(
            "application/vnd.kubernetes.protobuf,application/json"
        ));
        assert!(!accepts_only_protobuf(""));
    }
}
