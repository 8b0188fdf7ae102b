//! A JSON body extractor whose every failure is a problem+json naming the field.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the request body must be JSON: send 'Content-Type: application/json'",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    format!(
                        "the request body is larger than the limit of {} bytes",
                        crate::BODY_LIMIT_BYTES
                    ),
                )
            } else {
                ApiError::bad_request("body", rejection.body_text())
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Syntax errors are 400 (the body is not JSON); shape errors are 422 naming the path.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." {
                    "body".to_string()
                } else {
                    path
                };
                ApiError::invalid(caelus_core::FieldError::new(
                    field,
                    strip_position(&inner.to_string()),
                ))
            }
            _ => ApiError::bad_request("body", format!("malformed JSON: {inner}")),
        }
    })
}

/// serde appends "at line 1 column 42"; the field path already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    #[test]
    fn syntax_errors_are_400() {
        let e = parse::<Body>(b"{\"name\": ").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.detail.contains("malformed JSON"));
    }

    #[test]
    fn unknown_fields_name_the_path() {
        let e = parse::<Body>(br#"{"name": "x", "inner": {"count": 1, "extra": 2}}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.errors[0].field, "inner.extra");
        assert!(
            e.errors[0].reason.contains("unknown field `extra`"),
            "{}",
            e.errors[0].reason
        );
        assert!(!e.errors[0].reason.contains("at line"));
    }

    #[test]
    fn wrong_types_and_missing_fields_name_the_path() {
        let e = parse::<Body>(br#"{"name": "x", "inner": {"count": "three"}}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "inner.count");
        let e = parse::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "body");
        assert!(e.errors[0].reason.contains("missing field `name`"));
    }
}
