//! The local-folder backend: the embedded default, and a plain folder on a NAS mount or a second
//! disk. An upload is copied under a temporary name beside its target, flushed to disk, read back
//! and checked, and only then renamed into place, so a crash never leaves half a file under the
//! final name.
//!
//! Limits: a name segment may be at most 255 bytes (the common limit of ext4, APFS, NTFS).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::fs;
use tokio::sync::mpsc;

use super::{
    BackendKind, ChecksumHasher, ConnectionReport, ErrorKind, Field, Fix, ListPage, ListedObject,
    ObjectMeta, Operation, RemotePath, StorageBackend, StorageError, StoredObject, StreamTarget,
    Transfer, UploadRequest,
};

/// Every file under `root` as a listed object, tagged by its modification time and size (a
/// local file has no content identity cheaper than reading it).
fn walk(root: &Path) -> std::io::Result<Vec<ListedObject>> {
    let mut objects = Vec::new();
    let mut folders = vec![(root.to_path_buf(), String::new())];
    while let Some((folder, relative)) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let path = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                folders.push((entry.path(), path));
            } else if kind.is_file() {
                let meta = entry.metadata()?;
                if let Some(path) = RemotePath::exact(&path) {
                    objects.push(ListedObject {
                        path,
                        size: meta.len(),
                        tag: tag_of(&meta),
                        id: None,
                        checksum: None,
                    });
                }
            }
        }
    }
    Ok(objects)
}

