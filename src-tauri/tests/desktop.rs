//! The desktop app end to end: the real `offload-desktop` binary in a real WebKit window on a
//! private X server (Xvfb) and D-Bus session, driven through WebDriver (`tauri-driver` in front
//! of WebKitWebDriver) the way a person would click through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/common/s3.rs"]
#[allow(dead_code)]
mod s3;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long any one thing a person waits for may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);
const APP: &str = env!("CARGO_BIN_EXE_offload-desktop");
const MASTER_KEY: &str = "b2ZmbG9hZC10ZXN0cy1tYXN0ZXIta2V5LTMyLWJ5dGU=";

/// A child process stopped with the test.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private X server and D-Bus session, and a home folder that is not the user's: the app's
/// single-instance name, deep-link registration and autostart entry stay inside the test.
struct Desktop {
    dir: tempfile::TempDir,
    display: String,
    bus: String,
    stream_port: u16,
    _xvfb: Process,
    _dbus: Process,
}

impl Desktop {
    fn new() -> Desktop {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x900x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (apt install xvfb) must be installed");
        let display = first_line(xvfb.stdout.take().expect("stdout"));
        let xvfb = Process(xvfb);
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon must be installed");
        let bus = first_line(dbus.stdout.take().expect("stdout"));
        let desktop = Desktop {
            display: format!(":{display}"),
            bus,
            stream_port: s3::free_port(),
            dir,
            _xvfb: xvfb,
            _dbus: Process(dbus),
        };
        std::fs::create_dir_all(desktop.path("home/Downloads")).unwrap();
        // A short quiet period: a file dropped whole counts as finished within a second.
        let engine = offload::Engine::open(&desktop.path("data")).expect("open engine");
        offload::engine::DaemonOptions::save_tuning(engine.db(), 2, Duration::from_secs(1))
            .expect("save settings");
        desktop
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The environment the app (and anything that starts it) runs in.
    fn env(&self, command: &mut Command) {
        command
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("OFFLOAD_DATA_DIR", self.path("data"))
            .env("OFFLOAD_MASTER_KEY", MASTER_KEY)
            .env("OFFLOAD_STREAM_PORT", self.stream_port.to_string())
            .env("OFFLOAD_LOG", "offload=info,offload_desktop=info")
            .env_remove("WAYLAND_DISPLAY");
    }

    /// The app started directly, its log going to `log`.
    fn launch(&self, args: &[&str], log: &Path) -> Process {
        let mut command = Command::new(APP);
        self.env(&mut command);
        let log = std::fs::File::create(log).expect("log file");
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        Process(command.spawn().expect("start offload-desktop"))
    }

    /// `tauri-driver` serving WebDriver sessions that start the app in this desktop.
    fn driver(&self) -> (Process, u16) {
        let port = s3::free_port();
        let mut command = Command::new(tauri_driver());
        self.env(&mut command);
        command
            .args(["--port", &port.to_string()])
            .args(["--native-port", &s3::free_port().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("app.log")).expect("log"));
        let driver = Process(
            command
                .spawn()
                .expect("tauri-driver (cargo install tauri-driver)"),
        );
        wait_until("tauri-driver to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        (driver, port)
    }
}

fn first_line(stream: impl Read) -> String {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).expect("read");
    line.trim().to_owned()
}

fn tauri_driver() -> PathBuf {
    let installed =
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tauri-driver");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("tauri-driver")
    }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A WebDriver session on the app, with the steps a person takes.
struct Window {
    client: Client,
    screenshots: Option<PathBuf>,
}

impl Window {
    async fn open(port: u16) -> Window {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("tauri:options".into(), json!({ "application": APP }));
        let client = ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session on the app");
        Window {
            client,
            screenshots: std::env::var_os("OFFLOAD_SCREENSHOTS").map(PathBuf::from),
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
                let page = self.client.source().await.unwrap_or_default();
                panic!("timed out waiting for {what}; {css} says {text:?}; the page:\n{page}");
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
    let (_driver, port) = desktop.driver();
    let window = Window::open(port).await;

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

    // A download finishes in the watched folder: the transfer reaches 100%.
    let bytes: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let partial = watched.join("Night.Walk.2024.mkv.part");
    std::fs::write(&partial, &bytes).unwrap();
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

    // It is in the Library, and its stream URL serves the file's bytes.
    window.click("[data-testid=nav-library]").await;
    let item = window.find("[data-testid=library-item]").await;
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
    window.client.close().await.expect("close the session");
}

fn profile_id(desktop: &Desktop, name: &str) -> i64 {
    let engine = offload::Engine::open(&desktop.path("data")).expect("open engine");
    offload::profiles::by_name(engine.db(), name)
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
    let engine = offload::Engine::open(&desktop.path("data")).expect("open engine");
    let accounts: i64 = engine
        .db()
        .lock()
        .query_row("SELECT count(*) FROM oauth_connections", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(accounts, 0, "a forged link stores nothing");
}
