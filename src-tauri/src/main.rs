//! The Offload tray app: runs the same engine as `offload run` (watchers, queue, stream server)
//! inside the app process. The window, tray, notifications and deep links are thin layers over
//! the engine's functions and events.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod bindings;
mod commands;
mod links;
mod notify;
mod platform;
mod tray;
mod window;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use offload::engine::RunOverrides;
use offload::Engine;
use tauri::{AppHandle, Manager, RunEvent};
use tauri_plugin_deep_link::DeepLinkExt as _;
use tokio_util::sync::CancellationToken;

/// How long Quit waits for uploads to checkpoint before leaving anyway.
const QUIT_GRACE: Duration = Duration::from_secs(15);

/// What the commands and the tray share.
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The running daemon (watchers, queue, stream server) and how to stop it.
    running: Mutex<Option<Running>>,
}

struct Running {
    shutdown: CancellationToken,
    task: tauri::async_runtime::JoinHandle<()>,
}

/// Starts the daemon with the saved settings (it starts again in place when they change).
fn start_engine(app: &AppHandle) {
    let state = app.state::<AppState>();
    let shutdown = CancellationToken::new();
    let (engine, stop, handle) = (state.engine.clone(), shutdown.clone(), app.clone());
    let task = tauri::async_runtime::spawn(async move {
        if let Err(error) = engine.run(&RunOverrides::default(), stop).await {
            tracing::error!(%error, "the upload engine stopped");
            notify::show(&handle, "Offload stopped uploading", &error.to_string());
        }
    });
    if let Ok(mut running) = state.running.lock() {
        *running = Some(Running { shutdown, task });
    };
}

/// Stops the daemon: running uploads checkpoint, so the next start resumes them.
async fn stop_engine(app: &AppHandle) {
    let running = app
        .state::<AppState>()
        .running
        .lock()
        .ok()
        .and_then(|mut running| running.take());
    if let Some(Running { shutdown, task }) = running {
        shutdown.cancel();
        if tokio::time::timeout(QUIT_GRACE, task).await.is_err() {
            tracing::warn!(
                "uploads did not checkpoint in time; they resume from their last checkpoint"
            );
        }
    }
}

/// Makes the desktop start the app at login, or not.
pub fn apply_autostart(app: &AppHandle, on: bool) -> Result<(), tauri_plugin_autostart::Error> {
    use tauri_plugin_autostart::ManagerExt as _;
    let autolaunch = app.autolaunch();
    if autolaunch.is_enabled().unwrap_or(false) == on {
        return Ok(());
    }
    if on {
        autolaunch.enable()
    } else {
        autolaunch.disable()
    }
}

/// Stops the daemon, then exits.
pub fn quit(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        stop_engine(&app).await;
        offload::logging::flush();
        app.exit(0);
    });
}

fn main() {
    platform::before_display();
    init_logging();
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
        tracing::warn!(%error, "no default profile");
    }
    let app = tauri::Builder::default()
        // First: a second launch hands its arguments (and deep link) to this one and exits.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            window::show(app);
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .manage(AppState {
            engine: engine.clone(),
            running: Mutex::new(None),
        })
        .invoke_handler(tauri::generate_handler![
            commands::overview,
            commands::dismiss_welcome,
            commands::close_window,
            commands::list_jobs,
            commands::pause_job,
            commands::resume_job,
            commands::retry_job,
            commands::cancel_job,
            commands::list_library,
            commands::scan_library,
            commands::remove_library_item,
            commands::open_url,
            commands::list_profiles,
            commands::create_profile,
            commands::rename_profile,
            commands::delete_profile,
            commands::update_profile,
            commands::preview_template,
            commands::pick_folder,
            commands::add_watch_folder,
            commands::remove_watch_folder,
            commands::list_backends,
            commands::s3_presets,
            commands::test_backend_form,
            commands::add_backend,
            commands::backend_form,
            commands::update_backend,
            commands::test_backend,
            commands::set_default_backend,
            commands::remove_backend,
            commands::connect_backend,
            commands::get_settings,
            commands::held_back,
            commands::set_upload_window,
            commands::set_strm_dir,
            commands::set_switch,
            commands::client_id_configured,
            commands::save_settings,
        ])
        .setup(move |app| {
            let handle = app.handle().clone();
            register_deep_links(&handle, &engine);
            tray::start(&handle, engine.clone())?;

            let first_run = engine.first_run().unwrap_or(true);
            // Under WebDriver the window must be visible to be clicked.
            if first_run || std::env::var_os("TAURI_WEBVIEW_AUTOMATION").is_some() {
                window::show(&handle);
            }
            // Offload's setting is what counts: the login item follows it.
            if let Ok(settings) = engine.settings() {
                if let Err(error) = apply_autostart(&handle, settings.autostart) {
                    tracing::warn!(%error, "cannot change starting at login");
                }
            }

            start_engine(&handle);
            Ok(())
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match app {
        Ok(app) => app,
        Err(error) => {
            eprintln!("error: the desktop app failed to start: {error}");
            std::process::exit(1);
        }
    };
    app.run(|_app, event| {
        // The last window closing leaves the tray running; only Quit (an explicit exit code) ends.
        if let RunEvent::ExitRequested {
            api, code: None, ..
        } = event
        {
            api.prevent_exit();
        }
    });
}

/// Registers `offload://` with the desktop on first run (Linux: a desktop entry with `%u`), and
/// completes sign-in links this launch was given or that later launches hand over.
fn register_deep_links(app: &AppHandle, engine: &Arc<Engine>) {
    platform::register_scheme(app);
    let deep_link = app.deep_link();
    if let Ok(Some(urls)) = deep_link.get_current() {
        links::open(app, engine, urls.into_iter().map(String::from));
    }
    let (app_for_links, engine) = (app.clone(), engine.clone());
    deep_link.on_open_url(move |event| {
        links::open(
            &app_for_links,
            &engine,
            event.urls().into_iter().map(String::from),
        );
    });
}

fn init_logging() {
    // The engine logs through `tracing`; the shell shows its warnings on stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_env("OFFLOAD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("offload=info,offload_desktop=info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(offload::logging::LogOutput)
        .init();
}
