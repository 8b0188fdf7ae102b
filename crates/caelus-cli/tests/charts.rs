//! Your own chart into Caelus: a chart directory or `.tgz` pushed (Helm engine, real
//! registry) and published in one command against a real `caelus dev`, then deployed.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod support;

use support::{CAELUS, Running, free_port, ok, start_dev, temp_dir, wait_ready};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `caelus ARGS` with the config file under `home` and no CAELUS_* connection variables.
fn caelus(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(CAELUS);
    cmd.args(args)
        .env_remove("CAELUS_URL")
        .env_remove("CAELUS_TOKEN")
        .env_remove("CAELUS_CONTEXT")
        .env_remove("CAELUS_CHART_REPOSITORY")
        .env_remove("CAELUS_REGISTRIES")
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("XDG_CONFIG_HOME", home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[track_caller]
fn succeeds(out: Output) -> (String, String) {
    assert!(
        out.status.success(),
        "failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

/// The repository's `web` test chart under another name and version.
fn make_chart(dir: &Path, name: &str, version: &str) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/charts/web/1.0.0");
    let _ = std::fs::remove_dir_all(dir);
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&source)
        .arg(dir)
        .status()
        .unwrap();
    assert!(copied.success());
    let chart_yaml = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).unwrap();
    let text = text
        .replace("name: web", &format!("name: {name}"))
        .replace("version: 1.0.0", &format!("version: {version}"));
    std::fs::write(&chart_yaml, text).unwrap();
}

fn wait_for_demo_catalog(r: &Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !support::cli(r, &["template", "list", "web"])
        .1
        .contains("2.0.0")
    {
        assert!(Instant::now() < deadline, "demo catalog not published");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_chart_directory_and_a_tgz_are_pushed_published_and_deployed_in_one_command() {
    let dir = temp_dir("charts-publish");
    let r = start_dev(&dir.join("data"));
    wait_ready(&r.url);
    wait_for_demo_catalog(&r);
    let repository = r
        .chart_repository
        .clone()
        .expect("dev printed its registry");
    let home = dir.join("home");
    succeeds(caelus(
        &home,
        &[
            "login",
            "--url",
            &r.url,
            "--token",
            &r.token,
            "--chart-repository",
            &repository,
        ],
        &[],
    ));
    ok(&r, &["product", "create", "mine", "--name", "My app"]);

    // A directory: packaged, pushed to dev's registry, published, in one command.
    let chart = dir.join("mine");
    make_chart(&chart, "mine", "0.1.0");
    let (out, err) = succeeds(caelus(
        &home,
        &[
            "template",
            "publish",
            "mine",
            "1.0.0",
            "--chart",
            chart.to_str().unwrap(),
            "--allow",
            "replicaCount",
            "-o",
            "json",
        ],
        &[],
    ));
    assert!(
        err.contains(&format!("pushed {repository}/mine:0.1.0 (sha256:")),
        "{err}"
    );
    let published: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(published["lifecycle"], "published");
    assert!(
        published["chart"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{repository}/mine@sha256:")),
        "{published}"
    );
    let deploy = |version: &str, name: &str| {
        succeeds(caelus(
            &home,
            &[
                "deployment",
                "create",
                "--product",
                "mine",
                "--version",
                version,
                "--name",
                name,
                "--wait",
                "--timeout",
                "120",
                "-o",
                "name",
            ],
            &[],
        ))
    };
    let (created, _) = deploy("1.0.0", "from-dir");
    assert!(created.starts_with("deployment/"), "{created}");

    // A .tgz: `chart push` prints reference and digest; publish takes it likewise.
    make_chart(&chart, "mine", "0.2.0");
    let tgz = dir.join("mine-0.2.0.tgz");
    let packed = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&dir)
        .arg("mine")
        .status()
        .unwrap();
    assert!(packed.success());
    let (pushed, _) = succeeds(caelus(
        &home,
        &["chart", "push", tgz.to_str().unwrap(), &repository],
        &[],
    ));
    let mut lines = pushed.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("Pushed: {repository}/mine:0.2.0")
    );
    let digest = lines
        .next()
        .unwrap()
        .strip_prefix("Digest: sha256:")
        .unwrap();
    assert_eq!(digest.len(), 64, "{pushed}");
    let (out, err) = succeeds(caelus(
        &home,
        &[
            "template",
            "publish",
            "mine",
            "2.0.0",
            "--chart",
            tgz.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(err.contains("mine:0.2.0"), "{err}");
    assert!(out.contains("published"), "{out}");
    deploy("2.0.0", "from-tgz");

    // Without a chart repository, a local chart is refused before anything is pushed.
    let nowhere = caelus(
        &dir.join("empty-home"),
        &[
            "template",
            "publish",
            "mine",
            "3.0.0",
            "--chart",
            chart.to_str().unwrap(),
            "--url",
            &r.url,
            "--token",
            &r.token,
        ],
        &[],
    );
    assert!(!nowhere.status.success());
    assert!(
        text(&nowhere.stderr).contains("--chart-repository"),
        "{}",
        text(&nowhere.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_credentials_and_unreachable_registries_are_named() {
    let dir = temp_dir("charts-errors");
    let home = dir.join("home");
    let chart = dir.join("mine");
    make_chart(&chart, "mine", "0.1.0");
    let chart = chart.to_str().unwrap();

    let unreachable = caelus(
        &home,
        &[
            "chart",
            "push",
            chart,
            &format!("oci://127.0.0.1:{}/charts", free_port()),
        ],
        &[],
    );
    assert_eq!(unreachable.status.code(), Some(1));
    let err = text(&unreachable.stderr);
    assert!(
        err.contains("cannot push") && err.contains("is unreachable"),
        "{err}"
    );

    let registry = caelus_helm::testing::TestRegistry::start_with_auth().unwrap();
    let repository = format!("oci://{}/charts", registry.host());
    let anonymous = caelus(&home, &["chart", "push", chart, &repository], &[]);
    assert!(
        text(&anonymous.stderr).contains("refused access"),
        "{}",
        text(&anonymous.stderr)
    );
    let wrong = dir.join("registries.yaml");
    std::fs::write(
        &wrong,
        format!(
            "{}:\n  credentials:\n    username: {}\n    password: not-the-password\n",
            registry.host(),
            caelus_helm::testing::TEST_USERNAME
        ),
    )
    .unwrap();
    let refused = caelus(
        &home,
        &[
            "chart",
            "push",
            chart,
            &repository,
            "--registries",
            wrong.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(1));
    let err = text(&refused.stderr);
    assert!(
        err.contains(&format!("registry {} refused access", registry.host())),
        "{err}"
    );

    // The docker config's credentials, as `docker login` leaves them.
    let docker = home.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64_of(&format!(
        "{}:{}",
        caelus_helm::testing::TEST_USERNAME,
        caelus_helm::testing::TEST_PASSWORD
    ));
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let (out, _) = succeeds(caelus(
        &home,
        &["chart", "push", chart, &repository, "-o", "json"],
        &[],
    ));
    let pushed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pushed["reference"], format!("{repository}/mine:0.1.0"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_of(s: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(s.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    text(&out.stdout)
}
