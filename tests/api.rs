//! The local HTTP API of a running daemon, as a script or an app uses it: every route with the
//! key, without it, with a wrong one, from a web page (`Origin`) and by another name (`Host`);
//! backends added, tested and removed; files handed over and followed through the event stream
//! from queued to done; a job paused, resumed, cancelled and retried; an account signed in
//! through the connect and callback routes; and the OpenAPI document, checked by a validator
//! from PyPI, listing every route.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;

use common::s3::{fetch, fetch_with_body, Answer};
use common::{wait_for, write_random, Sandbox};
use serde_json::{json, Value};

struct Api {
    base: String,
    key: String,
}

impl Api {
    fn of(sandbox: &Sandbox) -> Api {
        Api {
            base: format!("http://127.0.0.1:{}", sandbox.stream_port),
            key: sandbox.ok(&["api", "key"]).trim().to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let body = body.map(Value::to_string).unwrap_or_default();
        fetch_with_body(&self.url(path), method, headers, body.as_bytes())
    }

    /// With the key: the status and the JSON answer.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let auth = format!("Bearer {}", self.key);
        let answer = self.raw(method, path, &[("Authorization", &auth)], body);
        let value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        (answer.status, value)
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, value) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        value
    }
}

/// Each route's pattern as the document names it, and a path that reaches it.
fn every_route(job: i64, backend: i64) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("get", "/api/openapi.json", "/api/openapi.json".into()),
        ("get", "/api/profiles", "/api/profiles".into()),
        (
            "get",
            "/api/storage/backends",
            "/api/storage/backends".into(),
        ),
        (
            "post",
            "/api/storage/backends",
            "/api/storage/backends".into(),
        ),
        (
            "get",
            "/api/storage/backends/{id}",
            format!("/api/storage/backends/{backend}"),
        ),
        (
            "delete",
            "/api/storage/backends/{id}",
            format!("/api/storage/backends/{backend}"),
        ),
        (
            "post",
            "/api/storage/backends/{id}/test",
            format!("/api/storage/backends/{backend}/test"),
        ),
        (
            "get",
            "/api/storage/connect/{provider}",
            format!("/api/storage/connect/google?backend_id={backend}"),
        ),
        (
            "get",
            "/api/storage/callback/{provider}",
            "/api/storage/callback/google?state=x&code=y".into(),
        ),
        ("get", "/api/jobs", "/api/jobs".into()),
        ("post", "/api/jobs", "/api/jobs".into()),
        ("get", "/api/jobs/{id}", format!("/api/jobs/{job}")),
        (
            "post",
            "/api/jobs/{id}/pause",
            format!("/api/jobs/{job}/pause"),
        ),
        (
            "post",
            "/api/jobs/{id}/resume",
            format!("/api/jobs/{job}/resume"),
        ),
        (
            "post",
            "/api/jobs/{id}/retry",
            format!("/api/jobs/{job}/retry"),
        ),
        (
            "post",
            "/api/jobs/{id}/cancel",
            format!("/api/jobs/{job}/cancel"),
        ),
        ("get", "/api/library", "/api/library".into()),
        ("get", "/api/held", "/api/held".into()),
        ("get", "/api/events", "/api/events".into()),
    ]
}

/// The document validates (`openapi-spec-validator`, the venv's) and lists exactly the routes
/// this test reaches; each route refuses a missing or wrong key (but the document and the
/// browser's callback), any `Origin`, and a `Host` that is not this machine's.
#[test]
fn every_route_needs_the_key_and_refuses_web_pages() {
    let sandbox = Sandbox::new();
    sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);
    let api = Api::of(&sandbox);

    let document = api.ok("GET", "/api/openapi.json", None);
    let routes = every_route(1, 1);
    let mut listed: Vec<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    listed.sort();
    let mut reached: Vec<(String, String)> = routes
        .iter()
        .map(|(method, pattern, _)| (method.to_string(), pattern.to_string()))
        .collect();
    reached.sort();
    assert_eq!(listed, reached);
    let python = std::env::var("OFFLOAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut validator = std::process::Command::new(python)
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python with openapi-spec-validator (scripts/test installs it)");
    validator
        .stdin
        .take()
        .unwrap()
        .write_all(document.to_string().as_bytes())
        .unwrap();
    let output = validator.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let open = ["/api/openapi.json", "/api/storage/callback/{provider}"];
    for (method, pattern, path) in &routes {
        let method = method.to_ascii_uppercase();
        if !open.contains(pattern) {
            for headers in [vec![], vec![("Authorization", "Bearer not-the-key")]] {
                let answer = api.raw(&method, path, &headers, None);
                assert_eq!(answer.status, 401, "{method} {path}");
                let error: Value = serde_json::from_slice(&answer.body).unwrap();
                assert_eq!(error["code"], "unauthorized", "{method} {path}");
                assert!(error["message"]
                    .as_str()
                    .unwrap()
                    .contains("offload api key"));
            }
        }
        let auth = format!("Bearer {}", api.key);
        let page = api.raw(
            &method,
            path,
            &[("Authorization", &auth), ("Origin", "https://evil.example")],
            None,
        );
        assert_eq!(page.status, 403, "{method} {path}");
        assert!(page.header("access-control-allow-origin").is_none());
        let rebound = api.raw(
            &method,
            path,
            &[("Authorization", &auth), ("Host", "evil.example")],
            None,
        );
        assert_eq!(rebound.status, 421, "{method} {path}");
    }

    // A rotated key: the old one stops working at once.
    let old = api.key.clone();
    let rotated = sandbox.ok(&["api", "key", "--rotate"]).trim().to_owned();
    assert_ne!(rotated, old);
    assert_eq!(api.call("GET", "/api/profiles", None).0, 401);
    let api = Api {
        key: rotated,
        ..api
    };
    assert_eq!(api.ok("GET", "/api/profiles", None)[0]["name"], "Home");
    daemon.stop();
}

