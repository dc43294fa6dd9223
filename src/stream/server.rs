//! The HTTP side of the stream server: the listener, the routes, and the guard every request
//! passes (the `Host` check and the request log).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody as _};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, ServiceExt as _};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::token::Subject;
use super::{file, plain, playlist, proxy, Links, StreamSettings};
use crate::backends::{OpenBackends, TokenSources};
use crate::db::{ChangeCheck, Db, Revision};
use crate::error::{Error, Result, Setting};
use crate::library::{self, LibraryEntry, LibraryItem};
use crate::playback::Playback;
use crate::secrets::{MasterKey, Vault};
use crate::storage::{ErrorKind, RemotePath, StorageError, StreamTarget};

/// How long a backend may take to say where an object streams from.
const TARGET_TIMEOUT: Duration = Duration::from_secs(20);
/// How long open streams may go on after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub struct StreamServer {
    listener: tokio::net::TcpListener,
    state: Arc<ServerState>,
    /// More routes to serve on the same listener, behind the same guard (the local API).
    extra: Option<Router>,
}

struct ServerState {
    db: Db,
    links: Links,
    port: u16,
    url_lifetime: Duration,
    /// What requests looked up, kept between requests: a player's requests for one item should
    /// cost a token check and a signature, not database reads and a new S3 client each. Both
    /// follow the rule of every cache of database state ([`ChangeCheck`]), looking at the
    /// database at most once per [`CATALOG_FRESHNESS`]: a removed item or a changed backend is
    /// seen within that time.
    entries: Mutex<Entries>,
    check: ChangeCheck,
    backends: OpenBackends,
    http: reqwest::Client,
    /// Told of every redirect and proxied stream, so that uploads yield to the player.
    playback: Arc<Playback>,
    /// The data folder, whose `posters/` the pictures are served from.
    data_dir: PathBuf,
}

/// Library entries as of one revision of the database.
struct Entries {
    revision: Option<Revision>,
    found: HashMap<LibraryItem, Arc<LibraryEntry>>,
}

const CATALOG_FRESHNESS: Duration = Duration::from_secs(1);

