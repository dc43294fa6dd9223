//! The storage abstraction: one trait, [`StorageBackend`], and one module per provider.
//!
//! A backend moves whole files between this machine and one place in remote storage. The queue
//! owns everything around a transfer (retries, pausing, bandwidth, progress, verification
//! policy); a backend only moves bytes, reports progress through [`Transfer`], and says in a
//! typed [`StorageError`] what failed and whether trying again can help.

mod chunked;
pub mod cloud;
mod folder_walk;
pub mod google_drive;
mod json_api;
pub mod local;
pub(crate) mod network;
pub mod onedrive;
pub mod pacer;
mod path;
pub mod records;
pub mod s3;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use path::{PathError, RemotePath};
pub use records::{RecordOf, Recorded};

/// The kinds of storage Offload knows, as stored in `storage_backends.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    Local,
    S3,
    GoogleDrive,
    Onedrive,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::S3 => "s3",
            BackendKind::GoogleDrive => "google-drive",
            BackendKind::Onedrive => "onedrive",
        }
    }

    /// The service's name in a sentence.
    pub fn display_name(self) -> &'static str {
        match self {
            BackendKind::Local => "the local folder",
            BackendKind::S3 => "S3",
            BackendKind::GoogleDrive => "Google Drive",
            BackendKind::Onedrive => "OneDrive",
        }
    }

    pub fn parse(text: &str) -> Option<BackendKind> {
        [
            BackendKind::Local,
            BackendKind::S3,
            BackendKind::GoogleDrive,
            BackendKind::Onedrive,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a backend was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Upload,
    Verify,
    Delete,
    Exists,
    Stat,
    StreamTarget,
    Download,
    List,
    TestConnection,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Upload => "upload",
            Operation::Verify => "verify",
            Operation::Delete => "delete",
            Operation::Exists => "exists",
            Operation::Stat => "stat",
            Operation::StreamTarget => "stream",
            Operation::Download => "download",
            Operation::List => "list",
            Operation::TestConnection => "connection test",
        })
    }
}

/// The kind of failure, which decides what the queue does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object or local file does not exist.
    NotFound,
    /// Credentials were refused or have expired; the user must act (sign in, fix the key).
    Unauthenticated,
    /// The account's sign-in was refused or revoked: nothing works until the user signs in
    /// again, and then everything does.
    SignInRequired,
    /// The credentials are valid but may not do this.
    PermissionDenied,
    /// The target cannot hold this name (too long, reserved, invalid characters).
    InvalidName,
    /// The target is full or over quota.
    NoSpace,
    /// The provider asked us to slow down.
    RateLimited,
    /// A network failure, timeout or server error: trying again may succeed.
    Temporary,
    /// What arrived is not what was sent.
    Integrity,
    /// The transfer was stopped on purpose by [`Transfer::advance`] (pause, cancel, file changed).
    Interrupted,
    /// The local file changed while it was being read; the upload must start again.
    SourceChanged,
    /// The configuration is wrong (missing bucket, bad endpoint, bad folder).
    Config,
    /// A feed of changes no longer goes back to the point asked for: list everything again.
    Expired,
    /// Anything else; not retried.
    Other,
}

/// A part of a backend's settings a person may have to correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The local library folder.
    Path,
    Endpoint,
    Region,
    Bucket,
    AccessKeyId,
    SecretAccessKey,
    Prefix,
    PublicUrl,
    /// The Drive or OneDrive folder uploads go under.
    FolderId,
    ClientId,
    ClientSecret,
    ChunkSize,
}

/// A value in a backend's settings that cannot be used as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

