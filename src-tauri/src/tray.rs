//! The tray: an icon that shows what uploads are doing, a tooltip and title with the live
//! summary, and a menu with the running uploads. Redrawn at most once a second, and only when
//! something a person would see changed; the queue's events are forwarded to the window as they
//! come.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offload::queue::{self, Event};
use offload::summary::{Activity, TransferSummary};
use offload::{profiles, Engine};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Emitter, Manager, Wry};
use tokio::sync::broadcast::error::RecvError;

use crate::notify::Announcements;
use crate::AppState;

const TRAY_ID: &str = "offload";
const REFRESH: Duration = Duration::from_secs(1);
/// Running uploads listed in the menu; the summary line counts the rest.
const MENU_JOBS: usize = 5;

/// What the tray shows; redrawn only when it differs from what is shown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Shown {
    line: String,
    activity: Option<Activity>,
    running: Vec<(String, u8)>,
    playlists: Vec<(i64, String)>,
}

/// The icon for each state: the app's icon with a coloured dot in its corner.
struct Icons {
    base: Image<'static>,
}

impl Icons {
    fn for_activity(&self, activity: Activity) -> Image<'static> {
        let colour = match activity {
            Activity::Idle => return self.base.clone(),
            Activity::Uploading => [0x25, 0x8c, 0xf4],
            Activity::Paused => [0xf2, 0xa9, 0x00],
            Activity::Error => [0xe0, 0x2d, 0x2d],
            Activity::SignInRequired => [0x9b, 0x51, 0xe0],
        };
        badge(&self.base, colour)
    }
}

