//! Client commands: each performs API operations and prints the result.

use crate::cli::{
    ClientArgs, DeploymentCommand, PageArgs, ProductCommand, TemplateCommand, TemplateSpecArgs,
    TokenCommand,
};
use crate::client::Client;
use crate::output::{self, Columns};
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use std::path::Path;

fn client(args: &ClientArgs) -> Result<Client> {
    Ok(Client::new(&args.url, args.token.clone())?)
}

/// Reads a YAML or JSON file (YAML is a superset of JSON) into JSON.
pub fn read_document(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = yaml_serde::from_str(&text)
        .with_context(|| format!("{} is not valid YAML or JSON", path.display()))?;
    Ok(if v.is_null() { json!({}) } else { v })
}

fn page_query(page: &PageArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(l) = page.limit {
        q.push(("limit", l.to_string()));
    }
    if let Some(c) = &page.cursor {
        q.push(("cursor", c.clone()));
    }
    q
}

async fn run_op(
    args: &ClientArgs,
    columns: Columns,
    op: &str,
    params: &[(&str, &str)],
    query: &[(&str, String)],
    body: Option<&Value>,
) -> Result<Value> {
    let v = client(args)?.call(op, params, query, body).await?;
    output::print(args.output, columns, &v);
    Ok(v)
}

pub async fn status(args: &ClientArgs) -> Result<()> {
    let c = client(args)?;
    c.call("healthz", &[], &[], None).await?;
    let ready = c.call("readyz", &[], &[], None).await?;
    output::print_value(
        args.output,
        &json!({"url": args.url, "health": "ok", "ready": ready["status"]}),
    );
    Ok(())
}

pub async fn product(cmd: ProductCommand) -> Result<()> {
    match cmd {
        ProductCommand::Create {
            slug,
            name,
            description,
            client,
        } => {
            let body = json!({"slug": slug, "name": name, "description": description});
            run_op(
                &client,
                output::PRODUCT,
                "create_product",
                &[],
                &[],
                Some(&body),
            )
            .await?;
        }
        ProductCommand::List { page, client } => {
            run_op(
                &client,
                output::PRODUCT,
                "list_products",
                &[],
                &page_query(&page),
                None,
            )
            .await?;
        }
        ProductCommand::Show { slug, client } => {
            run_op(
                &client,
                output::PRODUCT,
                "get_product",
                &[("product", &slug)],
                &[],
                None,
            )
            .await?;
        }
    }
    Ok(())
}

fn spec_body(spec: &TemplateSpecArgs) -> Result<Map<String, Value>> {
    let mut body = Map::new();
    if let Some(chart) = &spec.chart {
        body.insert("chart".into(), json!(chart));
    }
    if !spec.allow.is_empty() {
        body.insert("values_allowlist".into(), json!(spec.allow));
    }
    if let Some(p) = &spec.capabilities {
        body.insert("capabilities".into(), read_document(p)?);
    }
    Ok(body)
}

