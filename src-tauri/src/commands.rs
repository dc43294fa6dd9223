//! The window's commands: adapters from `ui/src/lib/api.ts` to the engine's service layer. Each
//! turns its arguments into one engine call and the engine's error into a [`Problem`]: the
//! engine's sentence, and what to do as data, which the window words itself.

use std::path::PathBuf;

use offload::backends::BackendForm;
use offload::engine::{BackendView, LibraryRow, NewBackend, ProfileView, Saved};
use offload::library::LibraryItem;
use offload::profiles::{AfterUpload, NewWatchFolder, Switch};
use offload::queue::Job;
use offload::settings::Settings;
use offload::storage::s3::{Preset, Provider as S3Provider};
use offload::storage::ConnectionReport;
use offload::{template, Action};
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};
use tauri_plugin_dialog::DialogExt as _;

use crate::AppState;

/// A refused command, as the window shows it: what happened in the engine's words, and what to
/// do about it as data (the window names the button or field; it never shows a command line).
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Problem {
    pub message: String,
    pub action: Option<Action>,
}

impl From<offload::Error> for Problem {
    fn from(error: offload::Error) -> Problem {
        Problem {
            action: error.action(),
            message: error.to_string(),
        }
    }
}

impl Problem {
    fn said(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            action: None,
        }
    }
}

type Answer<T = ()> = Result<T, Problem>;

/// What the welcome and the Settings view need to know about this install.
#[derive(Serialize, ts_rs::TS)]
pub struct Overview {
    /// True until the welcome has been dismissed once.
    first_run: bool,
    data_dir: PathBuf,
    library_dir: PathBuf,
    stream_port: u16,
}

#[tauri::command]
pub fn overview(state: State<'_, AppState>) -> Answer<Overview> {
    let engine = &state.engine;
    Ok(Overview {
        first_run: engine.first_run()?,
        data_dir: engine.data_dir().to_owned(),
        library_dir: offload::backends::default_library_dir(engine.data_dir()),
        stream_port: engine.settings()?.stream_port,
    })
}

#[tauri::command]
pub fn dismiss_welcome(state: State<'_, AppState>) -> Answer {
    Ok(state.engine.dismiss_welcome()?)
}

#[tauri::command]
pub fn close_window(window: tauri::WebviewWindow) -> Answer {
    window
        .close()
        .map_err(|error| Problem::said(format!("the window cannot close: {error}")))
}

#[tauri::command]
pub fn list_jobs(state: State<'_, AppState>) -> Answer<Vec<Job>> {
    Ok(state.engine.jobs(&[])?)
}

#[tauri::command]
pub fn pause_job(state: State<'_, AppState>, id: Option<i64>) -> Answer {
    state.engine.pause(id)?;
    Ok(())
}

#[tauri::command]
pub fn resume_job(state: State<'_, AppState>, id: Option<i64>) -> Answer {
    state.engine.resume(id)?;
    Ok(())
}

#[tauri::command]
pub fn retry_job(state: State<'_, AppState>, id: i64) -> Answer {
    Ok(state.engine.retry(id)?)
}

#[tauri::command]
pub fn cancel_job(state: State<'_, AppState>, id: i64) -> Answer {
    Ok(state.engine.cancel(id)?)
}

#[tauri::command(rename_all = "snake_case")]
pub fn list_library(
    state: State<'_, AppState>,
    profile_id: Option<i64>,
) -> Answer<Vec<LibraryRow>> {
    Ok(state.engine.library(profile_id)?)
}

/// How looking through one backend went, as the window shows it.
#[derive(Serialize, ts_rs::TS)]
pub struct ScanView {
    pub backend_id: i64,
    pub backend_name: String,
    pub report: Option<offload::library::ScanReport>,
    pub problem: Option<Problem>,
}

/// Finds what storage already holds: one backend, or every backend of a profile (or all).
#[tauri::command(rename_all = "snake_case")]
pub async fn scan_library(
    state: State<'_, AppState>,
    profile_id: Option<i64>,
    backend_id: Option<i64>,
) -> Answer<Vec<ScanView>> {
    let scans = state
        .engine
        .scan_library(profile_id, backend_id, &mut |_, _| {})
        .await?;
    Ok(scans
        .into_iter()
        .map(|scan| {
            let (report, problem) = match scan.outcome {
                Ok(report) => (Some(report), None),
                Err(error) => (None, Some(Problem::from(error))),
            };
            ScanView {
                backend_id: scan.backend.id,
                backend_name: scan.backend.name,
                report,
                problem,
            }
        })
        .collect())
}

