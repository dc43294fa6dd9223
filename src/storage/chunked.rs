//! What chunked, resumable uploads (Google Drive sessions, OneDrive upload sessions) share:
//! reading the file from wherever the provider says its copy ends, hashing every byte exactly
//! once, in order, whether it is sent now or the provider holds it from an earlier attempt (so
//! the digests at the end cover the whole file); and keeping the session in the job's resume
//! record, sealed.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use bytes::Bytes;
use tokio::task::JoinHandle;

use zeroize::Zeroizing;

use super::cloud::CloudAccess;
use super::json_api::JsonApi;
use super::{BackendKind, Checksum, ChecksumHasher, Operation, RemotePath, StorageError, Transfer};

/// The digest a provider keeps for a file (MD5 for Drive, QuickXorHash for OneDrive).
pub trait ProviderDigest: Default + Send + 'static {
    fn absorb(&mut self, bytes: &[u8]);
}

impl ProviderDigest for md5::Md5 {
    fn absorb(&mut self, bytes: &[u8]) {
        md5::Digest::update(self, bytes);
    }
}

/// The file and the digests of its bytes from the start up to `hashed`; it moves into each read
/// on the blocking pool and comes back with the bytes read, or with what went wrong.
struct Hashed<D> {
    file: std::fs::File,
    hashed: u64,
    digest: D,
    sha: ChecksumHasher,
}

impl<D: ProviderDigest> Hashed<D> {
    fn absorb(&mut self, bytes: &[u8]) {
        self.digest.absorb(bytes);
        self.sha.update(bytes);
        self.hashed += bytes.len() as u64;
    }

    /// Reads `length` bytes at `offset`: first hashes, from disk, the bytes before `offset` not
    /// hashed yet (the provider holds them from an earlier attempt), then the chunk's bytes not
    /// hashed yet. One pass, in order, whatever was read ahead before.
    fn read_at(&mut self, offset: u64, length: usize, chunk: usize) -> std::io::Result<Vec<u8>> {
        let mut buffer = vec![0u8; chunk.max(length)];
        if offset > self.hashed {
            self.file.seek(SeekFrom::Start(self.hashed))?;
            while self.hashed < offset {
                let take = (offset - self.hashed).min(buffer.len() as u64) as usize;
                self.file.read_exact(&mut buffer[..take])?;
                self.absorb(&buffer[..take]);
            }
        }
        buffer.truncate(length);
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(&mut buffer)?;
        // `hashed` is at least `offset` now; hash what lies beyond it.
        if offset + length as u64 > self.hashed {
            self.absorb(&buffer[(self.hashed - offset) as usize..]);
        }
        Ok(buffer)
    }
}

type Reading<D> = JoinHandle<(Hashed<D>, std::io::Result<Vec<u8>>)>;

/// Reads a file chunk by chunk for an upload session, each chunk on the blocking pool, and the
/// next one while the last is sent: the link is never idle while the disk and the hashes work.
pub struct ChunkReader<'a, D: ProviderDigest> {
    service: BackendKind,
    remote: &'a RemotePath,
    size: u64,
    chunk: u64,
    /// The file and its digests, while no read is under way.
    idle: Option<Hashed<D>>,
    /// The read under way, and the offset it reads at.
    ahead: Option<(u64, Reading<D>)>,
    /// Bytes of the file counted to the transfer so far, from the start.
    counted: u64,
    /// The session was replaced: the digests start again from the first byte.
    restart: bool,
}

