//! A cloud backend (Google Drive, OneDrive) in a sandbox, signed in at the fake identity
//! platform, and the engine's view of it.

#![allow(dead_code)]

use std::process::Stdio;
use std::sync::Arc;

use base64::Engine as _;
use offload::backends::{self, BackendRecord};
use offload::db::Db;
use offload::oauth;
use offload::secrets::{KeySource, MasterKey, Vault};

use super::oauth_fake::FakeIdentity;
use super::s3::redirected;
use super::{Sandbox, MASTER_KEY};

/// Adds a backend "Cloud" of `kind` ("google-drive" or "onedrive") to "Home", with `endpoints`
/// (see `oauth_fake::endpoint_args`) and the client secret on stdin when there is one.
pub fn add_cloud_backend(
    sandbox: &Sandbox,
    endpoints: &[String],
    kind: &str,
    secret: Option<&str>,
) {
    let mut args = vec![
        "backend",
        "add",
        "Cloud",
        "--profile",
        "Home",
        "--type",
        kind,
    ];
    args.extend(endpoints.iter().map(String::as_str));
    let output = match secret {
        Some(secret) => {
            args.push("--client-secret-stdin");
            sandbox.run_with_stdin(&args, secret)
        }
        None => sandbox.run(&args),
    };
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
    add_cloud_backend(&sandbox, &fake.backend_args(), "onedrive", None);
    let (db, vault, record) = engine_parts(&sandbox);
    (fake, sandbox, db, vault, record)
}

/// What a browser does with a sign-in URL at the fake: the user consents at once and is sent
/// back; the answer is the address it is sent back to.
pub fn consent(url: &str) -> String {
    redirected(url).header("location").unwrap().to_owned()
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

/// A sandbox with a profile "Home" whose default backend "Cloud" (`kind`: "google-drive" or
/// "onedrive") is signed in at a fresh fake.
pub struct Setup {
    pub fake: FakeIdentity,
    pub sandbox: Sandbox,
    pub db: Db,
    pub vault: Arc<Vault>,
    pub record: BackendRecord,
}

impl Setup {
    pub async fn new(kind: &str) -> Setup {
        let fake = FakeIdentity::start();
        let base = fake.base.clone();
        Setup::reached_at(fake, &base, kind).await
    }

    /// The same, with Offload reaching `fake` at `base` (a proxy in front of it, say).
    pub async fn reached_at(fake: FakeIdentity, base: &str, kind: &str) -> Setup {
        let sandbox = Sandbox::new();
        sandbox.ok(&["profile", "add", "Home"]);
        let endpoints = super::oauth_fake::endpoint_args(base, super::oauth_fake::CLIENT_ID);
        add_cloud_backend(&sandbox, &endpoints, kind, None);
        sandbox.ok(&["backend", "default", "Cloud", "--profile", "Home"]);
        let (db, vault, record) = engine_parts(&sandbox);
        sign_in(&db, &vault, &record).await;
        let record = backends::get(&db, record.id).unwrap();
        Setup {
            fake,
            sandbox,
            db,
            vault,
            record,
        }
    }

    /// What the backend's provider holds to reach the signed-in account.
    pub fn access(&self) -> offload::storage::cloud::CloudAccess {
        self.record
            .access(&self.vault, &oauth::Accounts::new(&self.db, &self.vault))
    }

    /// The same, with "Home" watching `watch/`; returns that folder too.
    pub async fn watched(kind: &str) -> (Setup, std::path::PathBuf) {
        let setup = Setup::new(kind).await;
        let watch = setup.sandbox.path("watch");
        std::fs::create_dir_all(&watch).unwrap();
        setup
            .sandbox
            .ok(&["profile", "watch", "Home", watch.to_str().unwrap()]);
        (setup, watch)
    }
}

/// A video dropped into the watched folder uploads, and ffprobe plays it from its stream URL.
pub async fn check_video_plays(kind: &str) {
    let (setup, watch) = Setup::watched(kind).await;
    let sandbox = &setup.sandbox;
    let daemon = sandbox.daemon(&[]);
    let video = super::media::make_video(&sandbox.path("Film.mp4"));
    std::fs::rename(sandbox.path("Film.mp4"), watch.join("Film.mp4")).unwrap();
    let sandbox_ref = sandbox;
    tokio::task::block_in_place(|| {
        super::wait_for("the upload", || {
            super::job_states(&sandbox_ref.jobs()) == vec!["done"]
        })
    });
    assert_eq!(setup.fake.stored_file(kind, "Film.mp4").unwrap(), video);
    let id = sandbox.media()[0]["item"]["id"].as_i64().unwrap();
    let report = sandbox.ok(&["backend", "test", "Cloud", "--profile", "Home"]);
    assert!(report.contains("ok   account: "), "{report}");
    let url = sandbox.ok(&["media", "url", &id.to_string()]);
    tokio::task::block_in_place(|| super::media::assert_plays(url.trim()));
    daemon.stop();
}

/// `kill -9` of the daemon mid-upload: the next daemon asks the session where it stands and
/// sends only what the provider does not hold.
pub async fn check_kill_9_resumes(kind: &str) {
    let (setup, watch) = Setup::watched(kind).await;
    let sandbox = &setup.sandbox;
    let size = 80 * 1024 * 1024;
    let bytes = super::write_random(&watch.join("film.mkv"), size);
    sandbox.ok(&["limit", "8M"]);
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&[]);
        super::wait_for("some chunks to be confirmed", || {
            sandbox
                .jobs()
                .first()
                .is_some_and(|job| job["bytes_done"].as_u64().unwrap_or(0) >= 20 * 1024 * 1024)
        });
        daemon.kill();
        sandbox.ok(&["limit", "0"]);
        let daemon = sandbox.daemon(&[]);
        super::wait_for("the upload to finish", || {
            super::job_states(&sandbox.jobs()) == vec!["done"]
        });
        assert!(daemon.log().contains("resuming a"), "{}", daemon.log());
        daemon.stop();
    });
    assert_eq!(
        setup.fake.received(kind),
        size as u64,
        "no byte was sent into the file twice"
    );
    assert!(setup.fake.stored_file(kind, "film.mkv").unwrap() == bytes);
}

