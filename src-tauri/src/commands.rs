//! The window's commands: thin adapters from `ui/src/lib/api.ts` to the engine. Each returns the
//! engine's error as its message, which the window shows as it is.

use std::path::PathBuf;
use std::time::Duration;

use offload::backends::{self, BackendForm, BackendRecord, Readiness};
use offload::engine::DaemonOptions;
use offload::library::{self, LibraryEntry, LibraryItem};
use offload::profiles::{self, AfterUpload, NewWatchFolder, Profile, WatchFolder};
use offload::queue::{self, Job};
use offload::storage::s3::{Preset, Provider as S3Provider};
use offload::storage::ConnectionReport;
use offload::stream::StreamSettings;
use offload::{oauth, template};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, State};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_dialog::DialogExt as _;

use crate::notify::{self, SETTING_NOTIFICATIONS};
use crate::{AppState, SETTING_WELCOMED};

type Answer<T = ()> = Result<T, String>;

fn words(error: impl std::fmt::Display) -> String {
    error.to_string()
}

#[derive(Serialize)]
pub struct Overview {
    first_run: bool,
    data_dir: PathBuf,
    library_dir: PathBuf,
    stream_port: u16,
}

#[tauri::command]
pub fn overview(state: State<'_, AppState>) -> Answer<Overview> {
    let engine = &state.engine;
    Ok(Overview {
        first_run: engine
            .db()
            .setting(SETTING_WELCOMED)
            .map_err(words)?
            .is_none(),
        data_dir: engine.data_dir().to_owned(),
        library_dir: backends::default_library_dir(engine.data_dir()),
        stream_port: StreamSettings::load(engine.db()).map_err(words)?.port,
    })
}

#[tauri::command]
pub fn dismiss_welcome(state: State<'_, AppState>) -> Answer {
    state
        .engine
        .db()
        .set_setting(SETTING_WELCOMED, "1")
        .map_err(words)
}

#[tauri::command]
pub fn close_window(window: tauri::WebviewWindow) -> Answer {
    window.close().map_err(words)
}

#[tauri::command]
pub fn list_jobs(state: State<'_, AppState>) -> Answer<Vec<Job>> {
    queue::list(state.engine.db(), &[]).map_err(words)
}

#[tauri::command]
pub fn pause_job(state: State<'_, AppState>, id: Option<i64>) -> Answer {
    queue::pause(state.engine.db(), id).map(drop).map_err(words)
}

#[tauri::command]
pub fn resume_job(state: State<'_, AppState>, id: Option<i64>) -> Answer {
    queue::resume(state.engine.db(), id).map_err(words)?;
    state.engine.wake_daemon();
    Ok(())
}

#[tauri::command]
pub fn retry_job(state: State<'_, AppState>, id: i64) -> Answer {
    queue::retry(state.engine.db(), id).map_err(words)?;
    state.engine.wake_daemon();
    Ok(())
}

#[tauri::command]
pub fn cancel_job(state: State<'_, AppState>, id: i64) -> Answer {
    queue::cancel(state.engine.db(), id).map_err(words)
}

#[derive(Serialize)]
pub struct LibraryRow {
    #[serde(flatten)]
    entry: LibraryEntry,
    stream_url: String,
}

#[tauri::command(rename_all = "snake_case")]
pub fn list_library(
    state: State<'_, AppState>,
    profile_id: Option<i64>,
) -> Answer<Vec<LibraryRow>> {
    let links = state.engine.stream_links().map_err(words)?;
    Ok(library::list(state.engine.db(), profile_id)
        .map_err(words)?
        .into_iter()
        .filter(|entry| entry.status == "uploaded")
        .map(|entry| LibraryRow {
            stream_url: links.item_url(entry.item),
            entry,
        })
        .collect())
}

#[tauri::command]
pub async fn remove_library_item(state: State<'_, AppState>, item: LibraryItem) -> Answer {
    library::remove(state.engine.db(), state.engine.backends(), item)
        .await
        .map_err(words)
}

#[tauri::command]
pub fn open_url(url: String) -> Answer {
    offload::platform::open(&url).map_err(|error| format!("cannot open {url}: {error}"))
}

#[derive(Serialize)]
pub struct ProfileRow {
    #[serde(flatten)]
    profile: Profile,
    watch_folders: Vec<WatchFolder>,
    playlist_url: String,
}