/// Reads `/api/events` on a thread of its own, sending each event's type and data on.
fn follow_events(api: &Api) -> mpsc::Receiver<(String, Value)> {
    let mut stream = TcpStream::connect(api.base.trim_start_matches("http://")).unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        api.base.trim_start_matches("http://"),
        api.key
    )
    .unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kind = String::new();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let line = line.trim_end_matches('\r');
            if let Some(name) = line.strip_prefix("event: ") {
                kind = name.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let value = serde_json::from_str(data).unwrap_or(Value::Null);
                if send.send((kind.clone(), value)).is_err() {
                    return;
                }
            }
        }
    });
    receive
}

/// Files handed over through the API are followed through the event stream from queued to
/// done; the library then lists them; a running job pauses, resumes, cancels and is retried.
#[test]
fn jobs_added_through_the_api_are_followed_to_done_in_the_event_stream() {
    let sandbox = Sandbox::new();
    let (_, library) = sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);
    let api = Api::of(&sandbox);
    let events = follow_events(&api);
    wait_for("the event stream to open", || {
        daemon.log().contains("/api/events")
    });

    let film = sandbox.path("complete/Film.mkv");
    let bytes = write_random(&film, 300_000);
    let handed = api.ok("POST", "/api/jobs", Some(&json!({ "files": [film] })));
    assert_eq!(handed[0]["outcome"], "queued", "{handed}");
    let job = handed[0]["job"].as_i64().unwrap();
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("done") {
        let (kind, data) = events
            .recv_timeout(common::PATIENCE)
            .expect("the job's events");
        if data["job_id"] == job {
            states.push(match kind.as_str() {
                "state" => data["state"].as_str().unwrap().to_owned(),
                other => other.to_owned(),
            });
        }
    }
    states.dedup();
    assert!(
        states.first().map(String::as_str) == Some("queued")
            && states.contains(&"running".to_owned()),
        "{states:?}"
    );
    assert_eq!(std::fs::read(library.join("Film.mkv")).unwrap(), bytes);
    let listed = api.ok("GET", "/api/library", None);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        api.ok("GET", &format!("/api/jobs/{job}"), None)["state"],
        "done"
    );
    assert_eq!(api.ok("GET", "/api/held", None)["jobs"], 0);
    let done = api.ok("GET", "/api/jobs?state=done", None);
    assert_eq!(done.as_array().unwrap().len(), 1, "{done}");
    assert_eq!(api.ok("GET", "/api/jobs?state=failed", None), json!([]));

    // A slow upload to steer: paused, resumed, cancelled, retried, done.
    sandbox.ok(&["limit", "1M"]);
    let slow = sandbox.path("complete/Slow.mkv");
    write_random(&slow, 8 * 1024 * 1024);
    let job = api.ok("POST", "/api/jobs", Some(&json!({ "files": [slow] })))[0]["job"]
        .as_i64()
        .unwrap();
    let state = || api.ok("GET", &format!("/api/jobs/{job}"), None)["state"].clone();
    wait_for("the slow upload to run", || state() == "running");
    assert_eq!(
        api.ok("POST", &format!("/api/jobs/{job}/pause"), None)["state"],
        "paused"
    );
    let resumed = api.ok("POST", &format!("/api/jobs/{job}/resume"), None)["state"].clone();
    assert!(resumed == "queued" || resumed == "running", "{resumed}");
    assert_eq!(
        api.ok("POST", &format!("/api/jobs/{job}/cancel"), None)["state"],
        "cancelled"
    );
    wait_for("the cancel to settle", || state() == "cancelled");
    sandbox.ok(&["limit", "0"]);
    api.ok("POST", &format!("/api/jobs/{job}/retry"), None);
    wait_for("the retried upload", || state() == "done");
    let (status, error) = api.call("POST", "/api/jobs/999/pause", None);
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));
    let (status, error) = api.call("POST", "/api/jobs", Some(&json!({ "files": "not a list" })));
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid")));
    common::assert_sentence(error["message"].as_str().unwrap());
    daemon.stop();
}

