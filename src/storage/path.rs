//! Remote paths: the relative, `/`-separated, NFC-normalised names objects get in storage.
//! Every path from a template or the command line passes through [`RemotePath::parse`] before a
//! backend sees it, so no backend has to defend against `..`, absolute paths or NUL bytes.

use std::borrow::Cow;
use std::fmt;

use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the remote path is empty")]
    Empty,
    #[error(
        "the remote path {0:?} is absolute; remote paths are relative to the backend's folder"
    )]
    Absolute(String),
    #[error("the remote path {0:?} climbs out of its folder with \"..\"")]
    ParentSegment(String),
    #[error("the remote path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("the remote path {0:?} contains a control character")]
    Control(String),
}

/// Percent-encodes everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`), as
/// SigV4 canonical requests and path-addressed APIs (Graph) want.
pub fn percent_encode(text: &str) -> String {
    encoded(text, b"")
}

/// `a/b c/d` → `a/b%20c/d`: each segment encoded, the slashes kept.
pub fn percent_encode_path(path: &str) -> String {
    encoded(path, b"/")
}

fn encoded(text: &str, kept: &[u8]) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    encode_onto(&mut out, text, kept);
    out
}

/// Appends `text` percent-encoded but for the unreserved characters and `kept`: the stream server
/// writes a key into every redirect it mints, so into the URL itself rather than a string of its own.
pub fn encode_onto(out: &mut String, text: &str, kept: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || kept.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        }
    }
}

/// A validated remote path: relative, `/`-separated, no empty, `.` or `..` segments, NFC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemotePath(String);

impl RemotePath {
    pub fn parse(raw: &str) -> Result<RemotePath, PathError> {
        if raw.contains('\0') {
            return Err(PathError::Nul(raw.replace('\0', "\\0")));
        }
        if raw.chars().any(char::is_control) {
            return Err(PathError::Control(raw.to_owned()));
        }
        // A stored path is parsed again at every stream request: one that already is a remote
        // path is taken as it is, without rebuilding it.
        let normalized: Cow<'_, str> = if unicode_normalization::is_nfc(raw) {
            Cow::Borrowed(raw)
        } else {
            Cow::Owned(raw.nfc().collect())
        };
        let unified = if normalized.contains('\\') {
            Cow::Owned(normalized.replace('\\', "/"))
        } else {
            normalized
        };
        if unified.starts_with('/') || has_drive_prefix(&unified) {
            return Err(PathError::Absolute(raw.to_owned()));
        }
        let mut segments = Vec::new();
        let mut skipped = false;
        for segment in unified.split('/') {
            match segment {
                "" | "." => skipped = true,
                ".." => return Err(PathError::ParentSegment(raw.to_owned())),
                _ => segments.push(segment),
            }
        }
        if segments.is_empty() {
            return Err(PathError::Empty);
        }
        if skipped {
            return Ok(RemotePath(segments.join("/")));
        }
        Ok(RemotePath(unified.into_owned()))
    }

    /// `raw` as a remote path only when it already is one exactly: a listed name that parsing
    /// would change (`a//b`, `a\\b`) names an object Offload could not address again.
    pub fn exact(raw: &str) -> Option<RemotePath> {
        RemotePath::parse(raw)
            .ok()
            .filter(|path| path.as_str() == raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_tidies_relative_paths() {
        assert_eq!(
            RemotePath::parse("Movies/a.mkv").unwrap().as_str(),
            "Movies/a.mkv"
        );
        assert_eq!(
            RemotePath::parse("./Movies//a.mkv").unwrap().as_str(),
            "Movies/a.mkv"
        );
        assert_eq!(
            RemotePath::parse("Movies\\a.mkv").unwrap().as_str(),
            "Movies/a.mkv"
        );
        assert_eq!(RemotePath::parse("a..b.mkv").unwrap().as_str(), "a..b.mkv");
    }

    #[test]
    fn normalises_to_nfc() {
        let decomposed = "Cafe\u{301}.mkv";
        assert_eq!(
            RemotePath::parse(decomposed).unwrap().as_str(),
            "Caf\u{e9}.mkv"
        );
    }

    #[test]
    fn rejects_escapes_and_absolute_paths() {
        assert!(matches!(
            RemotePath::parse("../etc/passwd"),
            Err(PathError::ParentSegment(_))
        ));
        assert!(matches!(
            RemotePath::parse("a/../../b"),
            Err(PathError::ParentSegment(_))
        ));
        assert!(matches!(
            RemotePath::parse("/etc/passwd"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            RemotePath::parse("\\\\server\\share"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            RemotePath::parse("C:/x"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(RemotePath::parse("a\0b"), Err(PathError::Nul(_))));
        assert!(matches!(
            RemotePath::parse("a\nb"),
            Err(PathError::Control(_))
        ));
        assert!(matches!(RemotePath::parse(""), Err(PathError::Empty)));
        assert!(matches!(RemotePath::parse("./"), Err(PathError::Empty)));
    }
}
