//! Offload's settings as one typed value with its limits: read with the defaults filled in,
//! checked against the same rules whoever changes them (`offload stream --port 80` and the
//! window's Settings get the same answer), and saved in one transaction.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::{Error, Result, Setting};
use crate::schedule::Timetable;

/// The settings, as stored in `settings` under these keys.
const WORKERS: &str = "queue.workers";
const QUIET_PERIOD: &str = "watch.quiet_period_secs";
/// Read live by running uploads (see `queue::Bandwidth`).
pub const BANDWIDTH_LIMIT: &str = "queue.bandwidth_limit";
/// Read live too: when set, it decides the limit instead of `BANDWIDTH_LIMIT`.
pub const BANDWIDTH_SCHEDULE: &str = "queue.bandwidth_schedule";
const STREAM_PORT: &str = "stream.port";
const STREAM_BIND: &str = "stream.bind";
const URL_LIFETIME: &str = "stream.url_lifetime_secs";
const LIBRARY_SCAN: &str = "library.scan_interval_secs";
const YIELD_TO_PLAYERS: &str = "queue.yield_to_players";
const PLAYER_YIELD_LIMIT: &str = "queue.player_yield_limit";
const NOTIFICATIONS: &str = "app.notifications";
const AUTOSTART: &str = "app.autostart";

/// The most uploads at once a person can ask for.
pub const MAX_WORKERS: usize = 64;
/// The longest quiet period: a day.
pub const MAX_QUIET_PERIOD_SECS: u64 = 86_400;
/// Ports below this need administrator rights.
pub const MIN_STREAM_PORT: u16 = 1024;
/// Presigned URLs live at most 7 days (SigV4's limit).
pub const MAX_URL_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// How often the daemon may look through storage at most and at least, besides never (0).
pub const MIN_LIBRARY_SCAN_SECS: u64 = 60;
pub const MAX_LIBRARY_SCAN_SECS: u64 = 86_400;

/// The port stream URLs use unless the user picks another. Fixed, so URLs saved in a player or
/// a playlist keep working after a restart.
pub const DEFAULT_STREAM_PORT: u16 = 39240;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Settings {
    /// Files uploaded at once.
    pub workers: usize,
    /// How long a file must hold still before it counts as finished, in seconds.
    pub quiet_period_secs: u64,
    /// Bytes per second for all uploads together; 0: no limit.
    pub bandwidth_limit: u64,
    /// The limit by time of day, in rclone's `--bwlimit` timetable form (`08:00,2M 23:00,off`,
    /// days optional: `Mon-08:00,2M`); empty: `bandwidth_limit` all day.
    pub bandwidth_schedule: String,
    /// The port of the stream server, part of every stream URL.
    pub stream_port: u16,
    /// The address the stream server listens on: loopback unless a person chose another.
    #[ts(type = "string")]
    pub stream_bind: IpAddr,
    /// How long a presigned URL minted for one playback lives, in seconds: long enough for a film
    /// watched with pauses, short enough that one copied from a player's history is dead the same
    /// day.
    pub url_lifetime_secs: u64,
    /// How often the daemon looks through every backend for what changed there (files another
    /// computer or tool added, deleted or replaced), in seconds; 0: never.
    pub library_scan_secs: u64,
    /// While a player streams from remote storage through the stream server (and for a minute
    /// after), uploads slow down to leave it the link.
    pub yield_to_players: bool,
    /// Bytes per second uploads keep to while they yield; 0: half of what they took before.
    pub player_yield_limit: u64,
    /// Desktop notifications for finished and failed uploads.
    pub notifications: bool,
    /// Start the desktop app when the person logs in.
    pub autostart: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            workers: 2,
            quiet_period_secs: 5,
            bandwidth_limit: 0,
            bandwidth_schedule: String::new(),
            stream_port: DEFAULT_STREAM_PORT,
            stream_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            url_lifetime_secs: 4 * 3600,
            library_scan_secs: 300,
            yield_to_players: true,
            player_yield_limit: 0,
            notifications: true,
            autostart: false,
        }
    }
}

impl Setting {
    /// The rule a value of this setting must follow, as a person reads it: the engine's answer
    /// to a value that breaks it, and the window's hint next to the field.
    pub fn rule(self) -> String {
        match self {
            Setting::Workers => format!("uploads at once must be a whole number from 1 to {MAX_WORKERS}"),
            Setting::QuietPeriod => format!("the quiet period must be from 0 to {MAX_QUIET_PERIOD_SECS} seconds"),
            Setting::BandwidthLimit => "the bandwidth limit must be 0 (none) or more bytes per second".into(),
            Setting::BandwidthSchedule => {
                "a bandwidth timetable is times and rates like 08:00,2M 23:00,off (days optional, as in Mon-08:00,2M), or empty".into()
            }
            Setting::PlayerYieldLimit => {
                "the limit while a player streams must be 0 (half the upload rate) or more bytes per second".into()
            }
            Setting::StreamPort => format!(
                "the stream port must be from {MIN_STREAM_PORT} to 65535 (lower ports need administrator rights)"
            ),
            Setting::StreamBind => "the stream server's address must be an IP address of this computer".into(),
            Setting::UrlLifetime => "a stream URL must live from 1 second to 7 days".into(),
            Setting::LibraryScan => {
                "storage is looked through for changes every 1 minute to 1 day, or never (0)".into()
            }
        }
    }

