//! A fake Google / Microsoft identity platform that holds Offload to the rules of the documents
//! it follows:
//! - RFC 6749 §4.1 (authorization code grant): the code is bound to the client and the
//!   redirect URI, is single-use, and a second use is `invalid_grant` (§4.1.2, §10.5);
//! - RFC 7636 (PKCE): `code_challenge_method` must be `S256` and
//!   `BASE64URL(SHA256(code_verifier))` must equal the challenge, else `invalid_grant` (§4.6);
//! - Microsoft identity platform, "Refresh the access token": every refresh answers with a new
//!   refresh token and the old one stops working (rotation);
//! - RFC 6750: the user-info endpoints (Drive `about`, Graph `/me`) want a current bearer token.
//!
//! Tokens have recognisable prefixes so tests can look for them in files and logs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "offload-test-client";
pub const ACCOUNT: &str = "ada@example.com";

#[derive(Default)]
struct Rules {
    drive: Drive,
    graph: Graph,
    codes: HashMap<String, Code>,
    /// The one refresh token that works now (rotation retires the one before it).
    refresh_tokens: HashMap<String, bool>,
    access_tokens: HashMap<String, Instant>,
    access_lifetime: Option<Duration>,
    client_secret: Option<String>,
    counter: u64,
    /// Every token request, as `grant_type` names.
    grants: Vec<String>,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    used: bool,
}

#[derive(Clone)]
pub struct FakeIdentity {
    rules: Arc<Mutex<Rules>>,
    pub base: String,
}

impl FakeIdentity {
    /// Starts the fake on a free loopback port, on its own thread and runtime.
    pub fn start() -> FakeIdentity {
        let rules = Arc::new(Mutex::new(Rules {
            access_lifetime: Some(Duration::from_secs(3600)),
            ..Rules::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/drive/v3/about", get(user))
            .route("/me", get(user))
            .route("/drive/v3/files", get(drive_list).post(drive_create))
            .route(
                "/drive/v3/files/{id}",
                get(drive_get).delete(drive_delete).patch(drive_update),
            )
            .route("/drive/v3/changes", get(drive_changes))
            .route(
                "/drive/v3/changes/startPageToken",
                get(drive_start_page_token),
            )
            .route("/upload/drive/v3/files", post(drive_start))
            .route(
                "/upload/drive/v3/files/{id}",
                axum::routing::patch(drive_start_update),
            )
            .route(
                "/upload/session/{id}",
                axum::routing::put(drive_put).delete(drive_cancel),
            )
            .route("/me/drive", get(graph_drive))
            .route(
                "/me/drive/{*rest}",
                get(graph_item)
                    .put(graph_item)
                    .post(graph_item)
                    .delete(graph_item),
            )
            .route(
                "/upload/graph/{id}",
                get(graph_session).put(graph_session).delete(graph_session),
            )
            .route("/download/{id}", get(graph_download))
            // Drive takes chunks of any size the rules allow; axum's 2 MiB default would not.
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(rules.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        FakeIdentity { rules, base }
    }

    /// The arguments `offload backend add` needs to use this fake.
    pub fn backend_args(&self) -> Vec<String> {
        endpoint_args(&self.base, CLIENT_ID)
    }

    pub fn require_client_secret(&self, secret: &str) {
        self.rules.lock().unwrap().client_secret = Some(secret.into());
    }

    pub fn set_access_lifetime(&self, lifetime: Duration) {
        self.rules.lock().unwrap().access_lifetime = Some(lifetime);
    }

    /// The user revoked Offload's access: every refresh token stops working.
    pub fn revoke_all(&self) {
        for valid in self.rules.lock().unwrap().refresh_tokens.values_mut() {
            *valid = false;
        }
    }

    pub fn grants(&self) -> Vec<String> {
        self.rules.lock().unwrap().grants.clone()
    }

    /// Whether `token` is a refresh token the fake still accepts.
    pub fn refresh_token_works(&self, token: &str) -> bool {
        self.rules
            .lock()
            .unwrap()
            .refresh_tokens
            .get(token)
            .copied()
            .unwrap_or(false)
    }
}

/// `--client-id --auth-url --token-url --api-base` for an identity platform at `base` that
/// serves `/authorize` and `/token`.
pub fn endpoint_args(base: &str, client_id: &str) -> Vec<String> {
    vec![
        "--client-id".into(),
        client_id.into(),
        "--auth-url".into(),
        format!("{base}/authorize"),
        "--token-url".into(),
        format!("{base}/token"),
        "--api-base".into(),
        base.into(),
    ]
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": error, "error_description": description }).to_string(),
    )
        .into_response()
}

/// The user consents at once: back to the redirect URI with a code, or with an error.
async fn authorize(
    State(rules): State<Arc<Mutex<Rules>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| query.get(name).cloned().unwrap_or_default();
    let redirect_uri = param("redirect_uri");
    let allowed_redirect = redirect_uri.starts_with("http://127.0.0.1:")
        || redirect_uri.starts_with("offload://oauth/");
    if param("client_id") != CLIENT_ID || !allowed_redirect {
        // RFC 6749 §4.1.2.1: never redirect to an unverified URI.
        return (StatusCode::BAD_REQUEST, "unknown client or redirect URI").into_response();
    }
    let state = param("state");
    let back = |extra: String| {
        (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                format!("{redirect_uri}?{extra}&state={}", encode(&state)),
            )],
        )
            .into_response()
    };
    if param("response_type") != "code"
        || param("code_challenge_method") != "S256"
        || param("code_challenge").len() != 43
    {
        return back("error=invalid_request&error_description=PKCE%20S256%20is%20required".into());
    }
    let mut rules = rules.lock().unwrap();
    rules.counter += 1;
    let code = format!("fake-code-{}", rules.counter);
    rules.codes.insert(
        code.clone(),
        Code {
            client_id: param("client_id"),
            redirect_uri: redirect_uri.clone(),
            challenge: param("code_challenge"),
            used: false,
        },
    );
    back(format!("code={code}"))
}

async fn token(State(rules): State<Arc<Mutex<Rules>>>, body: String) -> Response {
    let form: HashMap<String, String> = reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let param = |name: &str| form.get(name).cloned().unwrap_or_default();
    let mut rules = rules.lock().unwrap();
    let grant = param("grant_type");
    rules.grants.push(grant.clone());
    if param("client_id") != CLIENT_ID {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    if let Some(secret) = &rules.client_secret {
        if &param("client_secret") != secret {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "wrong client secret",
            );
        }
    }
    match grant.as_str() {
        "authorization_code" => {
            let Some(code) = rules.codes.get_mut(&param("code")) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown code");
            };
            if code.used {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the code was already used",
                );
            }
            code.used = true;
            if code.redirect_uri != param("redirect_uri") || code.client_id != param("client_id") {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "redirect_uri mismatch",
                );
            }
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(param("code_verifier").as_bytes()));
            if computed != code.challenge {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "PKCE verification failed",
                );
            }
        }
        "refresh_token" => {
            let token = param("refresh_token");
            if rules.refresh_tokens.get(&token) != Some(&true) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "AADSTS70008: The refresh token has expired or is invalid",
                );
            }
            // Rotation: the old refresh token is retired by this use.
            rules.refresh_tokens.insert(token, false);
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "no"),
    }
    rules.counter += 1;
    let access = format!("fake-access-{}", rules.counter);
    let refresh = format!("fake-refresh-{}", rules.counter);
    let lifetime = rules.access_lifetime.unwrap_or(Duration::from_secs(3600));
    rules
        .access_tokens
        .insert(access.clone(), Instant::now() + lifetime);
    rules.refresh_tokens.insert(refresh.clone(), true);
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
            "refresh_token": refresh,
            "scope": "https://www.googleapis.com/auth/drive.file",
        })
        .to_string(),
    )
        .into_response()
}

