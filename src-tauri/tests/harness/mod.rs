//! The desktop the app's tests and benchmarks run it on: a private X server (Xvfb), a private
//! D-Bus session and a throwaway home, so its single-instance name, deep-link registration and
//! autostart entry never touch the user's.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one thing a person waits for may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);
pub const APP: &str = env!("CARGO_BIN_EXE_offload-desktop");
const MASTER_KEY: &str = "b2ZmbG9hZC10ZXN0cy1tYXN0ZXIta2V5LTMyLWJ5dGU=";

/// A child process stopped with the test.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private X server and D-Bus session, and a home folder that is not the user's: the app's
/// single-instance name, deep-link registration and autostart entry stay inside the test.
pub struct Desktop {
    dir: tempfile::TempDir,
    display: String,
    bus: String,
    pub stream_port: u16,
    _xvfb: Process,
    _dbus: Process,
}

impl Desktop {
    pub fn new() -> Desktop {
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
            stream_port: free_port(),
            dir,
            _xvfb: xvfb,
            _dbus: Process(dbus),
        };
        std::fs::create_dir_all(desktop.path("home/Downloads")).unwrap();
        // The stream port is a setting (not OFFLOAD_STREAM_PORT), so the Settings view can change
        // it; a short quiet period, so a file dropped whole counts as finished within a second.
        let engine = desktop.engine();
        engine
            .change_settings(|settings| {
                settings.stream_port = desktop.stream_port;
                settings.workers = 2;
                settings.quiet_period_secs = 1;
            })
            .expect("save the settings");
        desktop
    }

    /// The app's database and vault, with the master key the app is given.
    pub fn vault(&self) -> (offload::db::Db, std::sync::Arc<offload::secrets::Vault>) {
        use base64::Engine as _;
        use offload::secrets::{KeySource, MasterKey, Vault};
        let db = self.engine().db().clone();
        let key: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(MASTER_KEY)
            .expect("base64")
            .try_into()
            .expect("32 bytes");
        let vault = Vault::with_key(
            db.clone(),
            MasterKey::from_bytes(key, KeySource::Environment),
        )
        .expect("vault");
        (db, std::sync::Arc::new(vault))
    }

    /// The engine on the app's data folder, to set up or inspect what the app sees.
    pub fn engine(&self) -> offload::Engine {
        offload::Engine::open(&self.path("data")).expect("open the app's data")
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The environment the app (and anything that starts it) runs in.
    pub fn env(&self, command: &mut Command) {
        command
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("OFFLOAD_DATA_DIR", self.path("data"))
            .env("OFFLOAD_MASTER_KEY", MASTER_KEY)
            .env_remove("OFFLOAD_STREAM_PORT")
            .env(
                "OFFLOAD_LOG",
                "offload=info,offload_desktop=info,offload_desktop::tray=debug",
            )
            .env_remove("WAYLAND_DISPLAY");
    }

    /// The app started directly, its log going to `log`.
    pub fn launch(&self, args: &[&str], log: &Path) -> Process {
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

    /// `tauri-driver` serving WebDriver sessions that start the app in this desktop, returned
    /// once both it and the WebKitWebDriver behind it listen: tauri-driver listens at once and
    /// drops any request it cannot forward yet, which a loaded machine made the first session
    /// request of a test.
    pub fn driver(&self) -> (Process, u16) {
        let port = free_port();
        let native_port = free_port();
        let mut command = Command::new(tauri_driver());
        self.env(&mut command);
        command
            .args(["--port", &port.to_string()])
            .args(["--native-port", &native_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("app.log")).expect("log"));
        let driver = Process(
            command
                .spawn()
                .expect("tauri-driver (cargo install tauri-driver)"),
        );
        wait_until("tauri-driver and WebKitWebDriver to listen", || {
            [port, native_port]
                .iter()
                .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
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

pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The `offload` command line, which the workspace's tests build beside the app.
fn cli_binary() -> PathBuf {
    let cli = Path::new(APP).with_file_name(format!("offload{}", std::env::consts::EXE_SUFFIX));
    assert!(
        cli.exists(),
        "{} is missing: the test command builds the whole workspace (cargo test --workspace)",
        cli.display()
    );
    cli
}

/// Runs `offload args…` on the data folder `data`, as a person at a terminal would; its stdout.
pub fn cli(data: &Path, args: &[&str]) -> String {
    let output = Command::new(cli_binary())
        .args(args)
        .env("OFFLOAD_DATA_DIR", data)
        .env("OFFLOAD_MASTER_KEY", MASTER_KEY)
        .env_remove("OFFLOAD_STREAM_PORT")
        .stdin(Stdio::null())
        .output()
        .expect("run offload");
    assert!(
        output.status.success(),
        "offload {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The settings rows of the database in `data`, as stored.
pub fn stored_settings(data: &Path) -> Vec<(String, String)> {
    let engine = offload::Engine::open(data).expect("open the data folder");
    let db = engine.db().lock();
    let mut rows = db
        .prepare(
            "SELECT key, value FROM settings
             WHERE key LIKE 'queue.%' OR key LIKE 'watch.%' OR key LIKE 'stream.%'
                OR key IN ('app.notifications', 'app.autostart')
             ORDER BY key",
        )
        .expect("query");
    rows.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}
