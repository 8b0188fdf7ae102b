//! The CLI as a person at a shell uses it, against a real `caelus dev`: output formats,
//! contexts instead of exports, a watch, pipes closed early, exit statuses, completion.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

use support::{CAELUS, Running, ok, start_dev, temp_dir, wait_ready};

/// `caelus ARGS` with no CAELUS_* variables, a config directory of its own, and `env`.
fn bare(config_home: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(CAELUS);
    cmd.args(args)
        .env_remove("CAELUS_URL")
        .env_remove("CAELUS_TOKEN")
        .env_remove("CAELUS_CONTEXT")
        .env("XDG_CONFIG_HOME", config_home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn wait_for_demo_catalog(r: &Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (success, out, _) = support::cli(r, &["template", "list", "web", "-o", "name"]);
        if success && out.contains("template/web/1.0.0") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "demo catalog not published: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn create_ready(r: &Running, name: &str) -> String {
    ok(
        r,
        &[
            "deployment",
            "create",
            "--product",
            "web",
            "--version",
            "1.0.0",
            "--name",
            name,
            "--wait",
            "--timeout",
            "120",
            "-o",
            "jsonpath={.uid}",
        ],
    )
}

#[test]
fn output_formats_contexts_watch_and_pipes_against_dev() {
    let dir = temp_dir("cli-ux");
    let r = start_dev(&dir.join("data"));
    wait_ready(&r.url);
    wait_for_demo_catalog(&r);
    let uid = create_ready(&r, "shop");
    assert_eq!(uid.len(), 36, "jsonpath printed just the uid: {uid:?}");

    // -o name, jsonpath and wide.
    assert_eq!(
        ok(&r, &["deployment", "list", "-o", "name"]),
        format!("deployment/{uid}\n")
    );
    assert_eq!(
        ok(
            &r,
            &[
                "deployment",
                "list",
                "-o",
                r#"jsonpath={range .items[*]}{.name}={.status.phase}{"\n"}{end}"#
            ]
        ),
        "shop=Ready\n"
    );
    let wide = ok(&r, &["deployment", "list", "-o", "wide"]);
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "UID",
            "NAME",
            "TENANT",
            "PRODUCT",
            "VERSION",
            "PHASE",
            "GEN",
            "NAMESPACE",
            "REVISION",
            "MESSAGE",
            "AGE"
        ]
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with(&uid) && row.contains(" caelus-"), "{wide}");
    // A relative age (seconds, or minutes on a slow machine), not a timestamp.
    let age = row.split_whitespace().last().unwrap();
    assert!(
        age.ends_with('s') || age.ends_with('m'),
        "AGE is relative: {age:?} in {wide}"
    );
    assert!(!wide.contains("T0") && !wide.contains("Z "), "{wide}");

    // A reader that goes away: `| head -1` and a pipe closed before anything is written.
    let piped = Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            &format!("{CAELUS} deployment list | head -1"),
        ])
        .env("CAELUS_URL", &r.url)
        .env("CAELUS_TOKEN", &r.token)
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert!(text(&piped.stdout).starts_with("UID "));
    assert!(!text(&piped.stderr).contains("panicked"));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = Command::new(CAELUS)
        .args(["deployment", "list", "-o", "json"])
        .env("CAELUS_URL", &r.url)
        .env("CAELUS_TOKEN", &r.token)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(closed.status.code(), Some(0), "{}", text(&closed.stderr));
    assert_eq!(text(&closed.stderr), "");

    // Contexts: `caelus login` once, and no exports afterwards.
    let home = dir.join("config");
    let config = home.join("caelus").join("config.yaml");
    let bad = bare(
        &home,
        &["login", "--url", &r.url, "--token", "cae_wrong"],
        &[],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("did not accept the token") && text(&bad.stderr).contains("401"),
        "{}",
        text(&bad.stderr)
    );
    assert!(!config.exists(), "a refused login saves nothing");
    let login = bare(
        &home,
        &[
            "login",
            "--url",
            &r.url,
            "--token",
            &r.token,
            "--context",
            "dev",
        ],
        &[],
    );
    assert!(login.status.success(), "{}", text(&login.stderr));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the config holds tokens");
    let listed = bare(&home, &["deployment", "list", "-o", "name"], &[]);
    assert_eq!(text(&listed.stdout), format!("deployment/{uid}\n"));

    // A second context for a tenant; --context picks, `context use` switches.
    let tenant = ok(
        &r,
        &[
            "token",
            "create",
            "--name",
            "alice",
            "--role",
            "tenant",
            "--tenant",
            "acme",
            "-o",
            "jsonpath={.secret}",
        ],
    );
    let login = bare(
        &home,
        &[
            "login",
            "--url",
            &r.url,
            "--token",
            &tenant,
            "--context",
            "alice",
        ],
        &[],
    );
    assert!(login.status.success(), "{}", text(&login.stderr));
    // The chart's rendered NOTES.txt, to its owner only.
    let notes = bare(
        &home,
        &["deployment", "notes", &uid, "--context", "dev"],
        &[],
    );
    let notes = text(&notes.stdout);
    assert!(
        notes.contains("is running in namespace caelus-") && notes.contains(".svc:"),
        "{notes}"
    );
    let other = bare(&home, &["deployment", "notes", &uid], &[]);
    assert!(
        !other.status.success() && text(&other.stderr).contains("404"),
        "another tenant reads no notes: {}",
        text(&other.stderr)
    );
    let current = bare(&home, &["context", "current"], &[]);
    assert_eq!(text(&current.stdout), "alice\n");
    let as_alice = bare(&home, &["deployment", "list", "-o", "name"], &[]);
    assert!(as_alice.status.success());
    assert_eq!(
        text(&as_alice.stdout),
        "",
        "the tenant sees none of admin's"
    );
    let as_dev = bare(
        &home,
        &["deployment", "list", "-o", "name", "--context", "dev"],
        &[],
    );
    assert_eq!(text(&as_dev.stdout), format!("deployment/{uid}\n"));
    let by_env = bare(
        &home,
        &["deployment", "list", "-o", "name"],
        &[("CAELUS_CONTEXT", "dev")],
    );
    assert_eq!(text(&by_env.stdout), format!("deployment/{uid}\n"));
    assert!(
        bare(&home, &["context", "use", "dev"], &[])
            .status
            .success()
    );
    let contexts = text(&bare(&home, &["context", "list"], &[]).stdout);
    assert!(
        contexts
            .lines()
            .any(|l| l.starts_with('*') && l.contains("dev")),
        "{contexts}"
    );
    // The environment wins over the file, and a flag over the environment.
    let env_token = bare(
        &home,
        &["product", "list"],
        &[("CAELUS_TOKEN", "cae_from_env")],
    );
    assert!(
        !env_token.status.success() && text(&env_token.stderr).contains("401"),
        "{}",
        text(&env_token.stderr)
    );
    let flag_token = bare(
        &home,
        &["product", "list", "-o", "name", "--token", &r.token],
        &[("CAELUS_TOKEN", "cae_from_env")],
    );
    assert_eq!(text(&flag_token.stdout), "product/web\n");
    let missing = bare(&home, &["product", "list", "--context", "prod"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no context \"prod\""));

    // Exit statuses: 2 for a bad command line, 3 when the API cannot be reached.
    let usage = bare(&home, &["deployment", "list", "-o", "xml"], &[]);
    assert_eq!(usage.status.code(), Some(2));
    let unreachable = bare(
        &home,
        &[
            "product",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--token",
            "x",
        ],
        &[],
    );
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(text(&unreachable.stderr).contains("cannot reach the Caelus API"));

    // A watch prints the list, then each change as it happens.
    let mut watch = Command::new(CAELUS)
        .args(["deployment", "list", "-w", "--context", "dev"])
        .env_remove("CAELUS_URL")
        .env_remove("CAELUS_TOKEN")
        .env("XDG_CONFIG_HOME", &home)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("a watch line")
    };
    assert!(next().starts_with("UID"));
    assert!(next().contains("Ready"));
    let values = dir.join("values.yaml");
    std::fs::write(&values, "replicaCount: 2\n").unwrap();
    ok(
        &r,
        &[
            "deployment",
            "update",
            &uid,
            "--values",
            values.to_str().unwrap(),
        ],
    );
    // Generation 2 shows up, and later its Ready.
    loop {
        let line = next();
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.first() == Some(&uid.as_str()) && cells[5] == "Ready" && cells[6] == "2" {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completion_scripts_load_and_help_documents_exit_statuses() {
    let loaded = Command::new("bash")
        .args([
            "-c",
            &format!("source <({CAELUS} completion bash) && complete -p caelus"),
        ])
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", text(&loaded.stderr));
    assert!(
        text(&loaded.stdout).contains("caelus"),
        "{}",
        text(&loaded.stdout)
    );
    for shell in ["zsh", "fish"] {
        let out = Command::new(CAELUS)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(text(&out.stdout).contains("deployment"), "{shell}");
    }

    let help = text(&Command::new(CAELUS).arg("--help").output().unwrap().stdout);
    for status in [
        "0  success",
        "2  the command line",
        "3  the API could not",
        "4  --wait",
    ] {
        assert!(help.contains(status), "{help}");
    }
    assert!(help.contains("config.yaml"), "{help}");
    // --log-format belongs to the processes that log, not to client commands.
    let client_help = Command::new(CAELUS)
        .args(["deployment", "list", "--help"])
        .output()
        .unwrap();
    assert!(!text(&client_help.stdout).contains("--log-format"));
    for process in ["server", "worker", "dev"] {
        let h = Command::new(CAELUS)
            .args([process, "--help"])
            .output()
            .unwrap();
        assert!(text(&h.stdout).contains("--log-format"), "{process}");
    }
}