/// Whether the request carries a current access token (RFC 6750).
fn authorized(rules: &Rules, headers: &HeaderMap) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    rules
        .access_tokens
        .get(token)
        .is_some_and(|until| Instant::now() < *until)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","errors":[{"reason":"authError"}]}}"#,
    )
        .into_response()
}

async fn user(State(rules): State<Arc<Mutex<Rules>>>, headers: HeaderMap) -> Response {
    if !authorized(&rules.lock().unwrap(), &headers) {
        return unauthorized();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({
            "user": { "emailAddress": ACCOUNT, "displayName": "Ada" },
            "userPrincipalName": ACCOUNT,
        })
        .to_string(),
    )
        .into_response()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

// ---- Google Drive v3 -------------------------------------------------------------------------
// Rules from "Upload file data" (resumable uploads) and the Files reference:
// - a session is opened with `uploadType=resumable` and `X-Upload-Content-Length`; its URI comes
//   back in `Location` and takes PUTs without further setup;
// - every chunk but the last is a multiple of 256 KiB, and starts where the held bytes end;
// - `308 Resume Incomplete` carries `Range: bytes=0-N` (none when nothing is held), and may hold
//   fewer bytes than were sent, which the client must send again;
// - `Content-Range: bytes */size` with no body asks where the session stands;
// - an expired session answers `404`; a finished upload `200` with the file resource, to the
//   last chunk and to any later request to its session ("the upload was completed");
// - API calls need a current bearer token (`401` otherwise);
// - `changes.getStartPageToken` and `changes.list` ("Retrieve changes"): each change names a
//   file by `fileId` with its current resource, or `removed: true` once it is gone; pages end
//   with `nextPageToken`, the last with `newStartPageToken`; under `drive.file` only changes to
//   files the app can see are listed.

const CHUNK_MULTIPLE: usize = 256 * 1024;
const FOLDER_MIME: &str = "application/vnd.google-apps.folder";

#[derive(Default)]
struct Drive {
    files: HashMap<String, DriveFile>,
    /// Every change, oldest first: the file's id, and whether this app could see it then.
    changes: Vec<(String, bool)>,
    /// Requests for a folder's children (listings), as opposed to finding one name.
    listings: u64,
    sessions: HashMap<String, Session>,
    /// Sessions that completed, and the file each made: asked again, they answer with it.
    finished: HashMap<String, String>,
    counter: u64,
    /// Bytes accepted into sessions, over all chunk requests.
    received: u64,
    /// Fault injection for the next chunk requests.
    fail_chunks: u32,
    short_chunks: u32,
    rate_limit_chunks: u32,
    /// When each chunk request arrived, and whether it was told to slow down.
    chunk_arrivals: Vec<(std::time::Instant, bool)>,
}

impl Drive {
    /// Keeps `file` under `id` (or forgets it, with `None`), as a change in the feed.
    fn set(&mut self, id: String, file: Option<DriveFile>) {
        let visible = match &file {
            Some(file) => file.by_this_app,
            None => self.files.get(&id).is_some_and(|file| file.by_this_app),
        };
        self.changes.push((id.clone(), visible));
        match file {
            Some(file) => self.files.insert(id, file),
            None => self.files.remove(&id),
        };
    }

    /// The id of the file or folder at `path` (by names from the root).
    fn id_of(&self, path: &str) -> Option<String> {
        let mut parent = "root".to_owned();
        for segment in path.split('/') {
            let (id, _) = self
                .files
                .iter()
                .find(|(_, file)| file.name == segment && file.parents.contains(&parent))?;
            parent = id.clone();
        }
        Some(parent)
    }
}

struct DriveFile {
    name: String,
    parents: Vec<String>,
    mime: String,
    content: Vec<u8>,
    /// `md5Checksum`, kept as Drive keeps it rather than worked out at every answer.
    md5: String,
    /// Created through this OAuth client. Under the `drive.file` scope (the only one this fake
    /// grants) Drive shows an app only such files: the others are absent from every answer.
    by_this_app: bool,
    /// `appProperties`: set by `files.update`, kept when the content is replaced.
    app_properties: serde_json::Map<String, serde_json::Value>,
}

struct Session {
    update: Option<String>,
    name: String,
    parents: Vec<String>,
    total: usize,
    held: Vec<u8>,
    md5: RunningMd5,
    expired: bool,
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(bytes))
}

/// The MD5 of a session's bytes, worked out on a thread of its own as the chunks arrive: Drive
/// answers the last chunk with the file's `md5Checksum` at once, and hashing a large file only
/// then would time the fake instead of the client.
struct RunningMd5 {
    chunks: std::sync::mpsc::Sender<axum::body::Bytes>,
    hasher: std::thread::JoinHandle<String>,
}

impl RunningMd5 {
    fn start() -> RunningMd5 {
        let (chunks, arriving) = std::sync::mpsc::channel::<axum::body::Bytes>();
        let hasher = std::thread::spawn(move || {
            use md5::Digest as _;
            let mut md5 = md5::Md5::new();
            for chunk in arriving {
                md5.update(&chunk);
            }
            hex::encode(md5.finalize())
        });
        RunningMd5 { chunks, hasher }
    }

    fn add(&self, chunk: axum::body::Bytes) {
        let _ = self.chunks.send(chunk);
    }

    fn finish(self) -> String {
        drop(self.chunks);
        self.hasher.join().unwrap()
    }
}

impl FakeIdentity {
    /// Bytes the fake Drive accepted into upload sessions so far.
    pub fn drive_received(&self) -> u64 {
        self.rules.lock().unwrap().drive.received
    }

