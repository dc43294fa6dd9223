//! A cloud backend (Google Drive, OneDrive) in a sandbox, signed in at the fake identity
//! platform, and the engine's view of it.

#![allow(dead_code)]

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;

use base64::Engine as _;
use offload::backends::{self, BackendRecord};
use offload::db::Db;
use offload::oauth;
use offload::secrets::{KeySource, MasterKey, Vault};

use super::oauth_fake::FakeIdentity;
use super::s3::fetch;
use super::{Sandbox, MASTER_KEY};

/// Adds a backend of `kind` ("google-drive" or "onedrive") that signs in at `fake`.
pub fn add_cloud_backend(sandbox: &Sandbox, fake: &FakeIdentity, kind: &str, secret: Option<&str>) {
    let mut command = sandbox.offload();
    command
        .args([
            "backend",
            "add",
            "Cloud",
            "--profile",
            "Home",
            "--type",
            kind,
        ])
        .args(fake.backend_args())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if secret.is_some() {
        command.arg("--client-secret-stdin").stdin(Stdio::piped());
    }
    let mut child = command.spawn().unwrap();
    if let Some(secret) = secret {
        writeln!(child.stdin.take().unwrap(), "{secret}").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
}

/// The engine's view of the sandbox's database, with the sandbox's master key.
pub fn engine_parts(sandbox: &Sandbox) -> (Db, Arc<Vault>, BackendRecord) {
    let db = Db::open(&sandbox.data_dir().join("offload.db")).unwrap();
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(MASTER_KEY)
        .unwrap()
        .try_into()
        .unwrap();
    let vault = Arc::new(
        Vault::with_key(
            db.clone(),
            MasterKey::from_bytes(key, KeySource::Environment),
        )
        .unwrap(),
    );
    let profile = offload::profiles::by_name(&db, "Home").unwrap();
    let record = backends::by_name(&db, profile.id, "Cloud").unwrap();
    (db, vault, record)
}

/// A profile "Home" with a OneDrive backend "Cloud" at a fresh fake, not signed in yet.
pub fn onedrive() -> (FakeIdentity, Sandbox, Db, Arc<Vault>, BackendRecord) {
    let fake = FakeIdentity::start();
    let sandbox = Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    add_cloud_backend(&sandbox, &fake, "onedrive", None);
    let (db, vault, record) = engine_parts(&sandbox);
    (fake, sandbox, db, vault, record)
}

/// What a browser does with a sign-in URL at the fake: the user consents at once and is sent
/// back; the answer is the address it is sent back to.
pub fn consent(url: &str) -> String {
    let answer = fetch(url, "GET", &[]);
    assert_eq!(
        answer.status,
        302,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.header("location").unwrap().to_owned()
}

/// Signs the backend in through the engine (the deep-link path), as a user would.
pub async fn sign_in(db: &Db, vault: &Arc<Vault>, record: &BackendRecord) -> oauth::Connected {
    let redirect = match record.kind {
        offload::storage::BackendKind::GoogleDrive => "http://127.0.0.1:9/oauth/callback",
        _ => "offload://oauth/microsoft",
    };
    let flow = oauth::begin(db, vault, record, redirect).unwrap();
    let back = tokio::task::spawn_blocking(move || consent(&flow.url))
        .await
        .unwrap();
    oauth::complete(db, vault, &oauth::http_client(), &back)
        .await
        .unwrap()
}
