//! kubectl-style JSONPath templates for `-o jsonpath=…`.
//!
//! As in kubectl (https://kubernetes.io/docs/reference/kubectl/jsonpath/): text outside
//! `{}` is printed as is; `{.a.b}` and `{.items[*].uid}` print what the expression selects
//! (several results separated by spaces; strings raw, anything else as JSON); `{"\n"}` is a
//! literal; `{range EXPR}…{end}` repeats its body for each selected value, with `.` inside
//! it meaning the current value. `$` is the root. A path that selects nothing prints
//! nothing (kubectl's default `--allow-missing-template-keys=true`). Expressions themselves
//! are evaluated by `jsonpath-rust` (RFC 9535), after turning kubectl's leading `.` into `$`.

use jsonpath_rust::JsonPath;
use serde_json::Value;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Text(String),
    Expr(String),
    Range(String, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    nodes: Vec<Node>,
}

/// kubectl's relative path (`.a`, `.`) as an RFC 9535 query on the current value.
fn to_query(expr: &str) -> Result<String, String> {
    let expr = expr.trim();
    let query = if expr == "." || expr == "@" {
        "$".to_string()
    } else if let Some(rest) = expr.strip_prefix('.') {
        if rest.starts_with('[') {
            format!("${rest}")
        } else {
            format!("$.{rest}")
        }
    } else if expr.starts_with('$') {
        expr.to_string()
    } else {
        return Err(format!(
            "JSONPath expression {expr:?} must start with `.` or `$`, e.g. {{.items[*].uid}}"
        ));
    };
    // Checked now, so a typo is a usage error before any request is made.
    Value::Null
        .query(&query)
        .map_err(|e| format!("invalid JSONPath expression {expr:?}: {e}"))?;
    Ok(query)
}

fn unquote(literal: &str) -> Result<String, String> {
    let inner = &literal[1..literal.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some(other) => return Err(format!("unknown escape \\{other} in {literal}")),
            None => return Err(format!("unfinished escape in {literal}")),
        }
    }
    Ok(out)
}

/// Splits the template into text and `{…}` actions (a `}` inside a string literal does not close).
fn actions(template: &str) -> Result<Vec<(bool, String)>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '{' {
            text.push(c);
            continue;
        }
        if !text.is_empty() {
            parts.push((false, std::mem::take(&mut text)));
        }
        let mut action = String::new();
        let mut in_string = false;
        let mut closed = false;
        let mut escaped = false;
        for c in chars.by_ref() {
            if in_string {
                action.push(c);
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '}' {
                closed = true;
                break;
            } else {
                in_string = c == '"';
                action.push(c);
            }
        }
        if !closed {
            return Err(format!("unclosed {{ in JSONPath template {template:?}"));
        }
        parts.push((true, action));
    }
    if !text.is_empty() {
        parts.push((false, text));
    }
    Ok(parts)
}

fn parse_nodes(
    parts: &mut std::vec::IntoIter<(bool, String)>,
    in_range: bool,
) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    while let Some((is_action, s)) = parts.next() {
        if !is_action {
            nodes.push(Node::Text(s));
            continue;
        }
        let action = s.trim();
        if action == "end" {
            return if in_range {
                Ok(nodes)
            } else {
                Err("{end} without {range …}".into())
            };
        }
        if let Some(expr) = action.strip_prefix("range ") {
            let body = parse_nodes(parts, true)?;
            nodes.push(Node::Range(to_query(expr)?, body));
        } else if action.len() >= 2 && action.starts_with('"') && action.ends_with('"') {
            nodes.push(Node::Text(unquote(action)?));
        } else {
            nodes.push(Node::Expr(to_query(action)?));
        }
    }
    if in_range {
        return Err("{range …} without {end}".into());
    }
    Ok(nodes)
}

impl FromStr for Template {
    type Err = String;
    fn from_str(s: &str) -> Result<Template, String> {
        let mut parts = actions(s)?.into_iter();
        Ok(Template {
            nodes: parse_nodes(&mut parts, false)?,
        })
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn select<'a>(v: &'a Value, query: &str) -> Vec<&'a Value> {
    // Queries were checked at parse time; a failure here selects nothing.
    v.query(query).unwrap_or_default()
}

fn render_nodes(nodes: &[Node], v: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Expr(q) => {
                let shown: Vec<String> = select(v, q).into_iter().map(show).collect();
                out.push_str(&shown.join(" "));
            }
            Node::Range(q, body) => {
                for item in select(v, q) {
                    render_nodes(body, item, out);
                }
            }
        }
    }
}

impl Template {
    pub fn render(&self, v: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, v, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(template: &str, v: &Value) -> String {
        template.parse::<Template>().unwrap().render(v)
    }

    #[test]
    fn kubectl_examples() {
        let v = json!({"items": [
            {"uid": "a", "status": {"phase": "Ready"}, "labels": {"x": 1}},
            {"uid": "b", "status": {"phase": "Failed"}}
        ]});
        let cases = [
            ("{.items[*].uid}", "a b"),
            ("{.items[0].status.phase}", "Ready"),
            ("uid={.items[1].uid}", "uid=b"),
            ("{.items[0].labels}", r#"{"x":1}"#),
            ("{.items[*].missing}", ""),
            (r#"{range .items[*]}{.uid}{"\n"}{end}"#, "a\nb\n"),
            (r#"{range .items[*]}[{.uid}]{end}"#, "[a][b]"),
            ("{$.items[1].uid}", "b"),
            (r#"{.items[?(@.status.phase=="Failed")].uid}"#, "b"),
            (r#"{"}"}"#, "}"),
        ];
        for (template, want) in cases {
            assert_eq!(run(template, &v), want, "{template}");
        }
    }

    #[test]
    fn mistakes_are_refused_before_any_request() {
        for (bad, why) in [
            ("{.items[*}", "invalid JSONPath"),
            ("{items}", "must start with"),
            ("{range .items[*]}{.uid}", "without {end}"),
            ("{end}", "without {range"),
            ("{.uid", "unclosed"),
        ] {
            let e = bad.parse::<Template>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