/// A revoked sign-in pauses the job with what to do; signing in again queues it.
pub async fn check_revoked_account_waits(kind: &str) {
    let (setup, watch) = Setup::watched(kind).await;
    let sandbox = &setup.sandbox;
    setup.fake.revoke_all();
    setup.fake.expire_access_tokens();
    let bytes = super::write_random(&watch.join("clip.mkv"), 3 * 1024 * 1024);
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&[]);
        super::wait_for("the job to wait for a sign-in", || {
            sandbox
                .jobs()
                .first()
                .is_some_and(|job| job["state"] == "paused" && job["action"]["do"] == "sign-in")
        });
        // The command line says what to do in its own words.
        let listed = sandbox.ok(&["jobs"]);
        assert!(
            listed.contains("run `offload backend connect Cloud --profile Home`"),
            "{listed}"
        );
        let listed = sandbox.ok(&["backend", "list"]);
        assert!(listed.contains("DISCONNECTED"), "{listed}");
        daemon.stop();
    });
    // Signing in again (`offload backend connect`, or the desktop app's deep link) queues it.
    tokio::task::block_in_place(|| assert!(connect_with_cli(sandbox).status.success()));
    assert_eq!(super::job_states(&sandbox.jobs()), vec!["queued"]);
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&[]);
        super::wait_for("the upload to finish", || {
            super::job_states(&sandbox.jobs()) == vec!["done"]
        });
        daemon.stop();
    });
    assert!(setup.fake.stored_file(kind, "clip.mkv").unwrap() == bytes);
}

