//! The local HTTP API, for scripts and apps beside Offload: backends, sign-in, profiles, jobs,
//! the library and a Server-Sent Events stream of what happens, under `/api/` on the stream
//! server's listener (so the same `Host` rule applies), each route one call of the engine.
//!
//! - Every route but the OpenAPI document and the sign-in callback needs `Authorization: Bearer
//!   KEY`, the key `offload api key` shows (sealed like every secret, rotatable).
//! - A request carrying an `Origin` is refused: a web page's script sends one, a script or an app
//!   does not, and no CORS header is ever sent, so no page can drive the API.
//! - Errors are `{"code": …, "message": …}` with a stable code and a sentence.
//! - [`ROUTES`] is the one list of routes: the router is built from it and so is the OpenAPI
//!   document at `/api/openapi.json`, so neither can leave a route out.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;
use tokio::sync::broadcast;
use zeroize::Zeroizing;

use super::{Engine, HandOver, NewBackend, Saved};
use crate::error::{Error, Result};
use crate::profiles::AfterUpload;
use crate::queue::JobState;
use crate::secrets::SealContext;
use crate::storage::cloud::Provider;

/// Where the sealed API key is kept.
const API_KEY: &str = "api.key";
const KEY_CONTEXT: SealContext<'static> = SealContext {
    table: "settings",
    record: 0,
    field: API_KEY,
};

impl Engine {
    /// The local API's key, made on first use; with `rotate`, a new one (the old stops working
    /// at once).
    pub fn api_key(&self, rotate: bool) -> Result<Zeroizing<String>> {
        let sealer = self.vault.sealer()?;
        if !rotate {
            if let Some(sealed) = self.db.setting(API_KEY)? {
                return Ok(sealer.open_string(&sealed, KEY_CONTEXT)?);
            }
        }
        let bytes: [u8; 32] = rand::random();
        let key = Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
        self.db
            .set_setting(API_KEY, &sealer.seal_str(&key, KEY_CONTEXT))?;
        Ok(key)
    }
}

/// What the API's handlers hold: an engine of their own (its commands wake the daemon like any
/// shell's) that tells the daemon's listeners what it does, and where the sign-in callback is
/// reached.
pub struct ApiState {
    engine: Engine,
    base_url: String,
}

/// The methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Delete => "delete",
        }
    }
}

/// One route: the router and the OpenAPI document are both built from these.
pub struct ApiRoute {
    pub method: Verb,
    /// In OpenAPI's (and axum's) form: `/api/jobs/{id}/pause`.
    pub path: &'static str,
    pub summary: &'static str,
    /// Needs the bearer key.
    pub key: bool,
    /// What the request body is, if it has one.
    pub body: Option<&'static str>,
}

const fn route(
    method: Verb,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
) -> ApiRoute {
    ApiRoute {
        method,
        path,
        summary,
        key: true,
        body,
    }
}

/// A route that needs no key.
const fn open(route: ApiRoute) -> ApiRoute {
    ApiRoute {
        key: false,
        ..route
    }
}

/// Every route of the API.
pub const ROUTES: [ApiRoute; 19] = [
    open(route(Verb::Get, "/api/openapi.json", "This document.", None)),
    route(Verb::Get, "/api/profiles", "The profiles, with their watched folders.", None),
    route(Verb::Get, "/api/storage/backends", "Every storage backend; `?profile_id=` for one profile's.", None),
    route(
        Verb::Post,
        "/api/storage/backends",
        "Adds a backend (tested first where it can be; refused with the test's report when it fails).",
        Some("A backend: profile_id, name, make_default, kind and the kind's fields, as the window's storage form."),
    ),
    route(Verb::Get, "/api/storage/backends/{id}", "One backend.", None),
    route(
        Verb::Delete,
        "/api/storage/backends/{id}",
        "Removes a backend that holds no library items and no upload in progress (its files stay).",
        None,
    ),
    route(Verb::Post, "/api/storage/backends/{id}/test", "Tests a saved backend: each check, and what to fix.", None),
    route(
        Verb::Get,
        "/api/storage/connect/{provider}",
        "Starts signing backend `?backend_id=` in to its Google or Microsoft account: the address to open in a browser, which comes back to the callback.",
        None,
    ),
    open(route(
        Verb::Get,
        "/api/storage/callback/{provider}",
        "Where the browser comes back after signing in (the single-use state is its credential).",
        None,
    )),
    route(Verb::Get, "/api/jobs", "The upload jobs, newest first; `?state=` (repeatable) for some states.", None),
    route(
        Verb::Post,
        "/api/jobs",
        "Hands finished files (or folders of them) to the queue, as `offload add` does.",
        Some("files (paths on this computer), and optionally profile, backend and after_upload (keep, delete, move:DIR)."),
    ),
    route(Verb::Get, "/api/jobs/{id}", "One job.", None),
    route(Verb::Post, "/api/jobs/{id}/pause", "Pauses a job.", None),
    route(Verb::Post, "/api/jobs/{id}/resume", "Resumes a paused job.", None),
    route(Verb::Post, "/api/jobs/{id}/retry", "Tries a failed or cancelled job again.", None),
    route(Verb::Post, "/api/jobs/{id}/cancel", "Cancels a job.", None),
    route(Verb::Get, "/api/library", "The library, with each item's stream URL; `?profile_id=` for one profile's.", None),
    route(Verb::Get, "/api/held", "The uploads closed upload windows hold back, and when the first opens.", None),
    route(
        Verb::Get,
        "/api/events",
        "Server-Sent Events: every job's progress and state, notices, scans, items described and held uploads, as the queue says them (`event:` is the type).",
        None,
    ),
];

