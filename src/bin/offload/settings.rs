//! `offload settings`, `offload stream` and `offload key`: Offload's settings (the same ones the
//! desktop app's Settings shows, checked by the same rules) and its master key.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use offload::engine::{format_duration, parse_duration};
use offload::settings::Settings;
use offload::stream::StreamSettings;
use offload::Engine;

use crate::{human_bytes, print_json, CliResult};

#[derive(Args)]
pub struct StreamArgs {
    /// The port stream URLs use. Changing it changes every URL.
    #[arg(long)]
    port: Option<u16>,
    /// The address to listen on. Anything but 127.0.0.1 or ::1 makes the server reachable from
    /// other machines (URLs still need their tokens).
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// How long a presigned URL minted for one playback stays valid, e.g. 30m or 4h.
    #[arg(long, value_parser = parse_duration)]
    url_lifetime: Option<Duration>,
}

#[derive(Args)]
pub struct SettingsArgs {
    /// Files uploaded at once.
    #[arg(long)]
    workers: Option<usize>,
    /// How long a file must hold still before it counts as finished, e.g. 5s.
    #[arg(long, value_parser = parse_duration)]
    quiet_period: Option<Duration>,
    /// Bandwidth for all uploads together, e.g. 10M (bytes per second); 0: no limit.
    #[arg(long, value_parser = crate::parse_rate)]
    bandwidth_limit: Option<u64>,
    /// Bandwidth by time of day, in rclone's timetable form: "08:00,2M 23:00,off" (days
    /// optional: "Mon-08:00,2M Sat-00:00,off"); it replaces the limit while set. "" clears it.
    #[arg(long)]
    bandwidth_schedule: Option<String>,
    /// The stream server's port.
    #[arg(long)]
    stream_port: Option<u16>,
    /// How often a running Offload looks through storage for what changed there, e.g. 5m; 0:
    /// never (`offload library scan` still does it on demand).
    #[arg(long, value_parser = parse_duration)]
    library_scan: Option<Duration>,
    /// Slow uploads down while a player streams from storage through the stream server: on or off.
    #[arg(long, value_parser = parse_switch)]
    yield_to_players: Option<bool>,
    /// What uploads keep to while they yield, e.g. 2M; 0: half of what they took before.
    #[arg(long, value_parser = crate::parse_rate)]
    player_yield_limit: Option<u64>,
    /// Desktop notifications for finished and failed uploads: on or off.
    #[arg(long, value_parser = parse_switch)]
    notifications: Option<bool>,
    /// Start the desktop app at login: on or off.
    #[arg(long, value_parser = parse_switch)]
    autostart: Option<bool>,
}

fn parse_switch(text: &str) -> Result<bool, String> {
    match text {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!("{text:?} is not on or off")),
    }
}

