//! S3-compatible storage (AWS S3, Cloudflare R2, Backblaze B2, Wasabi, MinIO, Garage) on
//! `aws-sdk-s3`.
//!
//! Uploads below the multipart threshold go up in one PUT carrying a digest the server checks and
//! Offload's SHA-256 as metadata. Larger files go up in parts, a few at a time, with memory
//! bounded by the parts in flight; the upload id and each acknowledged part are kept in the job's
//! resume record, so an interrupted upload continues with the same upload id and sends only what
//! the server lacks (ListParts, checked against the digest of the local bytes). Every part
//! carries a digest the server checks before it keeps the part: CRC32C where the service is known
//! to check it, Content-MD5 elsewhere ([`PartCheck`]). The file is read, hashed (its SHA-256 and
//! each part's digest, in one pass) on the blocking pool; the finished object is checked by its
//! size, its multipart ETag and, with CRC32C, its composite CRC32C.

mod plan;
mod presign;
pub mod providers;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use zeroize::Zeroizing;

pub use plan::{
    PartPlan, TooLarge, DEFAULT_CONCURRENCY, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE,
    MAX_PARTS, MIN_PART_SIZE,
};
pub use providers::{Preset, Provider};

use super::{
    records, BackendKind, Checksum, ChecksumHasher, ConnectionReport, ErrorKind, Field, FieldError,
    Fix, ListPage, ListedObject, ObjectMeta, Operation, RemotePath, StorageBackend, StorageError,
    StoredObject, StreamTarget, Transfer, UploadRequest,
};

/// Presigned URLs live at most 7 days (SigV4's limit).
pub const MAX_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_URL_LIFETIME: Duration = Duration::from_secs(3600);
/// The metadata key that carries Offload's SHA-256 of a single-PUT object.
const SHA256_METADATA: &str = "offload-sha256";
/// Tries of one part before the whole attempt fails (the SDK retries each request too).
const PART_TRIES: u32 = 3;

fn default_part_size() -> u64 {
    DEFAULT_PART_SIZE
}
fn default_threshold() -> u64 {
    DEFAULT_MULTIPART_THRESHOLD
}
fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}
fn default_url_lifetime() -> u64 {
    DEFAULT_URL_LIFETIME.as_secs()
}

/// A backend's settings as stored, the secret access key sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Config {
    pub provider: Provider,
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    /// Sealed (`v1:…`) in the database; see `backends`.
    pub secret_access_key: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub public_url: Option<String>,
    pub path_style: bool,
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    #[serde(default = "default_threshold")]
    pub multipart_threshold: u64,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_url_lifetime")]
    pub url_lifetime_secs: u64,
}

/// What a person gives to add an S3 backend; [`S3Config::new`] fills in the provider's defaults.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub provider: Provider,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: String,
    pub access_key_id: String,
    pub prefix: Option<String>,
    pub public_url: Option<String>,
    pub path_style: bool,
}