/// A backend added, read, tested and removed through the API; one that fails its test is not
/// saved and the answer says why.
#[test]
fn backends_are_added_tested_and_removed_through_the_api() {
    let sandbox = Sandbox::new();
    sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);
    let api = Api::of(&sandbox);
    let profile = api.ok("GET", "/api/profiles", None)[0]["id"]
        .as_i64()
        .unwrap();
    let folder = sandbox.path("nas");
    std::fs::create_dir_all(&folder).unwrap();
    let (status, saved) = api.call(
        "POST",
        "/api/storage/backends",
        Some(&json!({ "profile_id": profile, "name": "NAS", "kind": "local", "path": folder })),
    );
    assert_eq!(status, 201, "{saved}");
    let id = saved["backend"]["id"].as_i64().unwrap();
    assert_eq!(
        api.ok("GET", &format!("/api/storage/backends/{id}"), None)["name"],
        "NAS"
    );
    let report = api.ok("POST", &format!("/api/storage/backends/{id}/test"), None);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|check| check["ok"] == true),
        "{report}"
    );
    let names: Vec<Value> = api
        .ok(
            "GET",
            &format!("/api/storage/backends?profile_id={profile}"),
            None,
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|backend| backend["name"].clone())
        .collect();
    assert!(names.contains(&json!("NAS")), "{names:?}");
    api.ok("DELETE", &format!("/api/storage/backends/{id}"), None);
    let (status, error) = api.call("GET", &format!("/api/storage/backends/{id}"), None);
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("not_found")),
        "{error}"
    );

    let (status, refused) = api.call(
        "POST",
        "/api/storage/backends",
        Some(&json!({
            "profile_id": profile, "name": "Bucket", "kind": "s3", "provider": "minio",
            "endpoint": format!("http://127.0.0.1:{}", common::s3::free_port()), "bucket": "media",
            "access_key_id": "AKIA", "secret_access_key": "secret", "path_style": true,
        })),
    );
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "test_failed");
    assert!(refused["details"]["checks"].is_array(), "{refused}");
    let names = api.ok("GET", "/api/storage/backends", None).to_string();
    assert!(!names.contains("Bucket"), "nothing was saved: {names}");
    daemon.stop();
}

/// A Google Drive backend signed in through the API: connect gives the address to open, the
/// browser consents at the fake and comes back to the callback route, and the account is
/// connected; a callback with a state nobody began is refused.
#[test]
fn an_account_is_signed_in_through_the_connect_and_callback_routes() {
    let fake = common::oauth_fake::FakeIdentity::start();
    let sandbox = Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    common::cloud::add_cloud_backend(&sandbox, &fake.backend_args(), "google-drive", None);
    let daemon = sandbox.daemon(&[]);
    let api = Api::of(&sandbox);
    let backend = api.ok("GET", "/api/storage/backends", None)[0].clone();
    assert_eq!(backend["status"], "not-signed-in", "{backend}");
    let id = backend["id"].as_i64().unwrap();

    let (status, error) = api.call(
        "GET",
        &format!("/api/storage/connect/microsoft?backend_id={id}"),
        None,
    );
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid")),
        "{error}"
    );
    let started = api.ok(
        "GET",
        &format!("/api/storage/connect/google?backend_id={id}"),
        None,
    );
    let back = common::cloud::consent(started["url"].as_str().unwrap());
    assert!(
        back.starts_with(&api.url("/api/storage/callback/google?")),
        "{back}"
    );
    let page = fetch(&back, "GET", &[]);
    let said = String::from_utf8_lossy(&page.body);
    assert_eq!(page.status, 200, "{said}");
    assert!(said.contains("connected"), "{said}");
    assert!(!said.contains("code="), "{said}");
    assert_eq!(
        api.ok("GET", &format!("/api/storage/backends/{id}"), None)["status"],
        "connected"
    );

    let forged = fetch(
        &api.url("/api/storage/callback/google?state=forged&code=x"),
        "GET",
        &[],
    );
    assert_eq!(
        forged.status,
        400,
        "{}",
        String::from_utf8_lossy(&forged.body)
    );
    daemon.stop();
}
