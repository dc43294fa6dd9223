//! Offload's records of its uploads, kept in the storage beside them where a provider's listings
//! carry no app data with a file: what a scan from any computer reads an upload's verified
//! SHA-256 from, without a request per object. Each record also names the object's tag when it
//! was made, and counts only while the object still has it. S3 keeps a zero-byte key per upload
//! (`.offload/records/{path}/{sha256}.{etag}`: keys cost nothing to nest); OneDrive an empty file per
//! upload in one flat folder (`.offload/{path key}.{sha256}.{tag}`), flat because every folder
//! costs a listing request more.

use sha2::{Digest, Sha256};

use super::{Checksum, RemotePath};

/// The folder, under a backend's own, that holds Offload's records; nothing in it is media.
pub const FOLDER: &str = ".offload";
/// Where under [`FOLDER`] the nested (S3) records are.
const NESTED: &str = ".offload/records/";

/// Whether a path under the backend's root is in Offload's own folder (never media).
pub fn is_ours(relative: &str) -> bool {
    relative == FOLDER || relative.starts_with(".offload/")
}

/// The key of the nested record of `path`, whose object has the (unquoted) `etag`.
pub fn nested_key(path: &RemotePath, checksum: &Checksum, etag: &str) -> String {
    let sha = checksum.as_str().trim_start_matches("sha256:");
    format!("{NESTED}{path}/{sha}.{etag}")
}

/// The prefix of the keys of `path`'s nested records.
pub fn nested_prefix(path: &RemotePath) -> String {
    format!("{NESTED}{path}/")
}

/// A key under the backend's root, read back as a nested record; `None` for a key that is not
/// one. The tag is the ETag as listings show it, in quotes.
pub fn parse_nested(relative: &str) -> Option<Recorded> {
    let (path, name) = relative.strip_prefix(NESTED)?.rsplit_once('/')?;
    let (sha, etag) = name.split_once('.')?;
    Some(Recorded {
        of: RecordOf::Path(RemotePath::exact(path)?),
        tag: format!("\"{etag}\""),
        checksum: Checksum::parse(&format!("sha256:{sha}"))?,
    })
}

/// Which object a record is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOf {
    Path(RemotePath),
    /// [`path_key`] of the path, where a file name cannot hold the path itself.
    PathKey(String),
}

/// A record read back from the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub of: RecordOf,
    /// The object's tag when the record was made: the record holds only while it is the same.
    pub tag: String,
    pub checksum: Checksum,
}

/// A short, fixed-length name for a remote path: half its SHA-256, in hex.
pub fn path_key(path: &str) -> String {
    hex::encode(&Sha256::digest(path.as_bytes())[..16])
}

/// The name of the flat record file for `path`, whose object has `tag` (a QuickXorHash, in
/// base64) and these bytes' `checksum`; `None` for a tag a file name cannot carry.
pub fn flat_name(path: &RemotePath, checksum: &Checksum, tag: &str) -> Option<String> {
    let safe = tag
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let sha = checksum.as_str().trim_start_matches("sha256:");
    safe.bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        .then(|| format!("{}.{sha}.{safe}", path_key(path.as_str())))
}

/// The prefix of the names of `path`'s flat records.
pub fn flat_prefix(path: &RemotePath) -> String {
    format!("{}.", path_key(path.as_str()))
}

/// A flat record file's name, read back; `None` for a name that is not one.
pub fn parse_flat(name: &str) -> Option<Recorded> {
    let mut parts = name.split('.');
    let (key, sha, safe) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || key.len() != 32 {
        return None;
    }
    let mut tag = safe.replace('-', "+").replace('_', "/");
    while tag.len() % 4 != 0 {
        tag.push('=');
    }
    Some(Recorded {
        of: RecordOf::PathKey(key.to_owned()),
        tag,
        checksum: Checksum::parse(&format!("sha256:{sha}"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_record_name_reads_back_as_what_was_recorded() {
        let path = RemotePath::parse("Show/Season 1/Show.S01E01.mkv").unwrap();
        let checksum = Checksum::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let tag = "aGVsbG8rd29ybGQvIQ+/AAAAAAA=";
        let name = flat_name(&path, &checksum, tag).unwrap();
        assert!(name.len() < 255 && !name.contains('/'), "{name}");
        assert!(name.starts_with(&flat_prefix(&path)));
        assert_eq!(
            parse_flat(&name),
            Some(Recorded {
                of: RecordOf::PathKey(path_key(path.as_str())),
                tag: tag.to_owned(),
                checksum: checksum.clone(),
            })
        );
        assert_eq!(parse_flat("notes.txt"), None);

        let key = nested_key(&path, &checksum, "d41d8cd98f00b204-3");
        assert!(key.starts_with(&nested_prefix(&path)) && is_ours(&key));
        assert_eq!(
            parse_nested(&key),
            Some(Recorded {
                of: RecordOf::Path(path.clone()),
                tag: "\"d41d8cd98f00b204-3\"".into(),
                checksum: checksum.clone(),
            })
        );
        assert_eq!(parse_nested(&format!("{}/Film.mkv", FOLDER)), None);
        assert!(!is_ours("Film.mkv"));
        assert_eq!(flat_name(&path, &checksum, "\"{c:1},2\""), None);
    }
}