    /// The next `count` chunk requests fail with `503` and `Retry-After: 1`.
    pub fn fail_next_chunks(&self, count: u32) {
        self.rules.lock().unwrap().drive.fail_chunks = count;
    }

    /// The next `count` chunk requests keep only their first 256 KiB.
    pub fn shorten_next_chunks(&self, count: u32) {
        self.rules.lock().unwrap().drive.short_chunks = count;
    }

    /// The next `count` chunk requests get `403 userRateLimitExceeded`.
    pub fn rate_limit_next_chunks(&self, count: u32) {
        self.rules.lock().unwrap().drive.rate_limit_chunks = count;
    }

    /// When each chunk request arrived, and whether it was told to slow down.
    pub fn drive_chunk_arrivals(&self) -> Vec<(std::time::Instant, bool)> {
        self.rules.lock().unwrap().drive.chunk_arrivals.clone()
    }

    /// Every upload session expires.
    pub fn expire_sessions(&self) {
        for session in self.rules.lock().unwrap().drive.sessions.values_mut() {
            session.expired = true;
        }
    }

    /// Every access token stops working (refresh tokens still do).
    pub fn expire_access_tokens(&self) {
        self.rules.lock().unwrap().access_tokens.clear();
    }

    /// A file another app (the Drive website, rclone) put in the folder `parent` (an id; "root"):
    /// there, but not visible to Offload under `drive.file`.
    fn put_drive_file_by_another_app(&self, parent: &str, name: &str, content: &[u8]) {
        let mut rules = self.rules.lock().unwrap();
        rules.drive.counter += 1;
        let id = format!("other{}", rules.drive.counter);
        rules.drive.set(
            id,
            Some(DriveFile {
                name: name.into(),
                parents: vec![parent.into()],
                mime: "video/x-matroska".into(),
                content: content.to_vec(),
                md5: md5_hex(content),
                by_this_app: false,
                app_properties: Default::default(),
            }),
        );
    }

    /// How many Drive folders are called `name` (Drive lets any number of them sit side by side).
    pub fn drive_folders_named(&self, name: &str) -> usize {
        let rules = self.rules.lock().unwrap();
        rules
            .drive
            .files
            .values()
            .filter(|file| file.name == name && file.mime == "application/vnd.google-apps.folder")
            .count()
    }

    /// The content of the Drive file at `path` (folders by name from the root).
    pub fn drive_file(&self, path: &str) -> Option<Vec<u8>> {
        let rules = self.rules.lock().unwrap();
        let id = rules.drive.id_of(path)?;
        Some(rules.drive.files[&id].content.clone())
    }
}

fn drive_resource(id: &str, file: &DriveFile) -> serde_json::Value {
    let mut resource = serde_json::json!({
        "kind": "drive#file",
        "id": id,
        "name": file.name,
        "mimeType": file.mime,
        "modifiedTime": "2026-11-28T10:00:00.000Z",
        "parents": file.parents,
        "trashed": false,
    });
    if !file.app_properties.is_empty() {
        resource["appProperties"] = file.app_properties.clone().into();
    }
    if file.mime != FOLDER_MIME {
        resource["size"] = file.content.len().to_string().into();
        resource["md5Checksum"] = file.md5.clone().into();
    }
    resource
}

fn drive_error(status: StatusCode, reason: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": { "code": status.as_u16(), "message": message,
            "errors": [{ "reason": reason, "message": message }] } })
        .to_string(),
    )
        .into_response()
}

