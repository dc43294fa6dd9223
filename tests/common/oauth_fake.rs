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
        vec![
            "--client-id".into(),
            CLIENT_ID.into(),
            "--auth-url".into(),
            format!("{}/authorize", self.base),
            "--token-url".into(),
            format!("{}/token", self.base),
            "--api-base".into(),
            self.base.clone(),
        ]
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

async fn user(State(rules): State<Arc<Mutex<Rules>>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let valid = rules
        .lock()
        .unwrap()
        .access_tokens
        .get(token)
        .is_some_and(|until| Instant::now() < *until);
    if !valid {
        return StatusCode::UNAUTHORIZED.into_response();
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