impl FieldError {
    pub fn new(field: Field, message: impl Into<String>) -> FieldError {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// What would fix a failure, as far as storage can tell: data, so that each shell says it in
/// its own words (the command line names a command and its flag, the window a button or field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "fix", content = "field", rename_all = "kebab-case")]
pub enum Fix {
    /// Correct this part of the backend's settings.
    Change(Field),
    /// Sign in to the backend's account (again).
    SignIn,
    /// Set this computer's clock.
    SetClock,
    /// Free space where the files go.
    FreeSpace,
}

/// A failure of one operation on one backend.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation} of {target}: {message}")]
pub struct StorageError {
    pub service: BackendKind,
    pub operation: Operation,
    pub kind: ErrorKind,
    /// The path or object the operation was about.
    pub target: String,
    /// What went wrong, in words; never a command line.
    pub message: String,
    /// What would fix it, where storage can tell.
    pub fix: Option<Fix>,
    /// How long the provider asked us to wait before trying again.
    pub retry_after: Option<Duration>,
}

impl StorageError {
    pub fn new(
        service: BackendKind,
        operation: Operation,
        kind: ErrorKind,
        target: impl fmt::Display,
        message: impl Into<String>,
    ) -> StorageError {
        StorageError {
            service,
            operation,
            kind,
            target: target.to_string(),
            message: message.into(),
            // What every kind of this kind needs; classifiers name a field where they can.
            fix: match kind {
                ErrorKind::SignInRequired => Some(Fix::SignIn),
                ErrorKind::NoSpace => Some(Fix::FreeSpace),
                _ => None,
            },
            retry_after: None,
        }
    }

    /// The same error, with what would fix it.
    pub fn fix(mut self, fix: Fix) -> StorageError {
        self.fix = Some(fix);
        self
    }

    /// Whether the same operation may succeed if tried again later without the user acting.
    pub fn is_temporary(&self) -> bool {
        matches!(self.kind, ErrorKind::Temporary | ErrorKind::RateLimited)
    }

    /// The error a [`Transfer`] returns to stop a transfer on purpose.
    pub fn interrupted(service: BackendKind, target: impl fmt::Display) -> StorageError {
        StorageError::new(
            service,
            Operation::Upload,
            ErrorKind::Interrupted,
            target,
            "stopped on request",
        )
    }

    /// Classifies a local I/O error from reading or writing files on this machine.
    pub fn from_io(
        service: BackendKind,
        operation: Operation,
        target: impl fmt::Display,
        error: &std::io::Error,
    ) -> StorageError {
        use std::io::ErrorKind as Io;
        let (kind, hint) = match error.kind() {
            Io::NotFound => (ErrorKind::NotFound, ""),
            Io::PermissionDenied | Io::ReadOnlyFilesystem => (
                ErrorKind::PermissionDenied,
                "; check that Offload may write there",
            ),
            Io::StorageFull | Io::QuotaExceeded => (
                ErrorKind::NoSpace,
                "; free some space on that disk, then retry the job",
            ),
            Io::InvalidFilename => (ErrorKind::InvalidName, ""),
            Io::Interrupted | Io::TimedOut | Io::WouldBlock => (ErrorKind::Temporary, ""),
            _ => (ErrorKind::Other, ""),
        };
        StorageError::new(service, operation, kind, target, format!("{error}{hint}"))
    }
}

/// The checksum Offload computes for every upload: SHA-256 of the bytes sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum(String);

impl Checksum {
    pub fn sha256(digest: &[u8]) -> Checksum {
        Checksum(format!("sha256:{}", hex::encode(digest)))
    }

    pub fn parse(text: &str) -> Option<Checksum> {
        text.strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|_| Checksum(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A running SHA-256 that ends as a [`Checksum`].
#[derive(Default, Clone)]
pub struct ChecksumHasher(Sha256);

impl ChecksumHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Checksum {
        Checksum::sha256(&self.0.finalize())
    }
}

/// What the queue hands a backend to upload.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub local_path: PathBuf,
    pub remote_path: RemotePath,
    /// The size the queue expects; a backend that reads a different amount reports `Interrupted`
    /// through [`Transfer::advance`]'s change check rather than uploading a torn file.
    pub size: u64,
    pub content_type: String,
    /// What the backend saved with [`Transfer::save_resume`] in an earlier attempt, if anything.
    pub resume: Option<serde_json::Value>,
}

/// The uploaded object, as the backend saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    pub checksum: Checksum,
    /// The backend already confirmed that what is stored is what was sent (it read the copy
    /// back, or the provider checked a digest of the bytes and answered with the matching ETag),
    /// so the queue need not ask again.
    pub verified: bool,
    /// The provider's id of the stored file, where it names files by id (Google Drive,
    /// OneDrive): what its feed of changes names the file by later.
    pub id: Option<String>,
    /// The stored object's tag as a listing will show it ([`ListedObject::tag`]), where the
    /// upload's answer says it: a later scan then tells this object from one that replaced it.
    pub tag: Option<String>,
}

/// What the backend reports about an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    /// Present when the provider can give Offload's own checksum back.
    pub checksum: Option<Checksum>,
    pub modified: Option<SystemTime>,
}

/// An object a listing found under a backend's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub path: RemotePath,
    pub size: u64,
    /// The provider's identity of the content (an ETag, a content hash, a modification time):
    /// when it changes, the object was replaced.
    pub tag: String,
    /// The provider's id of the file, where it has one (see [`StoredObject::id`]).
    pub id: Option<String>,
    /// The SHA-256 Offload recorded with the file when it uploaded these bytes, from any
    /// computer, where the provider keeps such a record with the file and shows it in listings.
    pub checksum: Option<Checksum>,
}

