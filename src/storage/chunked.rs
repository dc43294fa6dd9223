//! What chunked, resumable uploads (Google Drive sessions, OneDrive upload sessions) share:
//! reading the file from wherever the provider says its copy ends, hashing every byte exactly
//! once, in order, whether it is sent now or the provider holds it from an earlier attempt (so
//! the digests at the end cover the whole file); and keeping the session in the job's resume
//! record, sealed.

use std::io::SeekFrom;
use std::path::Path;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use zeroize::Zeroizing;

use super::cloud::CloudAccess;
use super::json_api::JsonApi;
use super::{BackendKind, Checksum, ChecksumHasher, Operation, RemotePath, StorageError, Transfer};

/// The digest a provider keeps for a file (MD5 for Drive, QuickXorHash for OneDrive).
pub trait ProviderDigest: Default {
    fn absorb(&mut self, bytes: &[u8]);
}

impl ProviderDigest for md5::Md5 {
    fn absorb(&mut self, bytes: &[u8]) {
        md5::Digest::update(self, bytes);
    }
}

pub struct ChunkReader<'a, D: ProviderDigest> {
    service: BackendKind,
    remote: &'a RemotePath,
    file: tokio::fs::File,
    size: u64,
    buffer: Vec<u8>,
    /// Bytes of the file hashed so far, from the start.
    hashed: u64,
    digest: D,
    sha: ChecksumHasher,
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
            .map_err(|error| StorageError::from_io(service, Operation::Upload, remote, &error))?;
        Ok(ChunkReader {
            service,
            remote,
            file,
            size,
            buffer: vec![0u8; chunk as usize],
            hashed: 0,
            digest: D::default(),
            sha: ChecksumHasher::default(),
        })
    }

    fn io(&self, error: std::io::Error) -> StorageError {
        StorageError::from_io(self.service, Operation::Upload, self.remote, &error)
    }

    /// The session was replaced: everything goes again, from the first byte.
    pub fn restart(&mut self) {
        self.hashed = 0;
        self.digest = D::default();
        self.sha = ChecksumHasher::default();
    }

    /// The chunk starting at `offset`, where the provider's copy ends. Bytes before `offset`
    /// not hashed yet (held from an earlier attempt) are hashed from disk and counted as
    /// resumed; bytes of this chunk not hashed yet count against the transfer (progress,
    /// bandwidth, pause and cancel).
    pub async fn chunk_at(
        &mut self,
        offset: u64,
        transfer: &dyn Transfer,
    ) -> Result<Bytes, StorageError> {
        if offset > self.hashed {
            self.file
                .seek(SeekFrom::Start(self.hashed))
                .await
                .map_err(|error| self.io(error))?;
            let mut remaining = offset - self.hashed;
            while remaining > 0 {
                let take = remaining.min(self.buffer.len() as u64) as usize;
                if let Err(error) = self.file.read_exact(&mut self.buffer[..take]).await {
                    return Err(self.io(error));
                }
                self.digest.absorb(&self.buffer[..take]);
                self.sha.update(&self.buffer[..take]);
                remaining -= take as u64;
            }
            transfer.resumed(offset - self.hashed).await;
            self.hashed = offset;
        }
        let length = self
            .size
            .saturating_sub(offset)
            .min(self.buffer.len() as u64);
        self.file
            .seek(SeekFrom::Start(offset))
            .await
            .map_err(|error| self.io(error))?;
        if let Err(error) = self
            .file
            .read_exact(&mut self.buffer[..length as usize])
            .await
        {
            return Err(self.io(error));
        }
        if offset + length > self.hashed {
            let fresh = &self.buffer[(self.hashed - offset) as usize..length as usize];
            self.digest.absorb(fresh);
            self.sha.update(fresh);
            transfer.advance(fresh.len() as u64).await?;
            self.hashed = offset + length;
        }
        Ok(Bytes::copy_from_slice(&self.buffer[..length as usize]))
    }

    /// The provider's digest and Offload's SHA-256 of the whole file.
    pub fn finish(self) -> (D, Checksum) {
        (self.digest, self.sha.finish())
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
                let (digest, checksum) = reader.finish();
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
