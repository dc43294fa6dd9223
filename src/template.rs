//! Remote path templates and the names downloads carry: `{relative_path}` by default, and the
//! series, season and episode read from names like `Show.Name.S01E02.1080p.mkv` or `Show 1x02.mkv`.

use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Local};
use regex::Regex;

use crate::storage::{PathError, RemotePath};

/// The template a new profile gets: the file's path relative to the watched folder.
pub const DEFAULT_TEMPLATE: &str = "{relative_path}";

const TOKENS: &[&str] = &[
    "profile",
    "relative_path",
    "filename",
    "stem",
    "ext",
    "yyyy",
    "mm",
    "dd",
    "series",
    "season",
    "episode",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "the template {template:?} uses {{{token}}}, which is not a token; tokens are {}",
        token_list()
    )]
    UnknownToken { template: String, token: String },
    #[error("the template {0:?} has an unclosed \"{{\"")]
    Unclosed(String),
    #[error("the template {template:?} gives {file:?} the remote path {rendered:?}, which is not allowed: {reason}")]
    BadPath {
        template: String,
        file: String,
        rendered: String,
        reason: PathError,
    },
}

fn token_list() -> String {
    TOKENS
        .iter()
        .map(|token| format!("{{{token}}}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A series episode recognised in a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeName {
    pub series: String,
    pub season: u32,
    pub episode: u32,
}

static SXXEYY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?P<series>.+?)[ ._\-\[\(]+s(?P<season>\d{1,3})[ ._\-]?e(?P<episode>\d{1,4})(?:\b|[^0-9])")
        .unwrap_or_else(|error| unreachable!("static regex: {error}"))
});
static NXNN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?P<series>.+?)[ ._\-\[\(]+(?P<season>\d{1,2})x(?P<episode>\d{2,3})(?:\b|[^0-9])",
    )
    .unwrap_or_else(|error| unreachable!("static regex: {error}"))
});

/// Reads `Show.Name.S01E02…` and `Show Name 1x02…` file names; anything else is not an episode.
pub fn parse_episode(file_name: &str) -> Option<EpisodeName> {
    let stem = Path::new(file_name).file_stem()?.to_str()?;
    let captures = SXXEYY.captures(stem).or_else(|| NXNN.captures(stem))?;
    let series = tidy_title(&captures["series"]);
    if series.is_empty() {
        return None;
    }
    Some(EpisodeName {
        series,
        season: captures["season"].parse().ok()?,
        episode: captures["episode"].parse().ok()?,
    })
}

