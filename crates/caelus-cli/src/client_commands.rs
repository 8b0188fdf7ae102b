//! Client commands: each performs API operations and prints the result.

use crate::chart_push;
use crate::cli::{
    ChartCommand, ClientArgs, ContextCommand, DeploymentCommand, EventsCommand, LoginArgs,
    PageArgs, ProductCommand, TemplateCommand, TemplateSpecArgs, TokenCommand,
};
use crate::client::Client;
use crate::config::{self, Config, Endpoint};
use crate::outln;
use crate::output::{self, Columns, Format};
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use std::path::Path;

/// Where this command sends requests: flags and environment over the config file's context.
pub fn endpoint(args: &ClientArgs) -> Result<Endpoint> {
    let explicit = args.url.is_some() && args.token.is_some() && args.context.is_none();
    let config = if explicit {
        Config::default()
    } else {
        Config::load(&config::path()?)?
    };
    let context = config.context(args.context.as_deref())?;
    Ok(config::resolve(
        args.url.as_deref(),
        args.token.as_deref(),
        context.map(|(_, c)| c),
    ))
}

pub(crate) fn client(args: &ClientArgs) -> Result<Client> {
    let e = endpoint(args)?;
    Ok(Client::new(&e.url, e.token)?)
}

/// `--wait` ran out of time (exit status 4).
#[derive(Debug)]
pub struct WaitTimedOut(pub String);

impl std::fmt::Display for WaitTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WaitTimedOut {}

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
    output::print(&args.output, columns, &v);
    Ok(v)
}

