//! Times of day that change what uploads may do: a bandwidth timetable in rclone's `--bwlimit`
//! form (`"08:00,2M 23:00,off"`, days optional: `"Mon-08:00,2M Sat-00:00,off"`) and upload
//! windows (`"01:00-07:00"`, across midnight too: `"23:00-07:00"`). Every question takes the
//! local time it is about; [`local_now`] is the one place the clock is read for them.

use chrono::{Datelike, Duration, NaiveDateTime, NaiveTime, Timelike, Weekday};

const MINUTES_PER_DAY: u32 = 24 * 60;
const MINUTES_PER_WEEK: u32 = 7 * MINUTES_PER_DAY;

/// The local date and time, which timetables and windows are written in.
pub fn local_now() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

/// What is wrong with a timetable, a window or a rate, as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

/// Parses a rate in bytes per second: `0` or `off` (no limit), `500K`, `10M`, `1.5G` (powers of
/// 1024), optionally followed by `B`, `iB` or `/s`.
pub fn parse_rate(text: &str) -> Result<u64, ScheduleError> {
    let bad = || {
        ScheduleError(format!(
            "{text:?} is not a rate like off, 500K, 10M or 1G (bytes per second)"
        ))
    };
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    let trimmed = trimmed
        .trim_end_matches("/s")
        .trim_end_matches("iB")
        .trim_end_matches('B');
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    Ok((value * scale) as u64)
}

/// Rates by time of the week: each entry holds from its time until the next one's, and the last
/// one holds over the turn of the week into the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timetable {
    /// (minute of the week from Monday 00:00, bytes per second; 0: no limit), in order.
    entries: Vec<(u32, u64)>,
}

impl Timetable {
    /// Parses a plain rate (the same all week) or space-separated `[Day-]HH:MM,RATE` entries;
    /// entries without a day hold every day. Either every entry names a day or none does.
    pub fn parse(text: &str) -> Result<Timetable, ScheduleError> {
        let text = text.trim();
        if !text.contains(',') {
            return Ok(Timetable {
                entries: vec![(0, parse_rate(text)?)],
            });
        }
        let mut entries = Vec::new();
        let mut with_days = None;
        for entry in text.split_whitespace() {
            let (when, rate) = entry.split_once(',').ok_or_else(|| {
                ScheduleError(format!("{entry:?} is not a time and a rate like 08:00,2M"))
            })?;
            let rate = parse_rate(rate)?;
            let (day, time) = match when.split_once('-') {
                Some((day, time)) => (Some(parse_day(day)?), time),
                None => (None, when),
            };
            if *with_days.get_or_insert(day.is_some()) != day.is_some() {
                return Err(ScheduleError(
                    "either every entry of a timetable names a day or none does".into(),
                ));
            }
            let minute = minute_of_day(parse_time(time)?);
            match day {
                Some(day) => {
                    entries.push((day.num_days_from_monday() * MINUTES_PER_DAY + minute, rate))
                }
                None => entries.extend((0..7).map(|day| (day * MINUTES_PER_DAY + minute, rate))),
            }
        }
        entries.sort_unstable();
        if entries.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(ScheduleError("a timetable names one time twice".into()));
        }
        Ok(Timetable { entries })
    }

    /// Bytes per second at `at` (0: no limit).
    pub fn limit_at(&self, at: NaiveDateTime) -> u64 {
        let minute = minute_of_week(at);
        self.entries
            .iter()
            .rev()
            .find(|(start, _)| *start <= minute)
            .or(self.entries.last())
            .map_or(0, |(_, rate)| *rate)
    }

    /// When the limit next changes after `at`, if it ever does.
    pub fn next_change(&self, at: NaiveDateTime) -> Option<NaiveDateTime> {
        let now = self.limit_at(at);
        let minute = minute_of_week(at);
        // The entries after `at` this week, then all of them again next week.
        let mut ahead = self
            .entries
            .iter()
            .filter(|(start, _)| *start > minute)
            .map(|&(start, rate)| (start - minute, rate))
            .chain(
                self.entries
                    .iter()
                    .map(|&(start, rate)| (start + MINUTES_PER_WEEK - minute, rate)),
            );
        ahead
            .find(|(_, rate)| *rate != now)
            .map(|(minutes, _)| start_of_minute(at) + Duration::minutes(minutes.into()))
    }
}

/// The hours of the day when uploads may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    opens: NaiveTime,
    closes: NaiveTime,
}

impl Window {
    /// Parses `HH:MM-HH:MM`; a window closing before it opens runs over midnight.
    pub fn parse(text: &str) -> Result<Window, ScheduleError> {
        let bad = || ScheduleError(format!("{text:?} is not an upload window like 01:00-07:00"));
        let (opens, closes) = text.trim().split_once('-').ok_or_else(bad)?;
        let window = Window {
            opens: parse_time(opens).map_err(|_| bad())?,
            closes: parse_time(closes).map_err(|_| bad())?,
        };
        if window.opens == window.closes {
            return Err(ScheduleError(format!(
                "the upload window {text:?} opens and closes at the same time"
            )));
        }
        Ok(window)
    }

