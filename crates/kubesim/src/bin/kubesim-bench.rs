//! `cargo run --release -p kubesim --bin kubesim-bench [-- --objects 100000]`
//!
//! Measures create and server-side-apply throughput (in-process through the
//! API layer, and over HTTP with one keep-alive connection), list latency
//! with N objects, and resident memory per N objects. Prints Markdown.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// One keep-alive HTTP/1.1 connection; enough for a throughput measurement.
struct Conn {
    r: BufReader<tokio::io::ReadHalf<tokio::net::TcpStream>>,
    w: tokio::io::WriteHalf<tokio::net::TcpStream>,
}

impl Conn {
    async fn new(addr: std::net::SocketAddr) -> Conn {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (r, w) = tokio::io::split(s);
        Conn {
            r: BufReader::new(r),
            w,
        }
    }

    async fn send(&mut self, method: &str, path: &str, ct: &str, body: &[u8]) -> (u16, usize) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: kubesim\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.w.write_all(head.as_bytes()).await.unwrap();
        self.w.write_all(body).await.unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).await.unwrap();
        let code: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; len];
        self.r.read_exact(&mut buf).await.unwrap();
        (code, len)
    }
}

fn per_sec(n: usize, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip_while(|a| a != "--objects")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let sim = kubesim::Server::start(kubesim::Config {
        controllers: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = sim.api();
    let cm = api.info_for("", "configmaps").unwrap();
    let opts = kubesim::api::WriteOptions {
        field_manager: Some("bench".into()),
        ..Default::default()
    };
    let obj = |i: usize| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:06}"), "labels": {"app": "bench", "shard": (i % 100).to_string()}},
            "data": {"key": "value", "index": i.to_string(), "payload": "x".repeat(64)}})
    };
    println!("# kubesim benchmark\n");
    println!("Objects: {n} ConfigMaps (~200 B of data each), controllers off, release build.\n");
    println!("| measurement | result |\n|---|---|");

    let rss0 = rss_bytes();
    let t = Instant::now();
    for i in 0..n {
        api.create(&cm, "default", obj(i), &opts).unwrap();
    }
    let d = t.elapsed();
    println!("| creates/s (in-process API, {n}) | {} |", per_sec(n, d));
    let rss1 = rss_bytes();
    println!(
        "| RSS growth for {n} objects (incl. watch history of 10k events) | {:.1} MiB ({:.0} B/object) |",
        (rss1 - rss0) as f64 / 1048576.0,
        (rss1.saturating_sub(rss0)) as f64 / n as f64
    );

    let t = Instant::now();
    let l = api.list(&cm, Some("default"), &Default::default()).unwrap();
    let full = t.elapsed();
    // The namespace also holds what Kubernetes puts in every namespace
    // (the kube-root-ca.crt ConfigMap).
    let ours = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["metadata"]["labels"]["app"] == "bench")
        .count();
    assert_eq!(ours, n);
    println!(
        "| list all {n} (in-process) | {:.0} ms |",
        full.as_secs_f64() * 1000.0
    );
    let sel = kubesim::api::ListOptions {
        label_selector: kubesim::selector::LabelSelector::parse("shard=7").unwrap(),
        ..Default::default()
    };
    let t = Instant::now();
    let l = api.list(&cm, Some("default"), &sel).unwrap();
    println!(
        "| list with label selector ({} of {n} match, in-process) | {:.0} ms |",
        l["items"].as_array().unwrap().len(),
        t.elapsed().as_secs_f64() * 1000.0
    );

    let mut conn = Conn::new(sim.addr()).await;
    let t = Instant::now();
    let (code, bytes) = conn
        .send(
            "GET",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"",
        )
        .await;
    assert_eq!(code, 200);
    println!(
        "| list all {n} over HTTP ({:.1} MiB JSON) | {:.0} ms |",
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    let (code, _) = conn
        .send(
            "GET",
            "/api/v1/namespaces/default/configmaps?limit=500",
            "application/json",
            b"",
        )
        .await;
    assert_eq!(code, 200);
    println!(
        "| list first page (limit=500) over HTTP | {:.1} ms |",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    let (code, _) = conn
        .send(
            "GET",
            "/api/v1/namespaces/default/configmaps?labelSelector=shard%3D7",
            "application/json",
            b"",
        )
        .await;
    assert_eq!(code, 200);
    println!(
        "| list with label selector over HTTP | {:.1} ms |",
        t.elapsed().as_secs_f64() * 1000.0
    );

    let m = n.min(20_000);
    let t = Instant::now();
    for i in 0..m {
        let body = serde_json::to_vec(&obj(n + i)).unwrap();
        let (code, _) = conn
            .send(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                "application/json",
                &body,
            )
            .await;
        assert_eq!(code, 201);
    }
    println!(
        "| creates/s over HTTP (1 connection, {m}) | {} |",
        per_sec(m, t.elapsed())
    );

    let t = Instant::now();
    for i in 0..m {
        let mut o = obj(i);
        o["data"]["key"] = json!("applied");
        let body = serde_json::to_vec(&o).unwrap();
        let path = format!(
            "/api/v1/namespaces/default/configmaps/cm-{i:06}?fieldManager=bench-apply&force=true"
        );
        let (code, _) = conn
            .send("PATCH", &path, "application/apply-patch+yaml", &body)
            .await;
        assert_eq!(code, 200);
    }
    println!(
        "| server-side applies/s over HTTP (1 connection, {m}, changing) | {} |",
        per_sec(m, t.elapsed())
    );
    let t = Instant::now();
    for i in 0..m {
        let mut o = obj(i);
        o["data"]["key"] = json!("applied");
        let body = serde_json::to_vec(&o).unwrap();
        let path = format!(
            "/api/v1/namespaces/default/configmaps/cm-{i:06}?fieldManager=bench-apply&force=true"
        );
        let (code, _) = conn
            .send("PATCH", &path, "application/apply-patch+yaml", &body)
            .await;
        assert_eq!(code, 200);
    }
    println!(
        "| server-side applies/s over HTTP (1 connection, {m}, no-op) | {} |",
        per_sec(m, t.elapsed())
    );
    sim.shutdown().await;
}