    /// Every setting, in the order the window shows them.
    pub const ALL: [Setting; 9] = [
        Setting::Workers,
        Setting::QuietPeriod,
        Setting::BandwidthLimit,
        Setting::BandwidthSchedule,
        Setting::PlayerYieldLimit,
        Setting::StreamPort,
        Setting::StreamBind,
        Setting::UrlLifetime,
        Setting::LibraryScan,
    ];
}

fn broken(setting: Setting) -> Error {
    Error::Setting {
        setting,
        message: setting.rule(),
    }
}

impl Settings {
    /// The stored settings, the defaults where nothing is stored. A stored value that does not
    /// parse (written by hand) is an error that names the setting.
    pub fn load(db: &Db) -> Result<Settings> {
        let defaults = Settings::default();
        fn read<T: std::str::FromStr>(
            db: &Db,
            key: &str,
            setting: Setting,
            default: T,
        ) -> Result<T> {
            match db.setting(key)? {
                Some(text) => text.trim().parse().map_err(|_| broken(setting)),
                None => Ok(default),
            }
        }
        let flag = |key: &str, default: bool| -> Result<bool> {
            Ok(db.setting(key)?.map_or(default, |text| text != "0"))
        };
        Ok(Settings {
            workers: read(db, WORKERS, Setting::Workers, defaults.workers)?,
            quiet_period_secs: read(
                db,
                QUIET_PERIOD,
                Setting::QuietPeriod,
                defaults.quiet_period_secs,
            )?,
            bandwidth_limit: read(
                db,
                BANDWIDTH_LIMIT,
                Setting::BandwidthLimit,
                defaults.bandwidth_limit,
            )?,
            bandwidth_schedule: db.setting(BANDWIDTH_SCHEDULE)?.unwrap_or_default(),
            stream_port: read(db, STREAM_PORT, Setting::StreamPort, defaults.stream_port)?,
            stream_bind: read(db, STREAM_BIND, Setting::StreamBind, defaults.stream_bind)?,
            url_lifetime_secs: read(
                db,
                URL_LIFETIME,
                Setting::UrlLifetime,
                defaults.url_lifetime_secs,
            )?,
            library_scan_secs: read(
                db,
                LIBRARY_SCAN,
                Setting::LibraryScan,
                defaults.library_scan_secs,
            )?,
            yield_to_players: flag(YIELD_TO_PLAYERS, defaults.yield_to_players)?,
            player_yield_limit: read(
                db,
                PLAYER_YIELD_LIMIT,
                Setting::PlayerYieldLimit,
                defaults.player_yield_limit,
            )?,
            notifications: flag(NOTIFICATIONS, defaults.notifications)?,
            autostart: flag(AUTOSTART, defaults.autostart)?,
        })
    }

