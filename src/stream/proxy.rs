//! Streaming through Offload, for providers whose downloads need a header a player cannot send
//! (Google Drive wants the access token on every request).
//!
//! The player's `Range` and conditional headers go upstream unchanged, the provider's answer
//! comes back with the headers a player needs, and the body is passed on as it arrives: hyper only
//! asks for the next chunk once the last one went out, so a paused player pauses the download.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::plain;

/// Request headers a player sends that the provider should see.
const FORWARDED_REQUEST: [HeaderName; 4] = [
    header::RANGE,
    header::IF_RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
];

/// Response headers a player needs back.
const FORWARDED_RESPONSE: [HeaderName; 6] = [
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
    header::LAST_MODIFIED,
    header::CONTENT_TYPE,
];

/// How long the provider may take to start answering.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        // Offload adds credentials; a redirect must not carry them somewhere else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

pub async fn forward(
    client: &reqwest::Client,
    method: &Method,
    headers: &HeaderMap,
    url: &str,
    extra: &[(String, String)],
    content_type: &str,
) -> Response {
    let head = method == Method::HEAD;
    let mut request = client.request(if head { Method::HEAD } else { Method::GET }, url);
    for name in FORWARDED_REQUEST {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    for (name, value) in extra {
        request = request.header(name.as_str(), value.as_str());
    }
    let answer = match tokio::time::timeout(ANSWER_TIMEOUT, request.send()).await {
        Err(_) => {
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                "The storage provider did not answer in time; try again.",
            )
        }
        Ok(Err(error)) => {
            // Only the host: the URL may carry credentials.
            let host = crate::storage::network::host_of(error.url());
            let found = crate::storage::network::unreachable(&host, &error, error.is_timeout());
            tracing::warn!(reason = %found.message, "streaming from the provider failed");
            return plain(
                StatusCode::BAD_GATEWAY,
                "The storage provider cannot be reached; check the network and try again.",
            );
        }
        Ok(Ok(answer)) => answer,
    };
    let status = answer.status();
    match status.as_u16() {
        200 | 206 | 304 | 416 => {}
        404 | 410 => {
            return plain(
                StatusCode::NOT_FOUND,
                "The file is no longer in storage; upload it again.",
            )
        }
        401 | 403 => {
            return plain(
                StatusCode::BAD_GATEWAY,
                "The storage provider refused access; sign in to the account again.",
            )
        }
        429 | 503 => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "The storage provider is busy; try again in a moment.",
            )
        }
        other => {
            tracing::warn!(
                status = other,
                "the provider answered a stream request with an error"
            );
            return plain(
                StatusCode::BAD_GATEWAY,
                "The storage provider answered with an error; try again later.",
            );
        }
    }
    let mut response_headers = HeaderMap::new();
    for name in FORWARDED_RESPONSE {
        if let Some(value) = answer.headers().get(&name) {
            response_headers.insert(name, value.clone());
        }
    }
    // The library knows the type better than a provider that says octet-stream.
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response_headers.insert(header::CONTENT_TYPE, value);
    }
    let body = if head {
        Body::empty()
    } else {
        Body::from_stream(answer.bytes_stream())
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::OK);
    *response.headers_mut() = response_headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;

    /// An upstream like Drive's media download: the file with Range support, but only with the
    /// bearer token; a missing file is 404.
    async fn upstream(path: std::path::PathBuf) -> String {
        let app = Router::new().route(
            "/{name}",
            get(
                move |axum::extract::Path(name): axum::extract::Path<String>,
                      method: Method,
                      headers: HeaderMap| {
                    let path = path.clone();
                    async move {
                        if headers
                            .get(header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            != Some("Bearer secret")
                        {
                            return StatusCode::UNAUTHORIZED.into_response();
                        }
                        if name != "video" {
                            return StatusCode::NOT_FOUND.into_response();
                        }
                        super::super::file::serve(
                            &method,
                            &headers,
                            path,
                            "application/octet-stream",
                        )
                        .await
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    use axum::response::IntoResponse;

    async fn body(response: Response) -> Vec<u8> {
        use http_body_util::BodyExt;
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn ranges_pass_through_with_the_token_added_server_side() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("video");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let base = upstream(path).await;
        let client = client();
        let auth = [("Authorization".to_owned(), "Bearer secret".to_owned())];

        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=1000-1999"));
        let response = forward(
            &client,
            &Method::GET,
            &headers,
            &format!("{base}/video"),
            &auth,
            "video/mp4",
        )
        .await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            response.headers()[header::CONTENT_RANGE],
            "bytes 1000-1999/300000"
        );
        assert_eq!(response.headers()[header::CONTENT_TYPE], "video/mp4");
        assert_eq!(body(response).await, &content[1000..2000]);

        let whole = forward(
            &client,
            &Method::GET,
            &HeaderMap::new(),
            &format!("{base}/video"),
            &auth,
            "video/mp4",
        )
        .await;
        assert_eq!(whole.status(), StatusCode::OK);
        assert_eq!(body(whole).await, content);

        let head = forward(
            &client,
            &Method::HEAD,
            &HeaderMap::new(),
            &format!("{base}/video"),
            &auth,
            "video/mp4",
        )
        .await;
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "300000");
        assert!(body(head).await.is_empty());

        let mut past = HeaderMap::new();
        past.insert(header::RANGE, HeaderValue::from_static("bytes=300000-"));
        let response = forward(
            &client,
            &Method::GET,
            &past,
            &format!("{base}/video"),
            &auth,
            "video/mp4",
        )
        .await;
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */300000");

        let refused = forward(
            &client,
            &Method::GET,
            &HeaderMap::new(),
            &format!("{base}/video"),
            &[],
            "video/mp4",
        )
        .await;
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
        assert!(String::from_utf8(body(refused).await)
            .unwrap()
            .contains("sign in"));

        let missing = forward(
            &client,
            &Method::GET,
            &HeaderMap::new(),
            &format!("{base}/other"),
            &auth,
            "video/mp4",
        )
        .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
