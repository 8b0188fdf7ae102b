//! `caelus orphans scan|clean`: the admin API's orphan endpoints.

use crate::cli::OrphansCommand;
use crate::client::Client;
use crate::output::{self, Columns, Format};
use anyhow::Result;
use serde_json::{Value, json};

pub const ORPHAN: Columns = &[
    ("KIND", "/kind"),
    ("NAMESPACE", "/namespace"),
    ("NAME", "/name"),
    ("AGE (S)", "/ageSeconds"),
    ("WHY", "/reason"),
    ("STUCK ON", "/stuckOnFinalizers"),
];

const KEPT: Columns = &[
    ("KIND", "/kind"),
    ("NAMESPACE", "/namespace"),
    ("NAME", "/name"),
    ("KEPT BECAUSE", "/whyKept"),
];

fn rows(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

pub async fn orphans(cmd: OrphansCommand) -> Result<()> {
    match cmd {
        OrphansCommand::Scan { client } => {
            let c = Client::new(&client.url, client.token.clone())?;
            let v = c.call("scan_orphans", &[], &[], None).await?;
            match client.output {
                Format::Table if rows(&v, "items").is_empty() => println!("no orphans"),
                f => output::print(f, ORPHAN, &v),
            }
        }
        OrphansCommand::Clean { confirm, client } => {
            let c = Client::new(&client.url, client.token.clone())?;
            let body = json!({"confirm": confirm});
            let v = c.call("clean_orphans", &[], &[], Some(&body)).await?;
            if client.output != Format::Table {
                output::print_value(client.output, &v);
                return Ok(());
            }
            let deleted = rows(&v, "deleted");
            let kept = rows(&v, "kept");
            if confirm {
                println!("deleted {} orphan(s):", deleted.len());
            } else {
                println!(
                    "dry run: would delete {} orphan(s) (run again with --confirm to delete):",
                    deleted.len()
                );
            }
            if !deleted.is_empty() {
                println!("{}", output::table(ORPHAN, &deleted));
            }
            if !kept.is_empty() {
                println!("\nkept {}:\n{}", kept.len(), output::table(KEPT, &kept));
            }
        }
    }
    Ok(())
}
