//! SigV4 query-string presigning of `GET`, for the stream server.
//!
//! The SDK's presigner runs a request through its whole orchestrator (interceptors, endpoint
//! rules, dozens of allocations) for what is a canonical request, one SHA-256 and one HMAC. Minting
//! a URL per playback request made it the stream server's bottleneck, so this signs directly,
//! reusing the day's derived signing key. A unit test checks the URLs are identical to the SDK's.
//!
//! Signing follows "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)"
//! in the Amazon S3 API reference: unsigned payload, only `host` signed.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::S3Config;
use crate::storage::path::{encode_onto, percent_encode as encode};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

pub struct Presigner {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    region: String,
    /// `https://host[:port]` the URL starts with, and the `host` value that is signed.
    origin: String,
    host: String,
    /// Path before the key: `/bucket` (path style) or empty (virtual-hosted style).
    bucket_path: String,
    /// The day's signing key, derived from the secret; it changes once a day.
    signing_key: Mutex<Option<(String, Zeroizing<[u8; 32]>)>>,
}

impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presigner")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Presigner {
    pub fn new(config: &S3Config, secret_access_key: &Zeroizing<String>) -> Presigner {
        let endpoint = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region));
        let (scheme, rest) = endpoint
            .split_once("://")
            .unwrap_or(("https", endpoint.as_str()));
        let authority = rest.split('/').next().unwrap_or(rest);
        // Virtual-hosted style needs a bucket name that is a valid DNS label; the SDK's endpoint
        // rules fall back to path style otherwise, and so does this.
        let virtual_hosted = !config.path_style && is_dns_label(&config.bucket);
        let (host, bucket_path) = if virtual_hosted {
            (format!("{}.{authority}", config.bucket), String::new())
        } else {
            (authority.to_owned(), format!("/{}", encode(&config.bucket)))
        };
        Presigner {
            access_key_id: config.access_key_id.clone(),
            secret_access_key: secret_access_key.clone(),
            region: config.region.clone(),
            origin: format!("{scheme}://{host}"),
            host,
            bucket_path,
            signing_key: Mutex::new(None),
        }
    }

    /// A URL that lets its holder `GET` `key` (with any `Range`) for `lifetime` from `now`.
    ///
    /// The URL is written once, in order, and the canonical request and the string to sign are
    /// hashed from its pieces rather than built: minted per playback request, every string it
    /// allocated showed in the stream server's profile.
    pub fn presign_get(&self, key: &str, lifetime: Duration, now: SystemTime) -> String {
        use chrono::{Datelike, Timelike};
        use std::fmt::Write as _;
        let now = chrono::DateTime::<chrono::Utc>::from(now);
        let mut url = String::with_capacity(
            self.origin.len()
                + self.bucket_path.len()
                + key.len() * 2
                + self.access_key_id.len()
                + 256,
        );
        url.push_str(&self.origin);
        let path_start = url.len();
        url.push_str(&self.bucket_path);
        url.push('/');
        encode_onto(&mut url, key, b"/");
        let path_end = url.len();
        // The SDK puts `x-id` first; any order is valid, this one keeps URLs comparable. The
        // canonical query is sorted by name (upper case first), so there it comes last.
        url.push_str("?x-id=GetObject&");
        let query_start = url.len();
        url.push_str("X-Amz-Algorithm=");
        url.push_str(ALGORITHM);
        url.push_str("&X-Amz-Credential=");
        encode_onto(&mut url, &self.access_key_id, b"");
        // Formatted by hand: strftime patterns are parsed on every call, once per playback.
        let date = format!("{:04}{:02}{:02}", now.year(), now.month(), now.day());
        url.push_str("%2F");
        url.push_str(&date);
        url.push_str("%2F");
        encode_onto(&mut url, &self.region, b"");
        url.push_str("%2Fs3%2Faws4_request&X-Amz-Date=");
        let timestamp_start = url.len();
        let _ = write!(
            url,
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let timestamp_end = url.len();
        let _ = write!(
            url,
            "&X-Amz-Expires={}&X-Amz-SignedHeaders=host",
            lifetime.as_secs()
        );
        let query_end = url.len();

        let canonical_request = Sha256::new()
            .chain_update("GET\n")
            .chain_update(&url[path_start..path_end])
            .chain_update("\n")
            .chain_update(&url[query_start..query_end])
            .chain_update("&x-id=GetObject\nhost:")
            .chain_update(&self.host)
            .chain_update("\n\nhost\nUNSIGNED-PAYLOAD")
            .finalize();
        let mut mac = keyed(&self.signing_key(&date)[..]);
        for piece in [
            ALGORITHM.as_bytes(),
            b"\n",
            &url.as_bytes()[timestamp_start..timestamp_end],
            b"\n",
            date.as_bytes(),
            b"/",
            self.region.as_bytes(),
            b"/s3/aws4_request\n",
            &hex_of(&canonical_request.into()),
        ] {
            mac.update(piece);
        }
        url.push_str("&X-Amz-Signature=");
        let signature = hex_of(&mac.finalize().into_bytes().into());
        url.extend(signature.iter().map(|&digit| char::from(digit)));
        url
    }

    fn signing_key(&self, date: &str) -> Zeroizing<[u8; 32]> {
        let mut cached = self
            .signing_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((day, key)) = cached.as_ref() {
            if day == date {
                return key.clone();
            }
        }
        let secret = Zeroizing::new(format!("AWS4{}", self.secret_access_key.as_str()));
        let key = Zeroizing::new(hmac(
            &hmac(
                &hmac(
                    &hmac(secret.as_bytes(), date.as_bytes()),
                    self.region.as_bytes(),
                ),
                b"s3",
            ),
            b"aws4_request",
        ));
        *cached = Some((date.to_owned(), key.clone()));
        key
    }
}