#[tauri::command]
pub async fn remove_library_item(state: State<'_, AppState>, item: LibraryItem) -> Answer {
    Ok(state.engine.remove_library_item(item).await?)
}

#[tauri::command]
pub fn open_url(url: String) -> Answer {
    offload::platform::open(&url)
        .map_err(|error| Problem::said(format!("cannot open {url}: {error}")))
}

#[tauri::command]
pub fn list_profiles(state: State<'_, AppState>) -> Answer<Vec<ProfileView>> {
    Ok(state.engine.profiles()?)
}

#[tauri::command]
pub fn create_profile(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
) -> Answer<ProfileView> {
    let created =
        state
            .engine
            .create_profile(&name, template::DEFAULT_TEMPLATE, &AfterUpload::Keep, &[])?;
    changed(&app);
    Ok(created)
}

#[tauri::command]
pub fn rename_profile(app: AppHandle, state: State<'_, AppState>, id: i64, name: String) -> Answer {
    state.engine.rename_profile(id, &name)?;
    changed(&app);
    Ok(())
}

#[tauri::command]
pub fn delete_profile(app: AppHandle, state: State<'_, AppState>, id: i64) -> Answer {
    state.engine.delete_profile(id)?;
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
    Ok(state
        .engine
        .update_profile(id, &remote_template, &after_upload)?)
}

/// Lets a profile upload only between two times of day (`01:00-07:00`), or at any time (`None`).
#[tauri::command]
pub fn set_upload_window(state: State<'_, AppState>, id: i64, window: Option<String>) -> Answer {
    state.engine.set_upload_window(id, window.as_deref())?;
    Ok(())
}

/// Keeps a profile's library as `.strm` files in `dir` for media centres, or (`None`) stops.
#[tauri::command]
pub fn set_strm_dir(state: State<'_, AppState>, id: i64, dir: Option<PathBuf>) -> Answer {
    state.engine.set_strm_dir(id, dir.as_deref())?;
    Ok(())
}

