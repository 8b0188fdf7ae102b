//! Printing API results: table, wide table, names, JSON, YAML or a JSONPath template.
//!
//! Everything a client command prints goes through [`emit`], which ends the process
//! quietly (exit 0) when stdout is a closed pipe, as `ls | head` does.

use serde_json::Value;
use std::io::Write;
use std::str::FromStr;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `-o/--output`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    /// The table with its extra columns.
    Wide,
    /// `kind/name`, one a line (for scripts: `xargs`, loops).
    Name,
    Json,
    Yaml,
    /// A kubectl-style JSONPath template, e.g. `{.items[*].uid}`.
    JsonPath(crate::jsonpath::Template),
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Ok(match s {
            "table" => Format::Table,
            "wide" => Format::Wide,
            "name" => Format::Name,
            "json" => Format::Json,
            "yaml" => Format::Yaml,
            other => match other.strip_prefix("jsonpath=") {
                Some(template) => Format::JsonPath(template.parse()?),
                None => {
                    return Err(format!(
                        "unknown output format {other:?}: use table, wide, name, json, yaml or jsonpath=TEMPLATE"
                    ));
                }
            },
        })
    }
}

/// How a cell shows its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Text,
    /// An RFC 3339 timestamp shown as the time since then (`5m`, `3d`), as kubectl's AGE.
    Age,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    /// JSON pointer into one row.
    pub pointer: &'static str,
    pub cell: Cell,
    /// Shown only with `-o wide`.
    pub wide: bool,
}

pub const fn col(header: &'static str, pointer: &'static str) -> Column {
    Column {
        header,
        pointer,
        cell: Cell::Text,
        wide: false,
    }
}

pub const fn age(header: &'static str, pointer: &'static str) -> Column {
    Column {
        header,
        pointer,
        cell: Cell::Age,
        wide: false,
    }
}

impl Column {
    pub const fn wide(self) -> Column {
        Column { wide: true, ..self }
    }
}

/// What a command prints: the resource kind (for `-o name`), the pointers that
/// name one row, and the table's columns.
#[derive(Debug)]
pub struct Resource {
    pub kind: &'static str,
    /// Joined with `/` after the kind: `deployment/<uid>`, `template/web/1.0.0`.
    pub name: &'static [&'static str],
    pub columns: &'static [Column],
}

pub type Columns = &'static Resource;