/// Lower-case hex of a digest, written at once (`hex::encode` builds a string a character at a
/// time, growing it as it goes).
fn hex_of(digest: &[u8; 32]) -> [u8; 64] {
    let mut text = [0u8; 64];
    match hex::encode_to_slice(digest, &mut text) {
        Ok(()) => text,
        Err(_) => unreachable!("64 hex digits hold 32 bytes"),
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = keyed(key);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// A bucket name usable as one DNS label: 3–63 lower-case letters, digits and hyphens, starting
/// and ending with a letter or digit.
fn is_dns_label(bucket: &str) -> bool {
    let bytes = bucket.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::s3::{Provider, S3Backend, S3Options};
    use aws_sdk_s3::presigning::PresigningConfig;

    fn config(provider: Provider, endpoint: Option<&str>, bucket: &str) -> S3Config {
        S3Config::new(S3Options {
            provider,
            endpoint: endpoint.map(str::to_owned),
            region: Some("eu-west-3".into()),
            bucket: bucket.into(),
            access_key_id: "AKIDEXAMPLE".into(),
            ..S3Options::default()
        })
        .unwrap()
    }

    /// The same request signed at the same instant must give the SDK's URL, byte for byte.
    #[tokio::test]
    async fn urls_are_the_sdks_urls() {
        let secret = Zeroizing::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned());
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let cases = [
            config(Provider::Aws, None, "my-films"),
            config(Provider::Aws, None, "Not.A.Label"),
            config(Provider::Garage, Some("http://127.0.0.1:3900"), "films"),
            config(Provider::Minio, Some("https://minio.example:9000"), "films"),
            config(Provider::Wasabi, None, "films-2024"),
        ];
        for config in cases {
            for key in [
                "Film.mp4",
                "Show/Season 1/Show S01E02 (ü & ä) [1080p]+x.mkv",
            ] {
                for lifetime in [Duration::from_secs(3), Duration::from_secs(4 * 3600)] {
                    let ours = Presigner::new(&config, &secret).presign_get(key, lifetime, at);
                    let backend = S3Backend::new(&config, &secret);
                    let sdk = backend
                        .client
                        .get_object()
                        .bucket(&config.bucket)
                        .key(key)
                        .presigned(
                            PresigningConfig::builder()
                                .start_time(at)
                                .expires_in(lifetime)
                                .build()
                                .unwrap(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(ours, sdk.uri(), "{config:?} {key}");
                }
            }
        }
    }

    #[test]
    fn the_signing_key_follows_the_date() {
        let presigner = Presigner::new(
            &config(Provider::Garage, Some("http://127.0.0.1:3900"), "films"),
            &Zeroizing::new("secret".into()),
        );
        let day = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let a = presigner.presign_get("a", Duration::from_secs(60), day);
        let b = presigner.presign_get(
            "a",
            Duration::from_secs(60),
            day + Duration::from_secs(86_400),
        );
        let again = presigner.presign_get("a", Duration::from_secs(60), day);
        assert_ne!(a, b);
        assert_eq!(a, again);
    }
}
