//! How the command line says what the engine says to do: the command to run, with its flag.

use offload::storage::{ConnectionReport, Field};
use offload::{Action, Engine, Setting};

/// The flag of `backend add`/`backend edit` that sets `field`.
pub fn flag(field: Field) -> &'static str {
    match field {
        Field::Path => "--path DIR",
        Field::Endpoint => "--endpoint URL",
        Field::Region => "--region REGION",
        Field::Bucket => "--bucket NAME",
        Field::AccessKeyId => "--access-key-id ID",
        Field::SecretAccessKey => "--secret-access-key-stdin",
        Field::Prefix => "--prefix FOLDER",
        Field::PublicUrl => "--public-url URL",
        Field::FolderId => "--folder-id ID",
        Field::ClientId => "--client-id ID",
        Field::ClientSecret => "--client-secret-stdin",
        Field::ChunkSize => "--chunk-size SIZE",
    }
}

/// The command that changes `setting`.
fn setting_command(setting: Setting) -> &'static str {
    match setting {
        Setting::StreamPort => "`offload stream --port N` (setting stream.port)",
        Setting::StreamBind => "`offload stream --bind ADDRESS` (setting stream.bind)",
        Setting::UrlLifetime => "`offload stream --url-lifetime 4h`",
        Setting::Workers => "`offload settings --workers N`",
        Setting::QuietPeriod => "`offload settings --quiet-period 5s`",
        Setting::BandwidthLimit => "`offload limit RATE`",
        Setting::BandwidthSchedule => "`offload limit \"08:00,2M 23:00,off\"`",
        Setting::PlayerYieldLimit => "`offload settings --player-yield-limit 2M`",
        Setting::LibraryScan => "`offload settings --library-scan 5m` (or 0 for never)",
    }
}

/// What to do about `action`, as the command line says it.
pub fn advice(engine: &Engine, action: &Action) -> String {
    // The backend's name and its profile's, for the command that names them.
    let named = |id: i64| {
        let backend = engine.backend_view(id).ok()?;
        let profile = engine.profile(backend.profile_id).ok()?;
        Some((backend.name, profile.profile.name))
    };
    match *action {
        Action::SignIn { backend_id } => match named(backend_id) {
            Some((name, profile)) => {
                format!("run `offload backend connect {name} --profile {profile}`")
            }
            None => "sign in again with `offload backend connect`".into(),
        },
        Action::ChangeBackend {
            backend_id: Some(backend_id),
            field,
        } => match named(backend_id) {
            Some((name, profile)) => format!(
                "correct it with `offload backend edit {name} --profile {profile} {}`",
                flag(field)
            ),
            None => format!("correct {}", flag(field)),
        },
        Action::ChangeBackend {
            backend_id: None,
            field,
        } => format!("correct {}", flag(field)),
        Action::ChangeSetting { setting } => {
            format!("choose another with {}", setting_command(setting))
        }
        Action::SetClock => "set this computer's clock (turn on automatic date and time)".into(),
        Action::FreeSpace => "free some space where the files go".into(),
    }
}

/// A connection test's findings, each failed check with what to do about it. `backend_id` is
/// the backend the report is about, once it is saved.
pub fn print_report(engine: &Engine, report: &ConnectionReport, backend_id: Option<i64>) {
    for check in &report.checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        println!("{mark} {}: {}", check.name, check.detail);
        if let Some(fix) = check.fix.filter(|_| !check.ok) {
            println!(
                "       → {}",
                advice(engine, &Action::for_backend(backend_id, fix))
            );
        }
    }
}