pub const PRODUCT: &Resource = &Resource {
    kind: "product",
    name: &["/slug"],
    columns: &[
        col("SLUG", "/slug"),
        col("NAME", "/name"),
        col("DESCRIPTION", "/description").wide(),
        age("AGE", "/created_at"),
    ],
};
pub const TEMPLATE: &Resource = &Resource {
    kind: "template",
    name: &["/product", "/version"],
    columns: &[
        col("PRODUCT", "/product"),
        col("VERSION", "/version"),
        col("LIFECYCLE", "/lifecycle"),
        col("CHART NAME", "/chart_metadata/name"),
        col("CHART VERSION", "/chart_metadata/version"),
        col("ALLOWED VALUES", "/values_allowlist").wide(),
        age("AGE", "/created_at").wide(),
        col("CHART", "/chart"),
    ],
};
pub const DEPLOYMENT: &Resource = &Resource {
    kind: "deployment",
    name: &["/uid"],
    columns: &[
        col("UID", "/uid"),
        col("NAME", "/name"),
        col("TENANT", "/tenant"),
        col("PRODUCT", "/product"),
        col("VERSION", "/version"),
        col("PHASE", "/status/phase"),
        col("GEN", "/generation"),
        col("NAMESPACE", "/namespace").wide(),
        col("REVISION", "/status/current_revision").wide(),
        col("MESSAGE", "/status/message").wide(),
        age("AGE", "/created_at"),
    ],
};
pub const REVISION: &Resource = &Resource {
    kind: "revision",
    name: &["/number"],
    columns: &[
        col("REVISION", "/number"),
        col("KIND", "/kind"),
        col("VERSION", "/version"),
        col("CHART DIGEST", "/chart_digest"),
        col("VALUES HASH", "/values_hash"),
        col("OUTCOME", "/outcome"),
        col("BY", "/requested_by"),
        age("AGE", "/started_at"),
        col("STARTED", "/started_at").wide(),
        col("SECONDS", "/duration_seconds"),
    ],
};
pub const UPGRADE_TARGET: &Resource = &Resource {
    kind: "version",
    name: &["/version"],
    columns: &[
        col("VERSION", "/version"),
        col("LIFECYCLE", "/lifecycle"),
        col("ALLOWED", "/allowed"),
        col("WHY NOT", "/reasons"),
        col("WARNINGS", "/warnings"),
    ],
};
pub const ADOPTION: &Resource = &Resource {
    kind: "adoption",
    name: &["/kind", "/name"],
    columns: &[
        col("KIND", "/kind"),
        col("NAMESPACE", "/namespace"),
        col("NAME", "/name"),
        col("ADOPTED", "/adopted"),
        col("PREVIOUS OWNER", "/previousOwner"),
        col("GENERATION", "/generation"),
    ],
};
pub const EVENT: &Resource = &Resource {
    kind: "event",
    name: &["/id"],
    columns: &[
        age("AGE", "/at"),
        col("TIME", "/at").wide(),
        col("ACTION", "/action"),
        col("ACTOR", "/actor"),
        col("MESSAGE", "/message"),
    ],
};
pub const TOKEN: &Resource = &Resource {
    kind: "token",
    name: &["/id"],
    columns: &[
        col("ID", "/id"),
        col("NAME", "/name"),
        col("ROLE", "/role"),
        col("TENANT", "/tenant"),
        col("PREFIX", "/prefix"),
        age("AGE", "/created_at").wide(),
        col("EXPIRES", "/expires_at"),
        col("LAST USED", "/last_used_at").wide(),
        col("REVOKED", "/revoked_at"),
    ],
};
/// An event of the global audit log: with its tenant and subject.
pub const AUDIT_EVENT: &Resource = &Resource {
    kind: "event",
    name: &["/id"],
    columns: &[
        col("ID", "/id").wide(),
        age("AGE", "/at"),
        col("TIME", "/at").wide(),
        col("TENANT", "/tenant"),
        col("ACTION", "/action"),
        col("ACTOR", "/actor"),
        col("SUBJECT", "/subject").wide(),
        col("MESSAGE", "/message"),
    ],
};

pub const ENDPOINT: &Resource = &Resource {
    kind: "endpoint",
    name: &["/kind", "/name"],
    columns: &[
        col("KIND", "/kind"),
        col("NAME", "/name"),
        col("TYPE", "/type"),
        col("DNS", "/dns_name"),
        col("PORTS", "/ports"),
        col("URLS", "/urls"),
        col("ADDRESSES", "/addresses").wide(),
    ],
};

/// Writes to stdout; a closed pipe (the reader went away, as `head` does) ends the
/// process quietly with status 0 instead of a panic.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`emit`].
#[macro_export]
macro_rules! outln {
    () => { $crate::output::emit("\n") };
    ($($arg:tt)*) => { $crate::output::emit(&format!("{}\n", format_args!($($arg)*))) };
}

