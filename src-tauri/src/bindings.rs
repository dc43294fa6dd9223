//! The TypeScript the window is written against (`ui/src/lib/bindings.ts`), generated from the
//! Rust types it shares with the engine and this shell, and the settings' rules in the engine's
//! words: the window cannot drift from the engine. A test fails when the file is not what the
//! types say; `OFFLOAD_WRITE_BINDINGS=1 cargo test -p offload-desktop bindings` writes it.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use offload::settings::{
        MAX_LIBRARY_SCAN_SECS, MAX_QUIET_PERIOD_SECS, MAX_URL_LIFETIME_SECS, MAX_WORKERS,
        MIN_LIBRARY_SCAN_SECS, MIN_STREAM_PORT,
    };
    use offload::Setting;
    use ts_rs::{Config, TS};

    const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/lib/bindings.ts");

    fn render() -> String {
        let cfg = Config::new().with_large_int("number");
        let mut out = String::from(
            "// Generated from the Rust types the window shares with the engine and the shell\n\
             // (src-tauri/src/bindings.rs). Do not edit: run\n\
             // `OFFLOAD_WRITE_BINDINGS=1 cargo test -p offload-desktop bindings` after changing them.\n\n",
        );
        macro_rules! declare {
            ($($type:ty),* $(,)?) => {
                $(
                    out.push_str("export ");
                    out.push_str(&<$type as TS>::decl(&cfg));
                    out.push_str("\n\n");
                )*
            };
        }
        declare!(
            offload::Action,
            offload::Setting,
            offload::settings::Settings,
            offload::storage::Field,
            offload::storage::Fix,
            offload::storage::BackendKind,
            offload::storage::Check,
            offload::storage::ConnectionReport,
            offload::storage::s3::Provider,
            offload::storage::s3::Preset,
            offload::backends::BackendForm,
            offload::backends::Readiness,
            offload::engine::BackendView,
            offload::profiles::AfterUpload,
            offload::profiles::Profile,
            offload::profiles::Switch,
            offload::profiles::WatchFolder,
            offload::engine::ProfileView,
            offload::probe::Container,
            offload::probe::Video,
            offload::probe::Track,
            offload::probe::MediaInfo,
            offload::library::LibraryItem,
            offload::library::LibraryEntry,
            offload::engine::LibraryRow,
            offload::library::ScanReport,
            offload::library::ScanProgress,
            offload::queue::JobState,
            offload::queue::Job,
            offload::queue::Progress,
            offload::queue::Event,
            offload::queue::Held,
            crate::commands::Problem,
            crate::commands::ScanView,
            crate::commands::Overview,
            offload::engine::NewBackend,
            crate::links::AccountConnected,
            crate::links::AccountFailed,
        );
        let rules: BTreeMap<String, String> = Setting::ALL
            .into_iter()
            .map(|setting| {
                let name = serde_json::to_value(setting)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (name, setting.rule())
            })
            .collect();
        out.push_str("/** Each setting's rule, in the words the engine refuses a value with. */\n");
        out.push_str(&format!(
            "export const SETTING_RULES: Record<Setting, string> = {};\n\n",
            serde_json::to_string_pretty(&rules).unwrap_or_default()
        ));
        out.push_str("/** The limits the engine checks the settings against. */\n");
        out.push_str(&format!(
            "export const SETTING_LIMITS = {{\n  max_workers: {MAX_WORKERS},\n  max_quiet_period_secs: {MAX_QUIET_PERIOD_SECS},\n  min_stream_port: {MIN_STREAM_PORT},\n  max_url_lifetime_secs: {MAX_URL_LIFETIME_SECS},\n  min_library_scan_secs: {MIN_LIBRARY_SCAN_SECS},\n  max_library_scan_secs: {MAX_LIBRARY_SCAN_SECS},\n}} as const;\n"
        ));
        out
    }

    #[test]
    fn bindings_are_what_the_types_say() {
        let wanted = render();
        if std::env::var_os("OFFLOAD_WRITE_BINDINGS").is_some() {
            std::fs::write(PATH, &wanted).expect("write ui/src/lib/bindings.ts");
        }
        let found = std::fs::read_to_string(PATH).unwrap_or_default();
        assert!(
            found == wanted,
            "ui/src/lib/bindings.ts is not what the Rust types say; run \
             `OFFLOAD_WRITE_BINDINGS=1 cargo test -p offload-desktop bindings` and commit it"
        );
    }
}
