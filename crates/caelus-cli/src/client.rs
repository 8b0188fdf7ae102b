//! A small HTTP client for the Caelus API, driven by the operation table.

use crate::ops;
use serde_json::Value;
use std::fmt;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

#[derive(Debug)]
pub enum ClientError {
    /// The server answered with a problem report.
    Problem {
        status: u16,
        title: String,
        detail: String,
        errors: Vec<(String, String)>,
    },
    /// The server could not be reached or answered something unreadable.
    Transport(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Problem {
                status,
                title,
                detail,
                errors,
            } => {
                write!(f, "{title} ({status}): {detail}")?;
                for (field, reason) in errors {
                    if !detail.contains(reason.as_str()) {
                        write!(f, "\n  {field}: {reason}")?;
                    }
                }
                Ok(())
            }
            ClientError::Transport(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {}

/// Percent-encodes one path segment (RFC 3986 unreserved characters pass through).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fills `{name}` placeholders of a path template.
pub fn fill_path(template: &str, params: &[(&str, &str)]) -> String {
    let mut path = template.to_string();
    for (name, value) in params {
        path = path.replace(&format!("{{{name}}}"), &encode_segment(value));
    }
    path
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("caelus-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Transport(format!("cannot build HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Performs one API operation; returns the JSON body (`null` for 204).
    pub async fn call(
        &self,
        op_id: &str,
        params: &[(&str, &str)],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.call_within(op_id, params, query, body, None).await
    }

    /// [`Client::call`] for operations that take long by nature (a canary,
    /// a chart's tests): `timeout` instead of the default minute.
    pub async fn call_within(
        &self,
        op_id: &str,
        params: &[(&str, &str)],
        query: &[(&str, String)],
        body: Option<&Value>,
        timeout: Option<std::time::Duration>,
    ) -> Result<Value, ClientError> {
        let op = ops::find(op_id);
        let url = format!("{}{}", self.base, fill_path(op.path, params));
        let method =
            reqwest::Method::from_bytes(op.method.as_bytes()).expect("table methods are valid");
        let mut req = self.http.request(method, &url).query(query);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| {
            ClientError::Transport(format!("cannot reach the Caelus API at {}: {e}", self.base))
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(format!("reading the response failed: {e}")))?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Transport(format!("the server sent invalid JSON: {e}")));
        }
        let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = |k: &str| problem.get(k).and_then(Value::as_str).map(str::to_string);
        Err(ClientError::Problem {
            status: status.as_u16(),
            title: text("title")
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_string()),
            detail: text("detail").unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
            errors: problem
                .get("errors")
                .and_then(Value::as_array)
                .map(|errs| {
                    errs.iter()
                        .map(|e| {
                            (
                                e["field"].as_str().unwrap_or_default().to_string(),
                                e["reason"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_encodes_path_params() {
        assert_eq!(
            fill_path(
                "/api/v1/products/{product}/versions/{version}",
                &[("product", "wiki"), ("version", "1.0.0+b/1")]
            ),
            "/api/v1/products/wiki/versions/1.0.0%2Bb%2F1"
        );
    }

    #[test]
    fn problem_display_lists_fields_not_already_in_detail() {
        let e = ClientError::Problem {
            status: 422,
            title: "Unprocessable Entity".into(),
            detail: "values: bad path x".into(),
            errors: vec![
                ("values".into(), "bad path x".into()),
                ("name".into(), "too long".into()),
            ],
        };
        let s = e.to_string();
        assert!(s.starts_with("Unprocessable Entity (422): values: bad path x"));
        assert!(s.contains("\n  name: too long"));
        assert_eq!(s.matches("bad path x").count(), 1);
    }
}