fn json(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// `files.list` with the two query forms Offload sends: a name in a folder, and a folder's
/// children a page at a time (`pageSize`, at most 1,000; `pageToken` from `nextPageToken`).
async fn drive_list(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut rules = rules.lock().unwrap();
    if !authorized(&rules, &headers) {
        return unauthorized();
    }
    let q = query.get("q").cloned().unwrap_or_default();
    let quoted = r"'((?:[^'\\]|\\.)*)'";
    let by_name = regex::Regex::new(&format!(
        r"^name = {quoted} and {quoted} in parents and trashed = false$"
    ))
    .unwrap();
    let children =
        regex::Regex::new(&format!(r"^{quoted} in parents and trashed = false$")).unwrap();
    let unescape = |text: &str| text.replace("\\'", "'").replace("\\\\", "\\");
    let (name, parent) = if let Some(found) = by_name.captures(&q) {
        (Some(unescape(&found[1])), unescape(&found[2]))
    } else if let Some(found) = children.captures(&q) {
        rules.drive.listings += 1;
        (None, unescape(&found[1]))
    } else {
        return drive_error(StatusCode::BAD_REQUEST, "invalidQuery", "Invalid Value");
    };
    let page_size = match query.get("pageSize").map(|size| size.parse::<usize>()) {
        None => 100,
        Some(Ok(size)) if (1..=1000).contains(&size) => size,
        Some(_) => return drive_error(StatusCode::BAD_REQUEST, "invalid", "Invalid pageSize"),
    };
    let start = match query.get("pageToken").map(|token| token.parse::<usize>()) {
        None => 0,
        Some(Ok(start)) => start,
        Some(Err(_)) => {
            return drive_error(StatusCode::BAD_REQUEST, "invalid", "Invalid pageToken")
        }
    };
    let mut matching: Vec<(&String, &DriveFile)> = rules
        .drive
        .files
        .iter()
        .filter(|(_, file)| {
            file.by_this_app
                && file.parents.contains(&parent)
                && name.as_ref().is_none_or(|name| file.name == *name)
        })
        .collect();
    matching.sort_by(|a, b| a.0.cmp(b.0));
    let files: Vec<serde_json::Value> = matching
        .iter()
        .skip(start)
        .take(page_size)
        .map(|(id, file)| drive_resource(id, file))
        .collect();
    let mut answer = serde_json::json!({ "files": files });
    if start + page_size < matching.len() {
        answer["nextPageToken"] = (start + page_size).to_string().into();
    }
    json(answer)
}

/// `files.create` without media: folders.
async fn drive_create(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut rules = rules.lock().unwrap();
    if !authorized(&rules, &headers) {
        return unauthorized();
    }
    let metadata: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    rules.drive.counter += 1;
    let id = format!("folder{}", rules.drive.counter);
    let file = DriveFile {
        name: metadata["name"].as_str().unwrap_or_default().to_owned(),
        parents: metadata["parents"]
            .as_array()
            .map(|parents| {
                parents
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_else(|| vec!["root".into()]),
        mime: metadata["mimeType"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_owned(),
        content: Vec::new(),
        md5: md5_hex(&[]),
        by_this_app: true,
        app_properties: Default::default(),
    };
    let resource = drive_resource(&id, &file);
    rules.drive.set(id, Some(file));
    json(resource)
}

/// `files.get`, with `alt=media` the content (with Range).
async fn drive_get(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let rules = rules.lock().unwrap();
    if !authorized(&rules, &headers) {
        return unauthorized();
    }
    // `root` is the alias of the top of My Drive, which this fake's files name as their parent.
    if id == "root" {
        return json(
            serde_json::json!({ "kind": "drive#file", "id": "root", "name": "My Drive",
                                        "mimeType": FOLDER_MIME }),
        );
    }
    let Some(file) = rules.drive.files.get(&id).filter(|file| file.by_this_app) else {
        return drive_error(
            StatusCode::NOT_FOUND,
            "notFound",
            &format!("File not found: {id}."),
        );
    };
    if query.get("alt").map(String::as_str) != Some("media") {
        return json(drive_resource(&id, file));
    }
    serve_range(&file.content, &headers)
}

/// Content with single-range support, as both Drive's and Graph's download endpoints answer.
fn serve_range(content: &[u8], headers: &HeaderMap) -> Response {
    let size = content.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("bytes="))
        .and_then(|spec| spec.split_once('-'))
        .map(
            |(start, end)| match (start.parse::<usize>(), end.parse::<usize>()) {
                (Ok(start), Ok(end)) => (start, end.min(size.saturating_sub(1))),
                (Ok(start), Err(_)) => (start, size.saturating_sub(1)),
                (Err(_), Ok(suffix)) => (size.saturating_sub(suffix), size.saturating_sub(1)),
                _ => (0, size.saturating_sub(1)),
            },
        );
    match range {
        Some((start, _)) if start >= size => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{size}"))],
        )
            .into_response(),
        Some((start, end)) => (
            StatusCode::PARTIAL_CONTENT,
            [
                (header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")),
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            ],
            content[start..=end].to_vec(),
        )
            .into_response(),
        None => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            content.to_vec(),
        )
            .into_response(),
    }
}

async fn drive_delete(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let mut rules = rules.lock().unwrap();
    if !authorized(&rules, &headers) {
        return unauthorized();
    }
    if !rules.drive.files.contains_key(&id) {
        return drive_error(StatusCode::NOT_FOUND, "notFound", "File not found.");
    }
    rules.drive.set(id, None);
    StatusCode::NO_CONTENT.into_response()
}

/// `files.update` without media: `appProperties` (a property set to null is removed), a change.
async fn drive_update(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: String,
) -> Response {
    let mut rules = rules.lock().unwrap();
    if !authorized(&rules, &headers) {
        return unauthorized();
    }
    let metadata: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let Some(mut file) = rules
        .drive
        .files
        .remove(&id)
        .filter(|file| file.by_this_app)
    else {
        return drive_error(StatusCode::NOT_FOUND, "notFound", "File not found.");
    };
    for (key, value) in metadata["appProperties"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        match value {
            serde_json::Value::Null => file.app_properties.remove(&key),
            value => file.app_properties.insert(key, value),
        };
    }
    let resource = drive_resource(&id, &file);
    rules.drive.set(id, Some(file));
    json(resource)
}

/// `changes.getStartPageToken`: a token is a position in the list of changes, from 1.
async fn drive_start_page_token(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
) -> Response {
    let rules = rules.lock().unwrap();
    if !authorized(&rules, &headers) {
        return unauthorized();
    }
    json(serde_json::json!({ "kind": "drive#startPageToken",
                             "startPageToken": (rules.drive.changes.len() + 1).to_string() }))
}

/// `changes.list` from `pageToken`, at most `pageSize` (1,000) changes a page, each file once
/// with its resource as it is now (or `removed`).
async fn drive_changes(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let rules = rules.lock().unwrap();
    if !authorized(&rules, &headers) {
        return unauthorized();
    }
    let log = &rules.drive.changes;
    let start = match query.get("pageToken").map(|token| token.parse::<usize>()) {
        Some(Ok(start)) if (1..=log.len() + 1).contains(&start) => start,
        _ => return drive_error(StatusCode::BAD_REQUEST, "invalid", "Invalid Value"),
    };
    if query.get("includeRemoved").map(String::as_str) == Some("false") {
        return drive_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "this fake always includes removals",
        );
    }
    let page_size = match query.get("pageSize").map(|size| size.parse::<usize>()) {
        None => 100,
        Some(Ok(size)) if (1..=1000).contains(&size) => size,
        Some(_) => return drive_error(StatusCode::BAD_REQUEST, "invalid", "Invalid pageSize"),
    };
    let end = (start - 1 + page_size).min(log.len());
    let mut seen = std::collections::HashSet::new();
    let mut changes = Vec::new();
    for (id, visible) in log[start - 1..end].iter().rev() {
        if !visible || !seen.insert(id) {
            continue;
        }
        let mut change = serde_json::json!({ "kind": "drive#change", "changeType": "file",
            "fileId": id, "time": "2026-11-28T10:00:00.000Z" });
        match rules.drive.files.get(id).filter(|file| file.by_this_app) {
            Some(file) => {
                change["removed"] = false.into();
                change["file"] = drive_resource(id, file);
            }
            None => change["removed"] = true.into(),
        }
        changes.push(change);
    }
    changes.reverse();
    let mut answer = serde_json::json!({ "kind": "drive#changeList", "changes": changes });
    if end < log.len() {
        answer["nextPageToken"] = (end + 1).to_string().into();
    } else {
        answer["newStartPageToken"] = (log.len() + 1).to_string().into();
    }
    json(answer)
}

fn open_session(
    rules: &mut Rules,
    base: String,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &str,
    update: Option<String>,
) -> Response {
    if !authorized(rules, headers) {
        return unauthorized();
    }
    if query.get("uploadType").map(String::as_str) != Some("resumable") {
        return drive_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "uploadType=resumable expected",
        );
    }
    let Some(total) = headers
        .get("x-upload-content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
    else {
        return drive_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "X-Upload-Content-Length missing",
        );
    };
    let metadata: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let (name, parents) = match &update {
        Some(id) => match rules.drive.files.get(id) {
            Some(file) => (file.name.clone(), file.parents.clone()),
            None => return drive_error(StatusCode::NOT_FOUND, "notFound", "File not found."),
        },
        None => (
            metadata["name"].as_str().unwrap_or("Untitled").to_owned(),
            metadata["parents"]
                .as_array()
                .map(|parents| {
                    parents
                        .iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_else(|| vec!["root".into()]),
        ),
    };
    rules.drive.counter += 1;
    let id = format!("session{}", rules.drive.counter);
    rules.drive.sessions.insert(
        id.clone(),
        Session {
            update,
            name,
            parents,
            total,
            held: Vec::with_capacity(total),
            md5: RunningMd5::start(),
            expired: false,
        },
    );
    (
        StatusCode::OK,
        [(header::LOCATION, format!("{base}/upload/session/{id}"))],
    )
        .into_response()
}

fn base_of(headers: &HeaderMap) -> String {
    format!(
        "http://{}",
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
    )
}

async fn drive_start(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    let mut rules = rules.lock().unwrap();
    open_session(&mut rules, base_of(&headers), &headers, &query, &body, None)
}

async fn drive_start_update(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    let mut rules = rules.lock().unwrap();
    open_session(
        &mut rules,
        base_of(&headers),
        &headers,
        &query,
        &body,
        Some(id),
    )
}

fn incomplete(held: usize) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if held > 0 {
        response.headers_mut().insert(
            header::RANGE,
            format!("bytes=0-{}", held - 1).parse().unwrap(),
        );
    }
    response
}

async fn drive_put(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut guard = rules.lock().unwrap();
    let rules = &mut *guard;
    if let Some(file_id) = rules.drive.finished.get(&id) {
        return match rules.drive.files.get(file_id) {
            Some(file) => json(drive_resource(file_id, file)),
            None => drive_error(StatusCode::NOT_FOUND, "notFound", "File not found."),
        };
    }
    let Some(session) = rules.drive.sessions.get_mut(&id) else {
        return drive_error(StatusCode::NOT_FOUND, "notFound", "No such upload session.");
    };
    if session.expired {
        return drive_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "The upload session has expired.",
        );
    }
    let range = headers
        .get(header::CONTENT_RANGE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(spec) = range.strip_prefix("bytes ") else {
        return drive_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "Content-Range required",
        );
    };
    let (span, total) = spec.split_once('/').unwrap_or((spec, "*"));
    if total != "*" && total.parse::<usize>().ok() != Some(session.total) {
        return drive_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "the total does not match the session",
        );
    }
    if span == "*" {
        // A status query, or the completion of an empty file.
        if !body.is_empty() {
            return drive_error(
                StatusCode::BAD_REQUEST,
                "badRequest",
                "a status query has no body",
            );
        }
        if session.held.len() < session.total {
            return incomplete(session.held.len());
        }
    } else {
        if rules.drive.fail_chunks > 0 {
            rules.drive.fail_chunks -= 1;
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "backend error",
            )
                .into_response();
        }
        let limited = rules.drive.rate_limit_chunks > 0;
        rules
            .drive
            .chunk_arrivals
            .push((std::time::Instant::now(), limited));
        if limited {
            rules.drive.rate_limit_chunks -= 1;
            return drive_error(
                StatusCode::FORBIDDEN,
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
            );
        }
        let Some((start, end)) = span
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        else {
            return drive_error(StatusCode::BAD_REQUEST, "badRequest", "bad Content-Range");
        };
        if start != session.held.len() || end < start || end - start + 1 != body.len() {
            return drive_error(
                StatusCode::BAD_REQUEST,
                "badRequest",
                &format!(
                    "the chunk {start}-{end} does not continue the {} bytes held",
                    session.held.len()
                ),
            );
        }
        let last = end + 1 == session.total;
        if !last && !body.len().is_multiple_of(CHUNK_MULTIPLE) {
            return drive_error(
                StatusCode::BAD_REQUEST,
                "badRequest",
                "chunks must be multiples of 256 KiB, except the last",
            );
        }
        let keep = if rules.drive.short_chunks > 0 && body.len() > CHUNK_MULTIPLE {
            rules.drive.short_chunks -= 1;
            CHUNK_MULTIPLE
        } else {
            body.len()
        };
        session.held.extend_from_slice(&body[..keep]);
        session.md5.add(body.slice(..keep));
        rules.drive.received += keep as u64;
        if session.held.len() < session.total {
            return incomplete(session.held.len());
        }
    }
    let Some(session) = rules.drive.sessions.remove(&id) else {
        return drive_error(StatusCode::NOT_FOUND, "notFound", "No such upload session.");
    };
    let file_id = session.update.clone().unwrap_or_else(|| {
        rules.drive.counter += 1;
        format!("file{}", rules.drive.counter)
    });
    let app_properties = rules
        .drive
        .files
        .get(&file_id)
        .map(|file| file.app_properties.clone())
        .unwrap_or_default();
    let file = DriveFile {
        name: session.name,
        parents: session.parents,
        mime: "video/x-matroska".into(),
        content: session.held,
        md5: session.md5.finish(),
        by_this_app: true,
        app_properties,
    };
    let resource = drive_resource(&file_id, &file);
    rules.drive.finished.insert(id, file_id.clone());
    rules.drive.set(file_id, Some(file));
    json(resource)
}