/// Bytes per read while copying: large enough to keep a disk busy, small enough that progress,
/// pause and the bandwidth limit react within a fraction of a second.
const COPY_CHUNK: usize = 1024 * 1024;
/// The longest name segment most filesystems hold.
const MAX_SEGMENT_BYTES: usize = 255;
const TEMP_PREFIX: &str = ".offload-";
const TEMP_SUFFIX: &str = ".tmp";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalConfig {
    /// The library folder every remote path is relative to.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

/// The resume record: the temporary file an interrupted attempt may have left behind.
#[derive(Debug, Serialize, Deserialize)]
struct LocalResume {
    temp: PathBuf,
}

impl LocalBackend {
    pub fn new(config: &LocalConfig) -> LocalBackend {
        LocalBackend {
            root: config.path.clone(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn error(
        &self,
        operation: Operation,
        kind: ErrorKind,
        target: &RemotePath,
        message: impl Into<String>,
    ) -> StorageError {
        StorageError::new(BackendKind::Local, operation, kind, target, message)
    }

    fn io_error(
        &self,
        operation: Operation,
        target: &RemotePath,
        error: &std::io::Error,
    ) -> StorageError {
        StorageError::from_io(BackendKind::Local, operation, target, error)
    }

    /// Where `remote` lives on disk, after checking the name fits the filesystem.
    fn resolve(&self, operation: Operation, remote: &RemotePath) -> Result<PathBuf, StorageError> {
        let mut path = self.root.clone();
        for segment in remote.segments() {
            if segment.len() > MAX_SEGMENT_BYTES {
                return Err(self.error(
                    operation,
                    ErrorKind::InvalidName,
                    remote,
                    format!(
                        "the name {segment:?} is {} bytes long; folders hold names up to \
                         {MAX_SEGMENT_BYTES} bytes, so shorten it or change the profile's remote path template",
                        segment.len()
                    ),
                ));
            }
            path.push(segment);
        }
        Ok(path)
    }

    async fn remove_stale_temp(&self, previous: &LocalResume) {
        let is_ours = previous.temp.starts_with(&self.root)
            && previous
                .temp
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(TEMP_PREFIX));
        if is_ours {
            let _ = fs::remove_file(&previous.temp).await;
        }
    }

    /// Copies the file to `temp` with reading, hashing and writing overlapped on their own
    /// threads (on two cores the SHA-256 is the longest of them, and the others fit beside it),
    /// makes it durable, and reads it back.
    async fn copy_verified(
        &self,
        request: &UploadRequest,
        transfer: &dyn Transfer,
        target: &Path,
        temp: &Path,
    ) -> Result<StoredObject, StorageError> {
        let remote = &request.remote_path;
        let io = |error: std::io::Error| self.io_error(Operation::Upload, remote, &error);
        let source = fs::File::open(&request.local_path).await.map_err(io)?;
        let sink = fs::File::create(temp).await.map_err(io)?;
        let (source, sink) = (source.into_std().await, sink.into_std().await);
        let (read_tx, mut chunks) = mpsc::channel(2);
        let (write_tx, write_rx) = mpsc::channel(2);
        let (hash_tx, mut hash_rx) = mpsc::channel::<Arc<Chunk>>(2);
        let reader = tokio::task::spawn_blocking(move || read_chunks(source, read_tx));
        let writer = tokio::task::spawn_blocking(move || write_chunks(sink, write_rx));
        let hasher = tokio::task::spawn_blocking(move || {
            let mut hasher = ChecksumHasher::default();
            while let Some(chunk) = hash_rx.blocking_recv() {
                hasher.update(chunk.data());
            }
            hasher.finish()
        });
        let mut copied = 0u64;
        let fed = async {
            while let Some(chunk) = chunks.recv().await {
                let chunk = chunk.map_err(io)?;
                let len = chunk.len as u64;
                let handed = write_tx.send(Some(chunk.clone())).await.is_ok()
                    && hash_tx.send(chunk).await.is_ok();
                if !handed {
                    // The writer stopped; what it says is why.
                    return Ok(());
                }
                copied += len;
                transfer.advance(len).await?;
            }
            // The end, which the writer makes durable (without it, it leaves the copy as it is).
            let _ = write_tx.send(None).await;
            Ok(())
        }
        .await;
        drop((write_tx, hash_tx, chunks));
        let worker = |error: tokio::task::JoinError| io(std::io::Error::other(error.to_string()));
        let written = writer.await.map_err(worker)?;
        let sent = hasher.await.map_err(worker)?;
        reader.await.map_err(worker)?;
        fed?;
        let written = written.map_err(io)?;
        if copied != request.size {
            return Err(self.error(
                Operation::Upload,
                ErrorKind::SourceChanged,
                remote,
                format!(
                    "the file changed while it was copied ({} bytes expected, {copied} read)",
                    request.size
                ),
            ));
        }

        // Read the copy back: what is under the temporary name must be what was written. BLAKE3
        // of both, not a second SHA-256: as sure a comparison at a fraction of the cost.
        let copy = temp.to_owned();
        let back = tokio::task::spawn_blocking(move || blake3_of(&copy))
            .await
            .map_err(worker)?
            .map_err(|error| self.io_error(Operation::Verify, remote, &error))?;
        if back != (copied, written) {
            return Err(self.error(
                Operation::Verify,
                ErrorKind::Integrity,
                remote,
                "the copy on disk differs from what was written; the disk may be failing",
            ));
        }
        fs::rename(temp, target).await.map_err(io)?;
        sync_parent(target).await;
        let tag = fs::metadata(target).await.ok().map(|meta| tag_of(&meta));
        Ok(StoredObject {
            size: copied,
            checksum: sent,
            verified: true,
            id: None,
            tag,
        })
    }
}

/// Buffers a copy holds at most: the chunk being read, two on their way to the writer and two to
/// the hasher, and the ones they work on.
const COPY_BUFFERS: usize = 8;

/// One chunk of the file being copied, shared by the writer and the hasher; its buffer goes back
/// to the reader when both are done with it, so a copy allocates `COPY_BUFFERS` buffers in all.
struct Chunk {
    bytes: Vec<u8>,
    len: usize,
    spare: std::sync::mpsc::Sender<Vec<u8>>,
}

impl Chunk {
    fn data(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let _ = self.spare.send(std::mem::take(&mut self.bytes));
    }
}

/// Reads `file` into chunks, ending the channel at its end or after an error.
fn read_chunks(mut file: std::fs::File, out: mpsc::Sender<std::io::Result<Arc<Chunk>>>) {
    let (spare, returned) = std::sync::mpsc::channel();
    let mut allocated = 0;
    loop {
        let mut bytes = match returned.try_recv() {
            Ok(bytes) => bytes,
            Err(_) if allocated < COPY_BUFFERS => {
                allocated += 1;
                vec![0; COPY_CHUNK]
            }
            Err(_) => match returned.recv() {
                Ok(bytes) => bytes,
                Err(_) => return,
            },
        };
        let mut len = 0;
        while len < bytes.len() {
            match file.read(&mut bytes[len..]) {
                Ok(0) => break,
                Ok(read) => len += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let _ = out.blocking_send(Err(error));
                    return;
                }
            }
        }
        if len == 0 {
            return;
        }
        let chunk = Chunk {
            bytes,
            len,
            spare: spare.clone(),
        };
        if out.blocking_send(Ok(Arc::new(chunk))).is_err() {
            return;
        }
    }
}

/// Writes the chunks to `file` and makes them durable; the BLAKE3 of what was written is what
/// the copy must read back as.
fn write_chunks(
    mut file: std::fs::File,
    mut chunks: mpsc::Receiver<Option<Arc<Chunk>>>,
) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    while let Some(chunk) = chunks.blocking_recv() {
        let Some(chunk) = chunk else {
            file.sync_all()?;
            return Ok(hasher.finalize());
        };
        hasher.update(chunk.data());
        file.write_all(chunk.data())?;
    }
    Err(std::io::Error::from(std::io::ErrorKind::Interrupted))
}

/// Size and BLAKE3 of a file, read from start to end.
fn blake3_of(path: &Path) -> std::io::Result<(u64, blake3::Hash)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; COPY_CHUNK];
    let mut size = 0u64;
    loop {
        match file.read(&mut buffer)? {
            0 => return Ok((size, hasher.finalize())),
            read => {
                hasher.update(&buffer[..read]);
                size += read as u64;
            }
        }
    }
}

