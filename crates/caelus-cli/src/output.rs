//! Printing API results as a table, JSON or YAML.

use clap::ValueEnum;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// Which columns a table shows: (header, JSON pointer).
pub type Columns = &'static [(&'static str, &'static str)];

pub const PRODUCT: Columns = &[
    ("SLUG", "/slug"),
    ("NAME", "/name"),
    ("CREATED", "/created_at"),
];
pub const TEMPLATE: Columns = &[
    ("PRODUCT", "/product"),
    ("VERSION", "/version"),
    ("LIFECYCLE", "/lifecycle"),
    ("CHART NAME", "/chart_metadata/name"),
    ("CHART VERSION", "/chart_metadata/version"),
    ("CHART", "/chart"),
];
pub const DEPLOYMENT: Columns = &[
    ("UID", "/uid"),
    ("NAME", "/name"),
    ("TENANT", "/tenant"),
    ("PRODUCT", "/product"),
    ("VERSION", "/version"),
    ("PHASE", "/status/phase"),
    ("GEN", "/generation"),
    ("AGE", "/created_at"),
];
pub const REVISION: Columns = &[
    ("REVISION", "/number"),
    ("KIND", "/kind"),
    ("VERSION", "/version"),
    ("CHART DIGEST", "/chart_digest"),
    ("VALUES HASH", "/values_hash"),
    ("OUTCOME", "/outcome"),
    ("BY", "/requested_by"),
    ("STARTED", "/started_at"),
    ("SECONDS", "/duration_seconds"),
];
pub const UPGRADE_TARGET: Columns = &[
    ("VERSION", "/version"),
    ("LIFECYCLE", "/lifecycle"),
    ("ALLOWED", "/allowed"),
    ("WHY NOT", "/reasons"),
    ("WARNINGS", "/warnings"),
];
pub const EVENT: Columns = &[
    ("TIME", "/at"),
    ("ACTION", "/action"),
    ("ACTOR", "/actor"),
    ("MESSAGE", "/message"),
];
pub const TOKEN: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("ROLE", "/role"),
    ("TENANT", "/tenant"),
    ("PREFIX", "/prefix"),
    ("REVOKED", "/revoked_at"),
];

fn cell(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".into(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
    }
}

/// Renders rows under headers, columns padded to their widest cell.
pub fn table(columns: Columns, rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, p)| cell(r, p)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let line = |items: Vec<String>| {
        items
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(columns.iter().map(|(h, _)| h.to_string()).collect())];
    out.extend(cells.into_iter().map(line));
    out.join("\n")
}

pub fn print_value(format: Format, v: &Value) {
    match format {
        Format::Json | Format::Table => {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
        }
        Format::Yaml => print!("{}", yaml_serde::to_string(v).unwrap_or_default()),
    }
}

/// Prints a list response (`{items, next_cursor}`) or a single object.
pub fn print(format: Format, columns: Columns, v: &Value) {
    match format {
        Format::Table => {
            let rows = match v.get("items").and_then(Value::as_array) {
                Some(items) => items.clone(),
                None => vec![v.clone()],
            };
            println!("{}", table(columns, &rows));
            if let Some(next) = v.get("next_cursor").and_then(Value::as_str) {
                println!("(more: --cursor {next})");
            }
        }
        _ => print_value(format, v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_show_missing_as_dash() {
        let rows = vec![
            json!({"slug": "wiki", "name": "Team wiki", "created_at": "2026-01-01T00:00:00Z"}),
            json!({"slug": "postgres", "name": null}),
        ];
        let t = table(PRODUCT, &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "SLUG      NAME       CREATED");
        assert_eq!(lines[1], "wiki      Team wiki  2026-01-01T00:00:00Z");
        assert_eq!(lines[2], "postgres  -          -");
    }

    #[test]
    fn nested_pointers() {
        let rows = vec![json!({"uid": "u", "status": {"phase": "Ready"}, "generation": 3})];
        let t = table(&[("PHASE", "/status/phase"), ("GEN", "/generation")], &rows);
        assert!(t.lines().nth(1).unwrap().starts_with("Ready  3"));
    }
}