/// `offload backend connect Cloud --profile Home`, as a person runs it: the printed address is
/// opened (the fake consents at once) and the browser follows the redirect back to the
/// command's loopback listener. Returns the command's output once it has exited.
pub fn connect_with_cli(sandbox: &Sandbox) -> std::process::Output {
    connect_with_cli_through(sandbox, |url| {
        let back = consent(url);
        let page = super::s3::fetch(&back, "GET", &[]);
        assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    })
}

/// `offload backend connect Cloud --profile Home --no-browser`, with `browser` doing what a
/// person's browser does with the sign-in address the command prints. Returns the command's
/// output (its stdout after that address) once it has exited.
pub fn connect_with_cli_through(
    sandbox: &Sandbox,
    browser: impl FnOnce(&str),
) -> std::process::Output {
    use std::io::{BufRead, BufReader, Read};
    let mut connect = sandbox
        .offload()
        .args([
            "backend",
            "connect",
            "Cloud",
            "--profile",
            "Home",
            "--no-browser",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(connect.stdout.take().unwrap());
    let mut url = String::new();
    stdout.read_line(&mut url).unwrap();
    browser(url.trim());
    let mut output = connect.wait_with_output().unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    output.stdout = rest;
    output
}

/// A film and an episode (in its season folder) uploaded from one data folder; a file another
/// app put in the drive; a second data folder signed in to the same account scans and finds the
/// uploads with the same titles (and the other app's file when the provider shows it to
/// Offload), and plays the episode; the first one's rescan finds nothing new.
pub async fn check_a_second_computer_finds_the_uploads(kind: &str, others_visible: bool) {
    let (setup, watch) = Setup::watched(kind).await;
    let sandbox = &setup.sandbox;
    std::fs::create_dir_all(watch.join("Show Name/Season 1")).unwrap();
    let episode = super::write_random(&watch.join("Show Name/Season 1/Show.Name.S01E02.mkv"), 3000);
    super::write_random(&watch.join("Film.mkv"), 2000);
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&[]);
        super::wait_for("both uploads", || {
            super::job_states(&sandbox.jobs()) == vec!["done", "done"]
        });
        daemon.stop();
    });
    setup
        .fake
        .put_by_another_app(kind, "Elsewhere.mkv", b"put there by another app");
    let expected = if others_visible { 3 } else { 2 };

    let second = Sandbox::new();
    second.ok(&["profile", "add", "Home"]);
    add_cloud_backend(&second, &setup.fake.backend_args(), kind, None);
    let (db, vault, record) = engine_parts(&second);
    sign_in(&db, &vault, &record).await;
    let said = tokio::task::block_in_place(|| second.ok(&["library", "scan", "--profile", "Home"]));
    assert!(
        said.contains(&format!(
            "Found {expected} items in Cloud ({expected} new, 0 changed, 0 gone)"
        )),
        "{said}"
    );
    let found = tokio::task::block_in_place(|| second.library_rows());
    let mut ours = found.clone();
    ours.retain(|row| row.0 != "Elsewhere");
    assert_eq!(ours, tokio::task::block_in_place(|| sandbox.library_rows()));
    assert!(
        found
            .iter()
            .any(|row| row.1 == "Show Name" && row.2 == 1 && row.3 == 2),
        "{found:?}"
    );
    assert_eq!(
        found.iter().any(|row| row.0 == "Elsewhere"),
        others_visible,
        "{found:?}"
    );
    // Offload recorded each upload's SHA-256 with it (Drive: app properties; OneDrive: a record
    // file in `.offload`): the second computer has the same verified hashes.
    let checksums = |sandbox: &Sandbox| -> Vec<(String, Option<String>)> {
        let mut rows: Vec<_> = sandbox
            .media()
            .iter()
            .filter(|row| row["title"] != "Elsewhere")
            .map(|row| {
                let path = row["storage_path"].as_str().unwrap_or_default().to_owned();
                (path, row["checksum"].as_str().map(str::to_owned))
            })
            .collect();
        rows.sort();
        rows
    };
    let (here, there) = tokio::task::block_in_place(|| (checksums(sandbox), checksums(&second)));
    assert!(here.iter().all(|row| row.1.is_some()), "{here:?}");
    assert_eq!(there, here);

    tokio::task::block_in_place(|| {
        let daemon = second.daemon(&[]);
        let url = second
            .media()
            .iter()
            .find(|row| row["series"] == "Show Name")
            .map(|row| row["stream_url"].as_str().unwrap().to_owned())
            .unwrap();
        // Drive's bytes come through the stream server; OneDrive's by a redirect to the file.
        let mut answer = super::s3::fetch(&url, "GET", &[]);
        if let Some(location) = answer.header("location").map(str::to_owned) {
            answer = super::s3::fetch(&location, "GET", &[]);
        }
        assert!(
            answer.body == episode,
            "the found episode plays ({})",
            answer.status
        );
        daemon.stop();
    });

    let said =
        tokio::task::block_in_place(|| sandbox.ok(&["library", "scan", "--profile", "Home"]));
    assert!(
        said.contains(&format!(
            "Found {expected} items in Cloud ({} new, 0 changed, 0 gone)",
            expected - 2
        )),
        "{said}"
    );

    // One more upload from the first computer: the second, following the feed now, finds it with
    // the hash the first recorded, without listing a folder.
    super::write_random(&watch.join("Later.mkv"), 2500);
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&["--library-scan", "0"]);
        super::wait_for("the third upload", || {
            super::job_states(&sandbox.jobs()) == vec!["done", "done", "done"]
        });
        daemon.stop();
    });
    let listed = setup.fake.listings(kind);
    let said = tokio::task::block_in_place(|| second.ok(&["library", "scan", "--profile", "Home"]));
    assert!(said.contains("(1 new, 0 changed, 0 gone)"), "{said}");
    assert_eq!(
        setup.fake.listings(kind),
        listed,
        "the second computer followed the feed"
    );
    let (here, there) = tokio::task::block_in_place(|| (checksums(sandbox), checksums(&second)));
    assert_eq!(here.len(), 3);
    assert_eq!(there, here);
}

