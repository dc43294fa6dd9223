//! Signing in to Google Drive and OneDrive accounts, against a fake identity platform that
//! enforces PKCE, single-use codes and refresh-token rotation: through the loopback redirect
//! with the real `offload backend connect`, and through a deep link handed to the engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::cloud::{add_cloud_backend, connect_with_cli_through, consent, engine_parts, onedrive};
use common::oauth_fake::{FakeIdentity, ACCOUNT};
use common::s3::fetch;
use common::Sandbox;
use offload::accounts;
use offload::backends::{self, BackendRecord};
use offload::oauth::{self, OAuthError};

fn with_state(url: &str, state: &str) -> String {
    let (base, _) = url.split_once("&state=").unwrap();
    format!("{base}&state={state}")
}

/// Every byte of the data folder: the database and its WAL.
fn data_folder_bytes(sandbox: &Sandbox) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(sandbox.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn connect_through_the_loopback_redirect_with_pkce() {
    let fake = FakeIdentity::start();
    fake.require_client_secret("desktop-client-secret");
    let sandbox = Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    add_cloud_backend(
        &sandbox,
        &fake.backend_args(),
        "google-drive",
        Some("desktop-client-secret"),
    );

    let output = connect_with_cli_through(&sandbox, |url| {
        assert!(
            url.starts_with(&format!("{}/authorize?", fake.base)),
            "{url}"
        );
        for part in [
            "response_type=code",
            "code_challenge_method=S256",
            "state=",
            "scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdrive.file",
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A",
            "access_type=offline",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }

        let back = consent(url);
        assert!(back.starts_with("http://127.0.0.1:"), "{back}");
        // A callback with a forged state is turned away, and the sign-in goes on waiting.
        let forged = fetch(&with_state(&back, "forged"), "GET", &[]);
        assert_eq!(forged.status, 400);
        assert!(String::from_utf8_lossy(&forged.body).contains("not the sign-in"));

        let page = fetch(&back, "GET", &[]);
        let page_text = String::from_utf8_lossy(&page.body).into_owned();
        assert_eq!(page.status, 200, "{page_text}");
        assert!(
            page_text.contains("Connected") && page_text.contains(ACCOUNT),
            "{page_text}"
        );
        assert!(!page_text.contains("fake-code") && !page_text.contains("fake-access"));
    });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("connected \"Cloud\" to Google as {ACCOUNT}")
    );
    assert_eq!(fake.grants(), ["authorization_code"]);
    let listed = sandbox.ok(&["backend", "list"]);
    assert!(
        listed.contains(&format!("signed in as {ACCOUNT}")),
        "{listed}"
    );

    // The tokens and the client secret are stored, and only sealed.
    let (db, vault, record) = engine_parts(&sandbox);
    let (config, secret) = record.cloud(&vault).unwrap();
    assert_eq!(secret.unwrap().as_str(), "desktop-client-secret");
    let tokens = accounts::tokens(&db, &vault, config.connection_id.unwrap()).unwrap();
    assert!(tokens.access_token.starts_with("fake-access-"));
    let bytes = data_folder_bytes(&sandbox);
    for secret in [
        tokens.access_token.as_str(),
        tokens.refresh_token.as_deref().unwrap().as_str(),
        "desktop-client-secret",
    ] {
        assert!(!contains(&bytes, secret), "{secret} is stored in the clear");
    }
}

