//! `caelus deployment test` and `caelus template certify`: results a person
//! reads as a checklist, and an exit status scripts can act on.

use crate::cli::ClientArgs;
use crate::client_commands::client;
use crate::outln;
use crate::output::{self, Format};
use anyhow::{Result, bail};
use serde_json::Value;

/// How long a certification (a canary's installs, health waits and tests) or a
/// chart's tests may take before the CLI stops waiting for the answer.
const LONG_CALL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Rows as aligned columns (the last one free-form).
fn print_rows(rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:w$}  ", w = widths[i]));
            }
        }
        outln!("{}", line.trim_end());
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// `caelus deployment test UID`: each test hook's result; exit 1 when one failed.
pub async fn test(uid: &str, timeout: u64, client_args: &ClientArgs) -> Result<()> {
    let v = client(client_args)?
        .call_within(
            "test_deployment",
            &[("uid", uid)],
            &[("timeout_seconds", timeout.to_string())],
            None,
            Some(LONG_CALL),
        )
        .await?;
    match &client_args.output {
        Format::Table | Format::Wide | Format::Name => {
            let tests = v["tests"].as_array().cloned().unwrap_or_default();
            if tests.is_empty() {
                outln!("the chart has no test hooks (revision {})", v["revision"]);
            } else {
                let mut rows = vec![vec![
                    "KIND".to_string(),
                    "NAME".into(),
                    "RESULT".into(),
                    "MESSAGE".into(),
                ]];
                for t in &tests {
                    rows.push(vec![
                        text(&t["kind"]),
                        text(&t["name"]),
                        if t["passed"] == true {
                            "passed"
                        } else {
                            "failed"
                        }
                        .into(),
                        text(&t["message"]),
                    ]);
                }
                print_rows(&rows);
            }
        }
        f => output::print_value(f, &v),
    }
    if v["passed"] != true {
        bail!("a test of deployment {uid} failed");
    }
    Ok(())
}

/// The checklist of a certification report, one item a line.
pub fn print_checklist(report: &Value) {
    let mut rows = vec![vec!["CHECK".to_string(), "RESULT".into(), "REASON".into()]];
    for item in report["items"].as_array().into_iter().flatten() {
        rows.push(vec![
            text(&item["check"]),
            text(&item["status"]),
            text(&item["reason"]),
        ]);
    }
    print_rows(&rows);
    outln!(
        "certification: {}{}",
        if report["passed"] == true {
            "passed"
        } else {
            "FAILED"
        },
        report["certified_at"]
            .as_str()
            .map(|at| format!(" ({at})"))
            .unwrap_or_default()
    );
}

/// `caelus template certify P V`: the report; exit 1 when it failed.
pub async fn certify(product: &str, version: &str, client_args: &ClientArgs) -> Result<()> {
    let params = [("product", product), ("version", version)];
    let v = client(client_args)?
        .call_within(
            "certify_template_version",
            &params,
            &[],
            None,
            Some(LONG_CALL),
        )
        .await?;
    match &client_args.output {
        Format::Table | Format::Wide | Format::Name => print_checklist(&v),
        f => output::print_value(f, &v),
    }
    if v["passed"] != true {
        bail!("version {version} of '{product}' did not pass certification");
    }
    Ok(())
}