/// The handler of each route of [`ROUTES`], in the same order.
fn handlers() -> [MethodRouter<Arc<ApiState>>; 19] {
    [
        get(openapi),
        get(profiles),
        get(list_backends),
        post(add_backend),
        get(get_backend),
        delete(remove_backend),
        post(test_backend),
        get(connect),
        get(callback),
        get(list_jobs),
        post(add_jobs),
        get(get_job),
        post(|state: State<Arc<ApiState>>, id: Path<i64>| job_action(state, id, JobAction::Pause)),
        post(|state: State<Arc<ApiState>>, id: Path<i64>| job_action(state, id, JobAction::Resume)),
        post(|state: State<Arc<ApiState>>, id: Path<i64>| job_action(state, id, JobAction::Retry)),
        post(|state: State<Arc<ApiState>>, id: Path<i64>| job_action(state, id, JobAction::Cancel)),
        get(library),
        get(held),
        get(events),
    ]
}

/// The API's routes, for the stream server to serve beside its own: `engine` sends its events
/// to the daemon's listeners; `base_url` is where the server is reached (the sign-in callback's
/// address).
pub fn router(engine: Engine, base_url: String) -> Router {
    let state = Arc::new(ApiState { engine, base_url });
    let mut router = Router::new();
    for (route, handler) in ROUTES.iter().zip(handlers()) {
        router = router.route(route.path, handler);
    }
    router
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .with_state(state)
}

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi_document() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for route in &ROUTES {
        let parameters: Vec<serde_json::Value> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                serde_json::json!({
                    "name": name, "in": "path", "required": true,
                    "schema": { "type": if name == "id" { "integer" } else { "string" } },
                })
            })
            .collect();
        let mut operation = serde_json::json!({
            "summary": route.summary,
            "operationId": operation_id(route),
            "parameters": parameters,
            "responses": {
                "200": { "description": "What was asked for, as JSON (an event stream for /api/events)." },
                "default": {
                    "description": "An error: a stable code and a sentence.",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
                },
            },
        });
        if !route.key {
            operation["security"] = serde_json::json!([]);
        }
        if let Some(body) = route.body {
            operation["requestBody"] = serde_json::json!({
                "description": body,
                "required": true,
                "content": { "application/json": { "schema": { "type": "object" } } },
            });
        }
        let entry = paths
            .entry(route.path)
            .or_insert_with(|| serde_json::json!({}));
        entry[route.method.as_str()] = operation;
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Offload",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The local API of a running Offload, on its stream server's address. The key: `offload api key`.",
        },
        "paths": paths,
        "security": [{ "key": [] }],
        "components": {
            "securitySchemes": { "key": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": { "type": "string", "description": "Stable: not_found, invalid, unauthorized, refused, test_failed, internal." },
                        "message": { "type": "string", "description": "What went wrong, as a sentence." },
                    },
                },
            },
        },
    })
}

/// `get_api_jobs_id_pause`: unique per route, as OpenAPI asks.
fn operation_id(route: &ApiRoute) -> String {
    let words: Vec<&str> = route
        .path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| segment.trim_matches(|c| c == '{' || c == '}'))
        .map(|segment| segment.trim_end_matches(".json"))
        .collect();
    format!("{}_{}", route.method.as_str(), words.join("_"))
}

/// An API error: its status, stable code and sentence.
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<serde_json::Value>,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let (status, code) = match &error {
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Invalid(_)
            | Error::Template(_)
            | Error::Path(_)
            | Error::Field(_)
            | Error::Setting { .. }
            | Error::SignIn { .. } => (StatusCode::BAD_REQUEST, "invalid"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Failure::new(status, code, sentence(&error.to_string()))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(details) = self.details {
            body["details"] = details;
        }
        json_response(self.status, &body)
    }
}