/// Makes a rename durable: on Unix the directory entry lives in the parent, which needs its own
/// fsync. Windows cannot open a directory as a file, so there this fails and the rename is as
/// durable as NTFS makes it.
async fn sync_parent(path: &Path) {
    let Some(parent) = path.parent() else {
        return;
    };
    let synced = match fs::File::open(parent).await {
        Ok(dir) => dir.sync_all().await,
        Err(error) => Err(error),
    };
    if let Err(error) = synced {
        tracing::debug!(%error, "fsync of the library folder failed");
    }
}

#[async_trait]
impl StorageBackend for LocalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    async fn upload(
        &self,
        request: &UploadRequest,
        transfer: &dyn Transfer,
    ) -> Result<StoredObject, StorageError> {
        let remote = &request.remote_path;
        let target = self.resolve(Operation::Upload, remote)?;
        if let Some(previous) = request
            .resume
            .clone()
            .and_then(|value| serde_json::from_value::<LocalResume>(value).ok())
        {
            // A temporary file of an attempt that was killed; a copy is cheap to redo.
            self.remove_stale_temp(&previous).await;
        }
        let parent = target.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent)
            .await
            .map_err(|error| self.io_error(Operation::Upload, remote, &error))?;
        let temp = parent.join(format!(
            "{TEMP_PREFIX}{}{TEMP_SUFFIX}",
            uuid::Uuid::new_v4().simple()
        ));
        let record = serde_json::to_value(LocalResume { temp: temp.clone() }).map_err(|error| {
            self.error(
                Operation::Upload,
                ErrorKind::Other,
                remote,
                error.to_string(),
            )
        })?;
        transfer.save_resume(record).await?;
        let result = self.copy_verified(request, transfer, &target, &temp).await;
        if result.is_err() {
            let _ = fs::remove_file(&temp).await;
        }
        result
    }

    async fn abandon(&self, resume: &serde_json::Value) -> Result<(), StorageError> {
        if let Ok(previous) = serde_json::from_value::<LocalResume>(resume.clone()) {
            self.remove_stale_temp(&previous).await;
        }
        Ok(())
    }

    async fn stat(&self, remote: &RemotePath) -> Result<Option<ObjectMeta>, StorageError> {
        let path = self.resolve(Operation::Stat, remote)?;
        match fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectMeta {
                size: meta.len(),
                checksum: None,
                modified: meta.modified().ok(),
            })),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(self.io_error(Operation::Stat, remote, &error)),
        }
    }

    /// The whole folder in one page: walking a local disk is fast, and the rows it yields are
    /// what the library keeps anyway. Offload's own temporary files are left out.
    async fn list(&self, _cursor: Option<&str>) -> Result<ListPage, StorageError> {
        let root = self.root.clone();
        let objects = tokio::task::spawn_blocking(move || walk(&root))
            .await
            .map_err(|error| {
                StorageError::new(
                    BackendKind::Local,
                    Operation::List,
                    ErrorKind::Other,
                    self.root.display(),
                    format!("listing the folder stopped: {error}"),
                )
            })?
            .map_err(|error| match error.kind() {
                // An unplugged disk or an unmounted share looks like this too: say so, rather
                // than list it as empty (which would take every item out of the library).
                std::io::ErrorKind::NotFound => StorageError::new(
                    BackendKind::Local,
                    Operation::List,
                    ErrorKind::NotFound,
                    self.root.display(),
                    "the folder is not there; connect the disk or share it is on, or change the backend's folder",
                )
                .fix(Fix::Change(Field::Path)),
                _ => StorageError::from_io(
                    BackendKind::Local,
                    Operation::List,
                    self.root.display(),
                    &error,
                ),
            })?;
        Ok(ListPage {
            objects,
            next: None,
            ..ListPage::default()
        })
    }

    async fn delete(&self, remote: &RemotePath) -> Result<(), StorageError> {
        let path = self.resolve(Operation::Delete, remote)?;
        match fs::remove_file(&path).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(self.io_error(Operation::Delete, remote, &error)),
        }
        // Tidy folders the upload created, stopping at the first that still holds something.
        let mut dir = path.parent();
        while let Some(current) = dir {
            if current == self.root
                || !current.starts_with(&self.root)
                || fs::remove_dir(current).await.is_err()
            {
                break;
            }
            dir = current.parent();
        }
        Ok(())
    }

    async fn stream_target(
        &self,
        remote: &RemotePath,
        _lifetime: Duration,
    ) -> Result<StreamTarget, StorageError> {
        let path = self.resolve(Operation::StreamTarget, remote)?;
        match fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(StreamTarget::LocalFile(path)),
            Ok(_) => Err(self.error(
                Operation::StreamTarget,
                ErrorKind::NotFound,
                remote,
                "not a file",
            )),
            Err(error) => Err(self.io_error(Operation::StreamTarget, remote, &error)),
        }
    }

    async fn download(&self, remote: &RemotePath, local: &Path) -> Result<u64, StorageError> {
        let source = self.resolve(Operation::Download, remote)?;
        let io = |error: std::io::Error| self.io_error(Operation::Download, remote, &error);
        let parent = local.parent().unwrap_or(Path::new("."));
        let temp = parent.join(format!(
            "{TEMP_PREFIX}{}{TEMP_SUFFIX}",
            uuid::Uuid::new_v4().simple()
        ));
        let copied = match fs::copy(&source, &temp).await {
            Ok(copied) => copied,
            Err(error) => {
                let _ = fs::remove_file(&temp).await;
                return Err(io(error));
            }
        };
        fs::rename(&temp, local).await.map_err(io)?;
        Ok(copied)
    }

    async fn test_connection(&self) -> ConnectionReport {
        let mut report = ConnectionReport::default();
        let root = self.root.display();
        match fs::create_dir_all(&self.root).await {
            Ok(()) => report.pass("folder", format!("{root} exists")),
            Err(error) => {
                report.fail(
                    "folder",
                    format!("cannot create {root}: {error}"),
                    Some(Fix::Change(Field::Path)),
                );
                return report;
            }
        }
        let probe = self.root.join(format!(
            "{TEMP_PREFIX}probe-{}{TEMP_SUFFIX}",
            uuid::Uuid::new_v4().simple()
        ));
        match fs::write(&probe, b"offload").await {
            Ok(()) => {
                let _ = fs::remove_file(&probe).await;
                report.pass("write", format!("Offload can write to {root}"));
            }
            Err(error) => report.fail(
                "write",
                format!("Offload cannot write to {root} ({error}); fix the folder's permissions or pick another folder"),
                Some(Fix::Change(Field::Path)),
            ),
        }
        report
    }
}
/// A local file's tag: its modification time, which changes when anything rewrites it.
fn tag_of(meta: &std::fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos());
    format!("mtime:{modified}")
}