impl S3Config {
    /// A configuration from what a person typed, with the provider's defaults filled in.
    pub fn new(options: S3Options) -> Result<S3Config, FieldError> {
        let S3Options {
            provider,
            endpoint,
            region,
            bucket,
            access_key_id,
            prefix,
            public_url,
            path_style,
        } = options;
        let quirks = provider.quirks();
        let region = region
            .or_else(|| quirks.default_region.map(str::to_owned))
            .ok_or_else(|| {
                FieldError::new(
                    Field::Region,
                    format!("{provider} needs a region (for example us-west-004)"),
                )
            })?;
        let endpoint = match endpoint {
            Some(endpoint) => Some(endpoint.trim_end_matches('/').to_owned()),
            None => match quirks.endpoint_template {
                Some(template) if !template.contains("{account}") => {
                    Some(template.replace("{region}", &region))
                }
                _ => {
                    return Err(FieldError::new(
                        Field::Endpoint,
                        format!("{provider} needs an endpoint (the URL of your S3 service)"),
                    ))
                }
            },
        };
        if let Some(endpoint) = &endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(FieldError::new(
                    Field::Endpoint,
                    format!("the endpoint {endpoint:?} must start with https:// (or http:// for a local server)"),
                ));
            }
        }
        if bucket.is_empty() {
            return Err(FieldError::new(Field::Bucket, "a bucket is required"));
        }
        Ok(S3Config {
            provider,
            endpoint,
            region,
            bucket,
            access_key_id,
            secret_access_key: String::new(),
            prefix: prefix.unwrap_or_default().trim_matches('/').to_owned(),
            public_url: public_url.map(|url| url.trim_end_matches('/').to_owned()),
            path_style: path_style || quirks.path_style,
            part_size: DEFAULT_PART_SIZE,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            concurrency: DEFAULT_CONCURRENCY,
            url_lifetime_secs: DEFAULT_URL_LIFETIME.as_secs(),
        })
    }

    pub fn location(&self) -> String {
        let endpoint = self.endpoint.as_deref().unwrap_or("aws");
        if self.prefix.is_empty() {
            format!("{endpoint}/{}", self.bucket)
        } else {
            format!("{endpoint}/{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A finished part, and its buffer when it can be reused.
type PartResult = Result<(DonePart, Option<Vec<u8>>), StorageError>;

/// The resume record of a multipart upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct S3Resume {
    upload_id: String,
    key: String,
    size: u64,
    part_size: u64,
    /// How the upload's parts are checked; records written before CRC32C say nothing (MD5).
    #[serde(default)]
    check: PartCheck,
    /// Parts the server acknowledged: number, size, ETag and the digest of the bytes sent.
    parts: Vec<DonePart>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DonePart {
    number: u64,
    size: u64,
    etag: String,
    #[serde(alias = "md5")]
    digest: String,
}

/// The digest the server checks on each body before it keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PartCheck {
    /// Content-MD5: every S3 service checks it.
    #[default]
    Md5,
    /// `x-amz-checksum-crc32c`, on a multipart upload created with that algorithm: computed by
    /// the CPU's CRC instructions at a small fraction of MD5's cost. 32 bits where MD5 has 128,
    /// which still catches every burst of up to 32 flipped bits and misses random damage once in
    /// 4 billion parts; the object is then checked end to end by its composite CRC32C and ETag.
    Crc32c,
}

impl PartCheck {
    fn digest(self, bytes: &[u8]) -> PartDigest {
        match self {
            PartCheck::Md5 => PartDigest::Md5(Md5::digest(bytes).into()),
            PartCheck::Crc32c => PartDigest::Crc32c(crc32c(bytes)),
        }
    }
}

/// One body's digest, as its request carries it.
#[derive(Debug, Clone, Copy)]
enum PartDigest {
    Md5([u8; 16]),
    Crc32c(u32),
}

impl PartDigest {
    /// As the resume record keeps it and the server lists it: an MD5 in hex (a part's ETag), a
    /// CRC32C in base64 (its header).
    fn text(self) -> String {
        match self {
            PartDigest::Md5(md5) => hex::encode(md5),
            PartDigest::Crc32c(crc) => BASE64.encode(crc.to_be_bytes()),
        }
    }
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// A part as ListParts reports it.
struct ServerPart {
    etag: String,
    size: u64,
    crc32c: Option<String>,
}

impl ServerPart {
    /// Whether the server already holds exactly these bytes as this part.
    fn holds(&self, check: PartCheck, digest: &str, size: u64) -> bool {
        self.size == size
            && match check {
                PartCheck::Md5 => self.etag == digest,
                PartCheck::Crc32c => self.crc32c.as_deref() == Some(digest),
            }
    }
}

/// Reads a file's parts in order on the blocking pool, hashing each in the same pass (the whole
/// file's SHA-256 and the part's digest), so no async thread reads or hashes.
struct PartReader {
    file: std::fs::File,
    hasher: ChecksumHasher,
    check: PartCheck,
}

impl PartReader {
    /// Reads the next part into `buffer`, as a task of its own.
    fn read(
        mut self,
        mut buffer: Vec<u8>,
        len: usize,
    ) -> tokio::task::JoinHandle<std::io::Result<(PartReader, Vec<u8>, PartDigest)>> {
        tokio::task::spawn_blocking(move || {
            buffer.resize(len, 0);
            std::io::Read::read_exact(&mut self.file, &mut buffer)?;
            self.hasher.update(&buffer);
            let digest = self.check.digest(&buffer);
            Ok((self, buffer, digest))
        })
    }

    /// The file's SHA-256, and whether it ended where the plan said (it may have grown).
    async fn finish(mut self) -> std::io::Result<(bool, Checksum)> {
        blocking(move || {
            let mut rest = [0u8; 1];
            let ended = std::io::Read::read(&mut self.file, &mut rest)? == 0;
            Ok((ended, self.hasher.finish()))
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

#[derive(Clone)]
pub struct S3Backend {
    client: Client,
    config: Arc<S3Config>,
    presigner: Arc<presign::Presigner>,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.config.location())
            .finish_non_exhaustive()
    }
}

impl S3Backend {
    /// `secret_access_key` is the opened secret; `config.secret_access_key` (sealed) is ignored.
    pub fn new(config: &S3Config, secret_access_key: &Zeroizing<String>) -> S3Backend {
        let credentials = Credentials::new(
            &config.access_key_id,
            secret_access_key.as_str(),
            None,
            None,
            "offload",
        );
        let quirks = config.provider.quirks();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(Duration::from_secs(120))
                    .build(),
            );
        if quirks.checksums_when_required {
            builder = builder
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        S3Backend {
            client: Client::from_conf(builder.build()),
            config: Arc::new(config.clone()),
            presigner: Arc::new(presign::Presigner::new(config, secret_access_key)),
        }
    }

    fn key(&self, remote: &RemotePath) -> String {
        self.prefixed(remote.as_str())
    }

    /// The key of `relative` under the prefix.
    fn prefixed(&self, relative: &str) -> String {
        if self.config.prefix.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.config.prefix)
        }
    }

    /// Records a verified multipart upload's SHA-256 beside it, in a zero-byte object whose key
    /// says the path, the hash and the ETag the hash holds for ([`records::nested_key`]):
    /// listings return keys but not metadata, so this is how a scan from any computer knows
    /// which objects Offload uploaded and their hashes, without a request per object. The upload
    /// stands without it: a failure is logged.
    async fn record(&self, remote: &RemotePath, etag: &str, checksum: &Checksum) {
        let key = self.prefixed(&records::nested_key(remote, checksum, etag));
        let put = self
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .body(ByteStream::from_static(b""))
            .send()
            .await;
        if let Err(error) = put {
            let error = self.classify(error, Operation::Upload, remote);
            tracing::warn!("the upload's SHA-256 is not recorded beside it: {error}");
        }
    }

    /// The records of `remote` ([`S3::record`]), to delete with it.
    async fn records_of(&self, remote: &RemotePath) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.config.bucket)
                .prefix(self.prefixed(&records::nested_prefix(remote)))
                .set_continuation_token(cursor)
                .send()
                .await
                .map_err(|error| self.classify(error, Operation::Delete, remote))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            cursor = page
                .next_continuation_token()
                .filter(|_| page.is_truncated() == Some(true))
                .map(str::to_owned);
            if cursor.is_none() {
                return Ok(keys);
            }
        }
    }

    /// How this service's bodies are checked on arrival.
    fn part_check(&self) -> PartCheck {
        if self.config.provider.quirks().validates_crc32c {
            PartCheck::Crc32c
        } else {
            PartCheck::Md5
        }
    }

    fn plan(&self, size: u64) -> Result<PartPlan, TooLarge> {
        PartPlan::new(size, self.config.part_size)
    }

    async fn put_single(
        &self,
        request: &UploadRequest,
        transfer: &dyn Transfer,
        key: &str,
    ) -> Result<StoredObject, StorageError> {
        let remote = &request.remote_path;
        let io = |error: std::io::Error| {
            StorageError::from_io(BackendKind::S3, Operation::Upload, remote, &error)
        };
        let local = request.local_path.clone();
        let check = self.part_check();
        let (body, checksum, digest) = blocking(move || {
            let body = std::fs::read(local)?;
            let mut hasher = ChecksumHasher::default();
            hasher.update(&body);
            let digest = check.digest(&body);
            Ok((body, hasher.finish(), digest))
        })
        .await
        .map_err(io)?;
        if body.len() as u64 != request.size {
            return Err(source_changed(remote, request.size, body.len() as u64));
        }
        let sha_hex = checksum.as_str().trim_start_matches("sha256:").to_owned();
        let put = self
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type(&request.content_type)
            .metadata(SHA256_METADATA, sha_hex);
        // The server checks the digest of the body before it stores anything.
        let put = match digest {
            PartDigest::Md5(md5) => put.content_md5(BASE64.encode(md5)),
            PartDigest::Crc32c(_) => put.checksum_crc32_c(digest.text()),
        };
        let answer = put
            .body(ByteStream::from(body))
            .customize()
            // The signed digest header already binds the body to the signature; hashing the
            // body a second time for SigV4 only costs CPU.
            .disable_payload_signing()
            .send()
            .await
            .map_err(|error| self.classify(error, Operation::Upload, remote))?;
        transfer.advance(request.size).await?;
        // A checked CRC32C confirms what was stored. After Content-MD5, an ETag equal to the MD5
        // does (encrypted buckets answer otherwise, and the queue then asks with HEAD).
        let etag = answer.e_tag().map(unquote);
        let verified = match digest {
            PartDigest::Crc32c(_) => true,
            PartDigest::Md5(md5) => etag == Some(hex::encode(md5)),
        };
        Ok(StoredObject {
            size: request.size,
            checksum,
            verified,
            id: None,
            tag: etag.as_deref().map(quote),
        })
    }

    /// The parts the server holds for an upload, or `None` when the upload is gone.
    async fn server_parts(
        &self,
        key: &str,
        upload_id: &str,
        remote: &RemotePath,
    ) -> Result<Option<HashMap<u64, ServerPart>>, StorageError> {
        let mut parts = HashMap::new();
        let mut marker: Option<String> = None;
        loop {
            let answer = self
                .client
                .list_parts()
                .bucket(&self.config.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(error)
                    if error.code() == Some("NoSuchUpload")
                        || error
                            .raw_response()
                            .is_some_and(|raw| raw.status().as_u16() == 404) =>
                {
                    return Ok(None)
                }
                Err(error) => return Err(self.classify(error, Operation::Upload, remote)),
            };
            for part in answer.parts() {
                if let (Some(number), Some(etag)) = (part.part_number(), part.e_tag()) {
                    parts.insert(
                        number as u64,
                        ServerPart {
                            etag: unquote(etag),
                            size: part.size().unwrap_or(0) as u64,
                            crc32c: part.checksum_crc32_c().map(str::to_owned),
                        },
                    );
                }
            }
            match (answer.is_truncated(), answer.next_part_number_marker()) {
                (Some(true), Some(next)) => marker = Some(next.to_owned()),
                _ => return Ok(Some(parts)),
            }
        }
    }

    /// The resume record to continue with: the previous one if the server still has its upload
    /// and it matches this file, with its parts narrowed to those the server confirms.
    async fn resumable(
        &self,
        request: &UploadRequest,
        key: &str,
        plan: &PartPlan,
    ) -> Result<Option<(S3Resume, HashMap<u64, ServerPart>)>, StorageError> {
        let Some(previous) = request
            .resume
            .clone()
            .and_then(|value| serde_json::from_value::<S3Resume>(value).ok())
        else {
            return Ok(None);
        };
        if previous.key != key || previous.size != plan.size || previous.part_size != plan.part_size
        {
            let _ = self.abort(&previous).await;
            return Ok(None);
        }
        match self
            .server_parts(key, &previous.upload_id, &request.remote_path)
            .await?
        {
            Some(server) => {
                let mut record = previous;
                record.parts.retain(|part| {
                    server
                        .get(&part.number)
                        .is_some_and(|held| held.etag == part.etag && held.size == part.size)
                });
                tracing::info!(key, upload_id = %record.upload_id, parts = server.len(), "resuming a multipart upload");
                Ok(Some((record, server)))
            }
            None => {
                tracing::info!(
                    key,
                    "the unfinished multipart upload is gone on the server; starting over"
                );
                Ok(None)
            }
        }
    }

    async fn abort(&self, record: &S3Resume) -> Result<(), StorageError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.config.bucket)
            .key(&record.key)
            .upload_id(&record.upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("NoSuchUpload") => Ok(()),
            Err(error) => Err(self.classify(error, Operation::Upload, &record.key)),
        }
    }

    async fn put_multipart(
        &self,
        request: &UploadRequest,
        transfer: &dyn Transfer,
        key: &str,
    ) -> Result<StoredObject, StorageError> {
        let remote = &request.remote_path;
        let plan = self.plan(request.size).map_err(|error| {
            StorageError::new(
                BackendKind::S3,
                Operation::Upload,
                ErrorKind::Config,
                remote,
                error.to_string(),
            )
        })?;
        let (mut record, server) = match self.resumable(request, key, &plan).await? {
            Some(found) => found,
            None => {
                let check = self.part_check();
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.config.bucket)
                    .key(key)
                    .content_type(&request.content_type)
                    .set_checksum_algorithm(
                        (check == PartCheck::Crc32c).then_some(ChecksumAlgorithm::Crc32C),
                    )
                    .send()
                    .await
                    .map_err(|error| self.classify(error, Operation::Upload, remote))?;
                let upload_id = created.upload_id().ok_or_else(|| {
                    StorageError::new(
                        BackendKind::S3,
                        Operation::Upload,
                        ErrorKind::Other,
                        remote,
                        "the server started a multipart upload without an id",
                    )
                })?;
                (
                    S3Resume {
                        upload_id: upload_id.to_owned(),
                        key: key.to_owned(),
                        size: plan.size,
                        part_size: plan.part_size,
                        check,
                        parts: Vec::new(),
                    },
                    HashMap::new(),
                )
            }
        };
        save(transfer, &record).await?;

        let io = |error: std::io::Error| {
            StorageError::from_io(BackendKind::S3, Operation::Upload, remote, &error)
        };
        let check = record.check;
        let file = tokio::fs::File::open(&request.local_path)
            .await
            .map_err(io)?
            .into_std()
            .await;
        let reader = PartReader {
            file,
            hasher: ChecksumHasher::default(),
            check,
        };
        let mut in_flight: JoinSet<PartResult> = JoinSet::new();
        let concurrency = self.config.concurrency.max(1);
        // Part buffers come back from finished uploads and are reused: memory stays at
        // `concurrency` parts and the one read ahead, however large the file, and the allocator
        // is not asked for (and does not hold on to) a fresh 10 MiB block per part.
        let mut spare: Vec<Vec<u8>> = Vec::with_capacity(concurrency + 1);
        let part_len = |number| plan.range(number).1 as usize;
        // The next part is read and hashed while the parts in flight are sent, so a request
        // that ends finds its successor ready.
        let mut reading = reader.read(Vec::new(), part_len(1));
        let mut last_reader = None;
        for number in 1..=plan.parts {
            let (_, len) = plan.range(number);
            while in_flight.len() >= concurrency {
                self.part_finished(&mut in_flight, &mut record, transfer, remote, &mut spare)
                    .await?;
            }
            let (reader, buffer, digest) = (&mut reading)
                .await
                .map_err(std::io::Error::other)
                .and_then(|read| read)
                .map_err(|error| match error.kind() {
                    std::io::ErrorKind::UnexpectedEof => source_changed(remote, plan.size, 0),
                    _ => io(error),
                })?;
            if number < plan.parts {
                reading = reader.read(spare.pop().unwrap_or_default(), part_len(number + 1));
            } else {
                last_reader = Some(reader);
            }
            // A part the server already holds with exactly these bytes is not sent again.
            if let Some(held) = server
                .get(&number)
                .filter(|held| held.holds(check, &digest.text(), len))
            {
                if !record.parts.iter().any(|part| part.number == number) {
                    record.parts.push(DonePart {
                        number,
                        size: len,
                        etag: held.etag.clone(),
                        digest: digest.text(),
                    });
                }
                transfer.resumed(len).await;
                spare.push(buffer);
                continue;
            }
            let backend = self.clone();
            let key = key.to_owned();
            let upload_id = record.upload_id.clone();
            let remote = remote.clone();
            let body = Bytes::from(buffer);
            in_flight.spawn(async move {
                backend
                    .upload_part(&key, &upload_id, number, body, digest, &remote)
                    .await
            });
        }
        let Some(reader) = last_reader else {
            unreachable!("a multipart upload has at least one part")
        };
        let (ended, checksum) = reader.finish().await.map_err(io)?;
        if !ended {
            return Err(source_changed(remote, plan.size, plan.size + 1));
        }
        while !in_flight.is_empty() {
            self.part_finished(&mut in_flight, &mut record, transfer, remote, &mut spare)
                .await?;
        }

        record.parts.sort_by_key(|part| part.number);
        let completed: Vec<CompletedPart> = record
            .parts
            .iter()
            .map(|part| {
                CompletedPart::builder()
                    .part_number(part.number as i32)
                    .e_tag(quote(&part.etag))
                    .set_checksum_crc32_c((check == PartCheck::Crc32c).then(|| part.digest.clone()))
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.config.bucket)
            .key(key)
            .upload_id(&record.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|error| self.classify(error, Operation::Upload, remote))?;

        let head = self
            .client
            .head_object()
            .bucket(&self.config.bucket)
            .key(key)
            .set_checksum_mode((check == PartCheck::Crc32c).then_some(ChecksumMode::Enabled))
            .send()
            .await
            .map_err(|error| self.classify(error, Operation::Verify, remote))?;
        let size = head.content_length().unwrap_or(-1);
        if size != plan.size as i64 {
            return Err(StorageError::new(
                BackendKind::S3,
                Operation::Verify,
                ErrorKind::Integrity,
                remote,
                format!("the server assembled {size} bytes of {}", plan.size),
            ));
        }
        let integrity = |complaint: String| {
            StorageError::new(
                BackendKind::S3,
                Operation::Verify,
                ErrorKind::Integrity,
                remote,
                complaint,
            )
        };
        // The parts' ETags were each confirmed for the bytes sent (by the digest the server
        // checked), so the object's must be the MD5 of theirs: it was assembled from exactly them.
        let etag = head.e_tag().map(unquote);
        if let (Some(etag), Some(expected)) = (&etag, multipart_etag(&record.parts)) {
            // Providers that follow S3 report MD5-of-MD5s; anything else cannot be compared.
            if etag.contains('-') && *etag != expected {
                return Err(integrity(format!(
                    "the server's ETag {etag} does not match the parts sent ({expected})"
                )));
            }
        }
        // The composite CRC32C the upload was created for, "…-N" (AWS, Garage). A server that
        // answers another kind (moto gives one that is neither the composite nor the whole
        // object's) cannot be compared; its parts and ETag were.
        let found = head.checksum_crc32_c().filter(|found| found.contains('-'));
        if let (PartCheck::Crc32c, Some(found)) = (check, found) {
            let expected = composite_crc32c(&record.parts)
                .map(|composite| format!("{composite}-{}", record.parts.len()));
            if Some(found) != expected.as_deref() {
                return Err(integrity(format!(
                    "the server's CRC32C of the object ({found}) does not match the parts sent"
                )));
            }
        }
        Ok(StoredObject {
            size: plan.size,
            checksum,
            verified: true,
            id: None,
            tag: etag.as_deref().map(quote),
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u64,
        body: Bytes,
        digest: PartDigest,
        remote: &RemotePath,
    ) -> PartResult {
        let mut tries = 0;
        loop {
            tries += 1;
            let request = self
                .client
                .upload_part()
                .bucket(&self.config.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number as i32)
                .content_length(body.len() as i64);
            let request = match digest {
                PartDigest::Md5(md5) => request.content_md5(BASE64.encode(md5)),
                PartDigest::Crc32c(_) => request.checksum_crc32_c(digest.text()),
            };
            let answer = request
                .body(ByteStream::from(body.clone()))
                .customize()
                .disable_payload_signing()
                .send()
                .await;
            match answer {
                Ok(answer) => {
                    let etag = answer.e_tag().map(unquote);
                    let etag = match (digest, etag) {
                        (PartDigest::Md5(_), Some(etag)) => etag,
                        (PartDigest::Md5(md5), None) => hex::encode(md5),
                        (PartDigest::Crc32c(_), etag) => {
                            confirm_crc32c(answer.checksum_crc32_c(), digest, etag, &body, remote)
                                .await?
                        }
                    };
                    let part = DonePart {
                        number,
                        size: body.len() as u64,
                        etag,
                        digest: digest.text(),
                    };
                    // Every clone the request held is gone now, so the buffer can be handed back.
                    return Ok((part, body.try_into_mut().ok().map(Vec::from)));
                }
                Err(error) => {
                    let error = self.classify(error, Operation::Upload, remote);
                    if !error.is_temporary() || tries >= PART_TRIES {
                        return Err(error);
                    }
                    tracing::debug!(part = number, tries, %error, "retrying a part");
                    tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(tries))).await;
                }
            }
        }
    }

    async fn part_finished(
        &self,
        in_flight: &mut JoinSet<PartResult>,
        record: &mut S3Resume,
        transfer: &dyn Transfer,
        remote: &RemotePath,
        spare: &mut Vec<Vec<u8>>,
    ) -> Result<(), StorageError> {
        let Some(joined) = in_flight.join_next().await else {
            return Ok(());
        };
        let part = joined.map_err(|error| {
            StorageError::new(
                BackendKind::S3,
                Operation::Upload,
                ErrorKind::Other,
                remote,
                format!("a part upload task failed: {error}"),
            )
        })??;
        let (part, buffer) = part;
        spare.extend(buffer);
        let size = part.size;
        record.parts.push(part);
        save(transfer, record).await?;
        transfer.advance(size).await
    }
}

