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