    /// Whether every value keeps to its rule; the first that does not, as the error.
    pub fn check(&self) -> Result<()> {
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(broken(Setting::Workers));
        }
        if self.quiet_period_secs > MAX_QUIET_PERIOD_SECS {
            return Err(broken(Setting::QuietPeriod));
        }
        if !self.bandwidth_schedule.trim().is_empty()
            && Timetable::parse(&self.bandwidth_schedule).is_err()
        {
            return Err(broken(Setting::BandwidthSchedule));
        }
        if self.stream_port < MIN_STREAM_PORT {
            return Err(broken(Setting::StreamPort));
        }
        if !(1..=MAX_URL_LIFETIME_SECS).contains(&self.url_lifetime_secs) {
            return Err(broken(Setting::UrlLifetime));
        }
        if self.library_scan_secs != 0
            && !(MIN_LIBRARY_SCAN_SECS..=MAX_LIBRARY_SCAN_SECS).contains(&self.library_scan_secs)
        {
            return Err(broken(Setting::LibraryScan));
        }
        Ok(())
    }

    /// Checks, then stores every setting in one transaction.
    pub fn save(&self, db: &Db) -> Result<()> {
        self.check()?;
        let values = [
            (WORKERS, self.workers.to_string()),
            (QUIET_PERIOD, self.quiet_period_secs.to_string()),
            (BANDWIDTH_LIMIT, self.bandwidth_limit.to_string()),
            (
                BANDWIDTH_SCHEDULE,
                self.bandwidth_schedule.trim().to_owned(),
            ),
            (STREAM_PORT, self.stream_port.to_string()),
            (STREAM_BIND, self.stream_bind.to_string()),
            (URL_LIFETIME, self.url_lifetime_secs.to_string()),
            (LIBRARY_SCAN, self.library_scan_secs.to_string()),
            (
                YIELD_TO_PLAYERS,
                u8::from(self.yield_to_players).to_string(),
            ),
            (PLAYER_YIELD_LIMIT, self.player_yield_limit.to_string()),
            (NOTIFICATIONS, u8::from(self.notifications).to_string()),
            (AUTOSTART, u8::from(self.autostart).to_string()),
        ];
        db.transaction(|tx| {
            for (key, value) in &values {
                tx.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [key, &value.as_str()],
                )?;
            }
            Ok::<_, Error>(())
        })
    }

    pub fn quiet_period(&self) -> Duration {
        Duration::from_secs(self.quiet_period_secs)
    }

    pub fn url_lifetime(&self) -> Duration {
        Duration::from_secs(self.url_lifetime_secs)
    }

    /// What uploads keep to while a player streams: `None` when they do not yield, `Some(0)` for
    /// half of what they took before.
    pub fn player_yield(&self) -> Option<u64> {
        self.yield_to_players.then_some(self.player_yield_limit)
    }

    /// How often the daemon looks through storage, if at all.
    pub fn library_scan(&self) -> Option<Duration> {
        (self.library_scan_secs != 0).then(|| Duration::from_secs(self.library_scan_secs))
    }
}

/// The bandwidth limit now (bytes per second; 0: none), as running uploads read it every
/// second: the timetable's rate at this local time where one is set, else the limit.
pub fn bandwidth_limit(db: &Db) -> Result<u64> {
    if let Some(schedule) = db
        .setting(BANDWIDTH_SCHEDULE)?
        .filter(|text| !text.trim().is_empty())
    {
        let table = Timetable::parse(&schedule).map_err(|_| broken(Setting::BandwidthSchedule))?;
        return Ok(table.limit_at(crate::schedule::local_now()));
    }
    match db.setting(BANDWIDTH_LIMIT)? {
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| broken(Setting::BandwidthLimit)),
        None => Ok(Settings::default().bandwidth_limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("offload.db")).unwrap();
        (dir, db)
    }

    #[test]
    fn defaults_until_saved_then_what_was_saved() {
        let (_dir, db) = db();
        assert_eq!(Settings::load(&db).unwrap(), Settings::default());
        let changed = Settings {
            workers: 4,
            stream_port: 40000,
            notifications: false,
            autostart: true,
            ..Settings::default()
        };
        changed.save(&db).unwrap();
        assert_eq!(Settings::load(&db).unwrap(), changed);
    }

    #[test]
    fn every_rule_is_kept_and_a_broken_one_saves_nothing() {
        let (_dir, db) = db();
        let good = Settings::default();
        let cases = [
            (
                Settings {
                    workers: 0,
                    ..good.clone()
                },
                Setting::Workers,
            ),
            (
                Settings {
                    workers: MAX_WORKERS + 1,
                    ..good.clone()
                },
                Setting::Workers,
            ),
            (
                Settings {
                    quiet_period_secs: MAX_QUIET_PERIOD_SECS + 1,
                    ..good.clone()
                },
                Setting::QuietPeriod,
            ),
            (
                Settings {
                    stream_port: 80,
                    ..good.clone()
                },
                Setting::StreamPort,
            ),
            (
                Settings {
                    url_lifetime_secs: 0,
                    ..good.clone()
                },
                Setting::UrlLifetime,
            ),
            (
                Settings {
                    url_lifetime_secs: MAX_URL_LIFETIME_SECS + 1,
                    ..good.clone()
                },
                Setting::UrlLifetime,
            ),
        ];
        for (settings, broken) in cases {
            match settings.save(&db) {
                Err(Error::Setting { setting, message }) => {
                    assert_eq!(setting, broken);
                    assert_eq!(message, broken.rule());
                }
                other => panic!("{settings:?} was not refused: {other:?}"),
            }
        }
        assert_eq!(Settings::load(&db).unwrap(), good, "nothing was stored");
        assert!(Settings {
            workers: MAX_WORKERS,
            stream_port: 1024,
            ..good
        }
        .check()
        .is_ok());
    }

    #[test]
    fn a_value_written_by_hand_that_does_not_parse_names_its_setting() {
        let (_dir, db) = db();
        db.set_setting(STREAM_PORT, "eighty").unwrap();
        assert!(matches!(
            Settings::load(&db),
            Err(Error::Setting {
                setting: Setting::StreamPort,
                ..
            })
        ));
    }
}
