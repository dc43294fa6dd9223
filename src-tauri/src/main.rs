//! The Offload tray app: runs the same engine as `offload run` inside the app process and
//! forwards its events to the window. Commands here are thin adapters over the engine.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::sync::Arc;

use offload::engine::DaemonOptions;
use offload::queue::{self, Event, Job};
use offload::summary::TransferSummary;
use offload::Engine;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, State};
use tokio_util::sync::CancellationToken;

/// What the app keeps for its commands.
struct AppState {
    engine: Arc<Engine>,
    shutdown: CancellationToken,
}

#[tauri::command]
fn list_jobs(state: State<'_, AppState>) -> Result<Vec<Job>, String> {
    queue::list(state.engine.db(), &[]).map_err(|error| error.to_string())
}

#[tauri::command]
fn pause_all(state: State<'_, AppState>) -> Result<(), String> {
    queue::pause(state.engine.db(), None)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

#[tauri::command]
fn resume_all(state: State<'_, AppState>) -> Result<(), String> {
    queue::resume(state.engine.db(), None)
        .map(|_| state.engine.wake_daemon())
        .map_err(|error| error.to_string())
}

fn show_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.set_focus();
    }
}

/// How often the tray's summary is redrawn: progress events come many times a second.
const TRAY_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends the engine's events to the window as they happen, and keeps the tray's summary line.
fn forward_events(app: AppHandle, engine: &Engine, status: MenuItem<tauri::Wry>) {
    let mut events = engine.subscribe();
    let summary = Arc::new(std::sync::Mutex::new(TransferSummary::default()));
    let shown = summary.clone();
    let tray_app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut last = String::new();
        let mut tick = tokio::time::interval(TRAY_REFRESH);
        loop {
            tick.tick().await;
            let line = shown
                .lock()
                .map(|summary| summary.line())
                .unwrap_or_default();
            if line != last {
                if let Some(tray) = tray_app.tray_by_id("offload") {
                    let _ = tray.set_tooltip(Some(format!("Offload: {line}")));
                    let _ = tray.set_title(Some(&line));
                }
                let _ = status.set_text(&line);
                last = line;
            }
        }
    });
    tauri::async_runtime::spawn(async move {
        loop {
            let event = events.recv().await;
            if let (Ok(event), Ok(mut summary)) = (&event, summary.lock()) {
                summary.observe(event);
            }
            match event {
                Ok(Event::Progress(progress)) => {
                    let _ = app.emit("upload-progress", progress);
                }
                Ok(event @ Event::State { .. }) | Ok(event @ Event::Queued { .. }) => {
                    let _ = app.emit("upload-state", event);
                }
                Ok(Event::Notice { message }) => {
                    let _ = app.emit("notice", message);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

fn main() {
    tracing_subscriber_init();
    let data_dir = std::env::var_os("OFFLOAD_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(Engine::default_data_dir);
    let engine = match Engine::open(&data_dir) {
        Ok(engine) => Arc::new(engine),
        Err(error) => {
            eprintln!(
                "error: cannot open Offload's data in {}: {error}",
                data_dir.display()
            );
            std::process::exit(1);
        }
    };
    if let Err(error) = engine.ensure_default_profile() {
        eprintln!("warning: {error}");
    }
    let shutdown = CancellationToken::new();
    let result = tauri::Builder::default()
        .manage(AppState {
            engine: engine.clone(),
            shutdown: shutdown.clone(),
        })
        .invoke_handler(tauri::generate_handler![list_jobs, pause_all, resume_all])
        .setup(move |app| {
            let status = MenuItem::with_id(app, "status", "Idle", false, None::<&str>)?;
            let open = MenuItem::with_id(app, "open", "Open Offload", true, None::<&str>)?;
            let pause = MenuItem::with_id(app, "pause", "Pause all", true, None::<&str>)?;
            let resume = MenuItem::with_id(app, "resume", "Resume all", true, None::<&str>)?;
            let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
            let menu = Menu::with_items(app, &[&status, &open, &pause, &resume, &quit])?;
            let mut tray = TrayIconBuilder::with_id("offload")
                .tooltip("Offload")
                .menu(&menu);
            if let Some(icon) = app.default_window_icon() {
                tray = tray.icon(icon.clone());
            }
            tray.on_menu_event(|app, event| {
                let state = app.state::<AppState>();
                match event.id.as_ref() {
                    "open" => show_window(app),
                    "pause" => {
                        let _ = queue::pause(state.engine.db(), None);
                    }
                    "resume" => {
                        let _ = queue::resume(state.engine.db(), None);
                        state.engine.wake_daemon();
                    }
                    "quit" => {
                        state.shutdown.cancel();
                        app.exit(0);
                    }
                    _ => {}
                }
            })
            .build(app)?;

            // Under WebDriver the window must be visible to be clicked.
            if std::env::var_os("TAURI_WEBVIEW_AUTOMATION").is_some() {
                show_window(app.handle());
            }
            forward_events(app.handle().clone(), &engine, status);
            let engine = engine.clone();
            tauri::async_runtime::spawn(async move {
                let options = DaemonOptions {
                    stream: match offload::stream::StreamSettings::load(engine.db()) {
                        Ok(settings) => Some(settings),
                        Err(error) => {
                            tracing::error!(%error, "the stream server is off");
                            None
                        }
                    },
                    ..DaemonOptions::default()
                };
                if let Err(error) = engine.run(options, shutdown).await {
                    tracing::error!(%error, "the upload engine stopped");
                }
            });
            Ok(())
        })
        .run(tauri::generate_context!("../tauri.conf.json"));
    if let Err(error) = result {
        eprintln!("error: the desktop app failed: {error}");
        std::process::exit(1);
    }
}

fn tracing_subscriber_init() {
    // The engine logs through `tracing`; the shell shows its warnings on stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_env("OFFLOAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("offload=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(offload::logging::LogOutput)
        .init();
}