fn profile_rows(state: &AppState, only: Option<i64>) -> Answer<Vec<ProfileRow>> {
    let db = state.engine.db();
    let links = state.engine.stream_links().map_err(words)?;
    let folders = profiles::watch_folders(db, only).map_err(words)?;
    Ok(profiles::list(db)
        .map_err(words)?
        .into_iter()
        .filter(|profile| only.is_none_or(|id| id == profile.id))
        .map(|profile| ProfileRow {
            watch_folders: folders
                .iter()
                .filter(|folder| folder.profile_id == profile.id)
                .cloned()
                .collect(),
            playlist_url: links.playlist_url(profile.id),
            profile,
        })
        .collect())
}

#[tauri::command]
pub fn list_profiles(state: State<'_, AppState>) -> Answer<Vec<ProfileRow>> {
    profile_rows(&state, None)
}

#[tauri::command]
pub fn create_profile(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
) -> Answer<ProfileRow> {
    let profile = profiles::create(
        state.engine.db(),
        &name,
        template::DEFAULT_TEMPLATE,
        &AfterUpload::Keep,
        &[],
    )
    .map_err(words)?;
    changed(&app);
    profile_rows(&state, Some(profile.id))?
        .pop()
        .ok_or_else(|| format!("the profile {name:?} vanished as it was created"))
}

#[tauri::command]
pub fn rename_profile(app: AppHandle, state: State<'_, AppState>, id: i64, name: String) -> Answer {
    let db = state.engine.db();
    let profile = profiles::get(db, id).map_err(words)?;
    profiles::rename(db, &profile.name, &name).map_err(words)?;
    changed(&app);
    Ok(())
}

#[tauri::command]
pub fn delete_profile(app: AppHandle, state: State<'_, AppState>, id: i64) -> Answer {
    let db = state.engine.db();
    let profile = profiles::get(db, id).map_err(words)?;
    profiles::remove(db, &profile.name).map_err(words)?;
    state.engine.wake_daemon();
    changed(&app);
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
pub fn update_profile(
    state: State<'_, AppState>,
    id: i64,
    remote_template: String,
    after_upload: AfterUpload,
) -> Answer {
    profiles::update(state.engine.db(), id, &remote_template, &after_upload)
        .map(drop)
        .map_err(words)
}

#[tauri::command(rename_all = "snake_case")]
pub fn preview_template(remote_template: String, sample: String) -> Answer<String> {
    template::preview(&remote_template, "Profile", &sample)
        .map(|path| path.to_string())
        .map_err(words)
}

#[tauri::command]
pub async fn pick_folder(app: AppHandle) -> Answer<Option<PathBuf>> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    app.dialog().file().pick_folder(move |folder| {
        let _ = sender.send(folder.and_then(|folder| folder.into_path().ok()));
    });
    Ok(receiver.await.unwrap_or(None))
}

#[tauri::command(rename_all = "snake_case")]
pub fn add_watch_folder(
    state: State<'_, AppState>,
    profile_id: i64,
    path: PathBuf,
    include: Vec<String>,
    exclude: Vec<String>,
) -> Answer {
    if !path.is_dir() {
        return Err(format!(
            "{} is not a folder here: choose an existing folder to watch",
            path.display()
        ));
    }
    let folder = NewWatchFolder {
        include,
        exclude,
        ..NewWatchFolder::recursive(path)
    };
    profiles::add_watch_folder(state.engine.db(), profile_id, &folder).map_err(words)?;
    // The daemon rereads the watched folders when woken.
    state.engine.wake_daemon();
    Ok(())
}

#[tauri::command]
pub fn remove_watch_folder(state: State<'_, AppState>, id: i64) -> Answer {
    profiles::remove_watch_folder_by_id(state.engine.db(), id).map_err(words)?;
    state.engine.wake_daemon();
    Ok(())
}

/// A backend as the Storage tab lists it: no secrets, and whether it can be used now.
#[derive(Serialize)]
pub struct BackendRow {
    id: i64,
    profile_id: i64,
    name: String,
    kind: offload::storage::BackendKind,
    is_default: bool,
    location: String,
    status: &'static str,
    account: Option<String>,
    message: Option<String>,
}

fn backend_row(state: &AppState, record: BackendRecord) -> Answer<BackendRow> {
    let (status, account, message) = match record.readiness(state.engine.db()).map_err(words)? {
        Readiness::Ready => ("ready", None, None),
        Readiness::Connected { account } => ("connected", account, None),
        Readiness::NotSignedIn => ("not-signed-in", None, None),
        Readiness::Disconnected { reason } => ("disconnected", None, Some(reason)),
    };
    Ok(BackendRow {
        location: record.location(),
        id: record.id,
        profile_id: record.profile_id,
        name: record.name,
        kind: record.kind,
        is_default: record.is_default,
        status,
        account,
        message,
    })
}

