//! The one window. Closing it destroys its webview (the WebKit processes go with it), so an idle
//! tray costs what a native tray app costs; opening it builds a fresh one from the config.

use tauri::{AppHandle, Manager, WebviewWindowBuilder};

const LABEL: &str = "main";

/// Shows the window, building it if it was closed.
pub fn show(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(LABEL) {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
        return;
    }
    let Some(config) = app
        .config()
        .app
        .windows
        .iter()
        .find(|window| window.label == LABEL)
    else {
        tracing::error!("tauri.conf.json has no window labelled {LABEL:?}");
        return;
    };
    match WebviewWindowBuilder::from_config(app, config).and_then(|builder| builder.build()) {
        Ok(window) => {
            let _ = window.show();
            let _ = window.set_focus();
        }
        Err(error) => tracing::error!(%error, "cannot open the window"),
    }
}
