//! Real S3 servers for the tests, started on loopback in a temporary folder and stopped when
//! dropped: Garage (a production S3 server that checks SigV4 signatures) and moto's server
//! (an independent implementation, so one server's leniencies do not hide a bug).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use offload::storage::s3::{Provider, S3Backend, S3Config, S3Options};
use zeroize::Zeroizing;

pub struct S3Server {
    pub name: &'static str,
    pub provider: Provider,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Garage's own command line (binary, config file), for changing keys while it runs.
    garage_cli: Option<(PathBuf, PathBuf)>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    pub fn config(&self) -> S3Config {
        self.config_for(&self.endpoint)
    }

    /// The same bucket reached through another address (a fault-injecting proxy).
    pub fn config_for(&self, endpoint: &str) -> S3Config {
        let mut config = S3Config::new(S3Options {
            provider: self.provider,
            endpoint: Some(endpoint.to_owned()),
            region: Some(self.region.clone()),
            bucket: self.bucket.clone(),
            access_key_id: self.access_key_id.clone(),
            path_style: true,
            ..S3Options::default()
        })
        .expect("valid config");
        config.secret_access_key = String::new();
        config
    }

    /// A plain SDK client of this server, standing for another tool writing to the bucket.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn backend(&self) -> S3Backend {
        S3Backend::new(
            &self.config(),
            &Zeroizing::new(self.secret_access_key.clone()),
        )
    }

    pub fn backend_with(&self, config: &S3Config) -> S3Backend {
        S3Backend::new(config, &Zeroizing::new(self.secret_access_key.clone()))
    }

    /// Replaces the bucket's key, as a person rotating credentials does: a new key may read and
    /// write the bucket, and the old one is deleted. Garage only.
    pub fn rotate_key(&mut self) {
        let (id, secret) = self.new_key(&format!("rotated-{}", rand::random::<u32>()));
        run(self
            .garage()
            .args(["key", "delete", "--yes", &self.access_key_id]));
        self.access_key_id = id;
        self.secret_access_key = secret;
    }

    /// Garage's command line, on this server. Garage only.
    fn garage(&self) -> Command {
        let (binary, config) = self.garage_cli.as_ref().expect("a Garage server");
        let mut command = Command::new(binary);
        command
            .args(["-c", config.to_str().expect("utf-8")])
            .env("RUST_LOG", "warn");
        command
    }

    /// A new key `name` that may read and write the bucket: its id and secret. Garage only.
    fn new_key(&self, name: &str) -> (String, String) {
        let key = run(self.garage().args(["key", "create", name]));
        run(self.garage().args([
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &self.bucket,
            "--key",
            name,
        ]));
        key_fields(&key)
    }

    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("port")
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The `garage` binary: on PATH, or where `cargo install` puts it.
fn garage_binary() -> PathBuf {
    if let Ok(path) = std::env::var("OFFLOAD_TEST_GARAGE") {
        return PathBuf::from(path);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let installed = home.join("bin/garage");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("garage")
}

fn run(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("run a server tool");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a single-node Garage with a key and a bucket made by Garage's own CLI.
pub fn garage() -> S3Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let (rpc, s3) = (free_port(), free_port());
    let secret: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let config = dir.path().join("garage.toml");
    std::fs::write(
        &config,
        format!(
            "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
        ),
    )
    .expect("write garage.toml");
    let binary = garage_binary();
    let log = std::fs::File::create(dir.path().join("garage.log")).expect("log");
    let child = Command::new(&binary)
        .args(["-c", config.to_str().expect("utf-8"), "server"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {} ({error}); scripts/test installs it with `cargo install garage --locked`", binary.display()));
    let mut server = S3Server {
        name: "garage",
        provider: Provider::Garage,
        endpoint: format!("http://127.0.0.1:{s3}"),
        region: "garage".into(),
        bucket: "offload-test".into(),
        access_key_id: String::new(),
        secret_access_key: String::new(),
        garage_cli: Some((binary, config)),
        child,
        _dir: dir,
    };
    let cli = || server.garage();
    wait_until("garage to answer", || {
        cli()
            .arg("status")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|out| out.status.success())
    });
    let node = run(cli().args(["node", "id", "-q"]));
    let node = node.trim().split('@').next().expect("node id").to_owned();
    run(cli().args(["layout", "assign", "-z", "dc1", "-c", "1G", &node]));
    run(cli().args(["layout", "apply", "--version", "1"]));
    run(cli().args(["bucket", "create", &server.bucket]));
    (server.access_key_id, server.secret_access_key) = server.new_key("offload-test-key");
    wait_for_bucket(&server);
    server
}

/// The key id and secret in `garage key create`'s output.
fn key_fields(key: &str) -> (String, String) {
    let field = |label: &str| {
        key.lines()
            .find_map(|line| {
                line.trim()
                    .strip_prefix(label)
                    .map(|rest| rest.trim_start_matches(':').trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {label} in `garage key create` output:\n{key}"))
    };
    (field("Key ID"), field("Secret key"))
}

/// Starts moto's S3 server (`pip install moto[server]`) and creates the bucket.
pub fn moto() -> S3Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("moto.log")).expect("log");
    let python = std::env::var("OFFLOAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let child = Command::new(&python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot start moto ({error}); scripts/test installs it with pip")
        });
    let server = S3Server {
        name: "moto",
        provider: Provider::Other,
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        bucket: "offload-test".into(),
        access_key_id: "AKIAOFFLOADTEST".into(),
        secret_access_key: "moto-does-not-check-this".into(),
        garage_cli: None,
        child,
        _dir: dir,
    };
    wait_until("moto to answer", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // moto does not check signatures, so the bucket can be made with a bare request.
    let (status, _) = http(
        &format!("{}/{}", server.endpoint, server.bucket),
        "PUT",
        &[],
    );
    assert_eq!(status, 200, "creating the moto bucket");
    server
}

fn wait_for_bucket(server: &S3Server) {
    let backend = server.backend();
    // Its own thread and runtime: the caller may be inside a tokio test already.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        wait_until("the bucket to be usable", || {
            runtime.block_on(async {
                offload::storage::StorageBackend::test_connection(&backend)
                    .await
                    .is_ok()
            })
        });
    })
    .join()
    .expect("waiting for the bucket");
}