pub async fn status(args: &ClientArgs) -> Result<()> {
    let e = endpoint(args)?;
    let c = Client::new(&e.url, e.token)?;
    c.call("healthz", &[], &[], None).await?;
    let ready = c.call("readyz", &[], &[], None).await?;
    output::print_value(
        &args.output,
        &json!({"url": e.url, "health": "ok", "ready": ready["status"]}),
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

/// The request body of a template version from its flags. A local `--chart` (a
/// directory or .tgz) is pushed first and named by the pushed digest.
async fn spec_body(spec: &TemplateSpecArgs, client: &ClientArgs) -> Result<Map<String, Value>> {
    let mut body = Map::new();
    if let Some(chart) = &spec.chart {
        let chart = if chart_push::is_remote(chart) {
            chart.clone()
        } else {
            let repository = match &spec.chart_repository {
                Some(r) => r.clone(),
                None => endpoint(client)?.chart_repository.with_context(|| {
                    format!(
                        "{chart} is a local chart: say where to push it with --chart-repository \
                         oci://HOST/REPO (or CAELUS_CHART_REPOSITORY, or the context's: \
                         `caelus login --chart-repository …`)"
                    )
                })?,
            };
            let pushed = chart_push::push(Path::new(chart), &repository, &spec.push).await?;
            eprintln!("pushed {} ({})", pushed.reference, pushed.digest);
            pushed.pinned
        };
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
            let mut body = spec_body(&spec, &client).await?;
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
            skip_certification,
            client,
        } => {
            if spec.chart.is_some() {
                let mut body = spec_body(&spec, &client).await?;
                body.insert("version".into(), json!(version));
                body.insert("publish".into(), json!(true));
                if skip_certification {
                    body.insert("skip_certification".into(), json!(true));
                }
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
                let query: Vec<(&str, String)> = if skip_certification {
                    vec![("skip_certification", "true".into())]
                } else {
                    Vec::new()
                };
                run_op(
                    &client,
                    output::TEMPLATE,
                    "publish_template_version",
                    &params,
                    &query,
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
            let body = Value::Object(spec_body(&spec, &client).await?);
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
            let v = run_op(
                &client,
                output::TEMPLATE,
                "get_template_version",
                &params,
                &[],
                None,
            )
            .await?;
            if matches!(client.output, Format::Table | Format::Wide)
                && v["certification"].is_object()
            {
                outln!();
                crate::certify_commands::print_checklist(&v["certification"]);
            }
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
        Certify {
            product,
            version,
            client,
        } => crate::certify_commands::certify(&product, &version, &client).await?,
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
            match &client.output {
                Format::Table | Format::Wide => {
                    output::emit(v["manifest"].as_str().unwrap_or_default());
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
            watch,
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
            if watch {
                return watch_deployments(&client, q).await;
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
            match &client.output {
                f @ (Format::Table | Format::Wide) => {
                    let wide = *f == Format::Wide;
                    print_deployment(&v, wide);
                    // How to reach it, from the live objects; a server without a
                    // cluster (or one that does not answer) says why instead.
                    let endpoints = client_call(
                        &client,
                        "get_deployment_endpoints",
                        &[("uid", &uid)],
                        &[],
                        None,
                    )
                    .await;
                    print_endpoints(endpoints, wide);
                }
                f => output::print(f, output::DEPLOYMENT, &v),
            }
        }
        Update {
            uid,
            values,
            name,
            allow_data_loss,
            dry_run,
            wait,
            client,
        } => {
            let mut body = json!({});
            if let Some(p) = values {
                body["values"] = read_document(&p)?;
            }
            if allow_data_loss {
                body["allow_data_loss"] = json!(true);
            }
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if dry_run {
                body["dry_run"] = json!(true);
                let v = client_call(
                    &client,
                    "update_deployment",
                    &[("uid", &uid)],
                    &[],
                    Some(&body),
                )
                .await?;
                return plan_or_follow(&client, &v, true, wait).await;
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
        Delete {
            uid,
            keep_volumes,
            wait,
            client,
        } => {
            let q: Vec<_> = keep_volumes
                .map(|k| ("keep_volumes", k.to_string()))
                .into_iter()
                .collect();
            let v = run_op(
                &client,
                output::DEPLOYMENT,
                "delete_deployment",
                &[("uid", &uid)],
                &q,
                None,
            )
            .await?;
            if wait.wait {
                follow(&client, &v, wait, Goal::Deleted).await?;
            }
        }
        Purge { uid, wait, client } => {
            let v = run_op(
                &client,
                output::DEPLOYMENT,
                "purge_deployment",
                &[("uid", &uid)],
                &[],
                None,
            )
            .await?;
            if wait.wait {
                follow(&client, &v, wait, Goal::Deleted).await?;
            }
        }
        Restore {
            uid,
            values,
            wait,
            client,
        } => {
            let mut body = json!({});
            if let Some(p) = values {
                body["values"] = read_document(&p)?;
            }
            let v = run_op(
                &client,
                output::DEPLOYMENT,
                "restore_deployment",
                &[("uid", &uid)],
                &[],
                Some(&body),
            )
            .await?;
            if wait.wait {
                follow(&client, &v, wait, Goal::Ready).await?;
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
        Retry {
            uid,
            dry_run,
            allow_data_loss,
            wait,
            client,
        } => {
            let body = json!({"dry_run": dry_run, "allow_data_loss": allow_data_loss});
            let v = client_call(
                &client,
                "retry_deployment",
                &[("uid", &uid)],
                &[],
                Some(&body),
            )
            .await?;
            plan_or_follow(&client, &v, dry_run, wait).await?;
        }
        Adopt {
            uid,
            api_version,
            kind,
            name,
            client,
        } => {
            let body = json!({"apiVersion": api_version, "kind": kind, "name": name});
            run_op(
                &client,
                output::ADOPTION,
                "adopt_object",
                &[("uid", &uid)],
                &[],
                Some(&body),
            )
            .await?;
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
        Endpoints { uid, client } => {
            run_op(
                &client,
                output::ENDPOINT,
                "get_deployment_endpoints",
                &[("uid", &uid)],
                &[],
                None,
            )
            .await?;
        }
        Test {
            uid,
            timeout,
            client,
        } => crate::certify_commands::test(&uid, timeout, &client).await?,
        Connection { uid, client } => {
            let v = client_call(
                &client,
                "get_deployment_connection",
                &[("uid", &uid)],
                &[],
                None,
            )
            .await?;
            match &client.output {
                Format::Table | Format::Wide => print_connection(&uid, &v),
                f => output::print_value(f, &v),
            }
        }
        Diff { uid, client } => {
            let v =
                client_call(&client, "get_deployment_diff", &[("uid", &uid)], &[], None).await?;
            match &client.output {
                Format::Table | Format::Wide => print_diff(&uid, &v),
                f => output::print_value(f, &v),
            }
            if v["in_sync"].as_bool() != Some(true) {
                return Err(Drifted.into());
            }
        }
        Notes { uid, client } => {
            let v =
                client_call(&client, "get_deployment_notes", &[("uid", &uid)], &[], None).await?;
            match &client.output {
                Format::Table | Format::Wide => match v["notes"].as_str() {
                    Some(notes) => output::emit(&format!("{}\n", notes.trim_end())),
                    None if v["revision"].is_null() => {
                        eprintln!("deployment {uid} has no deployed revision yet")
                    }
                    None => eprintln!("the chart of revision {} has no NOTES.txt", v["revision"]),
                },
                f => output::print_value(f, &v),
            }
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
/// `SECRET  KEY  VALUE`, one line per key; declared keys the Secret lacks say so.
fn print_connection(uid: &str, v: &Value) {
    let items = v["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("the template of deployment {uid} declares no connection details");
        return;
    }
    let mut rows: Vec<[String; 3]> = vec![["SECRET".into(), "KEY".into(), "VALUE".into()]];
    for item in &items {
        let secret = item["secret"].as_str().unwrap_or_default().to_string();
        for (key, value) in item["values"].as_object().into_iter().flatten() {
            rows.push([
                secret.clone(),
                key.clone(),
                value.as_str().unwrap_or_default().to_string(),
            ]);
        }
        for key in item["missing"].as_array().into_iter().flatten() {
            rows.push([
                secret.clone(),
                key.as_str().unwrap_or_default().to_string(),
                "(missing)".into(),
            ]);
        }
    }
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
    for [a, b, c] in rows {
        outln!("{a:w0$}  {b:w1$}  {c}");
    }
}

fn print_deployment(v: &Value, wide: bool) {
    use output::{age, col};
    let now = time::OffsetDateTime::now_utc();
    let s = |p: &str| match v.pointer(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    outln!("Name:        {}", s("/name"));
    outln!("UID:         {}", s("/uid"));
    outln!("Tenant:      {}", s("/tenant"));
    outln!("Product:     {} {}", s("/product"), s("/version"));
    if v["desired_version"] != v["version"] && v["desired_version"].is_string() {
        outln!("Wanted:      {}", s("/desired_version"));
    }
    if v.pointer("/status/failure").is_some_and(Value::is_object) {
        outln!(
            "Failed:      {} (revision {}) {}: {} [{}]",
            s("/status/failure/target_version"),
            s("/status/failure/revision"),
            s("/status/failure/reason"),
            s("/status/failure/message"),
            s("/status/failure/remedy")
        );
    }
    outln!("Namespace:   {}", s("/namespace"));
    outln!("Release:     {}", s("/release"));
    outln!(
        "Desired:     {} (generation {}, observed {})",
        s("/desired_state"),
        s("/generation"),
        s("/observed_generation")
    );
    outln!("Phase:       {}", s("/status/phase"));
    outln!("Message:     {}", s("/status/message"));
    outln!("Revision:    {}", s("/status/current_revision"));
    outln!("Last error:  {}", s("/status/last_error"));
    outln!("Attempts:    {}", s("/status/attempts"));
    outln!("Next:        {}", s("/status/next_attempt_at"));
    outln!("Values:      {}", v["values"]);
    let conditions = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !conditions.is_empty() {
        outln!("Conditions:");
        outln!(
            "{}",
            output::table(
                &[
                    col("TYPE", "/type"),
                    col("STATUS", "/status"),
                    col("REASON", "/reason"),
                    age("AGE", "/last_transition_time"),
                    col("MESSAGE", "/message")
                ],
                &conditions,
                wide,
                now
            )
        );
    }
    let objects = v
        .pointer("/status/objects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !objects.is_empty() {
        outln!("Objects:");
        outln!(
            "{}",
            output::table(
                &[
                    col("KIND", "/kind"),
                    col("NAME", "/name"),
                    col("HEALTH", "/health"),
                    col("MESSAGE", "/message")
                ],
                &objects,
                wide,
                now
            )
        );
    }
}

/// The `Endpoints:` section of `deployment show`.
fn print_endpoints(endpoints: Result<Value>, wide: bool) {
    match endpoints {
        Ok(v) => match v["items"].as_array() {
            Some(items) if !items.is_empty() => {
                outln!("Endpoints:");
                outln!(
                    "{}",
                    output::table(
                        output::ENDPOINT.columns,
                        items,
                        wide,
                        time::OffsetDateTime::now_utc()
                    )
                );
            }
            _ => outln!("Endpoints:   none (no Services or Ingresses)"),
        },
        Err(e) => outln!("Endpoints:   not available: {e}"),
    }
}

pub async fn token(cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            role,
            tenant,
            expires_in,
            client,
        } => {
            let mut body = json!({"name": name, "role": role.as_str()});
            if let Some(t) = tenant {
                body["tenant"] = json!(t);
            }
            // Validated by the server, which names the field if it is not a duration.
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            let v = client_call(&client, "create_token", &[], &[], Some(&body)).await?;
            match &client.output {
                Format::Table | Format::Wide => {
                    output::print(&client.output, output::TOKEN, &v);
                    outln!(
                        "\nSecret (shown once, store it now):\n{}",
                        v["secret"].as_str().unwrap_or_default()
                    );
                }
                f => output::print(f, output::TOKEN, &v),
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
            outln!("token {id} revoked");
        }
    }
    Ok(())
}

/// A time filter as the API takes it (RFC 3339): given as one, or as a duration
/// ago (`2h`, `7d`).
fn time_filter(flag: &str, value: &str) -> Result<String> {
    use time::format_description::well_known::Rfc3339;
    if time::OffsetDateTime::parse(value, &Rfc3339).is_ok() {
        return Ok(value.to_string());
    }
    let secs = caelus_core::duration::parse_duration_secs(flag, value)
        .map_err(|e| anyhow::anyhow!("--{flag}: {} (or give an RFC 3339 time)", e.reason))?;
    let at = time::OffsetDateTime::now_utc() - time::Duration::seconds(secs as i64);
    Ok(at.format(&Rfc3339)?)
}

/// `caelus events list`: the global audit log.
pub async fn events(cmd: EventsCommand) -> Result<()> {
    match cmd {
        EventsCommand::List {
            actor,
            action,
            tenant,
            since,
            until,
            page,
            client,
        } => {
            let mut q = page_query(&page);
            for (name, value) in [("actor", actor), ("action", action), ("tenant", tenant)] {
                if let Some(v) = value {
                    q.push((name, v));
                }
            }
            if let Some(s) = since {
                q.push(("since", time_filter("since", &s)?));
            }
            if let Some(u) = until {
                q.push(("until", time_filter("until", &u)?));
            }
            run_op(&client, output::AUDIT_EVENT, "list_events", &[], &q, None).await?;
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
            // Deleted keeping its volumes: as far as a delete goes.
            (Goal::Deleted, "Retained") if current => return Ok(()),
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
            return Err(WaitTimedOut(format!(
                "gave up waiting after {}s: deployment {uid} is {phase}: {message}",
                wait.timeout
            ))
            .into());
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
        match &client.output {
            Format::Table | Format::Wide => print_plan(v),
            f => output::print_value(f, v),
        }
        return Ok(());
    }
    output::print(&client.output, output::DEPLOYMENT, v);
    print_warnings(v);
    if wait.wait {
        follow(client, v, wait, Goal::Ready).await?;
    }
    Ok(())
}

/// A readable upgrade plan: what would change, field by field, and every policy result.
fn print_plan(v: &Value) {
    outln!(
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
            outln!("{title}:");
            for i in items {
                outln!("  {i}");
            }
        }
    };
    list("Create", "create");
    if let Some(updates) = v["update"].as_array().filter(|u| !u.is_empty()) {
        outln!("Update:");
        for u in updates {
            outln!("  {}", u["object"].as_str().unwrap_or_default());
            print_field_changes(&u["changes"]);
        }
    }
    list("Delete", "delete");
    list(
        "StatefulSet re-creation (keeps the data)",
        "statefulset_steps",
    );
    list("Keep (resource-policy keep)", "keep");
    list("Hooks", "hooks");
    outln!("Policy:");
    for p in v["policy"].as_array().into_iter().flatten() {
        let mark = if p["passed"].as_bool() == Some(true) {
            "ok  "
        } else {
            "FAIL"
        };
        let msg = p["message"].as_str().unwrap_or_default();
        outln!(
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

/// `deployment diff` found drift (exit status 1, nothing more on stderr:
/// the diff is the answer).
#[derive(Debug)]
pub struct Drifted;

impl std::fmt::Display for Drifted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the live objects differ from what Caelus applied")
    }
}

impl std::error::Error for Drifted {}

/// One field change as the upgrade plan prints it: `path: from -> to`.
fn print_field_changes(changes: &Value) {
    let show = |x: &Value| {
        if x.is_null() {
            "(none)".to_string()
        } else {
            x.to_string()
        }
    };
    for c in changes.as_array().into_iter().flatten() {
        outln!(
            "    {}: {} -> {}",
            c["path"].as_str().unwrap_or_default(),
            show(&c["from"]),
            show(&c["to"])
        );
    }
}

/// Live vs applied, in the upgrade plan's format: missing objects, then
/// changed ones field by field (`path: live -> applied`).
fn print_diff(uid: &str, v: &Value) {
    outln!(
        "Diff: deployment {uid}, revision {} (version {}, drift mode {}): {}",
        v["revision"],
        v["version"].as_str().unwrap_or("-"),
        v["drift_mode"].as_str().unwrap_or("-"),
        if v["in_sync"].as_bool() == Some(true) {
            "in sync"
        } else {
            "DRIFTED"
        }
    );
    let missing: Vec<&str> = v["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !missing.is_empty() {
        outln!("Missing (deleted from the cluster; a correction re-creates):");
        for m in missing {
            outln!("  {m}");
        }
    }
    if let Some(changed) = v["changed"].as_array().filter(|c| !c.is_empty()) {
        outln!("Changed (live -> applied):");
        for o in changed {
            outln!("  {}", o["object"].as_str().unwrap_or_default());
            print_field_changes(&o["changes"]);
        }
    }
}

/// Every item of a paged list, following `next_cursor`.
async fn list_all(c: &Client, op: &str, query: &[(&'static str, String)]) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut query: Vec<(&str, String)> = query.to_vec();
    loop {
        let page = c.call(op, &[], &query, None).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => {
                query.retain(|(k, _)| *k != "cursor");
                query.push(("cursor", next.to_string()));
            }
            None => return Ok(items),
        }
    }
}

/// What a watch compares to decide a deployment changed.
fn watched_fields(d: &Value) -> Value {
    json!([
        d["name"],
        d["version"],
        d["generation"],
        d["observed_generation"],
        d["status"]["phase"],
        d["status"]["message"],
        d["status"]["current_revision"],
    ])
}

/// `deployment list -w`: the list, then each deployment again whenever it changes
/// (polled once a second); one that leaves the list is shown once more as Deleted.
async fn watch_deployments(args: &ClientArgs, query: Vec<(&'static str, String)>) -> Result<()> {
    let c = client(args)?;
    let mut table = output::Table::new(output::DEPLOYMENT.columns, args.output == Format::Wide);
    let mut shown: std::collections::BTreeMap<String, Value> = Default::default();
    let mut first = true;
    loop {
        let items = list_all(&c, "list_deployments", &query).await?;
        let mut changed = Vec::new();
        let mut present = std::collections::BTreeSet::new();
        for item in items {
            let uid = item["uid"].as_str().unwrap_or_default().to_string();
            present.insert(uid.clone());
            let is_new = shown
                .get(&uid)
                .is_none_or(|prev| watched_fields(prev) != watched_fields(&item));
            if is_new {
                changed.push(item.clone());
                shown.insert(uid, item);
            }
        }
        let gone: Vec<String> = shown
            .keys()
            .filter(|uid| !present.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(mut last) = shown.remove(&uid) {
                last["status"]["phase"] = json!("Deleted");
                changed.push(last);
            }
        }
        if first || !changed.is_empty() {
            let now = time::OffsetDateTime::now_utc();
            let text = match &args.output {
                Format::Table | Format::Wide => table
                    .lines(&changed, first, now)
                    .into_iter()
                    .map(|l| l + "\n")
                    .collect(),
                Format::Yaml => changed
                    .iter()
                    .map(|d| format!("---\n{}", output::render_value(&Format::Yaml, d)))
                    .collect(),
                f => changed
                    .iter()
                    .map(|d| output::render(f, output::DEPLOYMENT, d, now))
                    .collect::<String>(),
            };
            output::emit(&text);
        }
        first = false;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// `caelus login`: checks the URL and token against the API, then saves them as a
/// context and makes it current.
pub async fn login(args: LoginArgs) -> Result<()> {
    let c = Client::new(&args.url, Some(args.token.clone()))?;
    c.call("healthz", &[], &[], None).await?;
    c.call("list_products", &[], &[("limit", "1".into())], None)
        .await
        .context("the API did not accept the token")?;
    let path = config::path()?;
    let mut config = Config::load(&path)?;
    let name = args.context.unwrap_or_else(|| config::name_for(&args.url));
    config.contexts.insert(
        name.clone(),
        config::ContextEntry {
            url: args.url.trim_end_matches('/').to_string(),
            token: Some(args.token),
            chart_repository: args.chart_repository,
        },
    );
    config.current_context = Some(name.clone());
    config.save(&path)?;
    outln!(
        "Logged in to {}; context {name:?} is current ({}).",
        args.url,
        path.display()
    );
    Ok(())
}

pub fn context(cmd: ContextCommand) -> Result<()> {
    let path = config::path()?;
    let mut config = Config::load(&path)?;
    match cmd {
        ContextCommand::List => {
            let rows: Vec<Value> = config
                .contexts
                .iter()
                .map(|(name, c)| {
                    let current = config.current_context.as_deref() == Some(name.as_str());
                    json!({"current": if current { "*" } else { "" }, "name": name, "url": c.url})
                })
                .collect();
            let columns = [
                output::col("CURRENT", "/current"),
                output::col("NAME", "/name"),
                output::col("URL", "/url"),
            ];
            let now = time::OffsetDateTime::now_utc();
            outln!("{}", output::table(&columns, &rows, false, now));
        }
        ContextCommand::Use { name } => {
            if !config.contexts.contains_key(&name) {
                anyhow::bail!(
                    "no context {name:?} in {} (see `caelus context list`)",
                    path.display()
                );
            }
            config.current_context = Some(name.clone());
            config.save(&path)?;
            outln!("Switched to context {name:?}.");
        }
        ContextCommand::Current => match &config.current_context {
            Some(name) => outln!("{name}"),
            None => anyhow::bail!("no current context (`caelus login` sets one)"),
        },
        ContextCommand::Delete { name } => {
            if config.contexts.remove(&name).is_none() {
                anyhow::bail!("no context {name:?} in {}", path.display());
            }
            if config.current_context.as_deref() == Some(name.as_str()) {
                config.current_context = None;
            }
            config.save(&path)?;
            outln!("Deleted context {name:?}.");
        }
    }
    Ok(())
}

/// `caelus completion SHELL`.
pub fn completion(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut crate::cli::Cli::command(),
        "caelus",
        &mut script,
    );
    output::emit(&String::from_utf8_lossy(&script));
}

pub async fn chart(cmd: ChartCommand) -> Result<()> {
    match cmd {
        ChartCommand::Push {
            chart,
            repository,
            push,
            output,
        } => {
            let pushed = chart_push::push(&chart, &repository, &push).await?;
            match output {
                Format::Table | Format::Wide | Format::Name => {
                    outln!("Pushed: {}", pushed.reference);
                    outln!("Digest: {}", pushed.digest);
                }
                f => output::print_value(
                    &f,
                    &json!({"reference": pushed.reference, "digest": pushed.digest, "pinned": pushed.pinned}),
                ),
            }
        }
    }
    Ok(())
}