async fn save(transfer: &dyn Transfer, record: &S3Resume) -> Result<(), StorageError> {
    transfer
        .save_resume(serde_json::to_value(record).unwrap_or_default())
        .await
}

/// The ETag S3 gives a multipart object: MD5 of the parts' MD5s (their ETags), a dash, the part
/// count; `None` when a part's ETag is not an MD5 (an encrypted bucket's).
fn multipart_etag(parts: &[DonePart]) -> Option<String> {
    let mut outer = Md5::new();
    for part in parts {
        let md5: [u8; 16] = hex::decode(&part.etag).ok()?.try_into().ok()?;
        outer.update(md5);
    }
    Some(format!("{}-{}", hex::encode(outer.finalize()), parts.len()))
}

/// The composite CRC32C S3 gives an object uploaded in CRC32C-checked parts: the CRC32C of the
/// parts' CRC32Cs, in base64 (the server adds a dash and the part count).
fn composite_crc32c(parts: &[DonePart]) -> Option<String> {
    let mut joined = Vec::with_capacity(parts.len() * 4);
    for part in parts {
        joined.extend(BASE64.decode(&part.digest).ok()?);
    }
    Some(BASE64.encode(crc32c(&joined).to_be_bytes()))
}

/// A part's ETag, once the server has shown it checked the part's CRC32C: it answers with the
/// same CRC32C. A server that answers none may not have checked it, so the part must then have
/// the ETag that is the MD5 of the bytes sent (hashed now, off the async threads).
async fn confirm_crc32c(
    answered: Option<&str>,
    sent: PartDigest,
    etag: Option<String>,
    body: &Bytes,
    remote: &RemotePath,
) -> Result<String, StorageError> {
    let integrity = |complaint: &str| {
        StorageError::new(
            BackendKind::S3,
            Operation::Upload,
            ErrorKind::Integrity,
            remote,
            complaint,
        )
    };
    match answered {
        Some(answered) if answered != sent.text() => Err(integrity(
            "the server's CRC32C of a part does not match the bytes sent",
        )),
        Some(_) => etag.ok_or_else(|| integrity("the server accepted a part without an ETag")),
        None => {
            let body = body.clone();
            let md5 = blocking(move || Ok(hex::encode(Md5::digest(&body))))
                .await
                .map_err(|error| {
                    StorageError::from_io(BackendKind::S3, Operation::Upload, remote, &error)
                })?;
            match etag {
                Some(etag) if etag == md5 => Ok(etag),
                _ => Err(integrity(
                    "the server confirmed neither the CRC32C nor the MD5 of a part",
                )),
            }
        }
    }
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

fn quote(etag: &str) -> String {
    format!("\"{etag}\"")
}

fn source_changed(remote: &RemotePath, expected: u64, found: u64) -> StorageError {
    StorageError::new(
        BackendKind::S3,
        Operation::Upload,
        ErrorKind::SourceChanged,
        remote,
        format!("the file changed while it was read ({expected} bytes expected, {found} found)"),
    )
}

impl S3Backend {
    /// Turns an SDK failure into a typed error that says, in a sentence, what to fix.
    fn classify<E>(
        &self,
        error: SdkError<E, HttpResponse>,
        operation: Operation,
        target: &impl std::fmt::Display,
    ) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (kind, message, fix) = self.describe(&error);
        let mut storage = StorageError::new(BackendKind::S3, operation, kind, target, message);
        if let Some(fix) = fix {
            storage = storage.fix(fix);
        }
        if kind == ErrorKind::RateLimited {
            storage.retry_after = Some(Duration::from_secs(5));
        }
        storage
    }

    /// The endpoint's host (and port), for sentences about reaching it.
    fn host(&self) -> String {
        let endpoint = self.config.endpoint.as_deref().unwrap_or_default();
        match reqwest::Url::parse(endpoint) {
            Ok(url) => super::network::host_of(Some(&url)),
            Err(_) => "the S3 server".to_owned(),
        }
    }

    /// What went wrong, in a sentence, and which setting would fix it where that is clear.
    fn describe<E>(&self, error: &SdkError<E, HttpResponse>) -> (ErrorKind, String, Option<Fix>)
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        const WRONG_SECRET: &str =
            "the secret access key is wrong (the server rejected the signature): enter it again";
        const UNKNOWN_KEY: &str =
            "the access key id is not known to the server: check the access key id";
        let change = |field| Some(Fix::Change(field));
        let raw = match error {
            SdkError::ServiceError(service) => Some(service.raw()),
            SdkError::ResponseError(response) => Some(response.raw()),
            _ => None,
        };
        let Some(raw) = raw else {
            return match error {
                SdkError::TimeoutError(_) => (
                    ErrorKind::Temporary,
                    format!(
                        "{} did not answer in time: check this computer's network and the endpoint",
                        self.host()
                    ),
                    None,
                ),
                SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
                    Some(connector) => {
                        let found = super::network::unreachable(
                            &self.host(),
                            connector,
                            failure.is_timeout(),
                        );
                        let fix = found.check_address.then_some(Fix::Change(Field::Endpoint));
                        (found.kind, found.message, fix)
                    }
                    None => (
                        ErrorKind::Temporary,
                        format!(
                            "{} cannot be reached: {}",
                            self.host(),
                            super::network::chain(error)
                        ),
                        None,
                    ),
                },
                _ => (ErrorKind::Other, super::network::chain(error), None),
            };
        };
        let status = raw.status().as_u16();
        if let SdkError::ResponseError(_) = error {
            return (
                ErrorKind::Temporary,
                format!(
                    "the answer from {} ({status}) was cut off or could not be read",
                    self.host()
                ),
                None,
            );
        }
        // A signed request made with a wrong clock is refused, in each server's own words
        // (AWS RequestTimeTooSkewed, Garage "Date is too old"…); the server's Date says why.
        // Worth retrying: a computer that just woke often sets its clock moments later.
        if (400..500).contains(&status) {
            if let Some(skew) =
                super::network::clock_skew(raw.headers().get("date"), std::time::SystemTime::now())
            {
                return (ErrorKind::Temporary, skew, Some(Fix::SetClock));
            }
        }
        let code = error.code();
        let server_message = error.message().unwrap_or_default();
        // What the server said, for errors that have no sentence of their own.
        let said = format!(
            "it answered {}",
            super::network::said(status, code.unwrap_or_default(), server_message)
        );
        let lower = server_message.to_ascii_lowercase();
        match code {
            Some("NoSuchBucket") => {
                return (
                    ErrorKind::Config,
                    "the bucket does not exist: check its name, or create it first".into(),
                    change(Field::Bucket),
                )
            }
            Some("InvalidAccessKeyId") => {
                return (ErrorKind::Unauthenticated, UNKNOWN_KEY.into(), change(Field::AccessKeyId))
            }
            Some("SignatureDoesNotMatch") => {
                return (
                    ErrorKind::Unauthenticated,
                    WRONG_SECRET.into(),
                    change(Field::SecretAccessKey),
                )
            }
            Some("RequestTimeTooSkewed") => {
                return (
                    ErrorKind::Temporary,
                    "this computer's clock is too far from the server's: set the clock (turn on automatic date and time), then try again".into(),
                    Some(Fix::SetClock),
                )
            }
            // Some servers (Garage among them) answer every credential problem with
            // AccessDenied and say which in the message.
            Some("AccessDenied") if lower.contains("signature") => {
                return (
                    ErrorKind::Unauthenticated,
                    WRONG_SECRET.into(),
                    change(Field::SecretAccessKey),
                )
            }
            Some("AccessDenied") if lower.contains("no such key") || lower.contains("access key") => {
                return (ErrorKind::Unauthenticated, UNKNOWN_KEY.into(), change(Field::AccessKeyId))
            }
            Some("AccessDenied") => {
                return (
                    ErrorKind::PermissionDenied,
                    format!("access denied: the key may not do this in this bucket; check its permissions ({said})"),
                    None,
                )
            }
            Some("NoSuchKey") | Some("NotFound") => {
                return (ErrorKind::NotFound, "no such object".into(), None)
            }
            // Another upload of the same name finished first (Garage then drops older uploads of
            // that key), or a cleanup removed it: the next attempt finds it gone and starts over.
            Some("NoSuchUpload") => {
                return (
                    ErrorKind::Temporary,
                    "the server dropped this upload in parts (another upload of the same name \
                     finished first, or a cleanup removed it); it starts over"
                        .into(),
                    None,
                )
            }
            Some("SlowDown") | Some("TooManyRequests") => {
                return (ErrorKind::RateLimited, "the server asked to slow down".into(), None)
            }
            Some("EntityTooLarge") | Some("QuotaExceeded") => {
                return (
                    ErrorKind::NoSpace,
                    "the bucket is full or over its quota".into(),
                    Some(Fix::FreeSpace),
                )
            }
            Some("BadDigest") | Some("InvalidDigest") => {
                return (
                    ErrorKind::Integrity,
                    "the bytes arrived damaged (Content-MD5 mismatch)".into(),
                    None,
                )
            }
            _ => {}
        }
        match (status, code) {
            // A HEAD answer has no body to say why; credentials are the usual reason.
            (401 | 403, None) => (
                ErrorKind::Unauthenticated,
                format!("the server refused the credentials ({said})"),
                change(Field::AccessKeyId),
            ),
            (401 | 403, Some(_)) => (
                ErrorKind::Unauthenticated,
                format!("the server refused the request: {said}"),
                None,
            ),
            (404, _) => (ErrorKind::NotFound, "not found".into(), None),
            (429 | 503, _) => (
                ErrorKind::RateLimited,
                format!("the server is busy ({said})"),
                None,
            ),
            (500..=599, _) => (
                ErrorKind::Temporary,
                format!("the server failed ({said})"),
                None,
            ),
            _ => (
                ErrorKind::Other,
                format!("the server refused the request: {said}"),
                None,
            ),
        }
    }
}