/// An HTTP answer: status, headers (names in lower case) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A minimal HTTP/1.1 client for `http://` URLs: status and body. Enough for presigned URLs.
pub fn http(url: &str, method: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let answer = fetch(url, method, headers);
    (answer.status, answer.body)
}

/// A GET that must be answered with a redirect (`302`); the answer, for its `Location`.
pub fn redirected(url: &str) -> Answer {
    let answer = fetch(url, "GET", &[]);
    assert_eq!(
        answer.status,
        302,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    answer
}

/// One request, redirects not followed. A `Host` in `headers` replaces the one from the URL.
pub fn fetch(url: &str, method: &str, headers: &[(&str, &str)]) -> Answer {
    fetch_with_body(url, method, headers, b"")
}

/// [`fetch`], sending `body`.
pub fn fetch_with_body(url: &str, method: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = TcpStream::connect(host).expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: {host}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    stream.write_all(body).expect("send the body");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let mut answer_headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            answer_headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut answer = Answer {
        status,
        headers: answer_headers,
        body: Vec::new(),
    };
    let length = answer
        .header("content-length")
        .and_then(|value| value.parse::<usize>().ok());
    let chunked = answer
        .header("transfer-encoding")
        .is_some_and(|value| value.contains("chunked"));
    let mut body = Vec::new();
    if method == "HEAD" || status == 304 {
        // No body, whatever Content-Length says.
    } else if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            if size == 0 {
                break;
            }
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body).expect("body");
    } else {
        reader.read_to_end(&mut body).expect("body");
    }
    answer.body = body;
    answer
}