/// The engine's clause as a sentence.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

type Answer = std::result::Result<Response, Failure>;

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn ok(value: impl serde::Serialize) -> Answer {
    let value = serde_json::to_value(value).map_err(|error| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
    })?;
    Ok(json_response(StatusCode::OK, &value))
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> std::result::Result<T, Failure> {
    serde_json::from_slice(bytes).map_err(|error| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("The request body is not what this route takes: {error}."),
        )
    })
}

/// Every value of `name` in the query string, decoded.
fn query_values<'a>(query: &'a Option<String>, name: &'a str) -> impl Iterator<Item = String> + 'a {
    form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn query_id(query: &Option<String>, name: &str) -> std::result::Result<Option<i64>, Failure> {
    query_values(query, name)
        .next()
        .map(|text| {
            text.parse().map_err(|_| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("{name} must be a number."),
                )
            })
        })
        .transpose()
}

/// No `Origin` (no web page), and the key where the route needs it.
async fn admit(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    if request.headers().contains_key(header::ORIGIN) {
        return Failure::new(
            StatusCode::FORBIDDEN,
            "refused",
            "Offload's API does not answer web pages; call it from a script or an app.",
        )
        .into_response();
    }
    let path = request.uri().path();
    let open = ROUTES
        .iter()
        .any(|route| !route.key && matches_path(route.path, path));
    if !open && !key_matches(&state.engine, request.headers()) {
        return Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "This needs Offload's API key as `Authorization: Bearer KEY`; `offload api key` shows it.",
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether `path` is an instance of the route pattern `pattern`.
fn matches_path(pattern: &str, path: &str) -> bool {
    let (mut pattern, mut path) = (pattern.split('/'), path.split('/'));
    loop {
        match (pattern.next(), path.next()) {
            (None, None) => return true,
            (Some(want), Some(got)) if want.starts_with('{') || want == got => {}
            _ => return false,
        }
    }
}

fn key_matches(engine: &Engine, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    let Ok(key) = engine.api_key(false) else {
        return false;
    };
    // Every byte compared, so the time taken does not say how much of a guess was right.
    given.len() == key.len()
        && given
            .bytes()
            .zip(key.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

async fn openapi() -> Answer {
    Ok(json_response(StatusCode::OK, &openapi_document()))
}

async fn profiles(State(state): State<Arc<ApiState>>) -> Answer {
    ok(state.engine.profiles()?)
}

async fn list_backends(State(state): State<Arc<ApiState>>, RawQuery(query): RawQuery) -> Answer {
    ok(state
        .engine
        .list_backends(query_id(&query, "profile_id")?)?)
}

async fn add_backend(State(state): State<Arc<ApiState>>, bytes: Bytes) -> Answer {
    let new: NewBackend = body(&bytes)?;
    let saved = state
        .engine
        .add_backend(
            new.profile_id,
            &new.name,
            &new.form,
            new.make_default,
            false,
        )
        .await?;
    match saved {
        Saved::Done { backend, report, .. } => {
            let mut answer = ok(serde_json::json!({ "backend": backend, "report": report }))?;
            *answer.status_mut() = StatusCode::CREATED;
            Ok(answer)
        }
        Saved::Refused { report } => Err(Failure {
            details: serde_json::to_value(&report).ok(),
            ..Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "test_failed",
                "The backend failed its connection test, so it was not saved; `details` says what to fix.",
            )
        }),
    }
}

async fn get_backend(State(state): State<Arc<ApiState>>, Path(id): Path<i64>) -> Answer {
    ok(state.engine.backend_view(id)?)
}

async fn remove_backend(State(state): State<Arc<ApiState>>, Path(id): Path<i64>) -> Answer {
    state.engine.remove_backend(id)?;
    ok(serde_json::json!({ "removed": id }))
}

async fn test_backend(State(state): State<Arc<ApiState>>, Path(id): Path<i64>) -> Answer {
    ok(state.engine.test_backend(id).await?)
}

fn provider_of(name: &str) -> std::result::Result<Provider, Failure> {
    Provider::parse(name).ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "The provider is google or microsoft.",
        )
    })
}

async fn connect(
    State(state): State<Arc<ApiState>>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let provider = provider_of(&provider)?;
    let backend_id = query_id(&query, "backend_id")?.ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Name the backend to sign in as ?backend_id=.",
        )
    })?;
    let callback = format!(
        "{}/api/storage/callback/{}",
        state.base_url,
        provider.as_str()
    );
    let url = state
        .engine
        .start_sign_in_returning_to(backend_id, provider, &callback)?;
    ok(serde_json::json!({ "url": url }))
}