pub async fn template(cmd: TemplateCommand) -> Result<()> {
    use TemplateCommand::*;
    match cmd {
        Create {
            product,
            version,
            spec,
            client,
        } => {
            let mut body = spec_body(&spec)?;
            body.insert("version".into(), json!(version));
            let body = Value::Object(body);
            run_op(
                &client,
                output::TEMPLATE,
                "create_template_version",
                &[("product", &product)],
                &[],
                Some(&body),
            )
            .await?;
        }
        Publish {
            product,
            version,
            spec,
            client,
        } => {
            if spec.chart.is_some() {
                let mut body = spec_body(&spec)?;
                body.insert("version".into(), json!(version));
                body.insert("publish".into(), json!(true));
                let body = Value::Object(body);
                run_op(
                    &client,
                    output::TEMPLATE,
                    "create_template_version",
                    &[("product", &product)],
                    &[],
                    Some(&body),
                )
                .await?;
            } else {
                let params = [("product", product.as_str()), ("version", version.as_str())];
                run_op(
                    &client,
                    output::TEMPLATE,
                    "publish_template_version",
                    &params,
                    &[],
                    None,
                )
                .await?;
            }
        }
        Update {
            product,
            version,
            spec,
            client,
        } => {
            let body = Value::Object(spec_body(&spec)?);
            let params = [("product", product.as_str()), ("version", version.as_str())];
            run_op(
                &client,
                output::TEMPLATE,
                "update_template_version",
                &params,
                &[],
                Some(&body),
            )
            .await?;
        }
        List {
            product,
            page,
            client,
        } => {
            run_op(
                &client,
                output::TEMPLATE,
                "list_template_versions",
                &[("product", &product)],
                &page_query(&page),
                None,
            )
            .await?;
        }
        Show {
            product,
            version,
            client,
        } => {
            let params = [("product", product.as_str()), ("version", version.as_str())];
            run_op(
                &client,
                output::TEMPLATE,
                "get_template_version",
                &params,
                &[],
                None,
            )
            .await?;
        }
        Deprecate {
            product,
            version,
            client,
        } => {
            let params = [("product", product.as_str()), ("version", version.as_str())];
            run_op(
                &client,
                output::TEMPLATE,
                "deprecate_template_version",
                &params,
                &[],
                None,
            )
            .await?;
        }
        Retire {
            product,
            version,
            client,
        } => {
            let params = [("product", product.as_str()), ("version", version.as_str())];
            run_op(
                &client,
                output::TEMPLATE,
                "retire_template_version",
                &params,
                &[],
                None,
            )
            .await?;
        }
        Render {
            product,
            version,
            values,
            client,
        } => {
            let values = values.map(|p| read_document(&p)).transpose()?;
            let body = json!({"values": values.unwrap_or_else(|| json!({}))});
            let params = [("product", product.as_str()), ("version", version.as_str())];
            let v = client_call(
                &client,
                "render_template_version",
                &params,
                &[],
                Some(&body),
            )
            .await?;
            match client.output {
                output::Format::Table => {
                    print!("{}", v["manifest"].as_str().unwrap_or_default());
                    for violation in v["policy_violations"].as_array().into_iter().flatten() {
                        eprintln!("policy: {}", violation.as_str().unwrap_or_default());
                    }
                }
                f => output::print_value(f, &v),
            }
        }
    }
    Ok(())
}

fn print_warnings(v: &Value) {
    for w in v["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", w.as_str().unwrap_or_default());
    }
}

pub async fn deployment(cmd: DeploymentCommand) -> Result<()> {
    use DeploymentCommand::*;
    match cmd {
        Create {
            product,
            version,
            name,
            values,
            tenant,
            wait,
            client,
        } => {
            let mut body = json!({"product": product, "version": version, "name": name});
            if let Some(p) = values {
                body["values"] = read_document(&p)?;
            }
            if let Some(t) = tenant {
                body["tenant"] = json!(t);
            }
            let v = run_op(
                &client,
                output::DEPLOYMENT,
                "create_deployment",
                &[],
                &[],
                Some(&body),
            )
            .await?;
            print_warnings(&v);
            if wait.wait {
                follow(&client, &v, wait, Goal::Ready).await?;
            }
        }
        List {
            phase,
            product,
            tenant,
            include_deleted,
            page,
            client,
        } => {
            let mut q = page_query(&page);
            if let Some(p) = phase {
                q.push(("phase", p));
            }
            if let Some(p) = product {
                q.push(("product", p));
            }
            if let Some(t) = tenant {
                q.push(("tenant", t));
            }
            if include_deleted {
                q.push(("include_deleted", "true".into()));
            }
            run_op(
                &client,
                output::DEPLOYMENT,
                "list_deployments",
                &[],
                &q,
                None,
            )
            .await?;
        }
        Show { uid, client } => {
            let v = client_call(&client, "get_deployment", &[("uid", &uid)], &[], None).await?;
            match client.output {
                output::Format::Table => print_deployment(&v),
                f => output::print_value(f, &v),
            }
        }
        Update {
            uid,
            values,
            name,
            wait,
            client,
        } => {
            let mut body = json!({});
            if let Some(p) = values {
                body["values"] = read_document(&p)?;
            }
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            let v = run_op(
                &client,
                output::DEPLOYMENT,
                "update_deployment",
                &[("uid", &uid)],
                &[],
                Some(&body),
            )
            .await?;
            if wait.wait {
                follow(&client, &v, wait, Goal::Ready).await?;
            }
        }
        Delete { uid, wait, client } => {
            let v = run_op(
                &client,
                output::DEPLOYMENT,
                "delete_deployment",
                &[("uid", &uid)],
                &[],
                None,
            )
            .await?;
            if wait.wait {
                follow(&client, &v, wait, Goal::Deleted).await?;
            }
        }
        Upgrade {
            uid,
            to,
            values,
            dry_run,
            allow_data_loss,
            wait,
            client,
        } => {
            let mut body =
                json!({"to_version": to, "dry_run": dry_run, "allow_data_loss": allow_data_loss});
            if let Some(p) = values {
                body["values"] = read_document(&p)?;
            }
            let v = client_call(
                &client,
                "upgrade_deployment",
                &[("uid", &uid)],
                &[],
                Some(&body),
            )
            .await?;
            plan_or_follow(&client, &v, dry_run, wait).await?;
        }
        Upgrades { uid, client } => {
            run_op(
                &client,
                output::UPGRADE_TARGET,
                "list_upgrade_targets",
                &[("uid", &uid)],
                &[],
                None,
            )
            .await?;
        }
        Rollback {
            uid,
            to_revision,
            dry_run,
            allow_data_loss,
            wait,
            client,
        } => {
            let body = json!({"revision": to_revision, "dry_run": dry_run, "allow_data_loss": allow_data_loss});
            let v = client_call(
                &client,
                "rollback_deployment",
                &[("uid", &uid)],
                &[],
                Some(&body),
            )
            .await?;
            plan_or_follow(&client, &v, dry_run, wait).await?;
        }
        History { uid, limit, client } => {
            let q: Vec<_> = limit
                .map(|l| ("limit", l.to_string()))
                .into_iter()
                .collect();
            run_op(
                &client,
                output::REVISION,
                "list_deployment_revisions",
                &[("uid", &uid)],
                &q,
                None,
            )
            .await?;
        }
        Events {
            uid,
            limit,
            after,
            client,
        } => {
            let mut q: Vec<_> = limit
                .map(|l| ("limit", l.to_string()))
                .into_iter()
                .collect();
            if let Some(a) = after {
                q.push(("after", a.to_string()));
            }
            run_op(
                &client,
                output::EVENT,
                "list_deployment_events",
                &[("uid", &uid)],
                &q,
                None,
            )
            .await?;
        }
    }
    Ok(())
}