#[tauri::command(rename_all = "snake_case")]
pub fn list_backends(
    state: State<'_, AppState>,
    profile_id: Option<i64>,
) -> Answer<Vec<BackendRow>> {
    backends::list(state.engine.db(), profile_id)
        .map_err(words)?
        .into_iter()
        .map(|record| backend_row(&state, record))
        .collect()
}

#[tauri::command]
pub fn s3_presets() -> Vec<Preset> {
    S3Provider::ALL
        .into_iter()
        .map(S3Provider::preset)
        .collect()
}

/// The storage form: where it goes, and the backend it describes; with `id`, a change of that
/// backend's settings (empty secrets keep the stored ones).
#[derive(Deserialize)]
pub struct NewBackend {
    #[serde(default)]
    id: Option<i64>,
    profile_id: i64,
    name: String,
    #[serde(default)]
    make_default: bool,
    #[serde(flatten)]
    form: BackendForm,
}

impl NewBackend {
    fn settings(&self, state: &AppState) -> Answer<backends::BackendSettings> {
        let engine = &state.engine;
        let mut form = self.form.clone();
        if let Some(id) = self.id {
            let stored = backends::get(engine.db(), id)
                .and_then(|record| record.form(engine.vault()))
                .map_err(words)?;
            form.keep_secrets_of(&stored);
        }
        form.settings(engine.db(), engine.data_dir()).map_err(words)
    }
}

/// A stored backend's settings for the storage form, without its secrets.
#[tauri::command]
pub fn backend_form(state: State<'_, AppState>, id: i64) -> Answer<BackendForm> {
    let engine = &state.engine;
    backends::get(engine.db(), id)
        .and_then(|record| record.form(engine.vault()))
        .map_err(words)
}

/// Tests what the form describes without saving anything (a local folder too); a cloud account
/// can only be tested once signed in, so its report is empty.
#[tauri::command]
pub async fn test_backend_form(
    state: State<'_, AppState>,
    form: NewBackend,
) -> Answer<ConnectionReport> {
    Ok(match form.settings(&state)?.open_unsaved() {
        Some(backend) => backend.test_connection().await,
        None => ConnectionReport::default(),
    })
}

/// Settings that fail the test before saving are not saved; the message says what failed.
async fn tested(settings: &backends::BackendSettings) -> Answer {
    let Some(report) = settings.test_before_saving().await else {
        return Ok(());
    };
    if report.is_ok() {
        return Ok(());
    }
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|check| !check.ok)
        .map(|check| format!("{}: {}", check.name, check.detail))
        .collect();
    Err(format!(
        "Not saved: {}. Correct it and save again.",
        failed.join("; ")
    ))
}

#[tauri::command]
pub async fn add_backend(
    app: AppHandle,
    state: State<'_, AppState>,
    form: NewBackend,
) -> Answer<BackendRow> {
    let settings = form.settings(&state)?;
    tested(&settings).await?;
    let engine = &state.engine;
    let record = backends::add(
        engine.db(),
        engine.vault(),
        form.profile_id,
        &form.name,
        &settings,
        form.make_default,
    )
    .map_err(words)?;
    changed(&app);
    backend_row(&state, record)
}

/// Saves new settings for a backend; the running engine uses them for its next upload, and the
/// backend's waiting and failed uploads go again.
#[tauri::command]
pub async fn update_backend(
    app: AppHandle,
    state: State<'_, AppState>,
    form: NewBackend,
) -> Answer<BackendRow> {
    let id = form
        .id
        .ok_or("the storage to change was not named; reopen it and try again")?;
    let settings = form.settings(&state)?;
    tested(&settings).await?;
    let (record, _) = state
        .engine
        .update_backend(id, Some(&form.name), &settings)
        .map_err(words)?;
    changed(&app);
    backend_row(&state, record)
}

#[tauri::command]
pub async fn test_backend(state: State<'_, AppState>, id: i64) -> Answer<ConnectionReport> {
    let engine = &state.engine;
    let backend = engine.backend(id).map_err(words)?;
    Ok(backend.test_connection().await)
}