/// `Show.Name_2019` → `Show Name 2019`: dots and underscores are how downloads spell spaces.
pub fn tidy_title(raw: &str) -> String {
    raw.replace(['.', '_'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_matches(|c: char| c == '-' || c.is_whitespace())
        .to_owned()
}

/// What a template is rendered from.
#[derive(Debug, Clone)]
pub struct TemplateInput<'a> {
    pub profile: &'a str,
    /// The file's path relative to its watched folder (or just its name for a one-off upload).
    pub relative_path: &'a Path,
    /// The date used for `{yyyy}`, `{mm}`, `{dd}`: when the file was last modified.
    pub date: DateTime<Local>,
}

/// Checks a template before it is saved: its tokens, and that it gives a film and an episode
/// an allowed remote path.
pub fn validate(template: &str) -> Result<(), TemplateError> {
    for sample in ["Films/Film.2019.mkv", "Show.Name.S01E02.mkv"] {
        preview(template, "Profile", sample)?;
    }
    Ok(())
}

/// Where a file named `sample` would go under `template`, for a live preview while a person
/// edits the template.
pub fn preview(template: &str, profile: &str, sample: &str) -> Result<RemotePath, TemplateError> {
    render(
        template,
        &TemplateInput {
            profile,
            relative_path: Path::new(sample),
            date: Local::now(),
        },
    )
}

/// Renders `template` for one file into a remote path.
pub fn render(template: &str, input: &TemplateInput<'_>) -> Result<RemotePath, TemplateError> {
    let relative = input.relative_path.to_string_lossy().replace('\\', "/");
    let file_name = input
        .relative_path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = input
        .relative_path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = input
        .relative_path
        .extension()
        .map(|ext| ext.to_string_lossy().into_owned())
        .unwrap_or_default();
    let episode = parse_episode(&file_name);
    let rendered = render_tokens(template, |token| {
        Some(match token {
            "profile" => input.profile.to_owned(),
            "relative_path" => relative.clone(),
            "filename" => file_name.clone(),
            "stem" => stem.clone(),
            "ext" => ext.clone(),
            "yyyy" => format!("{:04}", input.date.year()),
            "mm" => format!("{:02}", input.date.month()),
            "dd" => format!("{:02}", input.date.day()),
            // A file that is not an episode goes where a film would: these collapse to nothing
            // and the empty folder segments they leave are dropped.
            "series" => episode
                .as_ref()
                .map(|e| e.series.clone())
                .unwrap_or_default(),
            "season" => episode
                .as_ref()
                .map(|e| format!("{:02}", e.season))
                .unwrap_or_default(),
            "episode" => episode
                .as_ref()
                .map(|e| format!("{:02}", e.episode))
                .unwrap_or_default(),
            _ => return None,
        })
    })?;
    // An empty token at the start ("{series}/…" for a film) must not make the path absolute.
    let rendered = if template.starts_with(['/', '\\']) {
        rendered
    } else {
        rendered.trim_start_matches(['/', '\\']).to_owned()
    };
    RemotePath::parse(&rendered).map_err(|reason| TemplateError::BadPath {
        template: template.to_owned(),
        file: relative.clone(),
        rendered,
        reason,
    })
}

fn render_tokens(
    template: &str,
    mut value: impl FnMut(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| TemplateError::Unclosed(template.to_owned()))?;
        let token = &after[..close];
        match value(token) {
            Some(text) if TOKENS.contains(&token) => out.push_str(&text),
            _ => {
                return Err(TemplateError::UnknownToken {
                    template: template.to_owned(),
                    token: token.to_owned(),
                })
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn input(relative: &str) -> TemplateInput<'_> {
        TemplateInput {
            profile: "Home",
            relative_path: Path::new(relative),
            date: Local.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap(),
        }
    }

    #[test]
    fn reads_episode_names() {
        let expect = |series: &str, season, episode| {
            Some(EpisodeName {
                series: series.into(),
                season,
                episode,
            })
        };
        assert_eq!(
            parse_episode("Show.Name.S01E02.1080p.WEB.mkv"),
            expect("Show Name", 1, 2)
        );
        assert_eq!(
            parse_episode("show_name_s10e120.mp4"),
            expect("show name", 10, 120)
        );
        assert_eq!(
            parse_episode("Show Name - 1x02 - Pilot.mkv"),
            expect("Show Name", 1, 2)
        );
        assert_eq!(
            parse_episode("The.Office.US.S03E04.mkv"),
            expect("The Office US", 3, 4)
        );
        assert_eq!(parse_episode("Movie.2019.1080p.mkv"), None);
        assert_eq!(parse_episode("1920x1080.mkv"), None);
        assert_eq!(parse_episode("S01E02.mkv"), None);
    }

    #[test]
    fn default_template_keeps_the_relative_path() {
        assert_eq!(
            render(DEFAULT_TEMPLATE, &input("Films/a.mkv"))
                .unwrap()
                .as_str(),
            "Films/a.mkv"
        );
    }

    #[test]
    fn renders_every_token() {
        let path = render(
            "{profile}/{yyyy}-{mm}-{dd}/{series}/S{season}E{episode}/{stem}.{ext}|{filename}",
            &input("x/Show.S01E02.mkv"),
        )
        .unwrap();
        assert_eq!(
            path.as_str(),
            "Home/2026-03-09/Show/S01E02/Show.S01E02.mkv|Show.S01E02.mkv"
        );
    }

    #[test]
    fn non_episodes_drop_empty_series_folders() {
        assert_eq!(
            render("TV/{series}/{filename}", &input("Film.mkv"))
                .unwrap()
                .as_str(),
            "TV/Film.mkv"
        );
        assert_eq!(
            render("{series}/{filename}", &input("Film.mkv"))
                .unwrap()
                .as_str(),
            "Film.mkv"
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(matches!(
            validate("{nope}/{filename}"),
            Err(TemplateError::UnknownToken { .. })
        ));
        assert!(matches!(
            validate("{filename"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            render("/{filename}", &input("a.mkv")),
            Err(TemplateError::BadPath { .. })
        ));
        assert!(matches!(
            render("../{filename}", &input("a.mkv")),
            Err(TemplateError::BadPath { .. })
        ));
    }
}