/// After one full listing, scans follow the provider's feed of changes (Drive's `changes`,
/// OneDrive's `delta`) and list nothing: a file deleted, one renamed and a folder renamed
/// elsewhere show in the library as they are now, and the renamed folder's episode keeps its
/// stream URL. A feed that no longer goes back far enough gives way to a full listing.
pub async fn check_scans_follow_the_feed(kind: &str) {
    let (setup, watch) = Setup::watched(kind).await;
    let sandbox = &setup.sandbox;
    std::fs::create_dir_all(watch.join("Show Name/Season 1")).unwrap();
    super::write_random(&watch.join("Show Name/Season 1/Show.Name.S01E02.mkv"), 3000);
    super::write_random(&watch.join("Show Name/Season 1/Show.Name.S01E03.mkv"), 3100);
    super::write_random(&watch.join("Film.mkv"), 2000);
    // A scan says `report`, and the library then holds `paths`.
    let scan = |report: &str, paths: &[&str]| {
        let said = tokio::task::block_in_place(|| sandbox.ok(&["library", "scan"]));
        assert!(said.contains(&format!("Found {report}")), "{said}");
        let held: Vec<String> = tokio::task::block_in_place(|| sandbox.library_rows())
            .into_iter()
            .map(|row| row.4)
            .collect();
        assert_eq!(held, paths);
    };
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&["--library-scan", "0"]);
        super::wait_for("the uploads", || {
            super::job_states(&sandbox.jobs()) == vec!["done", "done", "done"]
        });
        daemon.stop();
    });
    let (e02, e04) = (
        "Show Name/Season 1/Show.Name.S01E02.mkv",
        "Show Name/Season 1/Show.Name.S01E04.mkv",
    );
    scan(
        "3 items in Cloud (0 new, 0 changed, 0 gone)",
        &["Film.mkv", e02, "Show Name/Season 1/Show.Name.S01E03.mkv"],
    );
    let listed = setup.fake.listings(kind);
    assert!(listed > 0, "the first scan lists the folders");

    setup.fake.delete_stored(kind, "Film.mkv");
    setup
        .fake
        .move_stored(kind, "Show Name/Season 1/Show.Name.S01E03.mkv", e04);
    scan("2 items in Cloud (1 new, 0 changed, 2 gone)", &[e02, e04]);

    let url_of = |episode: i64| {
        sandbox
            .media()
            .iter()
            .find(|row| row["episode"] == episode)
            .map(|row| row["stream_url"].as_str().unwrap().to_owned())
    };
    let before = tokio::task::block_in_place(|| url_of(2)).unwrap();
    setup
        .fake
        .move_stored(kind, "Show Name/Season 1", "Show Name/Season 01");
    let moved = [
        "Show Name/Season 01/Show.Name.S01E02.mkv",
        "Show Name/Season 01/Show.Name.S01E04.mkv",
    ];
    scan("2 items in Cloud (0 new, 2 changed, 0 gone)", &moved);
    assert_eq!(
        tokio::task::block_in_place(|| url_of(2)),
        Some(before.clone())
    );
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&["--library-scan", "0"]);
        let mut answer = super::s3::fetch(&before, "GET", &[]);
        if let Some(location) = answer.header("location").map(str::to_owned) {
            answer = super::s3::fetch(&location, "GET", &[]);
        }
        assert_eq!(
            Some(answer.body),
            setup.fake.stored_file(kind, moved[0]),
            "the moved episode plays from where it is now ({})",
            answer.status
        );
        daemon.stop();
    });

    scan("2 items in Cloud (0 new, 0 changed, 0 gone)", &moved);
    assert_eq!(
        setup.fake.listings(kind),
        listed,
        "no scan since the first listed anything"
    );

    // A point the provider no longer knows: the scan lists everything instead, and finds the same.
    setup
        .db
        .lock()
        .execute("UPDATE library_feeds SET point = point || '0000'", [])
        .unwrap();
    scan("2 items in Cloud (0 new, 0 changed, 0 gone)", &moved);
    assert!(
        setup.fake.listings(kind) > listed,
        "the scan listed the folders again"
    );
}