async fn drive_cancel(
    State(rules): State<Arc<Mutex<Rules>>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    rules.lock().unwrap().drive.sessions.remove(&id);
    // Drive answers a cancelled session with 499.
    StatusCode::from_u16(499).unwrap().into_response()
}

// ---- Microsoft Graph (OneDrive) --------------------------------------------------------------
// Rules from "Upload large files with an upload session" and the driveItem reference:
// - `POST …:/createUploadSession` answers `uploadUrl` and `nextExpectedRanges`;
// - fragments `PUT` to the `uploadUrl` must not carry `Authorization` (401 here), are multiples
//   of 320 KiB except the last, under 60 MiB, and continue where the held bytes end (else 416);
// - `202 Accepted` with `nextExpectedRanges` until the last fragment, then `201` and the item;
// - `GET` of the `uploadUrl` reports `nextExpectedRanges`; an expired session is `404`;
// - items carry `file.hashes.quickXorHash`; `@microsoft.graph.downloadUrl` needs no token;
// - `root/delta` ("driveItem: delta"): `token=latest` answers no items and a `@odata.deltaLink`;
//   a delta link's token answers each item changed since (its current state, `deleted` once
//   gone, and the folders above a changed file), in pages linked by `@odata.nextLink`, the last
//   with a new `@odata.deltaLink`; items carry `parentReference.id` and never a path; a folder
//   renamed or moved is reported alone, not its descendants; a token too old is `410 Gone`.

const FRAGMENT_MULTIPLE: usize = 320 * 1024;
const FRAGMENT_LIMIT: usize = 60 * 1024 * 1024;

#[derive(Default)]
struct Graph {
    /// Files by full path ("root/a/b.mkv" or "{folder id}/a/b.mkv").
    files: HashMap<String, (String, Vec<u8>)>,
    /// Folders' ids by full path, kept when a folder moves.
    folders: HashMap<String, String>,
    /// Items gone, by id, with the name they had.
    deleted: HashMap<String, String>,
    /// Every change, oldest first, as the id of the item that changed.
    changes: Vec<String>,
    /// Requests for a folder's children (listings).
    listings: u64,
    sessions: HashMap<String, GraphSession>,
    counter: u64,
    received: u64,
    fail_fragments: u32,
    sessions_with_auth_header: u32,
}

/// The id of the drive's root folder.
const GRAPH_ROOT_ID: &str = "root-id";

