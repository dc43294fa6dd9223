//! The stream server against nginx, side by side in one run, measured with wrk on the same
//! machine:
//! - redirects: Offload's S3 stream route (token check, library lookup, a freshly presigned URL)
//!   against an nginx `return 302` location, at 64 connections: requests/s and p99 latency;
//! - local files: 1 MiB Range reads at random offsets of a 256 MiB file, Offload against nginx
//!   serving the same file (sendfile on), at 16 connections: MiB/s.
//!
//! Both servers log every request to a file. Each measurement is the median of three 10-second
//! runs after a warm-up. Run with `scripts/bench stream`.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/select.rs"]
mod select;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::s3::{fetch, free_port, garage};
use common::{add_s3_backend, wait_for, Sandbox};

const RUNS: usize = 3;
const SECONDS: u32 = 10;
const MIB: u64 = 1024 * 1024;
const FILE_MIB: u64 = 256;

#[derive(Debug, Clone, Copy)]
struct Measure {
    requests_per_second: f64,
    p99_ms: f64,
    mib_per_second: f64,
}

/// One wrk run; `None` with a message when wrk saw errors or wrong statuses.
fn wrk(url: &str, connections: u32, script: Option<&Path>) -> Option<Measure> {
    let mut command = Command::new("wrk");
    command.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{SECONDS}s"),
        "--latency",
    ]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output().expect("wrk (Debian package wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || text.contains("Non-2xx or 3xx") || text.contains("Socket errors")
    {
        eprintln!("wrk {url} reported errors:\n{text}");
        return None;
    }
    let field = |prefix: &str| {
        text.lines().find_map(|line| {
            line.trim()
                .strip_prefix(prefix)
                .map(str::trim)
                .map(str::to_owned)
        })
    };
    let requests_per_second: f64 = field("Requests/sec:")?.parse().ok()?;
    let p99_ms = parse_latency(&field("99%")?)?;
    let transfer = field("Transfer/sec:")?;
    Some(Measure {
        requests_per_second,
        p99_ms,
        mib_per_second: parse_size(&transfer)? / MIB as f64,
    })
}

/// `812.00us`, `3.21ms`, `1.02s` → milliseconds.
fn parse_latency(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

/// `1.23GB` (wrk's powers of 1024) → bytes.
fn parse_size(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(value * scale)
}

fn median(url: &str, connections: u32, script: Option<&Path>) -> Option<Measure> {
    // Warm-up: connections, page cache, lazy initialisation.
    wrk(url, connections, script)?;
    let mut runs: Vec<Measure> = (0..RUNS)
        .filter_map(|_| wrk(url, connections, script))
        .collect();
    if runs.len() < RUNS {
        return None;
    }
    runs.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    Some(runs[RUNS / 2])
}

struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so the master takes its workers with it (a SIGKILLed master leaves them
        // running, holding the port and the bench's output open).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// nginx as a distribution would run it for static files: two workers, sendfile, access log.
fn nginx(dir: &Path, file: &Path, redirect_to: &str) -> Option<Nginx> {
    let binary = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|candidate| Command::new(candidate).arg("-v").output().is_ok())?;
    let port = free_port();
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let user = if std::env::var("USER").as_deref() == Ok("root") || is_root() {
        "user root;"
    } else {
        ""
    };
    let config = format!(
        "{user}
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ video/mp4 mp4; }}
    server {{
        listen 127.0.0.1:{port};
        location = /redirect {{ return 302 '{redirect_to}'; }}
        location = /film.mp4 {{ alias {file}; }}
    }}
}}
",
        prefix = prefix.display(),
        file = file.display(),
    );
    let config_path = prefix.join("nginx.conf");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&config_path)
        .args(["-g", "daemon off;"])
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let nginx = Nginx { child, port };
    wait_for("nginx to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Some(nginx)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn write_file(path: &Path, len: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; MIB as usize];
    for _ in 0..len / MIB {
        for byte in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        file.write_all(&block).unwrap();
    }
}

