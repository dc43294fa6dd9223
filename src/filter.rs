//! Which files Offload takes: media files (video, audio, subtitles) by default, or what a
//! watched folder's include and exclude patterns say. The watcher applies it to arrivals, and
//! profiles check a folder's patterns with it before they are saved.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("the file pattern `{pattern}` is not valid: {source}. Check the include/exclude patterns of this folder")]
    BadPattern {
        pattern: String,
        #[source]
        source: globset::Error,
    },
}

const MEDIA_EXTENSIONS: &[&str] = &[
    // video
    "mkv", "mp4", "m4v", "avi", "mov", "wmv", "flv", "webm", "ts", "m2ts", "mts", "mpg", "mpeg",
    "ogv", "3gp", "vob", // audio
    "mp3", "flac", "m4a", "aac", "ogg", "oga", "opus", "wav", "wma", "aiff", "alac",
    // subtitles
    "srt", "ass", "ssa", "vtt", "sub", "idx", "sup",
];

/// Whether the default rule takes the file: one of the video, audio or subtitle formats
/// (case-insensitive), and not one of the samples and trailers downloads come with. `path` is
/// relative to the watched folder or the backend's root, so a `sample/` folder in it counts.
pub fn is_media_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|ext| MEDIA_EXTENSIONS.iter().any(|m| m.eq_ignore_ascii_case(ext)))
        && !is_extra(path)
}

/// `Film.sample.mkv`, `film-sample.mkv`, anything in a `Sample/` folder, `Film-trailer.mp4`:
/// what a release carries beside the film, which nobody wants in a library. A folder's include
/// patterns replace the default rule, and with it this.
fn is_extra(path: &Path) -> bool {
    let lower = |part: &std::ffi::OsStr| part.to_string_lossy().to_lowercase();
    let name = path.file_name().map(lower).unwrap_or_default();
    let in_sample_folder = path
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .any(|part| lower(part.as_os_str()) == "sample");
    in_sample_folder
        || [".sample.", "-sample.", "-trailer."]
            .iter()
            .any(|marker| name.contains(marker))
}

/// Include/exclude patterns for one watched folder.
#[derive(Debug, Clone)]
pub struct FileFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Default for FileFilter {
    /// Media files only, nothing excluded.
    fn default() -> Self {
        FileFilter {
            include: None,
            exclude: None,
        }
    }
}

impl FileFilter {
    /// Non-empty `include` replaces the media-only default; `exclude` always
    /// applies. Patterns are matched case-insensitively against the path
    /// relative to the watched folder (`*` does not cross `/`) and against the
    /// bare file name.
    pub fn new(include: &[String], exclude: &[String]) -> Result<FileFilter, FilterError> {
        Ok(FileFilter {
            include: build_set(include)?,
            exclude: build_set(exclude)?,
        })
    }

    pub fn accepts(&self, relative: &Path) -> bool {
        let name = relative.file_name().map(Path::new);
        let matches =
            |set: &GlobSet| set.is_match(relative) || name.is_some_and(|n| set.is_match(n));
        if self.exclude.as_ref().is_some_and(matches) {
            return false;
        }
        match &self.include {
            Some(set) => matches(set),
            None => is_media_file(relative),
        }
    }
}

fn build_set(patterns: &[String]) -> Result<Option<GlobSet>, FilterError> {
    let patterns: Vec<&String> = patterns.iter().filter(|p| !p.trim().is_empty()).collect();
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern.trim())
            .literal_separator(true)
            .case_insensitive(true)
            .build()
            .map_err(|source| FilterError::BadPattern {
                pattern: pattern.clone(),
                source,
            })?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|source| FilterError::BadPattern {
            pattern: String::from("(combined patterns)"),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn media_extensions_case_insensitive() {
        for name in [
            "a.mkv", "b.MP4", "c.Flac", "d.srt", "e/f.m2ts", "g.3gp", "h.opus",
        ] {
            assert!(is_media_file(Path::new(name)), "{name}");
        }
        for name in ["notes.txt", "a.mkv.part", "archive.zip", "noext", "mkv"] {
            assert!(!is_media_file(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn samples_and_trailers_are_left_out_by_default() -> Result<(), FilterError> {
        for extra in [
            "Film (2019)/Film.sample.mkv",
            "film-sample.mkv",
            "Film/Sample/film.mkv",
            "Film-trailer.mp4",
        ] {
            assert!(!is_media_file(Path::new(extra)), "{extra}");
        }
        for film in [
            "Sampled.Lives.2019.mkv",
            "The.Trailer.Park.Boys.S01E01.mkv",
            "Samples/x.mkv",
        ] {
            assert!(is_media_file(Path::new(film)), "{film}");
        }
        // Include patterns replace the default rule, and its exclusions with it.
        let f = FileFilter::new(&strings(&["*.mkv"]), &[])?;
        assert!(f.accepts(Path::new("Film.sample.mkv")));
        Ok(())
    }

    #[test]
    fn default_filter_is_media_only() -> Result<(), FilterError> {
        let f = FileFilter::new(&[], &[])?;
        assert!(f.accepts(Path::new("show/s01e01.mkv")));
        assert!(!f.accepts(Path::new("show/readme.txt")));
        Ok(())
    }

    #[test]
    fn include_replaces_default_and_exclude_wins() -> Result<(), FilterError> {
        let f = FileFilter::new(&strings(&["*.mkv", "docs/*.txt"]), &strings(&["*sample*"]))?;
        assert!(f.accepts(Path::new("movie.mkv")));
        // bare file name matches even in a subfolder
        assert!(f.accepts(Path::new("deep/dir/movie.MKV")));
        assert!(f.accepts(Path::new("docs/readme.txt")));
        // `*` does not cross `/`
        assert!(!f.accepts(Path::new("docs/more/readme.txt")));
        assert!(!f.accepts(Path::new("notes.txt")));
        assert!(!f.accepts(Path::new("movie.mp4")));
        assert!(!f.accepts(Path::new("movie-sample.mkv")));
        // `*sample*` cannot cross `/`, so only names are excluded, not folders
        assert!(f.accepts(Path::new("sample/x.mkv")));
        Ok(())
    }

    #[test]
    fn exclude_applies_to_media_default() -> Result<(), FilterError> {
        let f = FileFilter::new(&[], &strings(&["extras/**"]))?;
        assert!(f.accepts(Path::new("movie.mkv")));
        assert!(!f.accepts(Path::new("extras/behind.mkv")));
        Ok(())
    }

    #[test]
    fn bad_pattern_is_reported() {
        let err = FileFilter::new(&strings(&["a[b"]), &[]);
        assert!(matches!(err, Err(FilterError::BadPattern { .. })));
    }
}