pub fn stream(engine: &Engine, args: StreamArgs, json: bool) -> CliResult {
    let changed = args.port.is_some() || args.bind.is_some() || args.url_lifetime.is_some();
    let settings = if changed {
        engine.change_settings(|settings| {
            settings.stream_port = args.port.unwrap_or(settings.stream_port);
            settings.stream_bind = args.bind.unwrap_or(settings.stream_bind);
            if let Some(lifetime) = args.url_lifetime {
                settings.url_lifetime_secs = lifetime.as_secs();
            }
        })?
    } else {
        engine.settings()?
    };
    let stream = StreamSettings::from_settings(&settings);
    if json {
        print_json(&serde_json::json!({ "settings": settings, "url": stream.base_url() }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "stream server: {} (listening on {}), presigned URLs live {}",
        stream.base_url(),
        stream.address(),
        format_duration(stream.url_lifetime)
    );
    if changed {
        println!("saved; a running Offload moves to it at once");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn settings(engine: &Engine, args: SettingsArgs, json: bool) -> CliResult {
    let changed = args.workers.is_some()
        || args.quiet_period.is_some()
        || args.bandwidth_limit.is_some()
        || args.bandwidth_schedule.is_some()
        || args.stream_port.is_some()
        || args.library_scan.is_some()
        || args.yield_to_players.is_some()
        || args.player_yield_limit.is_some()
        || args.notifications.is_some()
        || args.autostart.is_some();
    let settings = if changed {
        engine.change_settings(|settings| {
            let Settings {
                workers,
                quiet_period_secs,
                bandwidth_limit,
                bandwidth_schedule,
                stream_port,
                library_scan_secs,
                yield_to_players,
                player_yield_limit,
                notifications,
                autostart,
                ..
            } = settings;
            *workers = args.workers.unwrap_or(*workers);
            *quiet_period_secs = args
                .quiet_period
                .map_or(*quiet_period_secs, |d| d.as_secs());
            *bandwidth_limit = args.bandwidth_limit.unwrap_or(*bandwidth_limit);
            if let Some(schedule) = args.bandwidth_schedule {
                *bandwidth_schedule = schedule.trim().to_owned();
            }
            *stream_port = args.stream_port.unwrap_or(*stream_port);
            *library_scan_secs = args
                .library_scan
                .map_or(*library_scan_secs, |d| d.as_secs());
            *yield_to_players = args.yield_to_players.unwrap_or(*yield_to_players);
            *player_yield_limit = args.player_yield_limit.unwrap_or(*player_yield_limit);
            *notifications = args.notifications.unwrap_or(*notifications);
            *autostart = args.autostart.unwrap_or(*autostart);
        })?
    } else {
        engine.settings()?
    };
    if json {
        print_json(&settings)?;
        return Ok(ExitCode::SUCCESS);
    }
    let on = |flag: bool| if flag { "on" } else { "off" };
    println!("uploads at once      {}", settings.workers);
    println!(
        "quiet period         {}",
        format_duration(settings.quiet_period())
    );
    println!(
        "bandwidth limit      {}",
        match settings.bandwidth_limit {
            0 => "none".to_owned(),
            rate => format!("{}/s", human_bytes(rate)),
        }
    );
    if !settings.bandwidth_schedule.is_empty() {
        println!(
            "bandwidth timetable  {} (instead of the limit)",
            settings.bandwidth_schedule
        );
    }
    println!("stream port          {}", settings.stream_port);
    println!("stream address       {}", settings.stream_bind);
    println!(
        "stream URLs live     {}",
        format_duration(settings.url_lifetime())
    );
    println!(
        "library scan         {}",
        settings
            .library_scan()
            .map_or("never".to_owned(), |every| format!(
                "every {}",
                format_duration(every)
            ))
    );
    println!(
        "yield to players     {}",
        match (settings.yield_to_players, settings.player_yield_limit) {
            (false, _) => "off".to_owned(),
            (true, 0) => "on, to half the upload rate".to_owned(),
            (true, rate) => format!("on, to {}/s", human_bytes(rate)),
        }
    );
    println!("notifications        {}", on(settings.notifications));
    println!(
        "start at login       {} (the desktop app)",
        on(settings.autostart)
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Subcommand)]
pub enum ApiCommand {
    /// Print the API's key (made on first use) and where the API answers.
    Key {
        /// Make a new key; the old one stops working at once.
        #[arg(long)]
        rotate: bool,
    },
}

pub fn api(engine: &Engine, command: ApiCommand, json: bool) -> CliResult {
    let ApiCommand::Key { rotate } = command;
    let key = engine.api_key(rotate)?;
    let url = format!(
        "{}/api/",
        StreamSettings::from_settings(&engine.settings()?).base_url()
    );
    if json {
        print_json(&serde_json::json!({ "key": key.as_str(), "url": url }))?;
    } else {
        println!("{}", key.as_str());
        eprintln!(
            "Send it as `Authorization: Bearer KEY` to {url} (the document: {url}openapi.json){}",
            if rotate {
                "; the old key no longer works"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn key(engine: &Engine, json: bool) -> CliResult {
    let sealer = engine.vault().sealer()?;
    let key = sealer.key();
    let source = match key.source() {
        offload::secrets::KeySource::Keychain => "OS keychain",
        offload::secrets::KeySource::Environment => "OFFLOAD_MASTER_KEY",
    };
    if json {
        print_json(&serde_json::json!({ "source": source, "fingerprint": key.fingerprint() }))?;
    } else {
        println!("master key: {source}, fingerprint {}", key.fingerprint());
    }
    Ok(ExitCode::SUCCESS)
}