/// Paints a filled circle with a white ring in the lower right quarter of `base`.
fn badge(base: &Image<'_>, colour: [u8; 3]) -> Image<'static> {
    let (width, height) = (base.width(), base.height());
    let mut rgba = base.rgba().to_vec();
    let radius = width.min(height) as f32 * 0.26;
    let centre = (width as f32 - radius - 0.5, height as f32 - radius - 0.5);
    for y in 0..height {
        for x in 0..width {
            let distance = ((x as f32 - centre.0).powi(2) + (y as f32 - centre.1).powi(2)).sqrt();
            let pixel = ((y * width + x) * 4) as usize;
            let paint = if distance <= radius - radius * 0.2 {
                colour
            } else if distance <= radius {
                [0xff, 0xff, 0xff]
            } else {
                continue;
            };
            rgba[pixel..pixel + 4].copy_from_slice(&[paint[0], paint[1], paint[2], 0xff]);
        }
    }
    Image::new_owned(rgba, width, height)
}

fn build_menu(app: &AppHandle, shown: &Shown) -> tauri::Result<Menu<Wry>> {
    let item = |id: String, label: &str| MenuItem::with_id(app, id, label, true, None::<&str>);
    let menu = Menu::new(app)?;
    menu.append(&MenuItem::with_id(
        app,
        "status",
        &shown.line,
        false,
        None::<&str>,
    )?)?;
    for (name, percent) in &shown.running {
        menu.append(&MenuItem::new(
            app,
            format!("{name} — {percent}%"),
            false,
            None::<&str>,
        )?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&item("open".into(), "Open Offload")?)?;
    let one_profile = shown.playlists.len() == 1;
    for (id, name) in &shown.playlists {
        let label = if one_profile {
            "Open library playlist".to_owned()
        } else {
            format!("Open playlist of {name}")
        };
        menu.append(&item(format!("playlist-{id}"), &label)?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&item("pause".into(), "Pause all")?)?;
    menu.append(&item("resume".into(), "Resume all")?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&item("quit".into(), "Quit Offload")?)?;
    Ok(menu)
}

fn on_menu(app: &AppHandle, id: &str) {
    let state = app.state::<AppState>();
    let engine = &state.engine;
    match id {
        "open" => crate::window::show(app),
        "pause" => {
            if let Err(error) = engine.pause(None) {
                tracing::warn!(%error, "cannot pause");
            }
        }
        "resume" => {
            if let Err(error) = engine.resume(None) {
                tracing::warn!(%error, "cannot resume");
            }
        }
        "quit" => crate::quit(app),
        other => {
            let Some(profile_id) = other
                .strip_prefix("playlist-")
                .and_then(|id| id.parse().ok())
            else {
                return;
            };
            match engine.stream_links() {
                Ok(links) => {
                    if let Err(error) = offload::platform::open(&links.playlist_url(profile_id)) {
                        tracing::warn!(%error, "cannot open the playlist");
                    }
                }
                Err(error) => tracing::warn!(%error, "no playlist address"),
            }
        }
    }
}

/// Creates the tray and starts keeping it (and the window) up to date with the engine.
pub fn start(app: &AppHandle, engine: Arc<Engine>) -> tauri::Result<()> {
    let icons = Icons {
        base: app
            .default_window_icon()
            .cloned()
            .map(|icon| icon.to_owned())
            .unwrap_or_else(|| Image::new_owned(vec![0; 4 * 32 * 32], 32, 32)),
    };
    let first = Shown {
        line: "Idle".into(),
        ..Shown::default()
    };
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icons.base.clone())
        .tooltip("Offload")
        .menu(&build_menu(app, &first)?)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| on_menu(app, event.id.as_ref()))
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                crate::window::show(tray.app_handle());
            }
        })
        .build(app)?;

    let summary = Arc::new(Mutex::new(TransferSummary::default()));
    let announcements = Arc::new(Mutex::new(Announcements::default()));
    let names = Arc::new(Mutex::new(HashMap::<i64, String>::new()));
    let sign_in_checked = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut events = engine.subscribe();
    {
        let (app, engine, summary, announcements, names, sign_in_checked) = (
            app.clone(),
            engine.clone(),
            summary.clone(),
            announcements.clone(),
            names.clone(),
            sign_in_checked.clone(),
        );
        tauri::async_runtime::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                };
                if let Event::Queued { job_id, local_path } = &event {
                    if let Ok(mut names) = names.lock() {
                        names.insert(*job_id, file_name(local_path));
                    }
                }
                if let Ok(mut summary) = summary.lock() {
                    summary.observe(&event);
                }
                if let Event::State { .. } = event {
                    sign_in_checked.store(false, std::sync::atomic::Ordering::Relaxed);
                    if let Ok(mut announcements) = announcements.lock() {
                        announcements.observe(
                            &event,
                            |id| name_of(&engine, &names, id),
                            Instant::now(),
                        );
                    }
                }
                let _ = match &event {
                    Event::Progress(progress) => app.emit("upload-progress", progress),
                    Event::Notice { message } => app.emit("notice", message),
                    Event::Scan(progress) => app.emit("library-scan", progress),
                    Event::Described { items } => app.emit("library-described", items),
                    Event::State { .. } | Event::Queued { .. } | Event::Held(_) => {
                        app.emit("upload-state", &event)
                    }
                };
            }
        });
    }

    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut shown = first;
        // The profiles (for the playlist items) are listed again only when the database moved.
        let mut profiles_seen = None;
        let mut playlists = Vec::new();
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if !sign_in_checked.swap(true, std::sync::atomic::Ordering::Relaxed) {
                let waiting = queue::waiting_for_sign_in(engine.db()).unwrap_or(0);
                if let Ok(mut summary) = summary.lock() {
                    summary.set_waiting_for_sign_in(waiting);
                }
                if let Ok(mut announcements) = announcements.lock() {
                    announcements.set_waiting_for_sign_in(waiting);
                }
            }
            let due = announcements
                .lock()
                .map(|mut announcements| announcements.due(Instant::now()))
                .unwrap_or_default();
            for (title, body) in due {
                crate::notify::show(&app, &title, &body);
            }
            let revision = engine.db().revision().ok();
            if revision.is_none() || revision != profiles_seen {
                profiles_seen = revision;
                playlists = profiles::list(engine.db())
                    .map(|list| list.into_iter().map(|p| (p.id, p.name)).collect())
                    .unwrap_or_default();
            }
            let Ok((line, activity, running)) = summary
                .lock()
                .map(|summary| (summary.line(), summary.activity(), summary.running()))
            else {
                continue;
            };
            let next = Shown {
                line,
                activity: Some(activity),
                running: running
                    .into_iter()
                    .take(MENU_JOBS)
                    .map(|(id, percent)| (name_of(&engine, &names, id), percent))
                    .collect(),
                playlists: playlists.clone(),
            };
            if next == shown {
                continue;
            }
            if let Some(tray) = app.tray_by_id(TRAY_ID) {
                let _ = tray.set_tooltip(Some(format!("Offload: {}", next.line)));
                let _ = tray.set_title(Some(&next.line));
                if next.activity != shown.activity {
                    let _ = tray.set_icon(Some(icons.for_activity(activity)));
                }
                if let Ok(menu) = build_menu(&app, &next) {
                    let _ = tray.set_menu(Some(menu));
                }
            }
            tracing::debug!(summary = %next.line, "tray redrawn");
            shown = next;
        }
    });
    Ok(())
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A job's file name, from the queued event or, for jobs queued before the app started, the
/// database.
fn name_of(engine: &Engine, names: &Mutex<HashMap<i64, String>>, id: i64) -> String {
    if let Some(name) = names.lock().ok().and_then(|names| names.get(&id).cloned()) {
        return name;
    }
    let name = engine
        .job(id)
        .map(|job| file_name(&job.local_path))
        .unwrap_or_else(|_| format!("upload {id}"));
    if let Ok(mut names) = names.lock() {
        names.insert(id, name.clone());
    }
    name
}
