//! `caelus orphans scan|clean`: the admin API's orphan endpoints.

use crate::cli::OrphansCommand;
use crate::client::Client;
use crate::client_commands::endpoint;
use crate::outln;
use crate::output::{self, Format, Resource, col};
use anyhow::Result;
use serde_json::{Value, json};
use time::OffsetDateTime;

pub const ORPHAN: &Resource = &Resource {
    kind: "orphan",
    name: &["/kind", "/namespace", "/name"],
    columns: &[
        col("KIND", "/kind"),
        col("NAMESPACE", "/namespace"),
        col("NAME", "/name"),
        col("AGE (S)", "/ageSeconds"),
        col("WHY", "/reason"),
        col("STUCK ON", "/stuckOnFinalizers"),
        col("CONDITIONS", "/conditions").wide(),
    ],
};

const KEPT: &Resource = &Resource {
    kind: "orphan",
    name: &["/kind", "/namespace", "/name"],
    columns: &[
        col("KIND", "/kind"),
        col("NAMESPACE", "/namespace"),
        col("NAME", "/name"),
        col("KEPT BECAUSE", "/whyKept"),
    ],
};

fn rows(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

fn is_table(f: &Format) -> bool {
    matches!(f, Format::Table | Format::Wide)
}

pub async fn orphans(cmd: OrphansCommand) -> Result<()> {
    match cmd {
        OrphansCommand::Scan { client } => {
            let e = endpoint(&client)?;
            let v = Client::new(&e.url, e.token)?
                .call("scan_orphans", &[], &[], None)
                .await?;
            if is_table(&client.output) && rows(&v, "items").is_empty() {
                outln!("no orphans");
            } else {
                output::print(&client.output, ORPHAN, &v);
            }
        }
        OrphansCommand::Clean { confirm, client } => {
            let e = endpoint(&client)?;
            let body = json!({"confirm": confirm});
            let v = Client::new(&e.url, e.token)?
                .call("clean_orphans", &[], &[], Some(&body))
                .await?;
            if !is_table(&client.output) {
                output::print_value(&client.output, &v);
                return Ok(());
            }
            let wide = client.output == Format::Wide;
            let now = OffsetDateTime::now_utc();
            let deleted = rows(&v, "deleted");
            let kept = rows(&v, "kept");
            if confirm {
                outln!("deleted {} orphan(s):", deleted.len());
            } else {
                outln!(
                    "dry run: would delete {} orphan(s) (run again with --confirm to delete):",
                    deleted.len()
                );
            }
            if !deleted.is_empty() {
                outln!("{}", output::table(ORPHAN.columns, &deleted, wide, now));
            }
            if !kept.is_empty() {
                outln!(
                    "\nkept {}:\n{}",
                    kept.len(),
                    output::table(KEPT.columns, &kept, wide, now)
                );
            }
        }
    }
    Ok(())
}
