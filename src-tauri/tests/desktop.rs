//! The desktop app end to end: the real `offload-desktop` binary in a real WebKit window on a
//! private X server (Xvfb) and D-Bus session, driven through WebDriver (`tauri-driver` in front
//! of WebKitWebDriver) the way a person would click through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/common/s3.rs"]
#[allow(dead_code)]
mod s3;

mod harness;
#[path = "../../tests/common/oauth_fake.rs"]
mod oauth_fake;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{wait_until, Desktop, Process, APP, PATIENCE};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A WebDriver session on the app, with the steps a person takes.
struct Window {
    client: Client,
    screenshots: Option<PathBuf>,
}

impl Window {
    /// Starts `tauri-driver` and, through it, the app in a window. A driver that drops the
    /// session request (its WebKitWebDriver could not take the native port it was given, which
    /// another test may have taken since it was found free) is started again on new ports.
    async fn open(desktop: &Desktop) -> (Process, Window) {
        let mut tries = 3;
        loop {
            let (driver, port) = desktop.driver();
            let mut capabilities = serde_json::Map::new();
            capabilities.insert("tauri:options".into(), json!({ "application": APP }));
            let mut builder = ClientBuilder::rustls().expect("a WebDriver client");
            builder.capabilities(capabilities);
            let address = format!("http://127.0.0.1:{port}");
            // A window whose web process never starts must fail the test, not hang it.
            let session = tokio::time::timeout(PATIENCE, builder.connect(&address))
                .await
                .expect("the app's window to open within the patience");
            match session {
                Ok(client) => {
                    let window = Window {
                        client,
                        screenshots: std::env::var_os("OFFLOAD_SCREENSHOTS").map(PathBuf::from),
                    };
                    return (driver, window);
                }
                Err(error) if tries > 1 => {
                    eprintln!("tauri-driver dropped the session ({error}); starting it again");
                    tries -= 1;
                }
                Err(error) => panic!("a WebDriver session on the app: {error:?}"),
            }
        }
    }