async fn client_call(
    args: &ClientArgs,
    op: &str,
    params: &[(&str, &str)],
    query: &[(&str, String)],
    body: Option<&Value>,
) -> Result<Value> {
    Ok(client(args)?.call(op, params, query, body).await?)
}

/// A readable summary of one deployment: identity, status, conditions, objects.
fn print_deployment(v: &Value) {
    let s = |p: &str| match v.pointer(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    println!("Name:        {}", s("/name"));
    println!("UID:         {}", s("/uid"));
    println!("Tenant:      {}", s("/tenant"));
    println!("Product:     {} {}", s("/product"), s("/version"));
    println!("Namespace:   {}", s("/namespace"));
    println!("Release:     {}", s("/release"));
    println!(
        "Desired:     {} (generation {}, observed {})",
        s("/desired_state"),
        s("/generation"),
        s("/observed_generation")
    );
    println!("Phase:       {}", s("/status/phase"));
    println!("Message:     {}", s("/status/message"));
    println!("Revision:    {}", s("/status/current_revision"));
    println!("Last error:  {}", s("/status/last_error"));
    println!("Attempts:    {}", s("/status/attempts"));
    println!("Next:        {}", s("/status/next_attempt_at"));
    println!("Values:      {}", v["values"]);
    let conditions = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !conditions.is_empty() {
        println!("Conditions:");
        println!(
            "{}",
            output::table(
                &[
                    ("TYPE", "/type"),
                    ("STATUS", "/status"),
                    ("REASON", "/reason"),
                    ("SINCE", "/last_transition_time"),
                    ("MESSAGE", "/message")
                ],
                &conditions
            )
        );
    }
    let objects = v
        .pointer("/status/objects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !objects.is_empty() {
        println!("Objects:");
        println!(
            "{}",
            output::table(
                &[
                    ("KIND", "/kind"),
                    ("NAME", "/name"),
                    ("HEALTH", "/health"),
                    ("MESSAGE", "/message")
                ],
                &objects
            )
        );
    }
}

pub async fn token(cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            role,
            tenant,
            client,
        } => {
            let mut body = json!({"name": name, "role": role.as_str()});
            if let Some(t) = tenant {
                body["tenant"] = json!(t);
            }
            let v = client_call(&client, "create_token", &[], &[], Some(&body)).await?;
            match client.output {
                output::Format::Table => {
                    println!("{}", output::table(output::TOKEN, std::slice::from_ref(&v)));
                    println!(
                        "\nSecret (shown once, store it now):\n{}",
                        v["secret"].as_str().unwrap_or_default()
                    );
                }
                f => output::print_value(f, &v),
            }
        }
        TokenCommand::List { page, client } => {
            run_op(
                &client,
                output::TOKEN,
                "list_tokens",
                &[],
                &page_query(&page),
                None,
            )
            .await?;
        }
        TokenCommand::Revoke { id, client } => {
            client_call(&client, "revoke_token", &[("id", &id)], &[], None).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Ready,
    Deleted,
}

/// Follows a deployment until it reaches `goal` or fails, printing each change
/// of phase and message (which carries "objects ready x/y" while applying).
async fn follow(
    args: &ClientArgs,
    created: &Value,
    wait: crate::cli::WaitArgs,
    goal: Goal,
) -> Result<()> {
    let uid = created["uid"]
        .as_str()
        .context("the response has no uid")?
        .to_string();
    let generation = created["generation"].as_i64().unwrap_or(0);
    let c = client(args)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait.timeout);
    let mut last = String::new();
    loop {
        let v = c
            .call("get_deployment", &[("uid", &uid)], &[], None)
            .await?;
        let phase = v["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let message = v["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let line = format!("{phase:<16} {message}");
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        // Only a pass that saw this request's generation counts.
        let current = v["observed_generation"].as_i64().unwrap_or(0) >= generation;
        let stalled = v["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Stalled" && c["status"] == "True");
        match (goal, phase.as_str()) {
            (Goal::Ready, "Ready") if current => return Ok(()),
            (Goal::Deleted, "Deleted") => return Ok(()),
            (Goal::Ready, "Failed") | (Goal::Ready, "Degraded") if current => {
                let next = v["status"]["next_attempt_at"].as_str().unwrap_or("-");
                let hint = if stalled {
                    "it will not be retried until the deployment changes".to_string()
                } else {
                    format!("attempt {}, next retry at {next}", v["status"]["attempts"])
                };
                anyhow::bail!("deployment {uid} is {phase}: {message} ({hint})");
            }
            _ => {}
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "gave up waiting after {}s: deployment {uid} is {phase}: {message}",
                wait.timeout
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// After an upgrade or rollback request: print the plan of a dry run, or the
/// accepted deployment (and follow it with --wait).
async fn plan_or_follow(
    client: &ClientArgs,
    v: &Value,
    dry_run: bool,
    wait: crate::cli::WaitArgs,
) -> Result<()> {
    if dry_run {
        match client.output {
            output::Format::Table => print_plan(v),
            f => output::print_value(f, v),
        }
        return Ok(());
    }
    output::print(client.output, output::DEPLOYMENT, v);
    print_warnings(v);
    if wait.wait {
        follow(client, v, wait, Goal::Ready).await?;
    }
    Ok(())
}

/// A readable upgrade plan: what would change, field by field, and every policy result.
fn print_plan(v: &Value) {
    println!(
        "Plan: {} -> {} ({})",
        v["from_version"].as_str().unwrap_or("-"),
        v["to_version"].as_str().unwrap_or("-"),
        if v["allowed"].as_bool() == Some(true) {
            "allowed"
        } else {
            "REFUSED"
        }
    );
    let list = |title: &str, key: &str| {
        let items: Vec<&str> = v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !items.is_empty() {
            println!("{title}:");
            for i in items {
                println!("  {i}");
            }
        }
    };
    list("Create", "create");
    if let Some(updates) = v["update"].as_array().filter(|u| !u.is_empty()) {
        println!("Update:");
        for u in updates {
            println!("  {}", u["object"].as_str().unwrap_or_default());
            for c in u["changes"].as_array().into_iter().flatten() {
                let show = |x: &Value| {
                    if x.is_null() {
                        "(none)".to_string()
                    } else {
                        x.to_string()
                    }
                };
                println!(
                    "    {}: {} -> {}",
                    c["path"].as_str().unwrap_or_default(),
                    show(&c["from"]),
                    show(&c["to"])
                );
            }
        }
    }
    list("Delete", "delete");
    list("Keep (resource-policy keep)", "keep");
    list("Hooks", "hooks");
    println!("Policy:");
    for p in v["policy"].as_array().into_iter().flatten() {
        let mark = if p["passed"].as_bool() == Some(true) {
            "ok  "
        } else {
            "FAIL"
        };
        let msg = p["message"].as_str().unwrap_or_default();
        println!(
            "  {mark} {}{}",
            p["rule"].as_str().unwrap_or_default(),
            if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            }
        );
    }
    list("Warnings", "warnings");
}
