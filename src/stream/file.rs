//! Serving a file from disk the way media players expect: single byte ranges (`206`, `416`),
//! `HEAD`, validators (`ETag`, `Last-Modified`) and the conditional requests built on them
//! (`If-None-Match`, `If-Modified-Since`, `If-Range`).
//!
//! The file is read in large blocks on the blocking pool and sent as it is read, so memory stays
//! at a few blocks per connection whatever the file's size, and a slow player slows the reads.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};

use super::plain;

/// Bytes read per blocking call: one a player's usual 1 MiB read (fewer hops through the
/// blocking pool: at 256 KiB, 16 players reading 1 MiB ranges got 82–100% of nginx's MiB/s from
/// run to run, at 1 MiB 97–98%), and still only a block or two held per paused player.
const BLOCK: usize = 1024 * 1024;

/// A requested byte range, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send everything. Malformed and multi-range headers land here too; RFC
    /// 9110 lets a server ignore them, and players only ever ask for one range.
    Full,
    Partial(ByteRange),
    Unsatisfiable,
}

pub fn parse_range(header: &str, size: u64) -> RangeRequest {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match number(end) {
            Some(0) => return RangeRequest::Unsatisfiable,
            Some(suffix) if size > 0 => ByteRange {
                first: size.saturating_sub(suffix),
                last: size - 1,
            },
            Some(_) => return RangeRequest::Unsatisfiable,
            None => return RangeRequest::Full,
        },
        (false, true) => match number(start) {
            Some(first) => ByteRange {
                first,
                last: size.saturating_sub(1),
            },
            None => return RangeRequest::Full,
        },
        (false, false) => match (number(start), number(end)) {
            (Some(first), Some(last)) if first <= last => ByteRange {
                first,
                last: last.min(size.saturating_sub(1)),
            },
            _ => return RangeRequest::Full,
        },
        (true, true) => return RangeRequest::Full,
    };
    if range.first >= size {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial(range)
    }
}

/// The validators of a file as it is now.
struct Validators {
    etag: String,
    modified: SystemTime,
}

impl Validators {
    fn of(meta: &std::fs::Metadata) -> Validators {
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let since_epoch = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        Validators {
            // Size and modification time, as nginx does: cheap, and it changes when the file does.
            etag: format!(
                "\"{:x}.{:x}-{:x}\"",
                since_epoch.as_secs(),
                since_epoch.subsec_nanos(),
                meta.len()
            ),
            // HTTP dates have whole seconds.
            modified: UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()),
        }
    }

    /// `If-None-Match` (weak comparison), else `If-Modified-Since`.
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(value) = header_text(headers, header::IF_NONE_MATCH) {
            return value
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag);
        }
        header_text(headers, header::IF_MODIFIED_SINCE)
            .and_then(|text| httpdate::parse_http_date(text).ok())
            .is_some_and(|since| self.modified <= since)
    }

    /// `If-Range`: the range applies only to the representation the player already has part of.
    fn range_applies(&self, headers: &HeaderMap) -> bool {
        match header_text(headers, header::IF_RANGE) {
            None => true,
            // A weak tag never matches here: ranges need byte-for-byte identity.
            Some(tag) if tag.starts_with('"') || tag.starts_with("W/") => tag == self.etag,
            Some(date) => httpdate::parse_http_date(date).is_ok_and(|date| date == self.modified),
        }
    }

    fn apply(&self, response: &mut Response) {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, value);
        }
        if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(self.modified)) {
            headers.insert(header::LAST_MODIFIED, value);
        }
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Answers a `GET` or `HEAD` for the file at `path`.
pub async fn serve(
    method: &Method,
    headers: &HeaderMap,
    path: PathBuf,
    content_type: &str,
) -> Response {
    let opened = tokio::task::spawn_blocking(move || {
        let file = File::open(&path)?;
        let meta = file.metadata()?;
        Ok::<_, std::io::Error>((file, meta))
    })
    .await;
    let (file, meta) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return plain(
                StatusCode::NOT_FOUND,
                "The file is no longer in the library folder; upload it again.",
            )
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot open a library file for streaming");
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The file cannot be read.",
            );
        }
        Err(_) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The file cannot be read.",
            )
        }
    };
    let size = meta.len();
    let validators = Validators::of(&meta);
    if validators.not_modified(headers) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        validators.apply(&mut response);
        return response;
    }
    let request = match header_text(headers, header::RANGE) {
        Some(range) if validators.range_applies(headers) => parse_range(range, size),
        _ => RangeRequest::Full,
    };
    let (status, range) = match request {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        RangeRequest::Unsatisfiable => {
            let mut response = plain(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The requested range is past the end of the file.",
            );
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            validators.apply(&mut response);
            return response;
        }
    };
    let (first, length) = match range {
        Some(range) => (range.first, range.last - range.first + 1),
        None => (0, size),
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(read_blocks(Arc::new(file), first, length))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) = HeaderValue::from_str(content_type) {
        out.insert(header::CONTENT_TYPE, value);
    }
    if let Some(range) = range {
        if let Ok(value) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.first, range.last))
        {
            out.insert(header::CONTENT_RANGE, value);
        }
    }
    validators.apply(&mut response);
    response
}

fn read_blocks(
    file: Arc<File>,
    offset: u64,
    length: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::try_unfold((offset, length), move |(offset, remaining)| {
        let file = file.clone();
        async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = remaining.min(BLOCK as u64) as usize;
            let block = tokio::task::spawn_blocking(move || {
                let mut buffer = BytesMut::zeroed(want);
                let mut filled = 0;
                while filled < want {
                    match crate::platform::read_at(
                        &file,
                        &mut buffer[filled..],
                        offset + filled as u64,
                    )? {
                        // The file shrank while being served: end the body early, so the
                        // player sees a short response rather than made-up bytes.
                        0 => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the file shrank while it was being served",
                            ))
                        }
                        read => filled += read,
                    }
                }
                Ok(buffer.freeze())
            })
            .await
            .map_err(std::io::Error::other)??;
            let read = block.len() as u64;
            Ok(Some((block, (offset + read, remaining - read))))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeRequest::*;
        let r = |first, last| Partial(ByteRange { first, last });
        assert_eq!(parse_range("bytes=0-0", 100), r(0, 0));
        assert_eq!(parse_range("bytes=10-19", 100), r(10, 19));
        assert_eq!(parse_range("bytes=90-", 100), r(90, 99));
        assert_eq!(parse_range("bytes=90-500", 100), r(90, 99), "end clamped");
        assert_eq!(parse_range("bytes=-10", 100), r(90, 99), "suffix");
        assert_eq!(
            parse_range("bytes=-500", 100),
            r(0, 99),
            "suffix longer than file"
        );
        assert_eq!(parse_range("BYTES = 5-6", 100), r(5, 6));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable, "empty file");
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Full, "multiple ranges");
        assert_eq!(parse_range("bytes=9-1", 100), Full, "backwards");
        assert_eq!(parse_range("items=0-1", 100), Full, "other unit");
        assert_eq!(parse_range("bytes=x-1", 100), Full);
        assert_eq!(parse_range("bytes=-", 100), Full);
    }
}
