//! The command line: one binary for the control plane and its client.

use crate::output::Format;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What `caelus --help` ends with: where client commands find the API, and exit codes.
pub const AFTER_HELP: &str = "\
Client commands find the API from, in order: --url/--token, then CAELUS_URL/CAELUS_TOKEN,
then the context (--context, else CAELUS_CONTEXT, else the current one) in
$XDG_CONFIG_HOME/caelus/config.yaml (default ~/.config/caelus/config.yaml), which
`caelus login` writes; else http://127.0.0.1:8080.

Exit status:
  0  success (also when stdout is closed early, e.g. `caelus deployment list | head -1`)
  1  the command failed: the API refused the request, or --wait saw the deployment fail;
     `deployment diff` found drift
  2  the command line is invalid
  3  the API could not be reached, or answered something unreadable
  4  --wait gave up after --timeout seconds";

#[derive(Debug, Parser)]
#[command(
    name = "caelus",
    version,
    about = "Run catalog products on Kubernetes",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct LogArgs {
    /// Log format (logs go to stderr; the level is set by CAELUS_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "CAELUS_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server.
    Server(ServerArgs),
    /// Run a reconciler worker.
    Worker(WorkerArgs),
    /// Run API and worker in one process on the embedded defaults (SQLite under --data-dir).
    Dev(DevArgs),
    /// Apply database migrations.
    Migrate(DatabaseArgs),
    /// Offline administration, straight against the database.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check that the API is up and ready.
    Status(ClientArgs),
    /// Products in the catalog.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Template versions of a product.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Deployments: running instances of template versions.
    #[command(subcommand)]
    Deployment(DeploymentCommand),
    /// API tokens (admin).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Helm charts in OCI registries.
    #[command(subcommand)]
    Chart(ChartCommand),
    /// Save an API URL and token as a context in the config file, and make it current.
    Login(LoginArgs),
    /// Named contexts (API URL and token) in the config file.
    #[command(subcommand)]
    Context(ContextCommand),
    /// Print a shell completion script: `source <(caelus completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Objects of this installation the database does not account for (admin).
    #[command(subcommand)]
    Orphans(OrphansCommand),
    /// The global audit log (admin).
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List audit events, newest first.
    List {
        /// Only this actor's events: `token:<name>` or a full label.
        #[arg(long)]
        actor: Option<String>,
        /// Only this action, e.g. `deployment.create`.
        #[arg(long)]
        action: Option<String>,
        /// Only events of this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only events at or after this: an RFC 3339 time, or a duration ago (`2h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        /// Only events before this: an RFC 3339 time, or a duration ago.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Caelus API URL.
    #[arg(long, env = "CAELUS_URL")]
    pub url: String,
    /// API token (checked against the API before it is saved).
    #[arg(long, env = "CAELUS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Name of the context (default: the URL's host and port).
    #[arg(long = "context")]
    pub context: Option<String>,
    /// Where `template publish --chart ./DIR` pushes charts for this context
    /// (oci://HOST/REPO; `caelus dev` prints its own).
    #[arg(long)]
    pub chart_repository: Option<String>,
}

/// How the CLI reaches a registry to push charts (it runs the Helm engine itself).
#[derive(Debug, Args, Clone, Default)]
pub struct PushArgs {
    /// Plain HTTP to the registry (default: only for loopback registries).
    #[arg(long)]
    pub plain_http: bool,
    /// Per-registry settings (YAML or JSON), the server's format: `{"HOST": {"credentials":
    /// {"username": "…", "password": "…"}, "plain_http": false}}`. Without credentials for
    /// the registry there, the docker config's (`$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`, `auths` entries) are used.
    #[arg(long, env = "CAELUS_REGISTRIES")]
    pub registries: Option<PathBuf>,
    /// The Helm engine library (default: CAELUS_HELM_LIB, then .tools/helm/libhelm_c.so).
    #[arg(long, env = "CAELUS_HELM_LIB")]
    pub helm_lib: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ChartCommand {
    /// Package a chart directory (or take a .tgz) and push it; prints its reference and
    /// manifest digest. The chart's name and version become repository and tag.
    Push {
        /// A chart directory or a packaged chart (.tgz).
        chart: PathBuf,
        /// oci://HOST[:PORT]/REPO
        repository: String,
        #[command(flatten)]
        push: PushArgs,
        /// Output format: table, json or yaml.
        #[arg(short = 'o', long = "output", default_value = "table", value_parser = clap::value_parser!(Format))]
        output: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// List contexts; the current one is marked `*`.
    List,
    /// Make a context the current one.
    Use { name: String },
    /// Print the current context's name.
    Current,
    /// Remove a context.
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// postgres://… or sqlite://PATH
    #[arg(long, env = "CAELUS_DATABASE_URL")]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[arg(long, env = "CAELUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not apply migrations at start (run `caelus migrate` yourself).
    #[arg(long)]
    pub no_migrate: bool,
    #[command(flatten)]
    pub helm: HelmArgs,
    /// Load the Helm engine at start rather than at the first request that needs
    /// it (publishing, a values schema check, a preview): ~50 MiB resident from the
    /// start, and a library of the wrong version fails the start, not that request.
    #[arg(long, env = "CAELUS_HELM_AT_START")]
    pub helm_at_start: bool,
    #[command(flatten)]
    pub log: LogArgs,
    /// Kubeconfig of the cluster the orphan endpoints scan (default: KUBECONFIG or
    /// ~/.kube/config, else the in-cluster service account; without any they answer 503).
    #[arg(long, env = "CAELUS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Id of this Caelus installation (the `caelus.io/installation` label).
    #[arg(long, env = "CAELUS_INSTALLATION_ID", default_value = "caelus")]
    pub installation_id: String,
    /// Install or update the projection CRDs (`deploy/chart/crds/`) at start.
    #[arg(long, env = "CAELUS_INSTALL_CRDS")]
    pub install_crds: bool,
    #[command(flatten)]
    pub orphans: OrphanArgs,
    /// Require `Authorization: Bearer <this>` on `/metrics` (default: open).
    #[arg(long, env = "CAELUS_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Publishing a draft requires a passing `caelus template certify` of its chart
    /// unless an admin skips it (recorded); `--require-certification=false` turns it off.
    #[arg(long, env = "CAELUS_REQUIRE_CERTIFICATION", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub require_certification: bool,
}

/// How orphans are judged.
#[derive(Debug, Args, Clone)]
pub struct OrphanArgs {
    /// Nothing younger than this is an orphan (its creation may be in
    /// flight): e.g. `1h`, `30m`, `90s`, `0s`.
    #[arg(long = "min-age", env = "CAELUS_ORPHAN_MIN_AGE", default_value = "1h", value_parser = parse_duration)]
    pub min_age: std::time::Duration,
}

/// `90`, `90s`, `30m`, `1h`, `2d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 90s, 30m or 1h"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}': the unit must be s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(secs)))
}

#[derive(Debug, Args)]
pub struct HelmArgs {
    /// Where pulled charts are cached (content-addressed by digest).
    #[arg(
        long = "data-dir",
        env = "CAELUS_DATA_DIR",
        default_value = "./.caelus"
    )]
    pub data_dir: PathBuf,
    /// The Helm engine library (default: CAELUS_HELM_LIB, then .tools/helm/libhelm_c.so).
    #[arg(long, env = "CAELUS_HELM_LIB")]
    pub helm_lib: Option<PathBuf>,
    /// Per-registry settings (YAML or JSON), e.g. `{"registry.example.com": {"credentials":
    /// {"username": "…", "password": "…"}, "plain_http": false}}`. Loopback registries
    /// default to plain HTTP, all others to HTTPS.
    #[arg(long, env = "CAELUS_REGISTRIES")]
    pub registries: Option<PathBuf>,
    /// Longest one chart render may take before it is refused (`10s`).
    #[arg(long = "render-timeout", env = "CAELUS_RENDER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub render_timeout: std::time::Duration,
    /// Largest render output accepted, in bytes (all templates' text).
    #[arg(long = "render-max-bytes", env = "CAELUS_RENDER_MAX_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub render_max_bytes: usize,
    /// Most objects (CRDs, objects, hooks) one render may produce.
    #[arg(
        long = "render-max-objects",
        env = "CAELUS_RENDER_MAX_OBJECTS",
        default_value_t = 2_000
    )]
    pub render_max_objects: usize,
    /// Memory the render cache may hold, in bytes of render output.
    #[arg(long = "render-cache-bytes", env = "CAELUS_RENDER_CACHE_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub render_cache_bytes: usize,
}