impl Graph {
    /// The id of the folder at `key` ("root" or a folder's id, then names), made when first seen.
    fn folder_id(&mut self, key: &str) -> String {
        match key.split_once('/') {
            None if key == "root" => GRAPH_ROOT_ID.to_owned(),
            None => key.to_owned(),
            Some(_) => {
                let next = format!("folder{}", self.folders.len() + 1);
                self.folders.entry(key.to_owned()).or_insert(next).clone()
            }
        }
    }

    /// Keeps `content` at `key` (under item `id` when new; a replaced file keeps its id): a
    /// change to it and to every folder above it.
    fn put(&mut self, key: String, id: String, content: Vec<u8>) {
        let id = self.files.get(&key).map_or(id, |(id, _)| id.clone());
        let mut above = key.as_str();
        let mut changed = vec![id.clone()];
        while let Some((parent, _)) = above.rsplit_once('/') {
            changed.push(self.folder_id(parent));
            above = parent;
        }
        self.changes.extend(changed.into_iter().rev());
        self.files.insert(key, (id, content));
    }

    /// Deletes the file at `key`.
    fn remove(&mut self, key: &str) -> bool {
        let Some((id, _)) = self.files.remove(key) else {
            return false;
        };
        let name = key.rsplit('/').next().unwrap_or_default().to_owned();
        self.deleted.insert(id.clone(), name);
        self.changes.push(id);
        true
    }

    /// The id of the folder above `key`.
    fn parent_id(&self, key: &str) -> String {
        match key.rsplit_once('/') {
            Some(("root", _)) => GRAPH_ROOT_ID.to_owned(),
            Some((parent, _)) if !parent.contains('/') => parent.to_owned(),
            Some((parent, _)) => self.folders.get(parent).cloned().unwrap_or_default(),
            None => String::new(),
        }
    }

    /// An item as `delta` shows it now.
    fn delta_item(&self, base: &str, id: &str) -> serde_json::Value {
        if id == GRAPH_ROOT_ID {
            return serde_json::json!({ "id": id, "name": "root", "root": {}, "folder": {} });
        }
        if let Some((key, (_, content))) = self.files.iter().find(|(_, (item, _))| item == id) {
            let mut item = graph_item_json(base, id, key, content);
            item["parentReference"] =
                serde_json::json!({ "id": self.parent_id(key), "driveId": "drive1" });
            return item;
        }
        if let Some((key, _)) = self.folders.iter().find(|(_, folder)| *folder == id) {
            return serde_json::json!({ "id": id, "name": key.rsplit('/').next(), "folder": {},
                "parentReference": { "id": self.parent_id(key), "driveId": "drive1" } });
        }
        // Deleted items name the root as their parent, whatever folder they were in.
        let name = self.deleted.get(id).cloned().unwrap_or_default();
        serde_json::json!({ "id": id, "name": name, "deleted": { "state": "deleted" },
            "parentReference": { "id": GRAPH_ROOT_ID, "driveId": "drive1" } })
    }
}

/// `root/delta` with `token` (a position in the list of changes) and `$skiptoken` (a position in
/// this answer's items).
fn graph_delta(rules: &Rules, base: &str, query: &HashMap<String, String>) -> Response {
    let graph = &rules.graph;
    let link = |token: usize| format!("{base}/me/drive/root/delta?token={token}");
    let since = match query.get("token").map(String::as_str) {
        Some("latest") => {
            return json(serde_json::json!({ "value": [],
                "@odata.deltaLink": link(graph.changes.len()) }))
        }
        Some(token) => match token.parse::<usize>() {
            Ok(since) if since <= graph.changes.len() => since,
            _ => {
                return graph_error(
                    StatusCode::GONE,
                    "resyncRequired",
                    "The delta token is no longer valid; resynchronize.",
                )
            }
        },
        None => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "invalidRequest",
                "this fake does not enumerate a whole drive",
            )
        }
    };
    let skip: usize = query
        .get("$skiptoken")
        .and_then(|skip| skip.parse().ok())
        .unwrap_or(0);
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<&String> = graph.changes[since..]
        .iter()
        .filter(|id| seen.insert(*id))
        .collect();
    const PAGE: usize = 200;
    let value: Vec<_> = ids
        .iter()
        .skip(skip)
        .take(PAGE)
        .map(|id| graph.delta_item(base, id))
        .collect();
    let mut answer = serde_json::json!({ "value": value });
    if skip + PAGE < ids.len() {
        answer["@odata.nextLink"] = format!("{}&$skiptoken={}", link(since), skip + PAGE).into();
    } else {
        answer["@odata.deltaLink"] = link(graph.changes.len()).into();
    }
    json(answer)
}

struct GraphSession {
    path: String,
    held: Vec<u8>,
    total: Option<usize>,
    expired: bool,
}

impl FakeIdentity {
    /// Bytes the fake OneDrive accepted (simple uploads and fragments) so far.
    pub fn graph_received(&self) -> u64 {
        self.rules.lock().unwrap().graph.received
    }

    pub fn graph_file(&self, path: &str) -> Option<Vec<u8>> {
        self.rules
            .lock()
            .unwrap()
            .graph
            .files
            .get(&format!("root/{path}"))
            .map(|(_, content)| content.clone())
    }

    /// The next `count` fragments fail with `503` and `Retry-After: 1`.
    pub fn fail_next_fragments(&self, count: u32) {
        self.rules.lock().unwrap().graph.fail_fragments = count;
    }

    pub fn expire_graph_sessions(&self) {
        for session in self.rules.lock().unwrap().graph.sessions.values_mut() {
            session.expired = true;
        }
    }

    /// Fragment requests that carried an Authorization header (and were refused).
    pub fn fragments_with_auth_header(&self) -> u32 {
        self.rules.lock().unwrap().graph.sessions_with_auth_header
    }
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": { "code": code, "message": message } }).to_string(),
    )
        .into_response()
}

fn graph_item_json(base: &str, id: &str, path: &str, content: &[u8]) -> serde_json::Value {
    let mut hash = offload::storage::onedrive::quickxor::QuickXorHash::default();
    hash.update(content);
    serde_json::json!({
        "id": id,
        "name": path.rsplit('/').next().unwrap_or_default(),
        "size": content.len(),
        "lastModifiedDateTime": "2026-11-28T10:00:00Z",
        "file": { "mimeType": "application/octet-stream", "hashes": { "quickXorHash": hash.finish_base64() } },
        "@microsoft.graph.downloadUrl": format!("{base}/download/{id}"),
    })
}

