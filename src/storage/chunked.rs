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

use super::{BackendKind, Checksum, ChecksumHasher, Operation, RemotePath, StorageError, Transfer};
use crate::oauth::Authorizer;
use crate::secrets::SealContext;

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

fn session_context(auth: &Authorizer) -> SealContext<'static> {
    SealContext {
        table: "storage_backends",
        record: auth.backend_id(),
        field: "resume.session_url",
    }
}

/// Saves `session` in the job's resume record, sealed.
pub async fn save_session(
    auth: &Authorizer,
    transfer: &dyn Transfer,
    service: BackendKind,
    session: &str,
    size: u64,
    confirmed: u64,
) -> Result<(), StorageError> {
    let sealer = auth.vault().sealer().map_err(|error| {
        StorageError::new(
            service,
            Operation::Upload,
            super::ErrorKind::Config,
            "upload session",
            error.to_string(),
        )
    })?;
    let record = SessionRecord {
        session: sealer.seal_str(session, session_context(auth)),
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
    auth: &Authorizer,
    resume: Option<&serde_json::Value>,
    size: Option<u64>,
) -> Option<Zeroizing<String>> {
    let record = serde_json::from_value::<SessionRecord>(resume?.clone()).ok()?;
    if size.is_some_and(|size| size != record.size) {
        return None;
    }
    auth.vault()
        .sealer()
        .ok()?
        .open_string(&record.session, session_context(auth))
        .ok()
}