impl<'a, D: ProviderDigest> ChunkReader<'a, D> {
    pub async fn open(
        service: BackendKind,
        remote: &'a RemotePath,
        path: &Path,
        size: u64,
        chunk: u64,
    ) -> Result<ChunkReader<'a, D>, StorageError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|error| StorageError::from_io(service, Operation::Upload, remote, &error))?
            .into_std()
            .await;
        Ok(ChunkReader {
            service,
            remote,
            size,
            chunk,
            idle: Some(Hashed {
                file,
                hashed: 0,
                digest: D::default(),
                sha: ChecksumHasher::default(),
            }),
            ahead: None,
            counted: 0,
            restart: false,
        })
    }

    fn io(&self, error: &std::io::Error) -> StorageError {
        StorageError::from_io(self.service, Operation::Upload, self.remote, error)
    }

    /// The session was replaced: everything goes again, from the first byte.
    pub fn restart(&mut self) {
        self.restart = true;
    }

    fn length_at(&self, offset: u64) -> usize {
        self.size.saturating_sub(offset).min(self.chunk) as usize
    }

    fn read(&self, mut hashed: Hashed<D>, offset: u64) -> Reading<D> {
        let (length, chunk) = (self.length_at(offset), self.chunk as usize);
        tokio::task::spawn_blocking(move || {
            let read = hashed.read_at(offset, length, chunk);
            (hashed, read)
        })
    }

    /// The file and its digests back from the read under way, with what it read and where.
    async fn settle(&mut self) -> Result<(Hashed<D>, Option<(u64, Vec<u8>)>), StorageError> {
        let Some((offset, reading)) = self.ahead.take() else {
            let idle = self.idle.take().ok_or_else(|| {
                self.io(&std::io::Error::other(
                    "an earlier read of the file failed; the upload has to start again",
                ))
            })?;
            return Ok((idle, None));
        };
        let (hashed, read) = reading
            .await
            .map_err(|error| self.io(&std::io::Error::other(error)))?;
        match read {
            Ok(bytes) => Ok((hashed, Some((offset, bytes)))),
            Err(error) => {
                self.idle = Some(hashed);
                Err(self.io(&error))
            }
        }
    }

    /// The chunk starting at `offset`, where the provider's copy ends. Bytes before `offset` not
    /// counted yet (held from an earlier attempt) count as resumed; bytes of this chunk not
    /// counted yet count against the transfer (progress, bandwidth, pause and cancel). The
    /// chunk after it is read while this one is sent.
    pub async fn chunk_at(
        &mut self,
        offset: u64,
        transfer: &dyn Transfer,
    ) -> Result<Bytes, StorageError> {
        let (mut hashed, ahead) = self.settle().await?;
        if std::mem::take(&mut self.restart) {
            hashed.hashed = 0;
            hashed.digest = D::default();
            hashed.sha = ChecksumHasher::default();
            self.counted = 0;
        }
        let length = self.length_at(offset);
        let bytes = match ahead {
            Some((at, bytes)) if at == offset && bytes.len() == length => {
                self.idle = Some(hashed);
                bytes
            }
            _ => {
                let (back, read) = self
                    .read(hashed, offset)
                    .await
                    .map_err(|error| self.io(&std::io::Error::other(error)))?;
                self.idle = Some(back);
                read.map_err(|error| self.io(&error))?
            }
        };
        let end = offset + length as u64;
        if let Some(hashed) = self
            .idle
            .take_if(|hashed| hashed.hashed == end && end < self.size)
        {
            self.ahead = Some((end, self.read(hashed, end)));
        }
        if offset > self.counted {
            transfer.resumed(offset - self.counted).await;
            self.counted = offset;
        }
        if end > self.counted {
            transfer.advance(end - self.counted).await?;
            self.counted = end;
        }
        Ok(Bytes::from(bytes))
    }

    /// The provider's digest and Offload's SHA-256 of the whole file. A session that an earlier
    /// attempt finished (the answer to its last chunk lost, or the process stopped before it was
    /// recorded) holds bytes this attempt never read: an empty chunk at the end reads and hashes
    /// them from disk, and counts them as resumed.
    pub async fn finish(mut self, transfer: &dyn Transfer) -> Result<(D, Checksum), StorageError> {
        if self.counted < self.size {
            self.chunk_at(self.size, transfer).await?;
        }
        let (hashed, _) = self.settle().await?;
        Ok((hashed.digest, hashed.sha.finish()))
    }
}

/// An upload session kept in a job's resume record: its URL sealed (whoever holds it can write
/// into the file), the size it was opened for, and what the provider last confirmed.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SessionRecord {
    session: String,
    size: u64,
    #[serde(default)]
    confirmed: u64,
}

