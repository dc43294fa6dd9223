fn main() {
    // The Tauri config lives at the workspace root beside the engine (see README, "Layout").
    if let Err(error) =
        tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
    {
        panic!("tauri build step failed: {error:#}");
    }
}