/// A folder a listing went through, for providers that name folders by id: what a later feed
/// of changes says a file's parent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFolder {
    pub id: String,
    /// Its path under the backend's folder.
    pub path: String,
}

/// One page of a listing, and the cursor of the next page (`None` after the last).
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    pub folders: Vec<ListedFolder>,
    pub records: Vec<Recorded>,
    pub next: Option<String>,
}

/// Where a provider's feed of changes stood, taken before a full listing: the listing plus what
/// the feed says since is what the storage holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePoint {
    /// What [`StorageBackend::changes`] continues from.
    pub point: String,
    /// The id of the backend's own folder: the parent its top-level files name.
    pub root: String,
}

/// One entry of a provider's feed of changes, named by ids as the provider names them: the
/// library, which knows the folders' paths, places it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    /// A file is now `name` in the folder `parent`, with this size and tag (new, replaced,
    /// renamed or moved: the id tells which file it was).
    File {
        id: String,
        parent: String,
        name: String,
        size: u64,
        tag: String,
        checksum: Option<Checksum>,
    },
    /// A folder is now `name` in the folder `parent` (new, renamed or moved).
    Folder {
        id: String,
        parent: String,
        name: String,
    },
    /// The file or folder is gone: deleted, in the trash, or no longer visible to Offload.
    Gone { id: String },
}

/// One page of a feed of changes.
#[derive(Debug, Clone, Default)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    /// The cursor of the next page; `None` on the last, which carries `point`.
    pub next: Option<String>,
    /// Where the feed stands after the last page: the next scan's starting point.
    pub point: Option<String>,
}

/// The queue's side of a transfer: progress, bandwidth, pause and cancel, resume records.
#[async_trait]
pub trait Transfer: Send + Sync {
    /// Called after `bytes` more bytes were read and handed on. Waits while the bandwidth limit
    /// requires it. An error means "stop now" (pause, cancel, the file changed): the backend
    /// returns it as it is, leaving any resume record in place.
    async fn advance(&self, bytes: u64) -> Result<(), StorageError>;

    /// Counts `bytes` the provider already holds from an earlier attempt: progress, but no
    /// bandwidth spent.
    async fn resumed(&self, bytes: u64);

    /// Persists what the backend needs to continue this upload after a restart. Called as soon as
    /// the provider acknowledged something worth keeping (an upload id, a finished part).
    async fn save_resume(&self, record: serde_json::Value) -> Result<(), StorageError>;
}

/// How a media player reaches an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamTarget {
    /// Redirect the player to this URL (presigned or public); it handles Range itself.
    Redirect { url: String, expires_in: Duration },
    /// Serve this local file, with Range support.
    LocalFile(PathBuf),
    /// Fetch from this URL with these headers added server-side, passing Range through.
    Proxy {
        url: String,
        headers: Vec<(String, String)>,
    },
}

/// One line of a connection test: what was checked, what was found, and (for a failed check)
/// what would fix it where that is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub fix: Option<Fix>,
}

/// A connection test's findings, in words a person can act on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct ConnectionReport {
    pub checks: Vec<Check>,
}

impl ConnectionReport {
    pub fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_owned(),
            ok: true,
            detail: detail.into(),
            fix: None,
        });
    }

    pub fn fail(&mut self, name: &str, detail: impl Into<String>, fix: Option<Fix>) {
        self.checks.push(Check {
            name: name.to_owned(),
            ok: false,
            detail: detail.into(),
            fix,
        });
    }

    /// A failed check that says what `error` says.
    pub fn failed(&mut self, name: &str, error: StorageError) {
        self.fail(name, error.message, error.fix);
    }

    pub fn is_ok(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }
}

impl fmt::Display for ConnectionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            writeln!(f, "{mark} {}: {}", check.name, check.detail)?;
        }
        Ok(())
    }
}

/// One place in remote storage. Implementations live one per module beside this file.
#[async_trait]
pub trait StorageBackend: Send + Sync + fmt::Debug {
    fn kind(&self) -> BackendKind;