#[tauri::command]
pub fn set_default_backend(app: AppHandle, state: State<'_, AppState>, id: i64) -> Answer {
    let db = state.engine.db();
    let record = backends::get(db, id).map_err(words)?;
    backends::set_default(db, record.profile_id, &record.name).map_err(words)?;
    changed(&app);
    Ok(())
}

#[tauri::command]
pub fn remove_backend(app: AppHandle, state: State<'_, AppState>, id: i64) -> Answer {
    let db = state.engine.db();
    let record = backends::get(db, id).map_err(words)?;
    backends::remove(db, record.profile_id, &record.name).map_err(words)?;
    changed(&app);
    Ok(())
}

/// Starts a sign-in and returns its address at once (the window shows it, copyable); the
/// outcome arrives later as an `account-connected` or `account-failed` event. Google comes back
/// to a loopback listener, Microsoft through the `offload://oauth/microsoft` deep link.
#[tauri::command]
pub async fn connect_backend(
    app: AppHandle,
    state: State<'_, AppState>,
    id: i64,
) -> Answer<String> {
    let engine = state.engine.clone();
    let record = backends::get(engine.db(), id).map_err(words)?;
    let (config, _) = record.cloud(engine.vault()).map_err(words)?;
    if config.client.provider == offload::storage::cloud::Provider::Microsoft {
        let flow = engine
            .begin_sign_in(&record, crate::links::MICROSOFT_REDIRECT)
            .map_err(words)?;
        let _ = offload::platform::open(&flow.url);
        return Ok(flow.url);
    }
    let loopback = oauth::Loopback::bind().await.map_err(words)?;
    let flow = engine
        .begin_sign_in(&record, &loopback.redirect_uri)
        .map_err(words)?;
    let _ = offload::platform::open(&flow.url);
    let url = flow.url.clone();
    tauri::async_runtime::spawn(async move {
        let outcome = engine.finish_sign_in(loopback, &flow).await;
        crate::links::signed_in(&app, Some(id), outcome);
    });
    Ok(url)
}

#[derive(Serialize, Deserialize)]
pub struct Settings {
    workers: usize,
    bandwidth_limit: u64,
    quiet_period_secs: u64,
    stream_port: u16,
    notifications: bool,
    autostart: bool,
}

#[tauri::command]
pub fn get_settings(app: AppHandle, state: State<'_, AppState>) -> Answer<Settings> {
    let db = state.engine.db();
    let options = DaemonOptions::from_settings(db).map_err(words)?;
    Ok(Settings {
        workers: options.queue.workers,
        bandwidth_limit: queue::bandwidth_limit(db).map_err(words)?,
        quiet_period_secs: options.watch.quiet_period.as_secs(),
        stream_port: options.stream.map(|stream| stream.port).unwrap_or_default(),
        notifications: notify::enabled(db),
        autostart: app.autolaunch().is_enabled().unwrap_or(false),
    })
}

#[tauri::command]
pub fn save_settings(app: AppHandle, state: State<'_, AppState>, settings: Settings) -> Answer {
    let db = state.engine.db();
    if settings.stream_port < 1024 {
        return Err("the stream port must be between 1024 and 65535".into());
    }
    let before = get_settings(app.clone(), state.clone())?;
    DaemonOptions::save_tuning(
        db,
        settings.workers,
        Duration::from_secs(settings.quiet_period_secs),
    )
    .map_err(words)?;
    queue::set_bandwidth_limit(db, settings.bandwidth_limit).map_err(words)?;
    let mut stream = StreamSettings::load(db).map_err(words)?;
    stream.port = settings.stream_port;
    stream.save(db).map_err(words)?;
    db.set_setting(
        SETTING_NOTIFICATIONS,
        if settings.notifications { "1" } else { "0" },
    )
    .map_err(words)?;
    // The bandwidth limit is read live; these are fixed while the daemon runs.
    if (before.workers, before.quiet_period_secs, before.stream_port)
        != (
            settings.workers,
            settings.quiet_period_secs,
            settings.stream_port,
        )
    {
        crate::restart_engine(&app);
    }
    let autolaunch = app.autolaunch();
    let result = if settings.autostart {
        autolaunch.enable()
    } else {
        autolaunch.disable()
    };
    result.map_err(|error| format!("cannot change starting at login: {error}"))
}

/// The event that says profiles, backends or the library changed (the window reloads, the tray
/// relists the playlists).
pub const DATA_CHANGED: &str = "data-changed";

pub fn changed(app: &AppHandle) {
    let _ = app.emit(DATA_CHANGED, ());
}