/// A folder of more than a thousand files (more than a page of children, and of the feed) is
/// found whole by a full listing, and what another thousand-odd uploads added, through the feed.
pub async fn check_a_folder_of_thousands_pages_through(kind: &str) {
    let setup = Setup::new(kind).await;
    let sandbox = &setup.sandbox;
    setup.fake.put_many(kind, "Film", 1205);
    let said = tokio::task::block_in_place(|| sandbox.ok(&["library", "scan"]));
    assert!(
        said.contains("Found 1205 items in Cloud (1205 new, 0 changed, 0 gone)"),
        "{said}"
    );
    let listed = setup.fake.listings(kind);
    assert!(listed >= 2, "the folder took {listed} pages");

    setup.fake.put_many(kind, "Extra", 1205);
    let said = tokio::task::block_in_place(|| sandbox.ok(&["library", "scan"]));
    assert!(
        said.contains("Found 2410 items in Cloud (1205 new, 0 changed, 0 gone)"),
        "{said}"
    );
    assert_eq!(
        setup.fake.listings(kind),
        listed,
        "the feed said what was new"
    );
    let titles = tokio::task::block_in_place(|| sandbox.library_rows());
    assert_eq!(titles.len(), 2410);
    assert!(titles.iter().any(|row| row.0 == "Extra 1205"), "{titles:?}");
}
