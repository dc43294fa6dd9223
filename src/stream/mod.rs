//! The localhost stream server: stable URLs that VLC, mpv or Kodi open like files.
//!
//! `GET`/`HEAD /api/media/{id}/stream` and `/api/episodes/{id}/stream` answer by backend: a `302`
//! to a presigned (or public) URL minted for that request, the file itself with `Range` support,
//! or the provider's bytes proxied with `Range` passed through. `GET
//! /api/profiles/{id}/playlist.m3u8` lists a profile's library as an extended M3U of those URLs,
//! and `GET /health` is for scripts.
//!
//! Who may use it: every stream and playlist URL carries a capability token (see [`token`]), so
//! other local users and web pages cannot enumerate the library; the `Host` header must be an IP
//! address or `localhost` with our port, so a web page cannot reach the server through DNS
//! rebinding; items are looked up by id, so no part of a request ever becomes a file path.

mod file;
mod found;
mod playlist;
mod proxy;
mod server;
mod strm;
pub mod token;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::library::LibraryItem;
use crate::secrets::MasterKey;
use crate::settings::Settings;
use token::{Subject, TokenKey};

pub use found::{describe_found, UrlSource};
pub use playlist::playlist;
pub use server::StreamServer;
pub use strm::{export_strm, StrmReport, MANIFEST};

/// Overrides the port setting for one process (tests, a second data folder).
pub const PORT_ENV: &str = "OFFLOAD_STREAM_PORT";

/// Where the stream server listens and how it mints URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Loopback unless the user explicitly chose another address.
    pub bind: IpAddr,
    pub port: u16,
    pub url_lifetime: Duration,
}

impl StreamSettings {
    /// Where the server listens and how long its URLs live, by the settings; `OFFLOAD_STREAM_PORT`
    /// overrides the port for this process.
    pub fn from_settings(settings: &Settings) -> StreamSettings {
        let port = std::env::var(PORT_ENV)
            .ok()
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(settings.stream_port);
        StreamSettings {
            bind: settings.stream_bind,
            port,
            url_lifetime: settings.url_lifetime(),
        }
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// The start of every URL: the bound address, or loopback when bound to every interface.
    pub fn base_url(&self) -> String {
        let host = match self.bind {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            other => other,
        };
        format!("http://{}", SocketAddr::new(host, self.port))
    }
}

/// Makes the URLs players open.
#[derive(Debug, Clone)]
pub struct Links {
    key: TokenKey,
    base: String,
}

impl Links {
    pub fn new(master: &MasterKey, settings: &StreamSettings) -> Links {
        Links {
            key: TokenKey::new(master),
            base: settings.base_url(),
        }
    }

    /// The same links with another start, e.g. the address a LAN client used.
    fn with_base(&self, base: String) -> Links {
        Links {
            key: self.key.clone(),
            base,
        }
    }

    pub fn item_url(&self, item: LibraryItem) -> String {
        self.item_link(item, "stream")
    }

    /// The picture of an item (where [`crate::posters`] took one), with its stream URL's token.
    pub fn poster_url(&self, item: LibraryItem) -> String {
        self.item_link(item, "poster.jpg")
    }

    fn item_link(&self, item: LibraryItem, leaf: &str) -> String {
        let (kind, id) = match item {
            LibraryItem::Media(id) => ("media", id),
            LibraryItem::Episode(id) => ("episodes", id),
        };
        format!(
            "{}/api/{kind}/{id}/{leaf}?token={}",
            self.base,
            self.key.token(Subject::Item(item))
        )
    }

    pub fn playlist_url(&self, profile_id: i64) -> String {
        format!(
            "{}/api/profiles/{profile_id}/playlist.m3u8?token={}",
            self.base,
            self.key.token(Subject::Playlist { profile_id })
        )
    }

    fn verify(&self, subject: Subject, token: &str) -> bool {
        self.key.verify(subject, token)
    }
}

/// A short plain-text answer: what went wrong, in words a person can act on.
fn plain(status: axum::http::StatusCode, text: &str) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(format!("{text}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