impl StreamServer {
    /// Binds the configured address. `db` should be a connection of the server's own, so that
    /// lookups never queue behind the upload queue's writes.
    pub async fn bind(
        settings: &StreamSettings,
        db: Db,
        vault: Arc<Vault>,
        accounts: Arc<dyn TokenSources>,
        master: &MasterKey,
        playback: Arc<Playback>,
        data_dir: &std::path::Path,
    ) -> Result<StreamServer> {
        let address = settings.address();
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| bind_error(address, error))?;
        let port = listener
            .local_addr()
            .map_err(|error| Error::io("cannot read the stream server's address", error))?
            .port();
        if !settings.bind.is_loopback() {
            tracing::warn!(%address, "the stream server is reachable from the network (stream.bind); every URL still needs its token");
        }
        let settings = StreamSettings {
            port,
            ..settings.clone()
        };
        Ok(StreamServer {
            listener,
            extra: None,
            state: Arc::new(ServerState {
                backends: OpenBackends::new(db.clone(), vault, accounts, CATALOG_FRESHNESS),
                db,
                links: Links::new(master, &settings),
                port,
                url_lifetime: settings.url_lifetime,
                entries: Mutex::new(Entries {
                    revision: None,
                    found: HashMap::new(),
                }),
                check: ChangeCheck::new(CATALOG_FRESHNESS),
                http: proxy::client(),
                playback,
                data_dir: data_dir.to_owned(),
            }),
        })
    }

    /// Serves `routes` too, behind the same `Host` check and request log.
    pub fn with_routes(mut self, routes: Router) -> StreamServer {
        self.extra = Some(routes);
        self
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` fires, then lets open streams finish for a moment.
    pub async fn serve(self, shutdown: CancellationToken) {
        let address = self.local_addr();
        // `/api/{kind}/{id}/stream` is answered by the guard itself (see [`Guard`]).
        let mut router = Router::new()
            .route("/health", get(health))
            .route("/api/{kind}/{id}/poster.jpg", get(poster_route))
            .route("/api/profiles/{id}/playlist.m3u8", get(profile_playlist))
            .with_state(self.state.clone());
        if let Some(extra) = self.extra {
            router = router.merge(extra);
        }
        let guard = Guard {
            state: self.state,
            router: router.fallback(not_found),
        };
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |stream| {
            let _ = stream.set_nodelay(true);
        });
        if let Some(address) = address {
            tracing::info!(url = %format!("http://{address}"), "stream server listening");
        }
        let server = axum::serve(listener, guard.into_make_service())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        // A player that keeps a stream open would hold a graceful shutdown forever.
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            result = server => if let Err(error) = result {
                tracing::error!(%error, "the stream server stopped");
            },
            () = deadline => {}
        }
    }
}

fn bind_error(address: SocketAddr, error: std::io::Error) -> Error {
    let (setting, message) = match error.kind() {
        std::io::ErrorKind::AddrInUse => (
            Setting::StreamPort,
            format!(
                "the stream server cannot listen on {address}: another program (or another Offload \
                 with its own data folder) uses port {}",
                address.port()
            ),
        ),
        std::io::ErrorKind::AddrNotAvailable => (
            Setting::StreamBind,
            format!(
                "the stream server cannot listen on {address}: {} is not an address of this computer",
                address.ip()
            ),
        ),
        std::io::ErrorKind::PermissionDenied => (
            Setting::StreamPort,
            format!("the stream server cannot listen on {address}: ports below 1024 need administrator rights"),
        ),
        _ => return Error::io(format!("the stream server cannot listen on {address}"), error),
    };
    Error::Setting { setting, message }
}

/// What every request passes: the `Host` check, then the stream route or else the router, then
/// the log line (no query string, so no token). The stream route is matched here, ahead of the
/// router, and this is a service of its own rather than axum's `from_fn` middleware: a player
/// asks that route for every file it opens, and the middleware's boxed copy of the router, the
/// router's path parameters and the extractors' strings were, per redirect, a cost the size of
/// the route's own work (token, lookup and signature).
#[derive(Clone)]
struct Guard {
    state: Arc<ServerState>,
    router: Router,
}

impl Service<Request> for Guard {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let guard = self.clone();
        Box::pin(async move { Ok(guard.answer(request).await) })
    }
}

impl Guard {
    async fn answer(mut self, request: Request) -> Response {
        let started = Instant::now();
        let method = request.method().clone();
        // A `Uri` shares its bytes with the request: cloned, not copied.
        let uri = request.uri().clone();
        let response = if !host_allowed(request.headers(), self.state.port) {
            plain(
                StatusCode::MISDIRECTED_REQUEST,
                "Address the stream server by 127.0.0.1 or localhost.",
            )
        } else if let Some(item) = stream_item(&method, uri.path()) {
            stream(&self.state, item, uri.query(), &method, request.headers()).await
        } else {
            match self.router.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
        // The body's own size where no header says it, as hyper will send it (a redirect's 0).
        let bytes = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .or_else(|| response.body().size_hint().exact());
        crate::logging::RequestLine {
            method: method.as_str(),
            path: uri.path(),
            status: response.status().as_u16(),
            bytes,
            micros: started.elapsed().as_micros() as u64,
        }
        .write();
        response
    }
}

/// The item of `/api/media/{id}/stream` or `/api/episodes/{id}/stream`, asked with GET or HEAD.
fn stream_item(method: &Method, path: &str) -> Option<LibraryItem> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let (kind, id) = path
        .strip_prefix("/api/")?
        .strip_suffix("/stream")?
        .split_once('/')?;
    item_of(kind, id)
}

/// The `Host` must be an IP address or `localhost`, with our port. A web page that rebinds its
/// own domain name to 127.0.0.1 sends its domain name here, and is turned away.
fn host_allowed(headers: &HeaderMap, port: u16) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let (name, host_port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((name, tail)) => (name, tail.strip_prefix(':')),
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let host_port = match host_port {
        Some(text) => text.parse::<u16>().ok(),
        None => Some(80),
    };
    host_port == Some(port)
        && (name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok())
}

async fn health() -> Response {
    let body = serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") });
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The same answer for a missing item, a missing token and a wrong one: nothing to learn.
async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "Not found.")
}

fn token_of(query: Option<&str>) -> &str {
    query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("token="))
        .unwrap_or_default()
}

/// The item a route's `{kind}/{id}` names.
fn item_of(kind: &str, id: &str) -> Option<LibraryItem> {
    match (kind, id.parse()) {
        ("media", Ok(id)) => Some(LibraryItem::Media(id)),
        ("episodes", Ok(id)) => Some(LibraryItem::Episode(id)),
        _ => None,
    }
}

/// `/api/media/{id}/poster.jpg`: an item's picture, with the token of its stream URL.
async fn poster_route(
    State(state): State<Arc<ServerState>>,
    Path((kind, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let item = item_of(&kind, &id).filter(|item| {
        state
            .links
            .verify(Subject::Item(*item), token_of(query.as_deref()))
    });
    let Some(item) = item else {
        return not_found().await;
    };
    match tokio::fs::read(crate::posters::path(&state.data_dir, item)).await {
        Ok(picture) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                // A new upload of the item takes a new picture.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            picture,
        )
            .into_response(),
        Err(_) => not_found().await,
    }
}

async fn stream(
    state: &ServerState,
    item: LibraryItem,
    query: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    if !state.links.verify(Subject::Item(item), token_of(query)) {
        return not_found().await;
    }
    let entry = match state.entry(item) {
        Ok(Some(entry)) => entry,
        Ok(None) => return not_found().await,
        Err(error) => return internal(&error),
    };
    match entry.status.as_str() {
        "uploaded" => {}
        "removed" => return plain(StatusCode::GONE, "This item was removed from storage."),
        _ => return not_uploaded(),
    }
    let (Some(backend_id), Some(path)) = (entry.storage_backend_id, entry.storage_path.as_deref())
    else {
        return not_uploaded();
    };
    let remote = match RemotePath::parse(path) {
        Ok(remote) => remote,
        Err(error) => return internal(&error.into()),
    };
    let backend = match state.backends.get(backend_id) {
        Ok(backend) => backend,
        Err(error) => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The storage this item is in cannot be used right now: {error}"),
            )
        }
    };
    let content_type = entry
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    let target = tokio::time::timeout(
        TARGET_TIMEOUT,
        backend.stream_target(&remote, state.url_lifetime),
    )
    .await;
    match target {
        Err(_) => plain(
            StatusCode::GATEWAY_TIMEOUT,
            "The storage provider did not answer in time; try again.",
        ),
        Ok(Err(error)) => storage_failure(&error),
        // A presigned URL is signed for GET and refuses HEAD, so HEAD is answered here from the
        // verified size in the library (Kodi asks HEAD before it plays).
        Ok(Ok(StreamTarget::Redirect { .. })) if method == Method::HEAD => {
            head_of(entry.size, content_type)
        }
        Ok(Ok(StreamTarget::Redirect { url, .. })) => {
            state.playback.touch();
            redirect(url)
        }
        Ok(Ok(StreamTarget::LocalFile(path))) => {
            file::serve(method, headers, path, content_type).await
        }
        Ok(Ok(StreamTarget::Proxy {
            url,
            headers: extra,
        })) => {
            let streaming = state.playback.streaming();
            let response =
                proxy::forward(&state.http, method, headers, &url, &extra, content_type).await;
            // Playback lasts as long as the body streams to the player.
            response.map(|body| {
                Body::from_stream(futures_util::StreamExt::map(
                    body.into_data_stream(),
                    move |chunk| {
                        let _streaming = &streaming;
                        chunk
                    },
                ))
            })
        }
    }
}

impl ServerState {
    /// The library entries, emptied first if the database moved since they were read.
    fn entries(&self) -> Result<std::sync::MutexGuard<'_, Entries>> {
        let now = self.check.revision(&self.db)?;
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.revision != Some(now) {
            entries.found.clear();
            entries.revision = Some(now);
        }
        Ok(entries)
    }

    fn entry(&self, item: LibraryItem) -> Result<Option<Arc<LibraryEntry>>> {
        if let Some(entry) = self.entries()?.found.get(&item) {
            return Ok(Some(entry.clone()));
        }
        let Some(entry) = library::get(&self.db, item)? else {
            return Ok(None);
        };
        let entry = Arc::new(entry);
        self.entries()?.found.insert(item, entry.clone());
        Ok(Some(entry))
    }
}

async fn profile_playlist(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Ok(profile_id) = id.parse() else {
        return not_found().await;
    };
    if !state
        .links
        .verify(Subject::Playlist { profile_id }, token_of(query.as_deref()))
    {
        return not_found().await;
    }
    // Entries use the address this client reached us by (the guard checked it), so a playlist
    // fetched over the LAN lists URLs that work from there.
    let links = match headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
    {
        Some(host) => state.links.with_base(format!("http://{host}")),
        None => state.links.clone(),
    };
    match playlist(&state.db, &links, profile_id) {
        Ok(text) => {
            let mut response = Response::new(Body::from(text));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("audio/x-mpegurl; charset=utf-8"),
            );
            response
        }
        Err(Error::NotFound(_)) => not_found().await,
        Err(error) => internal(&error),
    }
}

fn redirect(url: String) -> Response {
    // The URL's own bytes become the header, without a copy.
    let Ok(location) = HeaderValue::from_maybe_shared(bytes::Bytes::from(url)) else {
        return plain(
            StatusCode::BAD_GATEWAY,
            "The storage provider gave an unusable address.",
        );
    };
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    // Every playback gets a fresh URL: a cached redirect would outlive its signature.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn head_of(size: Option<u64>, content_type: &str) -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(size) = size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    response
}

fn not_uploaded() -> Response {
    plain(
        StatusCode::CONFLICT,
        "This item has not finished uploading yet; try again once it has.",
    )
}

fn storage_failure(error: &StorageError) -> Response {
    let (status, advice) = match error.kind {
        ErrorKind::NotFound => (
            StatusCode::NOT_FOUND,
            "The file is no longer in storage; upload it again.",
        ),
        ErrorKind::SignInRequired => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The storage account needs signing in again.",
        ),
        ErrorKind::Unauthenticated | ErrorKind::PermissionDenied | ErrorKind::Config => (
            StatusCode::BAD_GATEWAY,
            "The storage refused access; test this storage in Offload to see why.",
        ),
        _ if error.is_temporary() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The storage is not reachable right now; try again in a moment.",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "The storage answered with an error.",
        ),
    };
    tracing::warn!(%error, "cannot stream");
    let mut response = plain(status, &format!("{advice}\n{error}"));
    if let Some(wait) = error.retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
    }
    response
}

fn internal(error: &Error) -> Response {
    tracing::error!(%error, "stream request failed");
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Offload could not answer; see its log.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        headers
    }

    #[test]
    fn only_ip_addresses_and_localhost_with_our_port_pass() {
        for good in [
            "127.0.0.1:8000",
            "localhost:8000",
            "LOCALHOST:8000",
            "[::1]:8000",
            "192.168.1.4:8000",
        ] {
            assert!(host_allowed(&with_host(good), 8000), "{good}");
        }
        for bad in [
            "evil.example:8000",
            "127.0.0.1.nip.io:8000",
            "localhost.evil.example:8000",
            "127.0.0.1:8001",
            "127.0.0.1",
            "[::1]",
            "[::1:8000",
            "",
        ] {
            assert!(!host_allowed(&with_host(bad), 8000), "{bad}");
        }
        assert!(!host_allowed(&HeaderMap::new(), 8000), "no Host at all");
        assert!(
            host_allowed(&with_host("127.0.0.1"), 80),
            "the default port may be left out"
        );
    }

    #[test]
    fn the_stream_route_names_an_item() {
        let get = &Method::GET;
        assert_eq!(
            stream_item(get, "/api/media/12/stream"),
            Some(LibraryItem::Media(12))
        );
        assert_eq!(
            stream_item(&Method::HEAD, "/api/episodes/7/stream"),
            Some(LibraryItem::Episode(7))
        );
        for other in [
            "/api/media/12/poster.jpg",
            "/api/media/1/2/stream",
            "/api/media/x/stream",
            "/api/films/12/stream",
            "/api/media/12/stream/",
            "/health",
        ] {
            assert_eq!(stream_item(get, other), None, "{other}");
        }
        assert_eq!(stream_item(&Method::POST, "/api/media/12/stream"), None);
    }

    #[test]
    fn the_token_is_read_from_the_query() {
        assert_eq!(token_of(Some("token=abc")), "abc");
        assert_eq!(token_of(Some("x=1&token=abc")), "abc");
        assert_eq!(token_of(Some("xtoken=abc")), "");
        assert_eq!(token_of(None), "");
    }
}