async fn graph_drive(State(rules): State<Arc<Mutex<Rules>>>, headers: HeaderMap) -> Response {
    if !authorized(&rules.lock().unwrap(), &headers) {
        return unauthorized();
    }
    json(serde_json::json!({
        "id": "drive1",
        "driveType": "personal",
        "owner": { "user": { "displayName": "Ada" } },
        "quota": { "total": 1_099_511_627_776u64, "remaining": 1_000_000_000_000u64 },
    }))
}

/// A folder's children a page at a time (`$top`, `$skiptoken`, `@odata.nextLink`): the files
/// directly in it, and its subfolders (which exist here as the paths of the files under them).
fn graph_children(
    rules: &mut Rules,
    base: &str,
    uri: &axum::http::Uri,
    folder_key: &str,
    query: &HashMap<String, String>,
) -> Response {
    let top: usize = query
        .get("$top")
        .and_then(|top| top.parse().ok())
        .unwrap_or(200)
        .clamp(1, 1000);
    let skip: usize = query
        .get("$skiptoken")
        .and_then(|skip| skip.parse().ok())
        .unwrap_or(0);
    rules.graph.listings += 1;
    let prefix = format!("{folder_key}/");
    let mut children: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    for (key, (id, content)) in &rules.graph.files {
        let Some(rest) = key.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            None => {
                children.insert(rest.to_owned(), graph_item_json(base, id, key, content));
            }
            Some((name, _)) => {
                children.entry(name.to_owned()).or_insert_with(|| {
                    let id = rules.graph.folders.get(&format!("{prefix}{name}"));
                    serde_json::json!({ "id": id, "name": name, "folder": { "childCount": 1 } })
                });
            }
        }
    }
    let value: Vec<_> = children.values().skip(skip).take(top).cloned().collect();
    let mut answer = serde_json::json!({ "value": value });
    if skip + top < children.len() {
        answer["@odata.nextLink"] =
            format!("{base}{}?$top={top}&$skiptoken={}", uri.path(), skip + top).into();
    }
    json(answer)
}

/// `root:/a/b.mkv:`, `root:/a/b.mkv:/content`, `root:/a/b.mkv:/createUploadSession`,
/// `root:/a:/children`, `root/children`, and the same under `items/{id}`.
async fn graph_item(
    State(rules): State<Arc<Mutex<Rules>>>,
    method: axum::http::Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
    axum::extract::Path(rest): axum::extract::Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let mut guard = rules.lock().unwrap();
    let rules = &mut *guard;
    if !authorized(rules, &headers) {
        return unauthorized();
    }
    let base = base_of(&headers);
    if method == axum::http::Method::GET && rest == "root" {
        return json(rules.graph.delta_item(&base, GRAPH_ROOT_ID));
    }
    if method == axum::http::Method::GET && rest == "root/delta" {
        return graph_delta(rules, &base, &query);
    }
    if method == axum::http::Method::GET {
        if let Some(folder) = rest.strip_suffix("/children").and_then(|folder| {
            folder
                .strip_prefix("items/")
                .or((folder == "root").then_some(folder))
        }) {
            return graph_children(rules, &base, &uri, folder, &query);
        }
    }
    let (folder, rest) = if let Some(rest) = rest.strip_prefix("root:/") {
        ("root".to_owned(), rest.to_owned())
    } else if let Some((id, rest)) = rest
        .strip_prefix("items/")
        .and_then(|rest| rest.split_once(":/"))
    {
        (id.to_owned(), rest.to_owned())
    } else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "unsupported address",
        );
    };
    let (path, action) = match rest.rsplit_once(':') {
        Some((path, action)) => (path.to_owned(), action.to_owned()),
        None => return graph_error(StatusCode::BAD_REQUEST, "invalidRequest", "missing ':'"),
    };
    let key = format!("{folder}/{path}");
    match (method.as_str(), action.as_str()) {
        ("GET", "/children") => graph_children(rules, &base, &uri, &key, &query),
        ("GET", "") => match rules.graph.files.get(&key) {
            Some((id, content)) => json(graph_item_json(&base, id, &key, content)),
            None => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            ),
        },
        ("DELETE", "") => match rules.graph.remove(&key) {
            true => StatusCode::NO_CONTENT.into_response(),
            false => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            ),
        },
        ("PUT", "/content") => {
            rules.graph.counter += 1;
            let id = format!("item{}", rules.graph.counter);
            rules.graph.received += body.len() as u64;
            let item = graph_item_json(&base, &id, &key, &body);
            rules.graph.put(key, id, body.to_vec());
            (StatusCode::CREATED, json(item)).into_response()
        }
        ("POST", "/createUploadSession") => {
            rules.graph.counter += 1;
            let id = format!("upload{}", rules.graph.counter);
            rules.graph.sessions.insert(
                id.clone(),
                GraphSession {
                    path: key,
                    held: Vec::new(),
                    total: None,
                    expired: false,
                },
            );
            json(serde_json::json!({
                "uploadUrl": format!("{base}/upload/graph/{id}"),
                "expirationDateTime": "2026-12-05T10:00:00Z",
                "nextExpectedRanges": ["0-"],
            }))
        }
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "unsupported request",
        ),
    }
}

fn expected(held: usize) -> serde_json::Value {
    serde_json::json!({
        "expirationDateTime": "2026-12-05T10:00:00Z",
        "nextExpectedRanges": [format!("{held}-")],
    })
}

async fn graph_session(
    State(rules): State<Arc<Mutex<Rules>>>,
    method: axum::http::Method,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut guard = rules.lock().unwrap();
    let rules = &mut *guard;
    if headers.contains_key(header::AUTHORIZATION) {
        rules.graph.sessions_with_auth_header += 1;
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "an upload URL takes no Authorization header",
        );
    }
    let base = base_of(&headers);
    let Some(session) = rules.graph.sessions.get_mut(&id) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "The upload session was not found.",
        );
    };
    if session.expired {
        return graph_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "The upload session has expired.",
        );
    }
    match method.as_str() {
        "GET" => return json(expected(session.held.len())),
        "DELETE" => {
            rules.graph.sessions.remove(&id);
            return StatusCode::NO_CONTENT.into_response();
        }
        _ => {}
    }
    if rules.graph.fail_fragments > 0 {
        rules.graph.fail_fragments -= 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "",
        )
            .into_response();
    }
    let spec = headers
        .get(header::CONTENT_RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("bytes "))
        .unwrap_or_default()
        .to_owned();
    let parsed = spec.split_once('/').and_then(|(span, total)| {
        let (start, end) = span.split_once('-')?;
        Some((
            start.parse::<usize>().ok()?,
            end.parse::<usize>().ok()?,
            total.parse::<usize>().ok()?,
        ))
    });
    let Some((start, end, total)) = parsed else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "invalidRange",
            "Content-Range bytes a-b/total required",
        );
    };
    if session.held.is_empty() {
        session.held.reserve(total.min(4 << 30));
    }
    if *session.total.get_or_insert(total) != total {
        return graph_error(StatusCode::BAD_REQUEST, "invalidRange", "the total changed");
    }
    if start != session.held.len() || end < start || end - start + 1 != body.len() {
        return graph_error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "invalidRange",
            "The uploaded fragment overlaps with data that has already been received.",
        );
    }
    let last = end + 1 == total;
    if body.len() >= FRAGMENT_LIMIT || (!last && !body.len().is_multiple_of(FRAGMENT_MULTIPLE)) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "invalidRange",
            "fragments are multiples of 320 KiB (except the last) and under 60 MiB",
        );
    }
    session.held.extend_from_slice(&body);
    rules.graph.received += body.len() as u64;
    if !last {
        return (StatusCode::ACCEPTED, json(expected(session.held.len()))).into_response();
    }
    let Some(session) = rules.graph.sessions.remove(&id) else {
        return graph_error(StatusCode::NOT_FOUND, "itemNotFound", "gone");
    };
    rules.graph.counter += 1;
    let item_id = format!("item{}", rules.graph.counter);
    let item = graph_item_json(&base, &item_id, &session.path, &session.held);
    rules.graph.put(session.path, item_id, session.held);
    (StatusCode::CREATED, json(item)).into_response()
}