async fn callback(
    State(state): State<Arc<ApiState>>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let outcome = match provider_of(&provider) {
        Ok(provider) => {
            let url = format!(
                "{}/api/storage/callback/{}?{}",
                state.base_url,
                provider.as_str(),
                query.unwrap_or_default()
            );
            state
                .engine
                .complete_sign_in(&url)
                .await
                .map_err(Failure::from)
        }
        Err(failure) => Err(failure),
    };
    // A person's browser shows this page: words, and never a code or a token.
    let (status, text) = match outcome {
        Ok(connected) => (
            StatusCode::OK,
            match connected.account {
                Some(account) => {
                    format!("Offload is connected to {account}. You can close this tab.")
                }
                None => "Offload is connected. You can close this tab.".to_owned(),
            },
        ),
        Err(failure) => (
            failure.status,
            format!("The sign-in did not complete: {}", failure.message),
        ),
    };
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn list_jobs(State(state): State<Arc<ApiState>>, RawQuery(query): RawQuery) -> Answer {
    let states = query_values(&query, "state")
        .map(|text| {
            JobState::parse(&text).ok_or_else(|| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("{text:?} is not a job state."),
                )
            })
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    ok(state.engine.jobs(&states)?)
}

#[derive(Deserialize)]
struct NewJobs {
    files: Vec<PathBuf>,
    profile: Option<String>,
    backend: Option<String>,
    after_upload: Option<String>,
}

async fn add_jobs(State(state): State<Arc<ApiState>>, bytes: Bytes) -> Answer {
    let new: NewJobs = body(&bytes)?;
    let after_upload = new
        .after_upload
        .as_deref()
        .map(AfterUpload::parse)
        .transpose()?;
    if after_upload
        .as_ref()
        .is_some_and(|policy| matches!(policy, AfterUpload::Move(dir) if dir.is_relative()))
    {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "A folder to move files into must be an absolute path.",
        ));
    }
    let handed = state.engine.hand_over(
        &new.files,
        &HandOver {
            profile: new.profile,
            backend: new.backend,
            after_upload,
            reserve_for: None,
        },
    )?;
    ok(handed)
}

async fn get_job(State(state): State<Arc<ApiState>>, Path(id): Path<i64>) -> Answer {
    ok(state.engine.job(id)?)
}

#[derive(Clone, Copy)]
enum JobAction {
    Pause,
    Resume,
    Retry,
    Cancel,
}

async fn job_action(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<i64>,
    action: JobAction,
) -> Answer {
    let engine = &state.engine;
    engine.job(id)?;
    match action {
        JobAction::Pause => engine.pause(Some(id)).map(drop)?,
        JobAction::Resume => engine.resume(Some(id)).map(drop)?,
        JobAction::Retry => engine.retry(id)?,
        JobAction::Cancel => engine.cancel(id)?,
    }
    ok(engine.job(id)?)
}

async fn library(State(state): State<Arc<ApiState>>, RawQuery(query): RawQuery) -> Answer {
    ok(state.engine.library(query_id(&query, "profile_id")?)?)
}

async fn held(State(state): State<Arc<ApiState>>) -> Answer {
    ok(state.engine.held_back()?)
}

/// The daemon's events as they happen; a client too slow to keep up is told how many it missed.
async fn events(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let receiver = state.engine.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(event) => {
                let value = serde_json::to_value(&event).unwrap_or_default();
                let kind = value["type"].as_str().unwrap_or("event").to_owned();
                SseEvent::default().event(kind).data(value.to_string())
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => SseEvent::default()
                .event("lagged")
                .data(serde_json::json!({ "missed": missed }).to_string()),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_handler_and_an_operation() {
        assert_eq!(ROUTES.len(), handlers().len());
        let document = openapi_document();
        let mut ids = std::collections::HashSet::new();
        for route in &ROUTES {
            let operation = &document["paths"][route.path][route.method.as_str()];
            assert!(operation.is_object(), "{:?} {}", route.method, route.path);
            assert!(ids.insert(operation["operationId"].as_str().unwrap().to_owned()));
        }
    }

    #[test]
    fn route_patterns_match_their_paths_only() {
        assert!(matches_path(
            "/api/storage/callback/{provider}",
            "/api/storage/callback/google"
        ));
        assert!(!matches_path(
            "/api/storage/callback/{provider}",
            "/api/storage/callback"
        ));
        assert!(!matches_path("/api/openapi.json", "/api/openapi.json/x"));
        let query = Some("state=done&profile_id=%33&state=failed+x".to_owned());
        assert_eq!(
            query_values(&query, "state").collect::<Vec<_>>(),
            ["done", "failed x"]
        );
        assert_eq!(query_id(&query, "profile_id").ok().flatten(), Some(3));
    }
}