/// kubectl's AGE: how long ago, in at most two units (`45s`, `5m10s`, `3h`, `2d4h`, `1y`);
/// the rules of k8s.io/apimachinery/pkg/util/duration.HumanDuration.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    let pair = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    if minutes < 10 {
        return pair(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return pair(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return pair(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        return pair(years, "y", hours / 24 % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

fn text(v: &Value, pointer: &str) -> String {
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

fn cell(v: &Value, column: &Column, now: OffsetDateTime) -> String {
    match column.cell {
        Cell::Text => text(v, column.pointer),
        Cell::Age => match v.pointer(column.pointer).and_then(Value::as_str) {
            Some(at) => match OffsetDateTime::parse(at, &Rfc3339) {
                Ok(at) => human_duration((now - at).whole_seconds()),
                Err(_) => at.to_string(),
            },
            None => "-".into(),
        },
    }
}

/// A table printed in pieces (a watch prints rows as they change): columns keep the
/// widths they had, and grow when a cell needs more.
pub struct Table {
    columns: Vec<Column>,
    widths: Vec<usize>,
}

impl Table {
    pub fn new(columns: &[Column], wide: bool) -> Table {
        let columns: Vec<Column> = columns
            .iter()
            .filter(|c| wide || !c.wide)
            .copied()
            .collect();
        let widths = columns.iter().map(|c| c.header.len()).collect();
        Table { columns, widths }
    }

    fn line(&self, items: &[String]) -> String {
        items
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = self.widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    }

    /// The lines of `rows`, after the header line when `header`.
    pub fn lines(&mut self, rows: &[Value], header: bool, now: OffsetDateTime) -> Vec<String> {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| self.columns.iter().map(|c| cell(r, c, now)).collect())
            .collect();
        for row in &cells {
            for (i, s) in row.iter().enumerate() {
                self.widths[i] = self.widths[i].max(s.chars().count());
            }
        }
        let mut out = Vec::new();
        if header {
            let headers: Vec<String> = self.columns.iter().map(|c| c.header.into()).collect();
            out.push(self.line(&headers));
        }
        out.extend(cells.iter().map(|r| self.line(r)));
        out
    }
}

/// Renders rows under headers, columns padded to their widest cell.
pub fn table(columns: &[Column], rows: &[Value], wide: bool, now: OffsetDateTime) -> String {
    Table::new(columns, wide).lines(rows, true, now).join("\n")
}

/// `kind/name` of one row.
pub fn name(resource: &Resource, row: &Value) -> String {
    let parts: Vec<String> = resource.name.iter().map(|p| text(row, p)).collect();
    format!("{}/{}", resource.kind, parts.join("/"))
}

/// The rows of a list response (`{items, next_cursor}`), or the one object.
pub fn rows(v: &Value) -> Vec<Value> {
    match v.get("items").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None => vec![v.clone()],
    }
}

/// A value in a format that needs no columns (JSON for the table formats).
pub fn render_value(format: &Format, v: &Value) -> String {
    match format {
        Format::Yaml => yaml_serde::to_string(v).unwrap_or_default(),
        Format::JsonPath(template) => template.render(v),
        Format::Json | Format::Table | Format::Wide | Format::Name => {
            format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
        }
    }
}

pub fn print_value(format: &Format, v: &Value) {
    emit(&render_value(format, v));
}

/// What `print` shows, at a given time (ages are relative to `now`).
pub fn render(format: &Format, resource: &Resource, v: &Value, now: OffsetDateTime) -> String {
    match format {
        Format::Table | Format::Wide => {
            let mut out = table(resource.columns, &rows(v), *format == Format::Wide, now);
            out.push('\n');
            if let Some(next) = v.get("next_cursor").and_then(Value::as_str) {
                out.push_str(&format!("(more: --cursor {next})\n"));
            }
            out
        }
        Format::Name => rows(v)
            .iter()
            .map(|r| format!("{}\n", name(resource, r)))
            .collect(),
        _ => render_value(format, v),
    }
}

/// Prints a list response (`{items, next_cursor}`) or a single object.
pub fn print(format: &Format, resource: &Resource, v: &Value) {
    emit(&render(format, resource, v, OffsetDateTime::now_utc()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

    #[test]
    fn tables_align_and_show_missing_as_dash() {
        let rows = vec![
            json!({"slug": "wiki", "name": "Team wiki", "created_at": "2026-03-01T11:55:00Z"}),
            json!({"slug": "postgres", "name": null}),
        ];
        let t = table(PRODUCT.columns, &rows, false, NOW);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "SLUG      NAME       AGE");
        assert_eq!(lines[1], "wiki      Team wiki  5m");
        assert_eq!(lines[2], "postgres  -          -");
    }

    #[test]
    fn nested_pointers() {
        let rows = vec![json!({"uid": "u", "status": {"phase": "Ready"}, "generation": 3})];
        let t = table(
            &[col("PHASE", "/status/phase"), col("GEN", "/generation")],
            &rows,
            false,
            NOW,
        );
        assert!(t.lines().nth(1).unwrap().starts_with("Ready  3"));
    }

    #[test]
    fn human_durations_follow_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (800 * 86400, "2y70d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn formats_parse_and_unknown_ones_are_named() {
        assert_eq!("wide".parse::<Format>().unwrap(), Format::Wide);
        assert!(matches!(
            "jsonpath={.uid}".parse::<Format>().unwrap(),
            Format::JsonPath(_)
        ));
        let e = "xml".parse::<Format>().unwrap_err();
        assert!(
            e.contains("\"xml\"") && e.contains("jsonpath=TEMPLATE"),
            "{e}"
        );
    }

    fn deployments() -> Value {
        json!({"items": [
            {"uid": "d-1", "name": "shop", "tenant": "acme", "product": "web", "version": "1.0.0",
             "namespace": "cae-d-1", "generation": 2, "created_at": "2026-03-01T11:59:30Z",
             "status": {"phase": "Ready", "current_revision": 2, "message": "objects ready 3/3"}},
            {"uid": "d-22", "name": "blog", "tenant": "beta", "product": "web", "version": "2.0.0",
             "namespace": "cae-d-22", "generation": 1, "created_at": "2026-02-27T09:00:00Z",
             "status": {"phase": "Applying", "current_revision": null, "message": "objects ready 1/3"}}
        ], "next_cursor": null})
    }

    #[test]
    fn golden_deployment_table() {
        assert_eq!(
            render(&Format::Table, DEPLOYMENT, &deployments(), NOW),
            "\
UID   NAME  TENANT  PRODUCT  VERSION  PHASE     GEN  AGE
d-1   shop  acme    web      1.0.0    Ready     2    30s
d-22  blog  beta    web      2.0.0    Applying  1    2d3h
"
        );
    }

    #[test]
    fn golden_deployment_wide() {
        assert_eq!(
            render(&Format::Wide, DEPLOYMENT, &deployments(), NOW),
            "\
UID   NAME  TENANT  PRODUCT  VERSION  PHASE     GEN  NAMESPACE  REVISION  MESSAGE            AGE
d-1   shop  acme    web      1.0.0    Ready     2    cae-d-1    2         objects ready 3/3  30s
d-22  blog  beta    web      2.0.0    Applying  1    cae-d-22   -         objects ready 1/3  2d3h
"
        );
    }

    #[test]
    fn golden_names() {
        assert_eq!(
            render(&Format::Name, DEPLOYMENT, &deployments(), NOW),
            "deployment/d-1\ndeployment/d-22\n"
        );
        let version = json!({"product": "web", "version": "1.0.0"});
        assert_eq!(
            render(&Format::Name, TEMPLATE, &version, NOW),
            "template/web/1.0.0\n"
        );
    }

    #[test]
    fn golden_jsonpath() {
        let f: Format = r#"jsonpath={range .items[*]}{.uid}{"\t"}{.status.phase}{"\n"}{end}"#
            .parse()
            .unwrap();
        assert_eq!(
            render(&f, DEPLOYMENT, &deployments(), NOW),
            "d-1\tReady\nd-22\tApplying\n"
        );
        let f: Format = "jsonpath={.items[*].name}".parse().unwrap();
        assert_eq!(render(&f, DEPLOYMENT, &deployments(), NOW), "shop blog");
    }

    #[test]
    fn a_cursor_is_shown_under_the_table() {
        let v = json!({"items": [], "next_cursor": "abc"});
        let out = render(&Format::Table, PRODUCT, &v, NOW);
        assert!(out.ends_with("(more: --cursor abc)\n"), "{out}");
    }
}
