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
mod playlist;
mod proxy;
mod server;
pub mod token;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::library::LibraryItem;
use crate::secrets::MasterKey;
use token::{Subject, TokenKey};

pub use playlist::playlist;
pub use server::StreamServer;

/// The port stream URLs use unless the user picks another. Fixed, so URLs saved in a player or
/// a playlist keep working after a restart.
pub const DEFAULT_PORT: u16 = 39240;
/// How long a presigned URL minted for one playback lives: long enough for a film watched with
/// pauses (players keep seeking on the URL they were redirected to), short enough that one
/// copied out of a player's history is dead the same day. The provider's maximum caps it.
pub const DEFAULT_URL_LIFETIME: Duration = Duration::from_secs(4 * 3600);

const SETTING_PORT: &str = "stream.port";
const SETTING_BIND: &str = "stream.bind";
const SETTING_URL_LIFETIME: &str = "stream.url_lifetime_secs";
/// Overrides the port setting for one process (tests, a second data folder).
pub const PORT_ENV: &str = "OFFLOAD_STREAM_PORT";

/// Where the stream server listens and how it mints URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSettings {
    /// Loopback unless the user explicitly chose another address.
    pub bind: IpAddr,
    pub port: u16,
    #[serde(with = "seconds")]
    pub url_lifetime: Duration,
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        value: &std::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }
}

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            url_lifetime: DEFAULT_URL_LIFETIME,
        }
    }
}

impl StreamSettings {
    pub fn load(db: &Db) -> Result<StreamSettings> {
        let defaults = StreamSettings::default();
        let damaged = |key: &str, value: &str| {
            Error::Invalid(format!(
                "the setting {key} holds {value:?}, which is not valid; set it again with `offload stream`"
            ))
        };
        let port = match std::env::var(PORT_ENV) {
            Ok(value) => value
                .trim()
                .parse()
                .map_err(|_| damaged(PORT_ENV, &value))?,
            Err(_) => match db.setting(SETTING_PORT)? {
                Some(value) => value.parse().map_err(|_| damaged(SETTING_PORT, &value))?,
                None => defaults.port,
            },
        };
        let bind = match db.setting(SETTING_BIND)? {
            Some(value) => value.parse().map_err(|_| damaged(SETTING_BIND, &value))?,
            None => defaults.bind,
        };
        let url_lifetime = match db.setting(SETTING_URL_LIFETIME)? {
            Some(value) => Duration::from_secs(
                value
                    .parse()
                    .map_err(|_| damaged(SETTING_URL_LIFETIME, &value))?,
            ),
            None => defaults.url_lifetime,
        };
        Ok(StreamSettings {
            bind,
            port,
            url_lifetime,
        })
    }

    pub fn save(&self, db: &Db) -> Result<()> {
        if self.url_lifetime < Duration::from_secs(1) {
            return Err(Error::Invalid(
                "the URL lifetime must be at least one second".into(),
            ));
        }
        db.set_setting(SETTING_PORT, &self.port.to_string())?;
        db.set_setting(SETTING_BIND, &self.bind.to_string())?;
        db.set_setting(
            SETTING_URL_LIFETIME,
            &self.url_lifetime.as_secs().to_string(),
        )?;
        Ok(())
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
        let (kind, id) = match item {
            LibraryItem::Media(id) => ("media", id),
            LibraryItem::Episode(id) => ("episodes", id),
        };
        format!(
            "{}/api/{kind}/{id}/stream?token={}",
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