/// Saves `session` in the job's resume record, sealed.
async fn save_session(
    access: &CloudAccess,
    transfer: &dyn Transfer,
    service: BackendKind,
    session: &str,
    size: u64,
    confirmed: u64,
) -> Result<(), StorageError> {
    let record = SessionRecord {
        session: access.seal_session(service, session)?,
        size,
        confirmed,
    };
    transfer
        .save_resume(serde_json::to_value(record).unwrap_or_default())
        .await
}

/// The session URL a resume record holds, if it opens, and (with `size`) was opened for a file
/// of that size.
pub fn saved_session(
    access: &CloudAccess,
    resume: Option<&serde_json::Value>,
    size: Option<u64>,
) -> Option<Zeroizing<String>> {
    let record = serde_json::from_value::<SessionRecord>(resume?.clone()).ok()?;
    if size.is_some_and(|size| size != record.size) {
        return None;
    }
    access.open_session(&record.session)
}

/// Where an upload session stands.
pub(crate) enum SessionState<F> {
    /// The provider holds the file's first N bytes and wants the rest.
    Next(u64),
    /// The upload is complete; the provider's description of the file.
    Finished(F),
    /// The session expired or was never there: a new one is needed.
    Gone,
}

/// What a provider with resumable upload sessions does differently; [`upload_in_sessions`] does
/// the rest, the same way for every provider.
#[async_trait::async_trait]
pub(crate) trait SessionProtocol: JsonApi {
    type Digest: ProviderDigest + Send;
    type Finished: Send;

    /// Bytes per request, within the provider's rules.
    fn chunk_size(&self) -> u64;

    /// Opens a session for `request` and returns its URL.
    async fn open_session(&self, request: &super::UploadRequest) -> Result<String, StorageError>;

    /// Asks a session where it stands.
    async fn session_status(
        &self,
        session: &str,
        request: &super::UploadRequest,
    ) -> Result<SessionState<Self::Finished>, StorageError>;

    /// Sends `body`, the file's bytes from `offset`, and reads the answer.
    async fn send_chunk(
        &self,
        session: &str,
        request: &super::UploadRequest,
        offset: u64,
        body: Bytes,
    ) -> Result<SessionState<Self::Finished>, StorageError>;
}

/// Uploads through sessions: continues the session of an earlier attempt where the provider's
/// copy ends, opens a new one when there is none or it expired, saves the session (sealed) and
/// the confirmed offset after every chunk, and hashes every byte once. Returns the provider's
/// description of the file, its digest, and Offload's SHA-256.
pub(crate) async fn upload_in_sessions<P: SessionProtocol>(
    provider: &P,
    request: &super::UploadRequest,
    transfer: &dyn Transfer,
) -> Result<(P::Finished, P::Digest, Checksum), StorageError> {
    let remote = &request.remote_path;
    let size = request.size;
    let earlier = match saved_session(provider.access(), request.resume.as_ref(), Some(size)) {
        Some(session) => match provider.session_status(&session, request).await? {
            SessionState::Gone => None,
            state => Some((session.as_str().to_owned(), state)),
        },
        None => None,
    };
    let (mut session, mut state) = match earlier {
        Some((session, state)) => {
            if let SessionState::Next(held) = state {
                tracing::info!(service = %P::SERVICE, path = %remote, held, "resuming an upload session");
            }
            (session, state)
        }
        None => (String::new(), SessionState::Gone),
    };
    let mut reader = ChunkReader::<P::Digest>::open(
        P::SERVICE,
        remote,
        &request.local_path,
        size,
        provider.chunk_size(),
    )
    .await?;
    loop {
        let offset = match state {
            SessionState::Finished(finished) => {
                let (digest, checksum) = reader.finish(transfer).await?;
                return Ok((finished, digest, checksum));
            }
            SessionState::Gone => {
                // None yet, or expired between chunks: a new session, from the first byte.
                session = provider.open_session(request).await?;
                save_session(provider.access(), transfer, P::SERVICE, &session, size, 0).await?;
                reader.restart();
                0
            }
            SessionState::Next(offset) => offset,
        };
        let body = reader.chunk_at(offset, transfer).await?;
        state = provider.send_chunk(&session, request, offset, body).await?;
        if let SessionState::Next(held) = state {
            save_session(
                provider.access(),
                transfer,
                P::SERVICE,
                &session,
                size,
                held,
            )
            .await?;
        }
    }
}