    pub fn is_open(&self, at: NaiveDateTime) -> bool {
        let time = at.time();
        if self.opens < self.closes {
            self.opens <= time && time < self.closes
        } else {
            time >= self.opens || time < self.closes
        }
    }

    /// When the window next opens, at or after `at` (`at` itself when it is open).
    pub fn next_opening(&self, at: NaiveDateTime) -> NaiveDateTime {
        if self.is_open(at) {
            return at;
        }
        let today = at.date().and_time(self.opens);
        if today > at {
            today
        } else {
            today + Duration::days(1)
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}",
            self.opens.format("%H:%M"),
            self.closes.format("%H:%M")
        )
    }
}

fn parse_time(text: &str) -> Result<NaiveTime, ScheduleError> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| ScheduleError(format!("{text:?} is not a time of day like 08:00")))
}

fn parse_day(text: &str) -> Result<Weekday, ScheduleError> {
    text.parse().map_err(|_| {
        ScheduleError(format!(
            "{text:?} is not a day of the week like Mon, Tue … Sun"
        ))
    })
}

fn minute_of_day(time: NaiveTime) -> u32 {
    time.hour() * 60 + time.minute()
}

fn minute_of_week(at: NaiveDateTime) -> u32 {
    at.weekday().num_days_from_monday() * MINUTES_PER_DAY + minute_of_day(at.time())
}

fn start_of_minute(at: NaiveDateTime) -> NaiveDateTime {
    at.date()
        .and_hms_opt(at.hour(), at.minute(), 0)
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 is a Monday.
    fn at(day: u32, time: &str) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, day)
            .unwrap()
            .and_time(NaiveTime::parse_from_str(time, "%H:%M").unwrap())
    }

    const M: u64 = 1024 * 1024;

    #[test]
    fn rates_read_as_rclone_writes_them() {
        assert_eq!(parse_rate("off"), Ok(0));
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("512K"), Ok(512 * 1024));
        assert_eq!(parse_rate("10M"), Ok(10 * M));
        assert_eq!(parse_rate("1.5MiB/s"), Ok(3 * M / 2));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10X").is_err());
    }

    #[test]
    fn a_daily_timetable_holds_each_rate_until_the_next_and_wraps_at_midnight() {
        let table = Timetable::parse("08:00,2M 23:00,off").unwrap();
        assert_eq!(
            table.limit_at(at(7, "07:59")),
            0,
            "before 08:00: 23:00's off"
        );
        assert_eq!(table.limit_at(at(7, "08:00")), 2 * M);
        assert_eq!(table.limit_at(at(7, "22:59")), 2 * M);
        assert_eq!(table.limit_at(at(7, "23:00")), 0);
        assert_eq!(table.next_change(at(7, "12:30")), Some(at(7, "23:00")));
        assert_eq!(table.next_change(at(7, "23:30")), Some(at(8, "08:00")));
    }

    #[test]
    fn days_of_the_week_hold_until_the_next_day_named() {
        let table = Timetable::parse("Mon-08:00,10M Sat-00:00,off Sun-20:00,1M").unwrap();
        assert_eq!(
            table.limit_at(at(7, "07:00")),
            M,
            "Monday early: Sunday's 1M"
        );
        assert_eq!(table.limit_at(at(9, "12:00")), 10 * M, "Wednesday");
        assert_eq!(table.limit_at(at(12, "12:00")), 0, "Saturday");
        assert_eq!(table.limit_at(at(13, "21:00")), M, "Sunday night");
        assert_eq!(table.next_change(at(9, "12:00")), Some(at(12, "00:00")));
    }

    #[test]
    fn a_plain_rate_is_the_same_all_week() {
        let table = Timetable::parse("4M").unwrap();
        assert_eq!(table.limit_at(at(10, "03:00")), 4 * M);
        assert_eq!(table.next_change(at(10, "03:00")), None);
    }

    #[test]
    fn broken_timetables_say_what_is_wrong() {
        for (text, says) in [
            ("08:00,2M Mon-09:00,1M", "every entry"),
            ("25:00,2M", "time of day"),
            ("08:00,fast", "rate"),
            ("Someday-08:00,1M", "day of the week"),
            ("08:00,1M 08:00,2M", "twice"),
        ] {
            let error = Timetable::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_window_opens_and_closes_and_may_span_midnight() {
        let night = Window::parse("01:00-07:00").unwrap();
        assert!(!night.is_open(at(7, "00:59")));
        assert!(night.is_open(at(7, "01:00")));
        assert!(!night.is_open(at(7, "07:00")));
        assert_eq!(night.next_opening(at(7, "07:00")), at(8, "01:00"));
        assert_eq!(night.next_opening(at(7, "00:30")), at(7, "01:00"));
        assert_eq!(night.next_opening(at(7, "02:00")), at(7, "02:00"));
        let late = Window::parse("23:00-07:00").unwrap();
        assert!(late.is_open(at(7, "23:30")) && late.is_open(at(8, "06:59")));
        assert!(!late.is_open(at(8, "12:00")));
        assert_eq!(late.to_string(), "23:00-07:00");
        assert!(Window::parse("07:00-07:00").is_err());
        assert!(Window::parse("night").is_err());
    }
}