    /// Uploads `request.local_path` to `request.remote_path`, reporting progress through
    /// `transfer`. Returns only after the provider has the whole object under its final name.
    async fn upload(
        &self,
        request: &UploadRequest,
        transfer: &dyn Transfer,
    ) -> Result<StoredObject, StorageError>;

    /// The object's size (and checksum where the provider keeps it), or `None` if absent.
    async fn stat(&self, remote: &RemotePath) -> Result<Option<ObjectMeta>, StorageError>;

    async fn exists(&self, remote: &RemotePath) -> Result<bool, StorageError> {
        Ok(self.stat(remote).await?.is_some())
    }

    /// Cleans up unfinished uploads that Offload started and no job can continue: those under
    /// one of `ours` (remote paths Offload's jobs upload to), started before `started_before`,
    /// that no record in `keep` (the resume records of live jobs) names. Returns how many.
    async fn sweep_abandoned(
        &self,
        _keep: &[serde_json::Value],
        _ours: &[RemotePath],
        _started_before: SystemTime,
    ) -> Result<usize, StorageError> {
        Ok(0)
    }

    /// Cleans up what an upload that will never finish left behind, given its resume record
    /// (a temporary file, an unfinished multipart upload). Nothing to clean up is not an error.
    async fn abandon(&self, _resume: &serde_json::Value) -> Result<(), StorageError> {
        Ok(())
    }

    /// Deletes the object. Deleting an object that is already gone is not an error.
    async fn delete(&self, remote: &RemotePath) -> Result<(), StorageError>;

    /// How a player should fetch the object, valid for at least `lifetime` where that applies.
    async fn stream_target(
        &self,
        remote: &RemotePath,
        lifetime: Duration,
    ) -> Result<StreamTarget, StorageError>;

    /// One page of what is stored under the backend's root, whoever put it there, without
    /// reading any content: `cursor` is the previous page's `next`, `None` to start. Pages come
    /// in no promised order; names that are not valid remote paths are left out.
    async fn list(&self, cursor: Option<&str>) -> Result<ListPage, StorageError>;

    /// Where the provider's feed of changes stands now, or `None` where it has none (S3, a
    /// local folder: every scan lists everything, which their listings make cheap).
    async fn change_point(&self) -> Result<Option<ChangePoint>, StorageError> {
        Ok(None)
    }

    /// One page of what changed since `since` (a [`ChangePoint::point`], a page's `next` or
    /// `point`). A point the provider no longer accepts is [`ErrorKind::Expired`].
    async fn changes(&self, since: &str) -> Result<FeedPage, StorageError> {
        Err(StorageError::new(
            self.kind(),
            Operation::List,
            ErrorKind::Expired,
            since,
            "this storage has no feed of changes",
        ))
    }

    /// Copies the object to `local`, replacing it only once the copy is complete.
    async fn download(&self, remote: &RemotePath, local: &Path) -> Result<u64, StorageError>;

    /// Checks that the configuration works, without changing anything the user keeps.
    async fn test_connection(&self) -> ConnectionReport;
}

/// Writes a download into `local` through a temporary file beside it, so that `local` is only
/// ever replaced by a complete copy. A failing read is the download being cut off: temporary.
pub(crate) async fn save_download(
    service: BackendKind,
    remote: &RemotePath,
    local: &Path,
    mut body: impl tokio::io::AsyncRead + Unpin,
) -> Result<u64, StorageError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io =
        |error: std::io::Error| StorageError::from_io(service, Operation::Download, remote, &error);
    let parent = local.parent().unwrap_or(Path::new("."));
    let temp = parent.join(format!(".offload-{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = async {
        let mut file = tokio::fs::File::create(&temp).await.map_err(io)?;
        let mut buffer = vec![0u8; 256 * 1024];
        let mut written = 0u64;
        loop {
            let read = body.read(&mut buffer).await.map_err(|error| {
                StorageError::new(
                    service,
                    Operation::Download,
                    ErrorKind::Temporary,
                    remote,
                    format!("the download was cut off: {error}"),
                )
            })?;
            if read == 0 {
                break;
            }
            file.write_all(&buffer[..read]).await.map_err(io)?;
            written += read as u64;
        }
        file.sync_all().await.map_err(io)?;
        tokio::fs::rename(&temp, local).await.map_err(io)?;
        Ok(written)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}