impl HelmArgs {
    /// The render bounds these flags set.
    pub fn render_limits(&self) -> caelus_helm::RenderLimits {
        caelus_helm::RenderLimits {
            timeout: self
                .render_timeout
                .max(std::time::Duration::from_millis(100)),
            max_output_bytes: self.render_max_bytes.max(1024),
            max_objects: self.render_max_objects.max(1),
            cache_bytes: self.render_cache_bytes,
        }
    }
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Kubeconfig file (default: KUBECONFIG or ~/.kube/config, else the in-cluster
    /// service account, as in a pod the chart runs).
    #[arg(long, env = "CAELUS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub helm: HelmArgs,
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    /// Serve Prometheus metrics (`/metrics`) on this address, e.g. 0.0.0.0:9090.
    #[arg(long, env = "CAELUS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub log: LogArgs,
    /// Install or update the projection CRDs (`deploy/chart/crds/`) at start.
    #[arg(long, env = "CAELUS_INSTALL_CRDS")]
    pub install_crds: bool,
    #[command(flatten)]
    pub orphans: OrphanArgs,
    /// Scan for orphans this often (e.g. `1h`) and log them; off by default.
    #[arg(long, env = "CAELUS_ORPHAN_SCAN_INTERVAL", value_parser = parse_duration)]
    pub orphan_scan_interval: Option<std::time::Duration>,
    /// Delete what the periodic scan finds (default: report only).
    #[arg(long, env = "CAELUS_ORPHAN_CLEAN", requires = "orphan_scan_interval")]
    pub orphan_clean: bool,
    /// Names this worker in leases and logs (default: `worker-` and a random suffix);
    /// the chart sets the pod's name.
    #[arg(long, env = "CAELUS_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Require `Authorization: Bearer <this>` on `/metrics` (default: open).
    #[arg(long, env = "CAELUS_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// How the reconciler behaves (worker and dev).
#[derive(Debug, Args, Clone)]
pub struct ReconcileArgs {
    /// Reconciles run at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds between drift checks of a healthy deployment (with 10% jitter).
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
    /// Lease length in seconds: how soon another worker takes over a crashed one's work.
    #[arg(long, default_value_t = 30)]
    pub lease_seconds: u64,
    /// Id of this Caelus installation, written on every namespace it creates.
    #[arg(long, env = "CAELUS_INSTALLATION_ID", default_value = "caelus")]
    pub installation_id: String,
    /// A namespace whose pods may reach deployments through their default-deny
    /// NetworkPolicy, e.g. the ingress controller's (repeatable).
    #[arg(long = "ingress-namespace")]
    pub ingress_namespaces: Vec<String>,
    /// Write read-only `CaelusDeployment`/`CaelusTemplate` projections for
    /// `kubectl get` (`--projections=false` turns them off).
    #[arg(long, env = "CAELUS_PROJECTIONS", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub projections: bool,
    /// Projection write requests per second, all projections together (bursts of as many).
    #[arg(long, default_value_t = 20.0)]
    pub projection_writes_per_second: f64,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the SQLite database and dev state live.
    #[arg(long, env = "CAELUS_DATA_DIR", default_value = "./.caelus")]
    pub data_dir: PathBuf,
    #[arg(long, env = "CAELUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Port of the local OCI registry `caelus dev` runs for its demo catalog.
    #[arg(long, default_value_t = 5001)]
    pub registry_port: u16,
    /// The Helm engine library (default: CAELUS_HELM_LIB, then .tools/helm/libhelm_c.so).
    #[arg(long, env = "CAELUS_HELM_LIB")]
    pub helm_lib: Option<PathBuf>,
    /// Reconcile against this cluster instead of the in-process kubesim.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub orphans: OrphanArgs,
    /// Require a passing certification to publish, as `caelus server` does by
    /// default (off in dev, a sandbox; its demo versions are published with a
    /// recorded skip either way).
    #[arg(long)]
    pub require_certification: bool,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a token directly in the database and print its secret once (bootstrap).
    CreateToken(AdminCreateTokenArgs),
}

#[derive(Debug, Args)]
pub struct AdminCreateTokenArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[arg(long, value_enum, default_value_t = RoleArg::Admin)]
    pub role: RoleArg,
    #[arg(long, default_value = "bootstrap")]
    pub name: String,
    /// Tenant of a tenant token.
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RoleArg {
    Admin,
    Tenant,
}

impl RoleArg {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleArg::Admin => "admin",
            RoleArg::Tenant => "tenant",
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Caelus API URL (default: the context's, else http://127.0.0.1:8080).
    #[arg(long, env = "CAELUS_URL")]
    pub url: Option<String>,
    /// API token (default: the context's).
    #[arg(long, env = "CAELUS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Context of the config file to use (default: the current one).
    #[arg(long, env = "CAELUS_CONTEXT")]
    pub context: Option<String>,
    /// Output format: table, wide, name, json, yaml or jsonpath=TEMPLATE
    /// (kubectl's syntax, e.g. 'jsonpath={.items[*].uid}').
    #[arg(short = 'o', long = "output", default_value = "table", value_parser = clap::value_parser!(Format))]
    pub output: Format,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct WaitArgs {
    /// Follow progress until the deployment is done or failed (non-zero exit on failure).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct PageArgs {
    #[arg(long)]
    pub limit: Option<i64>,
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Create a product (admin).
    Create {
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List products.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a product.
    Show {
        slug: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// The spec of a template version, from flags and files.
#[derive(Debug, Args, Default)]
pub struct TemplateSpecArgs {
    /// Chart: oci://host[:port]/path/chart:TAG (resolved to its digest once, now)
    /// or oci://…/chart@sha256:<64 hex>. Defaults, schema and metadata come from it.
    /// A chart directory or .tgz is pushed to --chart-repository first.
    #[arg(long)]
    pub chart: Option<String>,
    /// Where a local --chart is pushed (oci://HOST/REPO; default: the context's).
    #[arg(long, env = "CAELUS_CHART_REPOSITORY")]
    pub chart_repository: Option<String>,
    #[command(flatten)]
    pub push: PushArgs,
    /// A value path users may set (repeatable): `replicaCount`, `resources.*`.
    #[arg(long = "allow")]
    pub allow: Vec<String>,
    /// Capability flags (YAML or JSON file), e.g. `upgrade_requires_admin: true`.
    #[arg(long)]
    pub capabilities: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Create a draft version (admin).
    Create {
        product: String,
        version: String,
        #[command(flatten)]
        spec: TemplateSpecArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Publish a version (admin): with --chart, create and publish at once; else publish the draft.
    /// A server that requires certification refuses a version without a passing one.
    Publish {
        product: String,
        version: String,
        #[command(flatten)]
        spec: TemplateSpecArgs,
        /// Publish without a passing certification (admin; recorded in the audit event).
        #[arg(long)]
        skip_certification: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a draft version (admin).
    Update {
        product: String,
        version: String,
        #[command(flatten)]
        spec: TemplateSpecArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List a product's versions.
    List {
        product: String,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a version.
    Show {
        product: String,
        version: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deprecate a published version (admin).
    Deprecate {
        product: String,
        version: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Retire a version (admin).
    Retire {
        product: String,
        version: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Certify a draft (admin): render with defaults, run the checklist (policy,
    /// resources, probes, pinned images, values schema, data continuity) and, with a
    /// cluster, a canary install, its tests and an upgrade from the previous published
    /// version. The report is stored on the version. Exit status 1 when it fails.
    Certify {
        product: String,
        version: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the manifest a version renders to with the given values (nothing is applied).
    Render {
        product: String,
        version: String,
        /// User values (YAML or JSON file).
        #[arg(long)]
        values: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Create a deployment.
    Create {
        #[arg(long)]
        product: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        name: String,
        /// User values (YAML or JSON file).
        #[arg(long)]
        values: Option<PathBuf>,
        /// Owner tenant (admins only).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List deployments.
    List {
        #[arg(long)]
        phase: Option<String>,
        #[arg(long)]
        product: Option<String>,
        /// Only this tenant's (admins).
        #[arg(long)]
        tenant: Option<String>,
        /// Include deleted deployments.
        #[arg(long)]
        include_deleted: bool,
        /// After listing, keep printing deployments as they change (Ctrl-C stops).
        #[arg(short = 'w', long)]
        watch: bool,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a deployment and its status.
    Show {
        uid: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a deployment's values or name.
    Update {
        uid: String,
        /// New user values (YAML or JSON file); replaces the current ones.
        #[arg(long)]
        values: Option<PathBuf>,
        #[arg(long)]
        name: Option<String>,
        /// Proceed although the new values drop or change persistent volumes
        /// (admins; recorded).
        #[arg(long)]
        allow_data_loss: bool,
        /// Show the plan of the values change (objects, field diffs, policy and
        /// data-continuity results, as `upgrade --dry-run`) and change nothing.
        #[arg(long, requires = "values")]
        dry_run: bool,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a deployment (all of it, unless --keep-volumes).
    Delete {
        uid: String,
        /// Keep the namespace and its PersistentVolumeClaims (phase Retained)
        /// until `purge`; `--keep-volumes=false` overrides a template that keeps
        /// them by default.
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        keep_volumes: Option<bool>,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove the namespace and volumes a `delete --keep-volumes` kept.
    Purge {
        uid: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Re-create a deployment deleted with --keep-volumes (phase Retained) in
    /// its kept namespace: the chart's claims re-adopt the kept volumes.
    Restore {
        uid: String,
        /// User values (YAML or JSON file); default: the values it had when
        /// deleted. Charts that generate passwords need them here.
        #[arg(long)]
        values: Option<PathBuf>,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Upgrade to a newer template version (policy-checked; --dry-run shows the plan).
    Upgrade {
        uid: String,
        /// Target version.
        #[arg(long = "to")]
        to: String,
        /// New user values (YAML or JSON file); by default the current ones.
        #[arg(long)]
        values: Option<PathBuf>,
        /// Show the plan (objects, field diffs, hooks, policy results) and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Proceed although the data-continuity preflight refuses (admins; recorded).
        #[arg(long)]
        allow_data_loss: bool,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Versions this deployment may be upgraded to, and why others may not.
    Upgrades {
        uid: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Roll back to an earlier revision (its version and values).
    Rollback {
        uid: String,
        #[arg(long = "to-revision")]
        to_revision: i64,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        allow_data_loss: bool,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Re-attempt a failed, stalled or rolled-back generation now (fresh backoff).
    Retry {
        uid: String,
        /// Show the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Proceed although the data-continuity preflight refuses (admins; recorded).
        #[arg(long)]
        allow_data_loss: bool,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Adopt an existing object into the deployment (admin): label it as the
    /// deployment's, so a revision refused because the object was someone
    /// else's can write it. Another Caelus deployment's objects are refused.
    Adopt {
        uid: String,
        /// The object's apiVersion, e.g. `v1` or `networking.k8s.io/v1`.
        #[arg(long = "api-version")]
        api_version: String,
        /// The object's kind, e.g. `ConfigMap`.
        #[arg(long)]
        kind: String,
        /// The object's name (in the deployment's namespace, or cluster-scoped).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Release history.
    History {
        uid: String,
        #[arg(long)]
        limit: Option<i64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The chart's rendered NOTES.txt for the running revision (how to reach it).
    Notes {
        uid: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// How to reach it: Services (type, ports, DNS name, addresses) and Ingress URLs.
    Endpoints {
        uid: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// What differs between the live objects and what Caelus applied, per
    /// object and field (exit status 0 in sync, 1 drifted, as `argocd app diff`).
    Diff {
        uid: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Connection details the template declares (e.g. a database password); audited.
    Connection {
        uid: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run the chart's test hooks against the running revision (`helm test`;
    /// owner or admin; the deployment must be Ready). Exit status 1 when a test fails.
    Test {
        uid: String,
        /// How long each test Pod or Job may take, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Event timeline.
    Events {
        uid: String,
        #[arg(long)]
        limit: Option<i64>,
        /// Only events after this id.
        #[arg(long)]
        after: Option<i64>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The tenant of a tenant token (admin tokens carry none).
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime, e.g. `12h`, `30d`, `2w` (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token.
    Revoke {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrphansCommand {
    /// List orphans: what, where, why, how old (deletes nothing).
    Scan {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete orphans, re-checking each against the database first; a dry
    /// run unless --confirm. Namespaces stuck on finalizers are reported only.
    Clean {
        /// Delete for real.
        #[arg(long)]
        confirm: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_seconds_minutes_hours_and_days() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("1w").unwrap_err().contains("unit"));
        assert!(parse_duration("soon").is_err());
    }
}
