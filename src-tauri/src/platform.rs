//! What differs between operating systems in the desktop shell (the engine's own differences are
//! in `offload::platform`).

use tauri::AppHandle;

/// Registers `offload://` with the desktop where the app must do it itself: Linux (a desktop
/// entry with `%u`, through `xdg-mime`) and Windows (the registry). On macOS the bundle's
/// `Info.plist` declares the scheme, and the plugin has nothing to register.
#[cfg(any(target_os = "linux", windows))]
pub fn register_scheme(app: &AppHandle) {
    use tauri_plugin_deep_link::DeepLinkExt as _;
    let deep_link = app.deep_link();
    if !deep_link.is_registered("offload").unwrap_or(false) {
        if let Err(error) = deep_link.register_all() {
            tracing::warn!(%error, "cannot register offload:// links; sign-ins through the browser still work");
        }
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
pub fn register_scheme(_app: &AppHandle) {}

/// Linux: GTK opens the display with an OpenGL probe that maps Mesa and its LLVM (about 50 MiB
/// of the tray's memory, kept for the app's whole life, window closed or not). Offload's window
/// is forms and lists that draw as fast without the GPU, so GTK's GL is switched off; WebKit
/// then draws the window without hardware acceleration. Runs first in `main`, while the process
/// has one thread (before GTK or any thread starts); a value the user set wins.
#[cfg(target_os = "linux")]
pub fn before_display() {
    if std::env::var_os("GDK_GL").is_none() {
        std::env::set_var("GDK_GL", "disable");
    }
}

#[cfg(not(target_os = "linux"))]
pub fn before_display() {}