/// A `@microsoft.graph.downloadUrl`: no token, Range honoured.
async fn graph_download(
    State(rules): State<Arc<Mutex<Rules>>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let rules = rules.lock().unwrap();
    match rules.graph.files.values().find(|(item, _)| *item == id) {
        Some((_, content)) => serve_range(content, &headers),
        None => graph_error(StatusCode::NOT_FOUND, "itemNotFound", "gone"),
    }
}

impl FakeIdentity {
    /// A file's content at the provider behind backend type `kind`.
    pub fn stored_file(&self, kind: &str, path: &str) -> Option<Vec<u8>> {
        match kind {
            "google-drive" => self.drive_file(path),
            _ => self.graph_file(path),
        }
    }

    /// A file another app put at the top of the account's drive (behind backend type `kind`).
    pub fn put_by_another_app(&self, kind: &str, name: &str, content: &[u8]) {
        match kind {
            "google-drive" => self.put_drive_file_by_another_app("root", name, content),
            _ => {
                let mut rules = self.rules.lock().unwrap();
                rules.graph.counter += 1;
                let id = format!("other{}", rules.graph.counter);
                rules
                    .graph
                    .put(format!("root/{name}"), id, content.to_vec());
            }
        }
    }

    /// `count` small files named `{stem} {n}.mkv` at the top of the drive, as Offload on another
    /// computer would have uploaded them (so Drive shows them to Offload under `drive.file`).
    pub fn put_many(&self, kind: &str, stem: &str, count: usize) {
        let mut rules = self.rules.lock().unwrap();
        for n in 1..=count {
            let name = format!("{stem} {n}.mkv");
            let content = name.clone().into_bytes();
            match kind {
                "google-drive" => {
                    rules.drive.counter += 1;
                    let id = format!("file{}", rules.drive.counter);
                    rules.drive.set(
                        id,
                        Some(DriveFile {
                            name,
                            parents: vec!["root".into()],
                            mime: "video/x-matroska".into(),
                            md5: md5_hex(&content),
                            content,
                            by_this_app: true,
                            app_properties: Default::default(),
                        }),
                    );
                }
                _ => {
                    rules.graph.counter += 1;
                    let id = format!("item{}", rules.graph.counter);
                    rules.graph.put(format!("root/{name}"), id, content);
                }
            }
        }
    }

    /// The names of the files directly in the OneDrive folder at `path`.
    pub fn graph_names_in(&self, path: &str) -> Vec<String> {
        let prefix = format!("root/{path}/");
        let mut names: Vec<String> = self
            .rules
            .lock()
            .unwrap()
            .graph
            .files
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix))
            .filter(|name| !name.contains('/'))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// Requests for a folder's children the provider behind `kind` answered so far.
    pub fn listings(&self, kind: &str) -> u64 {
        let rules = self.rules.lock().unwrap();
        match kind {
            "google-drive" => rules.drive.listings,
            _ => rules.graph.listings,
        }
    }

    /// Deletes the file at `path`, as another computer or the provider's website would.
    pub fn delete_stored(&self, kind: &str, path: &str) {
        let mut rules = self.rules.lock().unwrap();
        match kind {
            "google-drive" => {
                let id = rules.drive.id_of(path).expect("a file to delete");
                rules.drive.set(id, None);
            }
            _ => assert!(rules.graph.remove(&format!("root/{path}"))),
        }
    }

    /// Renames or moves the file or folder at `from` to `to` (whose folder exists), as another
    /// computer or the provider's website would.
    pub fn move_stored(&self, kind: &str, from: &str, to: &str) {
        let mut rules = self.rules.lock().unwrap();
        let (folder, name) = to.rsplit_once('/').unwrap_or(("", to));
        match kind {
            "google-drive" => {
                let drive = &mut rules.drive;
                let id = drive.id_of(from).expect("an item to move");
                let parent = if folder.is_empty() {
                    "root".to_owned()
                } else {
                    drive.id_of(folder).expect("the folder to move into")
                };
                let mut file = drive.files.remove(&id).unwrap();
                file.name = name.to_owned();
                file.parents = vec![parent];
                drive.set(id, Some(file));
            }
            _ => {
                let graph = &mut rules.graph;
                let (from, to) = (format!("root/{from}"), format!("root/{to}"));
                if let Some((id, content)) = graph.files.remove(&from) {
                    graph.put(to, id, content);
                    return;
                }
                // A folder: everything under it moves, and the feed names the folder alone.
                let id = graph.folder_id(&from);
                let under = format!("{from}/");
                let moved = |key: &String| {
                    (key == &from || key.starts_with(&under))
                        .then(|| format!("{to}{}", &key[from.len()..]))
                };
                let files: Vec<_> = graph
                    .files
                    .keys()
                    .filter_map(|k| Some((k.clone(), moved(k)?)))
                    .collect();
                for (old, new) in files {
                    let item = graph.files.remove(&old).unwrap();
                    graph.files.insert(new, item);
                }
                let folders: Vec<_> = graph
                    .folders
                    .keys()
                    .filter_map(|k| Some((k.clone(), moved(k)?)))
                    .collect();
                for (old, new) in folders {
                    let item = graph.folders.remove(&old).unwrap();
                    graph.folders.insert(new, item);
                }
                graph.changes.push(id);
            }
        }
    }

    /// Bytes the provider behind `kind` accepted into files so far.
    pub fn received(&self, kind: &str) -> u64 {
        match kind {
            "google-drive" => self.drive_received(),
            _ => self.graph_received(),
        }
    }
}
