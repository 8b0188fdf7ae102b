//! Every API operation has a CLI command, and the CLI calls exactly what the server serves.

use caelus_cli::cli::Cli;
use caelus_cli::ops::OPERATIONS;
use clap::CommandFactory;
use std::collections::BTreeSet;

/// (operationId, METHOD, path) of every operation in the server's OpenAPI document.
fn server_operations() -> BTreeSet<(String, String, String)> {
    let doc = serde_json::to_value(caelus_api::openapi()).unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op["operationId"].as_str() {
                ops.insert((id.to_string(), method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn command_exists(path: &str) -> bool {
    let mut cmd = Cli::command();
    for name in path.split_whitespace() {
        match cmd.find_subcommand(name) {
            Some(sub) => cmd = sub.clone(),
            None => return false,
        }
    }
    true
}

#[test]
fn every_openapi_operation_has_a_cli_command() {
    let table: BTreeSet<(String, String, String)> = OPERATIONS
        .iter()
        .map(|o| (o.id.to_string(), o.method.to_string(), o.path.to_string()))
        .collect();
    let server = server_operations();
    let missing: Vec<_> = server.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "API operations without a CLI command: {missing:?}"
    );
    let stale: Vec<_> = table.difference(&server).collect();
    assert!(
        stale.is_empty(),
        "CLI calls operations the server does not serve: {stale:?}"
    );
}

#[test]
fn every_command_in_the_table_exists() {
    for op in OPERATIONS {
        assert!(
            command_exists(op.command),
            "`caelus {}` (for {}) does not exist",
            op.command,
            op.id
        );
    }
    assert!(!command_exists("deployment frobnicate"));
}

#[test]
fn the_cli_definition_is_consistent() {
    Cli::command().debug_assert();
}