/// Turns one of a profile's switches (faststart, remux) on or off.
#[tauri::command]
pub fn set_switch(state: State<'_, AppState>, id: i64, switch: Switch, on: bool) -> Answer {
    state.engine.set_switch(id, switch, on)?;
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
pub fn preview_template(remote_template: String, sample: String) -> Answer<String> {
    Ok(template::preview(&remote_template, "Profile", &sample)
        .map(|path| path.to_string())
        .map_err(offload::Error::from)?)
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
    let folder = NewWatchFolder {
        include,
        exclude,
        ..NewWatchFolder::recursive(path)
    };
    Ok(state.engine.add_watch_folder(profile_id, &folder)?)
}

#[tauri::command]
pub fn remove_watch_folder(state: State<'_, AppState>, id: i64) -> Answer {
    Ok(state.engine.remove_watch_folder(id)?)
}

#[tauri::command(rename_all = "snake_case")]
pub fn list_backends(
    state: State<'_, AppState>,
    profile_id: Option<i64>,
) -> Answer<Vec<BackendView>> {
    Ok(state.engine.list_backends(profile_id)?)
}

#[tauri::command]
pub fn s3_presets() -> Vec<Preset> {
    S3Provider::ALL
        .into_iter()
        .map(S3Provider::preset)
        .collect()
}

/// A stored backend's settings for the storage form, without its secrets.
#[tauri::command]
pub fn backend_form(state: State<'_, AppState>, id: i64) -> Answer<BackendForm> {
    let mut form = state.engine.backend_form(id)?;
    form.secret_access_key = None;
    form.client_secret = None;
    Ok(form)
}

/// Tests what the form describes without saving anything.
#[tauri::command]
pub async fn test_backend_form(
    state: State<'_, AppState>,
    form: NewBackend,
) -> Answer<ConnectionReport> {
    Ok(state.engine.test_backend_form(&form.form, form.id).await?)
}

/// Settings that failed the test before saving were not saved: the failed checks, and what to
/// do about the first.
fn saved(saved: Saved, backend_id: Option<i64>) -> Answer<BackendView> {
    match saved {
        Saved::Done { backend, .. } => Ok(backend),
        Saved::Refused { report } => {
            let failed: Vec<_> = report.checks.iter().filter(|check| !check.ok).collect();
            Err(Problem {
                message: format!(
                    "Not saved: {}. Correct it and save again.",
                    failed
                        .iter()
                        .map(|check| format!("{}: {}", check.name, check.detail))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                action: failed
                    .iter()
                    .find_map(|check| check.fix)
                    .map(|fix| Action::for_backend(backend_id, fix)),
            })
        }
    }
}

#[tauri::command]
pub async fn add_backend(
    app: AppHandle,
    state: State<'_, AppState>,
    form: NewBackend,
) -> Answer<BackendView> {
    let added = state
        .engine
        .add_backend(
            form.profile_id,
            &form.name,
            &form.form,
            form.make_default,
            false,
        )
        .await?;
    let backend = saved(added, None)?;
    changed(&app);
    Ok(backend)
}

/// Saves new settings for a backend; the running engine uses them for its next upload, and the
/// backend's waiting and failed uploads go again.
#[tauri::command]
pub async fn update_backend(
    app: AppHandle,
    state: State<'_, AppState>,
    form: NewBackend,
) -> Answer<BackendView> {
    let id = form.id.ok_or_else(|| {
        Problem::said("the storage to change was not named; open it again and save")
    })?;
    let changed_backend = state
        .engine
        .change_backend(id, Some(&form.name), &form.form, false)
        .await?;
    let backend = saved(changed_backend, Some(id))?;
    changed(&app);
    Ok(backend)
}

#[tauri::command]
pub async fn test_backend(state: State<'_, AppState>, id: i64) -> Answer<ConnectionReport> {
    Ok(state.engine.test_backend(id).await?)
}

#[tauri::command]
pub fn set_default_backend(app: AppHandle, state: State<'_, AppState>, id: i64) -> Answer {
    state.engine.set_default_backend(id)?;
    changed(&app);
    Ok(())
}

#[tauri::command]
pub fn remove_backend(app: AppHandle, state: State<'_, AppState>, id: i64) -> Answer {
    state.engine.remove_backend(id)?;
    changed(&app);
    Ok(())
}

/// Starts a sign-in and returns its address at once (the window shows it, copyable); the
/// outcome arrives later as an `account-connected` or `account-failed` event. The browser comes
/// back to this app's `offload://` link or loopback listener, as the engine decides.
#[tauri::command]
pub async fn connect_backend(
    app: AppHandle,
    state: State<'_, AppState>,
    id: i64,
) -> Answer<String> {
    let engine = state.engine.clone();
    let sign_in = engine
        .start_sign_in(id, Some(crate::links::MICROSOFT_REDIRECT))
        .await?;
    let url = sign_in.url.clone();
    // Failing is fine: the window shows the address.
    let _ = offload::platform::open(&url);
    tauri::async_runtime::spawn(async move {
        if let Some(outcome) = sign_in.finish(&engine).await {
            crate::links::signed_in(&app, Some(id), outcome);
        }
    });
    Ok(url)
}

/// The uploads closed upload windows hold back now (the window shows it until an event says
/// otherwise).
#[tauri::command]
pub fn held_back(state: State<'_, AppState>) -> Answer<offload::queue::Held> {
    Ok(state.engine.held_back()?)
}

/// Whether storage of `kind` can be signed in without a client id of the person's own.
#[tauri::command]
pub fn client_id_configured(
    state: State<'_, AppState>,
    kind: offload::storage::BackendKind,
) -> Answer<bool> {
    Ok(state.engine.client_id_configured(kind)?)
}

#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> Answer<Settings> {
    Ok(state.engine.settings()?)
}

/// Saves the settings; the engine starts again in place if it must, and starting at login
/// follows at once.
#[tauri::command]
pub fn save_settings(app: AppHandle, state: State<'_, AppState>, settings: Settings) -> Answer {
    state.engine.save_settings(&settings)?;
    crate::apply_autostart(&app, settings.autostart)
        .map_err(|error| Problem::said(format!("cannot change starting at login: {error}")))
}

/// The event that says profiles, backends or the library changed (the window reloads).
pub const DATA_CHANGED: &str = "data-changed";

pub fn changed(app: &AppHandle) {
    let _ = app.emit(DATA_CHANGED, ());
}