#[async_trait]
impl StorageBackend for S3Backend {
    fn kind(&self) -> BackendKind {
        BackendKind::S3
    }

    async fn upload(
        &self,
        request: &UploadRequest,
        transfer: &dyn Transfer,
    ) -> Result<StoredObject, StorageError> {
        let key = self.key(&request.remote_path);
        if request.size < self.config.multipart_threshold.max(MIN_PART_SIZE) {
            if let Some(previous) = request
                .resume
                .clone()
                .and_then(|value| serde_json::from_value::<S3Resume>(value).ok())
            {
                let _ = self.abort(&previous).await;
            }
            // The hash travels in the object's metadata. A record beside it as well would
            // double the requests of small files (measured: 1,000 × 1 MiB took 7% longer).
            return self.put_single(request, transfer, &key).await;
        }
        let stored = self.put_multipart(request, transfer, &key).await?;
        if let Some(etag) = stored.tag.as_deref().map(unquote) {
            self.record(&request.remote_path, &etag, &stored.checksum)
                .await;
        }
        Ok(stored)
    }

    async fn sweep_abandoned(
        &self,
        keep: &[serde_json::Value],
        ours: &[RemotePath],
        started_before: std::time::SystemTime,
    ) -> Result<usize, StorageError> {
        let kept: std::collections::HashSet<String> = keep
            .iter()
            .filter_map(|value| serde_json::from_value::<S3Resume>(value.clone()).ok())
            .map(|record| record.upload_id)
            .collect();
        let keys: std::collections::HashSet<String> =
            ours.iter().map(|remote| self.key(remote)).collect();
        let mut abandoned = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.config.bucket)
                .set_prefix(
                    (!self.config.prefix.is_empty()).then(|| format!("{}/", self.config.prefix)),
                )
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|error| self.classify(error, Operation::Delete, &self.config.bucket))?;
            for upload in page.uploads() {
                let initiated = upload
                    .initiated()
                    .and_then(|time| std::time::SystemTime::try_from(*time).ok());
                let old_enough = initiated.is_none_or(|time| time < started_before);
                if let (Some(key), Some(id), true) = (upload.key(), upload.upload_id(), old_enough)
                {
                    if keys.contains(key) && !kept.contains(id) {
                        abandoned.push(S3Resume {
                            upload_id: id.to_owned(),
                            key: key.to_owned(),
                            size: 0,
                            part_size: 0,
                            check: PartCheck::default(),
                            parts: Vec::new(),
                        });
                    }
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
        }
        for record in &abandoned {
            self.abort(record).await?;
            tracing::info!(key = %record.key, upload_id = %record.upload_id, "aborted an unfinished upload no job owns");
        }
        Ok(abandoned.len())
    }

    async fn abandon(&self, resume: &serde_json::Value) -> Result<(), StorageError> {
        match serde_json::from_value::<S3Resume>(resume.clone()) {
            Ok(record) => self.abort(&record).await,
            Err(_) => Ok(()),
        }
    }

    async fn stat(&self, remote: &RemotePath) -> Result<Option<ObjectMeta>, StorageError> {
        let answer = self
            .client
            .head_object()
            .bucket(&self.config.bucket)
            .key(self.key(remote))
            .send()
            .await;
        match answer {
            Ok(head) => Ok(Some(ObjectMeta {
                size: head.content_length().unwrap_or(0).max(0) as u64,
                checksum: head
                    .metadata()
                    .and_then(|metadata| metadata.get(SHA256_METADATA))
                    .and_then(|hex| Checksum::parse(&format!("sha256:{hex}"))),
                modified: head
                    .last_modified()
                    .and_then(|time| std::time::SystemTime::try_from(*time).ok()),
            })),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(self.classify(error, Operation::Stat, remote)),
        }
    }

    async fn delete(&self, remote: &RemotePath) -> Result<(), StorageError> {
        let records = self.records_of(remote).await?;
        for key in std::iter::once(self.key(remote)).chain(records) {
            self.client
                .delete_object()
                .bucket(&self.config.bucket)
                .key(key)
                .send()
                .await
                .map_err(|error| self.classify(error, Operation::Delete, remote))?;
        }
        Ok(())
    }

    async fn stream_target(
        &self,
        remote: &RemotePath,
        lifetime: Duration,
    ) -> Result<StreamTarget, StorageError> {
        let lifetime = lifetime.clamp(Duration::from_secs(1), MAX_URL_LIFETIME);
        let key = self.key(remote);
        if let Some(public) = &self.config.public_url {
            return Ok(StreamTarget::Redirect {
                url: format!("{public}/{}", super::path::percent_encode_path(&key)),
                expires_in: MAX_URL_LIFETIME,
            });
        }
        Ok(StreamTarget::Redirect {
            url: self
                .presigner
                .presign_get(&key, lifetime, std::time::SystemTime::now()),
            expires_in: lifetime,
        })
    }

    /// `ListObjectsV2` under the prefix, 1,000 keys a page: a listing carries each key's size
    /// and ETag, so nothing is fetched per object.
    async fn list(&self, cursor: Option<&str>) -> Result<ListPage, StorageError> {
        let prefix = (!self.config.prefix.is_empty()).then(|| format!("{}/", self.config.prefix));
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.config.bucket)
            .set_prefix(prefix.clone())
            .set_continuation_token(cursor.map(str::to_owned))
            .send()
            .await
            .map_err(|error| self.classify(error, Operation::List, &self.config.bucket))?;
        let (mut objects, mut records) = (Vec::new(), Vec::new());
        for object in page.contents() {
            let Some(relative) = object
                .key()
                .and_then(|key| key.strip_prefix(prefix.as_deref().unwrap_or("")))
            else {
                continue;
            };
            if records::is_ours(relative) {
                records.extend(records::parse_nested(relative));
            } else {
                objects.extend(RemotePath::exact(relative).map(|path| ListedObject {
                    path,
                    size: object.size().unwrap_or(0).max(0) as u64,
                    tag: object.e_tag().unwrap_or_default().to_owned(),
                    id: None,
                    checksum: None,
                }));
            }
        }
        Ok(ListPage {
            objects,
            folders: Vec::new(),
            records,
            next: page
                .next_continuation_token()
                .filter(|_| page.is_truncated() == Some(true))
                .map(str::to_owned),
        })
    }

    async fn download(&self, remote: &RemotePath, local: &Path) -> Result<u64, StorageError> {
        let answer = self
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(self.key(remote))
            .send()
            .await
            .map_err(|error| self.classify(error, Operation::Download, remote))?;
        super::save_download(
            BackendKind::S3,
            remote,
            local,
            answer.body.into_async_read(),
        )
        .await
    }

    async fn test_connection(&self) -> ConnectionReport {
        let mut report = ConnectionReport::default();
        let bucket = &self.config.bucket;
        let probe = format!(".offload-probe-{}", uuid::Uuid::new_v4().simple());
        // A listing rather than HeadBucket: a HEAD answer has no body, so it cannot say whether
        // the key, the secret, the clock or the bucket is wrong.
        match self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(1)
            .send()
            .await
        {
            Ok(_) => {
                report.pass(
                    "bucket",
                    format!(
                        "{} is reachable and the bucket {bucket} exists",
                        self.config.endpoint.as_deref().unwrap_or("AWS")
                    ),
                );
                report.pass("list", "Offload may list the bucket");
            }
            Err(error) => {
                let error = self.classify(error, Operation::TestConnection, bucket);
                let permission_only = error.kind == ErrorKind::PermissionDenied;
                report.failed(if permission_only { "list" } else { "bucket" }, error);
                if !permission_only {
                    return report;
                }
            }
        }
        let key = if self.config.prefix.is_empty() {
            probe.clone()
        } else {
            format!("{}/{probe}", self.config.prefix)
        };
        let put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from_static(b"offload"))
            .send()
            .await;
        match put {
            Ok(_) => {
                report.pass("write", "Offload may write to the bucket");
                if let Err(error) = self
                    .client
                    .delete_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                {
                    report.failed(
                        "delete",
                        self.classify(error, Operation::TestConnection, &probe),
                    );
                } else {
                    report.pass("delete", "Offload may delete what it wrote");
                }
            }
            Err(error) => report.failed(
                "write",
                self.classify(error, Operation::TestConnection, &probe),
            ),
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_matches_s3s_rule() {
        // Two parts whose MD5s are known: the ETag is MD5 of their concatenation, then "-2".
        let a: [u8; 16] = Md5::digest(b"a").into();
        let b: [u8; 16] = Md5::digest(b"b").into();
        let mut both = Vec::new();
        both.extend_from_slice(&a);
        both.extend_from_slice(&b);
        let part = |number, md5: [u8; 16]| DonePart {
            number,
            size: 1,
            etag: hex::encode(md5),
            digest: hex::encode(md5),
        };
        assert_eq!(
            multipart_etag(&[part(1, a), part(2, b)]),
            Some(format!("{}-2", hex::encode(Md5::digest(&both))))
        );
        // An encrypted bucket's part ETags are not MD5s: nothing to compare.
        let mut other = part(1, a);
        other.etag = "not-an-md5".into();
        assert_eq!(multipart_etag(&[other]), None);
    }

    #[test]
    fn records_from_before_crc32c_resume_with_md5() {
        let old = serde_json::json!({
            "upload_id": "u", "key": "k", "size": 20, "part_size": 10,
            "parts": [{"number": 1, "size": 10, "etag": "e", "md5": "d"}]
        });
        let record: S3Resume = serde_json::from_value(old).unwrap();
        assert_eq!(record.check, PartCheck::Md5);
        assert_eq!(record.parts[0].digest, "d");
    }

    #[test]
    fn presets_fill_in_endpoint_and_region() {
        let options = |provider| S3Options {
            provider,
            bucket: "b".into(),
            access_key_id: "id".into(),
            ..S3Options::default()
        };
        let aws = S3Config::new(S3Options {
            region: Some("eu-west-1".into()),
            ..options(Provider::Aws)
        })
        .unwrap();
        assert_eq!(
            aws.endpoint.as_deref(),
            Some("https://s3.eu-west-1.amazonaws.com")
        );
        assert!(!aws.path_style);
        let r2 = S3Config::new(S3Options {
            endpoint: Some("https://acct.r2.cloudflarestorage.com".into()),
            ..options(Provider::R2)
        })
        .unwrap();
        assert_eq!(r2.region, "auto");
        assert!(
            S3Config::new(options(Provider::R2)).is_err(),
            "R2 needs its account endpoint"
        );
        assert_eq!(
            S3Config::new(options(Provider::B2)).unwrap_err().field,
            Field::Region
        );
        let garage = S3Config::new(S3Options {
            endpoint: Some("http://127.0.0.1:3900/".into()),
            prefix: Some("/media/".into()),
            ..options(Provider::Garage)
        })
        .unwrap();
        assert_eq!(
            (
                garage.endpoint.as_deref(),
                garage.region.as_str(),
                garage.path_style,
                garage.prefix.as_str()
            ),
            (Some("http://127.0.0.1:3900"), "garage", true, "media")
        );
        assert!(S3Config::new(S3Options {
            endpoint: Some("minio:9000".into()),
            ..options(Provider::Minio)
        })
        .is_err());
    }

    #[test]
    fn public_url_segments_are_encoded() {
        assert_eq!(
            crate::storage::path::percent_encode_path("Show Name S01E02 (1).mkv"),
            "Show%20Name%20S01E02%20%281%29.mkv"
        );
    }
}