#[tokio::test]
async fn a_deep_link_completes_a_sign_in_once_and_only_with_its_own_state() {
    let (fake, _sandbox, db, vault, record) = onedrive();
    let http = oauth::http_client();

    let flow = oauth::begin(&db, &vault, &record, "offload://oauth/microsoft").unwrap();
    assert!(
        flow.url
            .contains("scope=Files.ReadWrite+offline_access+User.Read"),
        "{}",
        flow.url
    );
    let back = tokio::task::spawn_blocking({
        let url = flow.url.clone();
        move || consent(&url)
    })
    .await
    .unwrap();
    assert!(
        back.starts_with("offload://oauth/microsoft?code="),
        "{back}"
    );

    let refused = |result: Result<oauth::Connected, OAuthError>| match result {
        Err(error) => error,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let forged = refused(oauth::complete(&db, &vault, &http, &with_state(&back, "forged")).await);
    assert!(matches!(forged, OAuthError::UnknownState), "{forged}");
    let other_provider = back.replace("offload://oauth/microsoft", "offload://oauth/google");
    let wrong = refused(oauth::complete(&db, &vault, &http, &other_provider).await);
    assert!(matches!(wrong, OAuthError::WrongProvider { .. }), "{wrong}");
    assert!(
        backends::get(&db, record.id)
            .unwrap()
            .cloud(&vault)
            .unwrap()
            .0
            .connection_id
            .is_none(),
        "nothing is stored for a refused callback"
    );

    let connected = oauth::complete(&db, &vault, &http, &back).await.unwrap();
    assert_eq!(connected.account.as_deref(), Some(ACCOUNT));
    let again = refused(oauth::complete(&db, &vault, &http, &back).await);
    assert!(matches!(again, OAuthError::AlreadyUsed), "{again}");
    assert_eq!(
        fake.grants(),
        ["authorization_code"],
        "a replayed code never reaches the provider"
    );

    // A sign-in left open for more than ten minutes is over.
    let late = oauth::begin(&db, &vault, &record, "offload://oauth/microsoft").unwrap();
    db.lock()
        .execute(
            "UPDATE oauth_flows SET expires_at = 0 WHERE state = ?1",
            [&late.state],
        )
        .unwrap();
    let late_back = tokio::task::spawn_blocking(move || consent(&late.url))
        .await
        .unwrap();
    let expired = refused(oauth::complete(&db, &vault, &http, &late_back).await);
    assert!(matches!(expired, OAuthError::Expired), "{expired}");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_revoked_account_waits_to_be_signed_in_again() {
    let (fake, _sandbox, db, vault, record) = onedrive();
    let http = oauth::http_client();
    let sign_in = |record: BackendRecord| {
        let (db, vault, http) = (db.clone(), vault.clone(), http.clone());
        async move {
            let flow = oauth::begin(&db, &vault, &record, "offload://oauth/microsoft").unwrap();
            let back = tokio::task::spawn_blocking(move || consent(&flow.url))
                .await
                .unwrap();
            oauth::complete(&db, &vault, &http, &back).await.unwrap()
        }
    };
    let connected = sign_in(record.clone()).await;
    let record = backends::get(&db, record.id).unwrap();
    let first = accounts::tokens(&db, &vault, connected.connection_id).unwrap();

    // A token with an hour left is used as it is.
    let token = oauth::access_token(&db, &vault, &http, &record, false)
        .await
        .unwrap();
    assert_eq!(token, first.access_token);
    assert_eq!(fake.grants(), ["authorization_code"]);

    // After a 401: refreshed, and the rotated refresh token replaces the retired one.
    let refreshed = oauth::access_token(&db, &vault, &http, &record, true)
        .await
        .unwrap();
    assert_ne!(refreshed, first.access_token);
    let second = accounts::tokens(&db, &vault, connected.connection_id).unwrap();
    assert_eq!(second.access_token, refreshed);
    let (old, new) = (first.refresh_token.unwrap(), second.refresh_token.unwrap());
    assert_ne!(old, new);
    assert!(!fake.refresh_token_works(&old) && fake.refresh_token_works(&new));

    // A token about to expire is refreshed before it is used.
    fake.set_access_lifetime(std::time::Duration::from_secs(30));
    let short = oauth::access_token(&db, &vault, &http, &record, true)
        .await
        .unwrap();
    let ahead = oauth::access_token(&db, &vault, &http, &record, false)
        .await
        .unwrap();
    assert_ne!(short, ahead);
    fake.set_access_lifetime(std::time::Duration::from_secs(3600));

    // The user revokes Offload's access: the account is disconnected, with what to do.
    fake.revoke_all();
    let error = oauth::access_token(&db, &vault, &http, &record, true)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, OAuthError::Disconnected { .. }), "{text}");
    // What to do is the shell's to say (`offload jobs` names the command, the window the
    // button): the engine names the backend, and no command.
    assert!(
        text.contains("backend \"Cloud\" needs signing in again") && !text.contains("offload "),
        "{text}"
    );
    let status = accounts::status(&db, connected.connection_id).unwrap();
    assert!(!status.connected);
    assert!(status.reason.unwrap().contains("sign in again"));
    let grants_before = fake.grants().len();
    assert!(oauth::access_token(&db, &vault, &http, &record, false)
        .await
        .is_err());
    assert_eq!(
        fake.grants().len(),
        grants_before,
        "a disconnected account is not retried"
    );

    // Signing in again brings the same account back.
    let again = sign_in(record.clone()).await;
    assert_eq!(again.connection_id, connected.connection_id);
    assert!(
        accounts::status(&db, connected.connection_id)
            .unwrap()
            .connected
    );
    oauth::access_token(&db, &vault, &http, &record, false)
        .await
        .unwrap();
}

/// `oauth2-mock-server` (npm), an authorization server Offload's authors did not write.
struct MockServer {
    child: std::process::Child,
    base: String,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn oauth2_mock_server() -> MockServer {
    let binary = std::env::var("OFFLOAD_TEST_OAUTH2_MOCK_SERVER").unwrap_or_else(|_| {
        format!(
            "{}/target/test-tools/oauth2-mock-server/node_modules/.bin/oauth2-mock-server",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let port = common::s3::free_port();
    let child = std::process::Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("{binary} does not run ({error}); scripts/install-deps test installs it")
        });
    let server = MockServer {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    common::wait_for("oauth2-mock-server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    server
}

#[tokio::test]
async fn an_independent_authorization_server_accepts_offloads_client() {
    let server = oauth2_mock_server();
    let sandbox = Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    add_cloud_backend(
        &sandbox,
        &common::oauth_fake::endpoint_args(&server.base, "offload"),
        "onedrive",
        None,
    );
    let (db, vault, record) = engine_parts(&sandbox);
    let http = oauth::http_client();
    let flow = oauth::begin(&db, &vault, &record, "offload://oauth/microsoft").unwrap();
    let back = tokio::task::spawn_blocking(move || consent(&flow.url))
        .await
        .unwrap();
    let connected = oauth::complete(&db, &vault, &http, &back).await.unwrap();
    let record = backends::get(&db, record.id).unwrap();
    let first = accounts::tokens(&db, &vault, connected.connection_id).unwrap();
    assert!(first.refresh_token.is_some(), "a refresh token was issued");
    // Its access tokens are JWTs: three dot-separated parts.
    assert_eq!(first.access_token.split('.').count(), 3);
    let refreshed = oauth::access_token(&db, &vault, &http, &record, true)
        .await
        .unwrap();
    assert_eq!(refreshed.split('.').count(), 3);
    let second = accounts::tokens(&db, &vault, connected.connection_id).unwrap();
    assert_eq!(second.access_token, refreshed);
    assert_ne!(
        second.refresh_token, first.refresh_token,
        "the new refresh token it sent back is the one stored"
    );
}