fn ratio(offload: f64, other: f64) -> String {
    format!("{:.0}%", 100.0 * offload / other)
}

fn main() {
    if !select::wanted(&["stream"]) {
        return;
    }
    let server = garage();
    let sandbox = Sandbox::new();
    let (watch, _) = sandbox.home_profile(&[]);
    let film = watch.join("film.mp4");
    write_file(&film, FILE_MIB * MIB);
    sandbox.upload("Home", &film);
    let output = add_s3_backend(&sandbox, &server, &server.secret_access_key, &[]);
    assert!(output.status.success(), "{output:?}");
    let clip = sandbox.path("clip.mp4");
    std::fs::write(&clip, vec![7u8; 1024]).unwrap();
    sandbox.upload("Home", &clip);
    let media = sandbox.media();
    let id_of = |name: &str| {
        media
            .iter()
            .find(|entry| entry["storage_path"] == name)
            .and_then(|entry| entry["item"]["id"].as_i64())
            .unwrap()
    };
    let local_url = sandbox.ok(&["media", "url", &id_of("film.mp4").to_string()]);
    let s3_url = sandbox.ok(&["media", "url", &id_of("clip.mp4").to_string()]);
    let (local_url, s3_url) = (local_url.trim(), s3_url.trim());

    let daemon = sandbox.daemon(&[]);
    let presigned = fetch(s3_url, "GET", &[]);
    assert_eq!(presigned.status, 302);
    let location = presigned.header("location").unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let Some(nginx) = nginx(dir.path(), &film, &location) else {
        eprintln!("nginx is missing: install the Debian package nginx-light");
        return;
    };
    let nginx_base = format!("http://127.0.0.1:{}", nginx.port);
    let ranges = dir.path().join("ranges.lua");
    std::fs::write(
        &ranges,
        format!(
            "math.randomseed(42)\nrequest = function()\n  local first = math.random(0, {}) * {MIB}\n  \
             return wrk.format(nil, nil, {{ Range = \"bytes=\" .. first .. \"-\" .. (first + {}) }})\nend\n",
            FILE_MIB - 1,
            MIB - 1
        ),
    )
    .unwrap();

    let redirect_offload = median(s3_url, 64, None);
    let redirect_nginx = median(&format!("{nginx_base}/redirect"), 64, None);
    let file_offload = median(local_url, 16, Some(&ranges));
    let file_nginx = median(&format!("{nginx_base}/film.mp4"), 16, Some(&ranges));
    daemon.stop();

    println!(
        "\nstream server vs nginx ({RUNS} runs of {SECONDS} s each, median; wrk with 2 threads)"
    );
    println!(
        "{:<44} {:>12} {:>10} {:>10}",
        "", "requests/s", "p99 ms", "MiB/s"
    );
    let rows = [
        (
            "302 redirect, 64 conns: Offload (S3 presign)",
            redirect_offload,
        ),
        ("302 redirect, 64 conns: nginx return 302", redirect_nginx),
        ("1 MiB Range reads, 16 conns: Offload", file_offload),
        ("1 MiB Range reads, 16 conns: nginx", file_nginx),
    ];
    for (name, measure) in rows {
        match measure {
            Some(m) => println!(
                "{name:<44} {:>12.0} {:>10.2} {:>10.0}",
                m.requests_per_second, m.p99_ms, m.mib_per_second
            ),
            None => println!("{name:<44} {:>12}", "failed"),
        }
    }
    if let (Some(offload), Some(nginx)) = (redirect_offload, redirect_nginx) {
        println!(
            "redirects: Offload does {} of nginx's requests/s; p99 {:.2} ms vs {:.2} ms",
            ratio(offload.requests_per_second, nginx.requests_per_second),
            offload.p99_ms,
            nginx.p99_ms
        );
    }
    if let (Some(offload), Some(nginx)) = (file_offload, file_nginx) {
        println!(
            "local file Range reads: Offload moves {} of nginx's MiB/s",
            ratio(offload.mib_per_second, nginx.mib_per_second)
        );
    }
}
