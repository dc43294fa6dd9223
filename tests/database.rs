//! The schema and sealed secrets at rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use offload::accounts::{self, Tokens};
use offload::db::{Db, DbError, MIGRATIONS};
use offload::profiles::{self, AfterUpload};
use offload::secrets::{KeySource, MasterKey, SecretsError, Vault};
use offload::storage::cloud::Provider;
use offload::Error;
use zeroize::Zeroizing;

fn user_version(db: &Db) -> i64 {
    db.lock()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

#[test]
fn every_migration_file_is_applied_in_order() {
    let mut files: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
    files.sort();
    let listed: Vec<&str> = MIGRATIONS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        files, listed,
        "src/db.rs MIGRATIONS must list every file in migrations/, in order"
    );
}

#[test]
fn fresh_database_gets_the_whole_schema_and_reopening_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offload.db");
    let db = Db::open(&path).unwrap();
    assert_eq!(user_version(&db), MIGRATIONS.len() as i64);
    let tables: Vec<String> = {
        let conn = db.lock();
        let mut statement = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for table in [
        "episodes",
        "media",
        "oauth_connections",
        "profiles",
        "settings",
        "storage_backends",
        "upload_jobs",
        "watch_folders",
    ] {
        assert!(
            tables.contains(&table.to_owned()),
            "missing table {table}: {tables:?}"
        );
    }
    let journal: String = db
        .lock()
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    profiles::create(&db, "Home", "{relative_path}", &AfterUpload::Keep, &[]).unwrap();
    drop(db);

    let again = Db::open(&path).unwrap();
    assert_eq!(user_version(&again), MIGRATIONS.len() as i64);
    assert_eq!(
        profiles::list(&again).unwrap().len(),
        1,
        "re-running migrations must keep the data"
    );
}

#[test]
fn database_from_a_newer_version_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offload.db");
    let db = Db::open(&path).unwrap();
    db.lock().pragma_update(None, "user_version", 999).unwrap();
    drop(db);
    let error = Db::open(&path).expect_err("a newer schema must be refused");
    assert!(
        matches!(error, DbError::TooNew { found: 999, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("newer version of Offload"),
        "{error}"
    );
}

#[test]
fn only_one_default_backend_per_profile_is_possible() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("offload.db")).unwrap();
    let profile =
        profiles::create(&db, "Home", "{relative_path}", &AfterUpload::Keep, &[]).unwrap();
    let conn = db.lock();
    for name in ["a", "b"] {
        conn.execute(
            "INSERT INTO storage_backends (profile_id, name, type, config, is_default, created_at) VALUES (?1, ?2, 'local', '{}', 0, 0)",
            rusqlite::params![profile.id, name],
        )
        .unwrap();
    }
    conn.execute(
        "UPDATE storage_backends SET is_default = 1 WHERE name = 'a'",
        [],
    )
    .unwrap();
    let second = conn.execute(
        "UPDATE storage_backends SET is_default = 1 WHERE name = 'b'",
        [],
    );
    assert!(
        second.is_err(),
        "the database must refuse a second default backend"
    );
}

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes([byte; 32], KeySource::Environment)
}

#[test]
fn the_database_file_never_holds_a_secret_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offload.db");
    let db = Db::open(&path).unwrap();
    let vault = Vault::with_key(db.clone(), key(7)).unwrap();
    let profile =
        profiles::create(&db, "Home", "{relative_path}", &AfterUpload::Keep, &[]).unwrap();
    let access = "ya29.ACCESS-TOKEN-that-must-not-leak-1234567890";
    let refresh = "1//REFRESH-TOKEN-that-must-not-leak-0987654321";
    let tokens = Tokens {
        access_token: Zeroizing::new(access.to_owned()),
        refresh_token: Some(Zeroizing::new(refresh.to_owned())),
        expires_at: Some(1),
        scope: Some("drive.file".into()),
    };
    let id = accounts::connect(
        &db,
        &vault,
        profile.id,
        Provider::Google,
        Some("me@example.com"),
        &tokens,
    )
    .unwrap();
    let rotated = Tokens {
        refresh_token: Some(Zeroizing::new(format!("{refresh}-rotated"))),
        ..tokens
    };
    accounts::update_tokens(&db, &vault, id, &rotated).unwrap();

    let opened = accounts::tokens(&db, &vault, id).unwrap();
    assert_eq!(opened.access_token.as_str(), access);
    assert_eq!(
        opened.refresh_token.as_deref().map(String::as_str),
        Some(format!("{refresh}-rotated").as_str())
    );

    drop(vault);
    drop(db);
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(content) = std::fs::read(format!("{}{suffix}", path.display())) {
            bytes.extend(content);
        }
    }
    assert!(!bytes.is_empty());
    for secret in [access, refresh, "ACCESS-TOKEN", "REFRESH-TOKEN"] {
        assert!(
            !bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes()),
            "{secret} found in the database files"
        );
    }
}

#[test]
fn a_different_master_key_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("offload.db")).unwrap();
    Vault::with_key(db.clone(), key(1)).unwrap();
    let error = Vault::with_key(db.clone(), key(2)).expect_err("another key must be refused");
    assert!(
        matches!(error, Error::Secrets(SecretsError::WrongKey)),
        "{error}"
    );
    assert!(
        error.to_string().contains("different master key"),
        "{error}"
    );
    assert!(
        Vault::with_key(db, key(1)).is_ok(),
        "the original key still opens"
    );
}

#[test]
fn a_sealed_token_moved_to_another_row_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("offload.db")).unwrap();
    let vault = Vault::with_key(db.clone(), key(3)).unwrap();
    let profile =
        profiles::create(&db, "Home", "{relative_path}", &AfterUpload::Keep, &[]).unwrap();
    let tokens = |text: &str| Tokens {
        access_token: Zeroizing::new(text.to_owned()),
        refresh_token: None,
        expires_at: None,
        scope: None,
    };
    let first = accounts::connect(
        &db,
        &vault,
        profile.id,
        Provider::Google,
        None,
        &tokens("first"),
    )
    .unwrap();
    let second = accounts::connect(
        &db,
        &vault,
        profile.id,
        Provider::Microsoft,
        None,
        &tokens("second"),
    )
    .unwrap();
    db.lock()
        .execute(
            "UPDATE oauth_connections SET access_token = (SELECT access_token FROM oauth_connections WHERE id = ?1) WHERE id = ?2",
            [first, second],
        )
        .unwrap();
    let error = accounts::tokens(&db, &vault, second).expect_err("a moved value must not open");
    assert!(
        matches!(error, Error::Secrets(SecretsError::Tampered { .. })),
        "{error}"
    );
    assert_eq!(
        accounts::tokens(&db, &vault, first)
            .unwrap()
            .access_token
            .as_str(),
        "first"
    );
}

#[test]
fn many_processes_opening_a_new_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offload.db");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                Db::open(&path).map(|db| user_version(&db))
            })
        })
        .collect();
    for handle in handles {
        let version = handle.join().unwrap().unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }
}