    async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(error) => {
                let page = self.client.source().await.unwrap_or_default();
                panic!("{css} never appeared ({error}); the page:\n{page}")
            }
        }
    }

    /// Clicks `css` once it can be clicked: a button re-rendered by the last keystroke is
    /// briefly stale, as it is for a person's mouse.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(error) if Instant::now() > deadline => {
                    self.screenshot("failed-click").await;
                    panic!("click {css}: {error:?}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("type into {css}: {error}"));
    }

    async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|error| panic!("choose {value} in {css}: {error}"));
    }

    /// Waits until the text of `css` satisfies `wanted`; returns it.
    async fn text_until(&self, css: &str, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if wanted(&text) {
                return text;
            }
            if Instant::now() > deadline {
                self.screenshot("timed-out").await;
                let page = self.client.source().await.unwrap_or_default();
                panic!("timed out waiting for {what}; {css} says {text:?}; the page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the value of the field `css` satisfies `wanted`.
    async fn value_until(&self, css: &str, what: &str, wanted: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element
                    .prop("value")
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            if wanted(&value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; {css} holds {value:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the image `css` has loaded, as a person sees it; returns its natural width.
    async fn image_width(&self, css: &str, what: &str) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(image) = self.client.find(Locator::Css(css)).await {
                let image = serde_json::to_value(&image).expect("element reference");
                let width = self
                    .client
                    .execute(
                        "const i = arguments[0]; return i.complete ? i.naturalWidth : 0;",
                        vec![image],
                    )
                    .await
                    .ok()
                    .and_then(|width| width.as_u64())
                    .unwrap_or(0);
                if width > 0 {
                    return width;
                }
            }
            if Instant::now() > deadline {
                self.screenshot("timed-out").await;
                panic!("timed out waiting for {what} ({css})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scrolls `element` into view, as a person would to read it.
    async fn show(&self, element: &Element) {
        let element = serde_json::to_value(element).expect("element reference");
        self.client
            .execute(
                // Only the pane that scrolls: the window itself never does.
                "arguments[0].scrollIntoView({block: 'center'}); \
                 for (const e of [document.documentElement, document.body, document.getElementById('app')]) e.scrollTop = 0;",
                vec![element],
            )
            .await
            .expect("scroll");
    }

    async fn screenshot(&self, name: &str) {
        let Some(dir) = &self.screenshots else { return };
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("save screenshot");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_adds_storage_watches_a_folder_and_plays_the_upload() {
    let desktop = Desktop::new();
    let garage = s3::garage();
    let watched = desktop.path("incoming");
    let library = desktop.path("library");
    std::fs::create_dir_all(&watched).unwrap();
    let (driver, window) = Window::open(&desktop).await;

    // First launch: the welcome says where files go.
    let welcome = window
        .text_until("[data-testid=welcome]", "the welcome", |text| {
            !text.is_empty()
        })
        .await;
    assert!(
        welcome.contains("Downloads"),
        "the welcome names the watched folder: {welcome}"
    );
    window.screenshot("welcome").await;
    window.click("[data-testid=welcome-dismiss]").await;

    // A profile watching a folder.
    window.click("[data-testid=nav-profiles]").await;
    window
        .type_into("[data-testid=new-profile-name]", "Films")
        .await;
    window.click("[data-testid=create-profile]").await;
    window.find("[data-testid=profile-Films]").await;
    let new_name = window.find("[data-testid=new-profile-name]").await;
    assert_eq!(
        new_name.prop("value").await.unwrap().as_deref(),
        Some(""),
        "the new profile is created and selected, its name field cleared"
    );
    window
        .type_into("[data-testid=watch-folder-path]", watched.to_str().unwrap())
        .await;
    window.click("[data-testid=add-watch-folder]").await;
    window
        .text_until(
            "[data-testid=profile-Films]",
            "the watched folder",
            |text| text.contains(watched.to_str().unwrap()),
        )
        .await;
    window
        .text_until(
            "[data-testid=template-preview]",
            "the template preview",
            |text| text.contains("S01E02") || text.contains(".mkv"),
        )
        .await;
    window.screenshot("profiles").await;

    // Its storage: a local folder, then S3 with a wrong secret, then the right one.
    window.click("[data-testid=nav-storage]").await;
    let films = profile_id(&desktop, "Films");
    window
        .select("[data-testid=storage-profile]", &films.to_string())
        .await;
    window.click("[data-testid=add-storage]").await;
    window.select("[data-testid=backend-kind]", "local").await;
    window
        .type_into("[data-testid=field-name]", "Library")
        .await;
    window
        .type_into("[data-testid=field-path]", library.to_str().unwrap())
        .await;
    window.click("[data-testid=save-backend]").await;
    window
        .text_until(
            "[data-testid=backend-Library] [data-testid=backend-status]",
            "the local backend",
            |text| text.contains("Ready"),
        )
        .await;

    window.click("[data-testid=add-storage]").await;
    window.select("[data-testid=backend-kind]", "s3").await;
    window.type_into("[data-testid=field-name]", "Garage").await;
    window
        .select("[data-testid=field-provider]", "garage")
        .await;
    window
        .type_into("[data-testid=field-endpoint]", &garage.endpoint)
        .await;
    window
        .type_into("[data-testid=field-region]", &garage.region)
        .await;
    window
        .type_into("[data-testid=field-bucket]", &garage.bucket)
        .await;
    window
        .type_into("[data-testid=field-access_key_id]", &garage.access_key_id)
        .await;
    window
        .type_into("[data-testid=field-secret_access_key]", "not-the-secret")
        .await;
    window.click("[data-testid=test-connection]").await;
    let report = window
        .text_until(
            "[data-testid=connection-report]",
            "the failed test",
            |text| text.contains("secret access key is wrong"),
        )
        .await;
    assert!(!report.is_empty());
    let failed = window.find("[data-testid=connection-report] li.fail").await;
    window.show(&failed).await;
    window.screenshot("storage-wrong-secret").await;

    window
        .type_into(
            "[data-testid=field-secret_access_key]",
            &garage.secret_access_key,
        )
        .await;
    window.click("[data-testid=test-connection]").await;
    window
        .text_until(
            "[data-testid=connection-report]",
            "the passing test",
            |text| !text.contains("wrong") && text.contains("list"),
        )
        .await;
    window.click("[data-testid=save-backend]").await;
    window
        .text_until(
            "[data-testid=backend-Garage] [data-testid=backend-status]",
            "the S3 backend",
            |text| text.contains("Ready"),
        )
        .await;
    window.screenshot("storage").await;

    // Its settings change in the window: a folder inside the bucket, the saved secret kept (the
    // test before saving passes with it).
    window
        .click("[data-testid=backend-Garage] [data-testid=backend-change]")
        .await;
    window
        .value_until(
            "[data-testid=field-endpoint]",
            "the stored settings",
            |value| value == garage.endpoint,
        )
        .await;
    window
        .type_into("[data-testid=field-prefix]", "films")
        .await;
    window.click("[data-testid=save-backend]").await;
    window
        .text_until(
            "[data-testid=backend-Garage] .location",
            "the backend's new folder",
            |text| text.ends_with("/films"),
        )
        .await;

    // A download finishes in the watched folder (a real film, made by ffmpeg as the browser
    // writes it, under a partial name): the transfer reaches 100%.
    let partial = watched.join("Night.Walk.2024.mkv.part");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc=duration=4:size=320x240:rate=25")
        .args(["-c:v", "mpeg4", "-f", "matroska"])
        .arg(&partial)
        .status()
        .expect("ffmpeg (Debian package ffmpeg) is installed");
    assert!(made.success());
    let bytes = std::fs::read(&partial).unwrap();
    std::fs::rename(&partial, watched.join("Night.Walk.2024.mkv")).unwrap();
    window.click("[data-testid=nav-transfers]").await;
    let done = window
        .find("[data-state=done] progress[data-percent='100']")
        .await;
    assert_eq!(
        done.attr("data-percent").await.unwrap().as_deref(),
        Some("100")
    );
    window.screenshot("transfers").await;
    let name = window.find("[data-state=done] .name").await;
    assert_eq!(
        name.prop("textContent").await.unwrap().as_deref(),
        Some("Night.Walk.2024.mkv"),
        "the finished transfer names the file"
    );

    // It is in the Library with what its headers say, and its stream URL serves its bytes.
    window.click("[data-testid=nav-library]").await;
    let item = window.find("[data-testid=library-item]").await;
    window
        .text_until(
            "[data-testid=library-item] [data-testid=library-media]",
            "the film's length, picture and codec",
            |text| text == "0:04 · 240p · MPEG-4",
        )
        .await;
    // Its card has the picture ffmpeg took, loaded from the stream server (320 pixels wide, as
    // the film is).
    let width = window
        .image_width(
            "[data-testid=library-item] [data-testid=library-poster]",
            "the film's picture on its card",
        )
        .await;
    assert_eq!(width, 320, "the picture is the film's size");
    window.screenshot("library").await;
    let url = item
        .attr("data-stream-url")
        .await
        .unwrap()
        .expect("a stream URL");
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{}/", desktop.stream_port)),
        "{url}"
    );
    let (status, body) = s3::http(&url, "GET", &[]);
    assert_eq!(status, 200, "{url}");
    assert!(body == bytes, "the stream URL serves the uploaded bytes");
    assert!(
        files_under(&library)
            .iter()
            .any(|file| std::fs::read(file).is_ok_and(|copy| copy == bytes)),
        "the local backend holds a verified copy"
    );
    window.screenshot("library").await;

    window.click("[data-testid=nav-settings]").await;
    window.find("[data-testid=save-settings]").await;
    window.screenshot("settings").await;

    // A port below 1024 is refused as the person types, in the engine's words (the CLI's too).
    window.type_into("[data-testid=settings-port]", "80").await;
    let refusal = window
        .text_until(
            "[data-testid=set-port-message]",
            "the port's rule",
            |text| !text.is_empty(),
        )
        .await;
    let rule = offload::Setting::StreamPort.rule();
    assert_eq!(
        refusal,
        format!("T{}.", &rule[1..]),
        "the engine says {rule:?}"
    );

    // A new stream port applies at once: the engine restarts on it.
    let new_port = harness::free_port();
    window
        .type_into("[data-testid=settings-port]", &new_port.to_string())
        .await;
    window
        .type_into("[data-testid=settings-workers]", "3")
        .await;
    window
        .type_into("[data-testid=settings-bandwidth]", "5")
        .await;
    // Starting at login is off until switched on: then the desktop's autostart entry exists.
    let autostart = desktop.path("home/.config/autostart");
    assert!(!autostart.exists(), "autostart is off by default");
    window.click("[data-testid=settings-autostart]").await;
    window.click("[data-testid=save-settings]").await;
    wait_until("the autostart entry", || {
        files_under(&autostart).iter().any(|entry| {
            std::fs::read_to_string(entry).is_ok_and(|text| text.contains("offload-desktop"))
        })
    });
    let url = url.replace(
        &format!(":{}/", desktop.stream_port),
        &format!(":{new_port}/"),
    );
    wait_until("the stream server on the new port", || {
        std::net::TcpStream::connect(("127.0.0.1", new_port)).is_ok()
    });
    let (status, body) = s3::http(&url, "GET", &[]);
    assert_eq!(status, 200, "{url}");
    assert!(body == bytes, "the new port serves the same file");
    // What the window stored is what the same change made with the command line stores.
    let by_cli = tempfile::tempdir().unwrap();
    let port = new_port.to_string();
    harness::cli(
        by_cli.path(),
        &[
            "settings",
            "--stream-port",
            &port,
            "--workers",
            "3",
            "--bandwidth-limit",
            "5M",
            "--quiet-period",
            "1s",
            "--autostart",
            "on",
        ],
    );
    let by_window = harness::stored_settings(&desktop.path("data"));
    assert_eq!(by_window, harness::stored_settings(by_cli.path()));
    assert!(
        by_window.contains(&(
            "queue.bandwidth_limit".into(),
            (5 * 1024 * 1024).to_string()
        )),
        "{by_window:?}"
    );

    // Remove, after a confirmation: the remote copy goes, and so does the stream.
    window.click("[data-testid=nav-library]").await;
    window
        .click("[data-testid=library-item] [data-testid=library-remove]")
        .await;
    window.click("[data-testid=dialog-confirm]").await;
    wait_until("the library copy to be deleted", || {
        !files_under(&library)
            .iter()
            .any(|file| std::fs::read(file).is_ok_and(|copy| copy == bytes))
    });
    // The stream server rereads the library within a second of a change.
    wait_until(
        "the removed item's stream URL to say it is gone (410)",
        || s3::http(&url, "GET", &[]).0 == 410,
    );
    window
        .text_until(
            "[data-testid=library-item]",
            "the removed film to leave the window's library",
            |text| !text.contains("Night Walk"),
        )
        .await;
    assert!(
        watched.join("Night.Walk.2024.mkv").exists(),
        "the local file stays"
    );

    // A file put in the library folder by hand is found by Look in storage, and plays.
    let by_hand: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(library.join("Copied.By.Hand.S01E03.mkv"), &by_hand).unwrap();
    window.click("[data-testid=library-scan]").await;
    window
        .text_until(
            "[data-testid=library-scan-result]",
            "the scan's finding",
            |text| text.contains("Found 1 item in Library (1 new)."),
        )
        .await;
    let found = window
        .find("[data-testid=library-item][data-stream-url]")
        .await;
    window
        .text_until("[data-testid=library-item]", "the found episode", |text| {
            text.contains("found in storage")
        })
        .await;
    let title = window
        .find("[data-testid=library-item] .title")
        .await
        .attr("title")
        .await
        .unwrap();
    assert_eq!(title.as_deref(), Some("S01E03 · Copied By Hand S01E03"));
    let found_url = found.attr("data-stream-url").await.unwrap().unwrap();
    assert_eq!(s3::http(&found_url, "GET", &[]).1, by_hand);

    // Ctrl+W closes the window: its web view goes, the app stays in the tray, still serving.
    let app = descendants(driver.0.id())
        .into_iter()
        .find(|pid| command_name(*pid).starts_with("offload-deskto"))
        .expect("the app runs under the driver");
    let web_views = || {
        descendants(app)
            .into_iter()
            .filter(|pid| command_name(*pid).starts_with("WebKitWebProces"))
            .count()
    };
    assert!(web_views() > 0, "the open window has a web process");
    let focused = window.find("[data-testid=library-search]").await;
    // The window is gone before the driver lets go of Ctrl, so it reports no window: the web
    // process ending below is what shows the key worked.
    let _ = focused.send_keys("\u{E009}w").await;
    wait_until("the closed window's web process to end", || {
        web_views() == 0
    });
    assert!(
        std::fs::metadata(format!("/proc/{app}")).is_ok(),
        "the app goes on in the tray"
    );
    let (status, _) = s3::http(&url, "HEAD", &[]);
    assert_eq!(
        status, 410,
        "the stream server still answers with the window closed"
    );
}

/// A profile watching `folders` whose default storage, `name`, is a `kind` account at the fake identity platform, not signed in yet; written with the app's master key,
/// and a running app told.
fn cloud_storage(
    desktop: &Desktop,
    identity: &oauth_fake::FakeIdentity,
    profile: &str,
    folders: &[offload::profiles::NewWatchFolder],
    kind: offload::storage::BackendKind,
    name: &str,
) -> (offload::profiles::Profile, offload::backends::BackendRecord) {
    let (db, vault) = desktop.vault();
    let profile = offload::profiles::create(
        &db,
        profile,
        offload::template::DEFAULT_TEMPLATE,
        &offload::profiles::AfterUpload::Keep,
        folders,
    )
    .expect("profile");
    let form = offload::backends::BackendForm {
        kind: Some(kind),
        client_id: Some(oauth_fake::CLIENT_ID.into()),
        auth_url: Some(format!("{}/authorize", identity.base)),
        token_url: Some(format!("{}/token", identity.base)),
        api_base: Some(identity.base.clone()),
        ..Default::default()
    };
    let settings = form.settings(&db, &desktop.path("data")).expect("settings");
    let record =
        offload::backends::add(&db, &vault, profile.id, name, &settings, true).expect("backend");
    desktop.engine().wake_daemon();
    (profile, record)
}

/// `pid` and every process below it (children of any of its threads).
fn descendants(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", tree[index]));
        for task in tasks.into_iter().flatten().flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            tree.extend(
                children
                    .split_whitespace()
                    .filter_map(|child| child.parse::<u32>().ok()),
            );
        }
        index += 1;
    }
    tree
}

fn command_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn profile_id(desktop: &Desktop, name: &str) -> i64 {
    offload::profiles::by_name(desktop.engine().db(), name)
        .expect("profile")
        .id
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A second launch with a sign-in link hands it to the running app, whose engine checks it: a
/// link with a state no sign-in started is refused, and nothing is stored.
#[test]
fn a_second_launch_hands_its_sign_in_link_to_the_running_app() {
    let desktop = Desktop::new();
    let first_log = desktop.path("first.log");
    let _first = desktop.launch(&[], &first_log);
    wait_until("the app to run", || {
        std::fs::read_to_string(&first_log).is_ok_and(|log| log.contains("offload is running"))
    });

    let second = {
        let mut command = Command::new(APP);
        desktop.env(&mut command);
        command
            .arg("offload://oauth/microsoft?code=stolen-code&state=forged-state")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command.spawn().expect("second launch")
    };
    let mut second = Process(second);
    wait_until("the second launch to hand over and exit", || {
        second.0.try_wait().expect("wait").is_some()
    });
    wait_until("the running app to refuse the link", || {
        std::fs::read_to_string(&first_log).is_ok_and(|log| log.contains("refused a sign-in"))
    });
    let log = std::fs::read_to_string(&first_log).unwrap();
    assert!(
        !log.contains("stolen-code"),
        "a sign-in link is never logged:\n{log}"
    );
    assert_eq!(
        log.matches("offload is running").count(),
        1,
        "one app, not two:\n{log}"
    );
    let accounts: i64 = desktop
        .engine()
        .db()
        .lock()
        .query_row("SELECT count(*) FROM oauth_connections", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(accounts, 0, "a forged link stores nothing");
}

/// The end of a Microsoft sign-in, as the browser hands it to the desktop: a second launch with
/// the `offload://oauth/microsoft?code=…` link. The running app's engine exchanges the code with
/// the (fake) identity platform, and the account is connected.
#[test]
fn a_microsoft_sign_in_link_completes_in_the_running_app() {
    let identity = oauth_fake::FakeIdentity::start();
    let desktop = Desktop::new();
    let (db, vault) = desktop.vault();
    let (_, record) = cloud_storage(
        &desktop,
        &identity,
        "Home",
        &[],
        offload::storage::BackendKind::Onedrive,
        "OneDrive",
    );

    let log = desktop.path("app.log");
    let _app = desktop.launch(&[], &log);
    wait_until("the app to run", || {
        std::fs::read_to_string(&log).is_ok_and(|log| log.contains("offload is running"))
    });
    // What the app's Connect button starts, and what the browser comes back with.
    let flow =
        offload::oauth::begin(&db, &vault, &record, "offload://oauth/microsoft").expect("begin");
    let link = s3::redirected(&flow.url)
        .header("location")
        .expect("the fake consents and sends the browser back")
        .to_owned();
    assert!(
        link.starts_with("offload://oauth/microsoft?code="),
        "{link}"
    );

    let mut second = Command::new(APP);
    desktop.env(&mut second);
    let status = second
        .arg(&link)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("second launch");
    assert!(
        status.success(),
        "the second launch hands over and exits: {status}"
    );
    wait_until("the running app to sign in", || {
        std::fs::read_to_string(&log).is_ok_and(|log| log.contains("signed in"))
    });
    let record = offload::backends::get(&db, record.id).expect("backend");
    assert!(
        matches!(
            record.readiness(&db).expect("readiness"),
            offload::backends::Readiness::Connected { .. }
        ),
        "the backend is connected"
    );
    let code = link
        .split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log.contains(code),
        "a sign-in code is never logged:\n{log}"
    );
}

/// The order people follow: Offload runs; storage in a Google Drive account is added as the
/// profile's default but not signed in yet; a download finishes and waits for the sign-in; the
/// person presses Connect in the window and consents in the browser. The download that waited
/// reaches 100% in Transfers without a restart, and so does the next one.
#[tokio::test(flavor = "multi_thread")]
async fn connecting_in_the_window_uploads_what_waited_for_the_sign_in() {
    let identity = oauth_fake::FakeIdentity::start();
    let desktop = Desktop::new();
    let watched = desktop.path("incoming");
    std::fs::create_dir_all(&watched).unwrap();
    let (_driver, window) = Window::open(&desktop).await;
    window.click("[data-testid=welcome-dismiss]").await;

    // While the app runs, a profile watching a folder gets Drive storage as its default.
    let (profile, _) = cloud_storage(
        &desktop,
        &identity,
        "Films",
        &[offload::profiles::NewWatchFolder::recursive(
            watched.clone(),
        )],
        offload::storage::BackendKind::GoogleDrive,
        "Drive",
    );
    let (db, _) = desktop.vault();

    let download = |name: &str, seed: u32| {
        let bytes: Vec<u8> = (0..2 * 1024 * 1024u32)
            .map(|i| (i.wrapping_mul(seed) % 251) as u8)
            .collect();
        let partial = watched.join(format!("{name}.part"));
        std::fs::write(&partial, &bytes).unwrap();
        std::fs::rename(&partial, watched.join(name)).unwrap();
        bytes
    };
    let first = download("First.Film.2024.mkv", 7);
    wait_until("the download to wait for the sign-in", || {
        offload::queue::waiting_for_sign_in(&db).unwrap_or(0) == 1
    });

    // Connect: the window shows the sign-in address; the browser consents and comes back.
    window.click("[data-testid=nav-storage]").await;
    window
        .select("[data-testid=storage-profile]", &profile.id.to_string())
        .await;
    window
        .click("[data-testid=backend-Drive] [data-testid=backend-connect]")
        .await;
    let address = window
        .find("[data-testid=backend-Drive] [data-testid=sign-in-url]")
        .await
        .prop("value")
        .await
        .unwrap()
        .expect("the sign-in address");
    let back = s3::redirected(&address)
        .header("location")
        .expect("the fake consents and sends the browser back")
        .to_owned();
    let (status, page) = s3::http(&back, "GET", &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&page));
    window
        .text_until(
            "[data-testid=backend-Drive] [data-testid=backend-status]",
            "the backend to show the account",
            |text| text.contains(oauth_fake::ACCOUNT),
        )
        .await;

    // What waited goes now, and so does what arrives next.
    window.click("[data-testid=nav-transfers]").await;
    window
        .find("[data-state=done] progress[data-percent='100']")
        .await;
    assert!(identity.drive_file("First.Film.2024.mkv").unwrap() == first);
    let second = download("Second.Film.2024.mkv", 13);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let done = window
            .client
            .find_all(Locator::Css(
                "[data-state=done] progress[data-percent='100']",
            ))
            .await
            .map(|found| found.len())
            .unwrap_or(0);
        if done == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second download never reached 100%"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(identity.drive_file("Second.Film.2024.mkv").unwrap() == second);
}
