//! Google Drive (API v3), through resumable upload sessions.
//!
//! Remote paths become folders under the backend's folder (created as needed, their ids cached).
//! Limits and rules, from "Upload file data" (developers.google.com/drive/api/guides/manage-uploads)
//! and the Files reference:
//! - a resumable session starts with `POST /upload/drive/v3/files?uploadType=resumable` (or
//!   `PATCH …/files/{id}` to replace a file's content) and its URI comes back in `Location`;
//! - chunks are multiples of 256 KiB except the last ([`CHUNK_MULTIPLE`]); a `308` answer's
//!   `Range: bytes=0-N` says what the server holds, and what it does not hold is sent again;
//! - `PUT` with `Content-Range: bytes */size` and no body asks where a session stands; a `404`
//!   means the session expired (they live about a week) and the upload starts over;
//! - the finished file's `md5Checksum` must equal the MD5 Offload computed while reading;
//! - downloads (`alt=media`) need the `Authorization` header, so players cannot be redirected:
//!   the stream server proxies with the token and passes `Range` through;
//! - `429`, `5xx`, and `403` with reason `rateLimitExceeded`/`userRateLimitExceeded` are
//!   temporary; `Retry-After` is honoured.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use md5::{Digest, Md5};
use serde::Deserialize;

use super::chunked::{self, SessionProtocol, SessionState};
use super::cloud::{CloudAccess, CloudConfig};
use super::folder_walk::FolderWalk;
use super::json_api::JsonApi;
use super::{
    BackendKind, ChangePoint, Checksum, ConnectionReport, ErrorKind, FeedItem, FeedPage, Field,
    Fix, ListPage, ObjectMeta, Operation, RemotePath, StorageBackend, StorageError, StoredObject,
    StreamTarget, Transfer, UploadRequest,
};

/// Chunks must be multiples of this, except the last.
pub const CHUNK_MULTIPLE: u64 = 256 * 1024;
/// 8 MiB (32 × 256 KiB): large enough to keep a connection busy, small enough that an
/// interrupted chunk costs little to send again.
pub const DEFAULT_CHUNK: u64 = 32 * CHUNK_MULTIPLE;
const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
const FILE_FIELDS: &str = "id,name,size,md5Checksum,mimeType,modifiedTime";
/// What a listing asks of each child.
const LIST_FIELDS: &str =
    "nextPageToken,files(id,name,size,md5Checksum,mimeType,modifiedTime,appProperties)";
/// The app properties Offload records an upload's SHA-256 in, with the MD5 of the same bytes.
const SHA256_PROPERTY: &str = "offloadSha256";
const MD5_PROPERTY: &str = "offloadMd5";
/// What the changes feed says of each file: enough to place it without asking again.
const CHANGE_FIELDS: &str = "nextPageToken,newStartPageToken,\
     changes(fileId,removed,file(id,name,size,md5Checksum,mimeType,modifiedTime,parents,trashed,\
     appProperties))";

#[derive(Debug)]
pub struct GoogleDrive {
    access: CloudAccess,
    api: String,
    root: String,
    chunk: u64,
    /// Folder ids by remote folder path ("" is the root).
    folders: Mutex<HashMap<String, String>>,
    /// Held while a folder missing from `folders` is looked up and created: Drive keeps any number
    /// of folders of one name side by side, so two uploads into a new folder at once would each
    /// create one and split the folder's files between them.
    creating: tokio::sync::Mutex<()>,
    /// File ids of recently streamed paths: a player sends a request per seek, and looking the
    /// file up again each time would add a round trip to Drive to every seek.
    streamed: Mutex<HashMap<String, (String, std::time::Instant)>>,
}

/// How long a streamed file's id is reused without asking Drive again.
const STREAM_ID_LIFETIME: Duration = Duration::from_secs(60);

/// A file as Drive describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DriveFile {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    md5_checksum: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    modified_time: Option<String>,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    trashed: bool,
    /// Properties only the app that set them sees: Offload's record of the bytes it uploaded.
    #[serde(default)]
    app_properties: HashMap<String, String>,
}

impl DriveFile {
    fn size(&self) -> u64 {
        self.size
            .as_deref()
            .and_then(|size| size.parse().ok())
            .unwrap_or(0)
    }

    /// The SHA-256 Offload recorded with the file, if the content is still the one it was
    /// recorded for (another app replacing the content keeps the properties, not the MD5).
    fn offload_checksum(&self) -> Option<Checksum> {
        let props = &self.app_properties;
        let sha = props.get(SHA256_PROPERTY)?;
        (props.get(MD5_PROPERTY) == self.md5_checksum.as_ref())
            .then(|| Checksum::parse(sha))
            .flatten()
    }

    /// What tells this content from another: Drive's MD5 of it, else when it was written.
    fn tag(&self) -> String {
        self.md5_checksum
            .clone()
            .or_else(|| self.modified_time.clone())
            .unwrap_or_else(|| self.id.clone())
    }
}

/// One entry of the changes feed (`changes.list`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DriveChange {
    file_id: String,
    #[serde(default)]
    removed: bool,
    #[serde(default)]
    file: Option<DriveFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeList {
    #[serde(default)]
    changes: Vec<DriveChange>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    new_start_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartPageToken {
    start_page_token: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileList {
    files: Vec<DriveFile>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// A value inside single quotes of a Drive query.
fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

impl GoogleDrive {
    pub fn new(config: &CloudConfig, access: CloudAccess) -> GoogleDrive {
        GoogleDrive {
            access,
            api: config.client.api_base.clone(),
            root: config.folder_id.clone().unwrap_or_else(|| "root".into()),
            chunk: DEFAULT_CHUNK,
            folders: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            streamed: Mutex::new(HashMap::new()),
        }
    }

    /// Chunks of `bytes`, rounded down to the 256 KiB multiple Drive requires (at least one).
    pub fn with_chunk_size(mut self, bytes: u64) -> GoogleDrive {
        self.chunk = (bytes / CHUNK_MULTIPLE).max(1) * CHUNK_MULTIPLE;
        self
    }

    /// Records the verified upload's SHA-256 with the file (see [`SHA256_PROPERTY`]), so that a
    /// scan from any computer knows it. The upload stands without it: a failure is logged.
    async fn record_checksum(&self, id: &str, checksum: &Checksum, md5: &str) {
        let url = format!("{}/drive/v3/files/{id}", self.api);
        let body = serde_json::json!({ "appProperties": {
            SHA256_PROPERTY: checksum.as_str(), MD5_PROPERTY: md5 } });
        let sent = self
            .send(Operation::Upload, &id, |http, token| {
                http.patch(&url)
                    .bearer_auth(token)
                    .query(&[("fields", "id")])
                    .json(&body)
            })
            .await;
        self.settle_record(&id, sent).await;
    }

    /// The children of `parent` named `name` (not in the trash).
    async fn find(
        &self,
        operation: Operation,
        parent: &str,
        name: &str,
    ) -> Result<Option<DriveFile>, StorageError> {
        let query = format!(
            "name = '{}' and '{}' in parents and trashed = false",
            quoted(name),
            quoted(parent)
        );
        let url = format!("{}/drive/v3/files", self.api);
        let answer = self
            .send(operation, &name, |http, token| {
                http.get(&url).bearer_auth(token).query(&[
                    ("q", query.as_str()),
                    (
                        "fields",
                        "files(id,name,size,md5Checksum,mimeType,modifiedTime)",
                    ),
                    ("spaces", "drive"),
                ])
            })
            .await?;
        let list: FileList = self.json(operation, &name, answer).await?;
        Ok(list.files.into_iter().next())
    }

    /// The id of the folder holding `remote`, created on the way when `create`.
    async fn parent_of(
        &self,
        operation: Operation,
        remote: &RemotePath,
        create: bool,
    ) -> Result<Option<String>, StorageError> {
        let segments: Vec<&str> = remote.segments().collect();
        let mut id = self.root.clone();
        let mut path = String::new();
        let mut creating = None;
        for segment in &segments[..segments.len().saturating_sub(1)] {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(segment);
            if let Some(cached) = self.lock_folders().get(&path) {
                id = cached.clone();
                continue;
            }
            if create && creating.is_none() {
                // Another upload may have created it while this one waited.
                creating = Some(self.creating.lock().await);
                if let Some(cached) = self.lock_folders().get(&path) {
                    id = cached.clone();
                    continue;
                }
            }
            let found = match self.find(operation, &id, segment).await? {
                Some(folder) if folder.mime_type.as_deref() == Some(FOLDER_MIME) => folder.id,
                Some(_) => {
                    return Err(self.error(
                        operation,
                        ErrorKind::InvalidName,
                        remote,
                        format!("{path:?} is a file in Google Drive, not a folder"),
                    ))
                }
                None if create => self.create_folder(operation, &id, segment).await?,
                None => return Ok(None),
            };
            self.lock_folders().insert(path.clone(), found.clone());
            id = found;
        }
        Ok(Some(id))
    }

    async fn create_folder(
        &self,
        operation: Operation,
        parent: &str,
        name: &str,
    ) -> Result<String, StorageError> {
        let url = format!("{}/drive/v3/files", self.api);
        let metadata =
            serde_json::json!({ "name": name, "mimeType": FOLDER_MIME, "parents": [parent] });
        let answer = self
            .send(operation, &name, |http, token| {
                http.post(&url)
                    .bearer_auth(token)
                    .query(&[("fields", "id")])
                    .json(&metadata)
            })
            .await?;
        let folder: DriveFile = self.json(operation, &name, answer).await?;
        Ok(folder.id)
    }

    fn lock_streamed(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (String, std::time::Instant)>> {
        self.streamed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_folders(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.folders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn file_of(
        &self,
        operation: Operation,
        remote: &RemotePath,
    ) -> Result<Option<DriveFile>, StorageError> {
        match self.parent_of(operation, remote, false).await? {
            Some(parent) => self.find(operation, &parent, remote.file_name()).await,
            None => Ok(None),
        }
    }

    /// The file at `remote`, which must be there.
    async fn existing_file(
        &self,
        operation: Operation,
        remote: &RemotePath,
    ) -> Result<DriveFile, StorageError> {
        self.file_of(operation, remote).await?.ok_or_else(|| {
            self.error(
                operation,
                ErrorKind::NotFound,
                remote,
                "the file is not in Google Drive",
            )
        })
    }

    /// Opens a session for `request`: a new file, or new content for the file already there.
    async fn create_session(&self, request: &UploadRequest) -> Result<String, StorageError> {
        let remote = &request.remote_path;
        let operation = Operation::Upload;
        let parent = self
            .parent_of(operation, remote, true)
            .await?
            .unwrap_or_else(|| self.root.clone());
        let existing = self.find(operation, &parent, remote.file_name()).await?;
        let answer = self
            .send(operation, remote, |http, token| {
                let builder = match &existing {
                    Some(file) => http
                        .patch(format!("{}/upload/drive/v3/files/{}", self.api, file.id))
                        .json(&serde_json::json!({})),
                    None => http
                        .post(format!("{}/upload/drive/v3/files", self.api))
                        .json(
                            &serde_json::json!({ "name": remote.file_name(), "parents": [parent] }),
                        ),
                };
                builder
                    .bearer_auth(token)
                    .query(&[("uploadType", "resumable"), ("fields", FILE_FIELDS)])
                    .header("X-Upload-Content-Type", &request.content_type)
                    .header("X-Upload-Content-Length", request.size)
            })
            .await?;
        if !answer.status().is_success() {
            return Err(self.failure(operation, remote, answer).await);
        }
        answer
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                self.error(
                    operation,
                    ErrorKind::Other,
                    remote,
                    "Google Drive opened no upload session (no Location header)",
                )
            })
    }

    /// Reads a `200`/`201` (finished) or `308` (holds some bytes) answer of a session.
    async fn session_answer(
        &self,
        remote: &RemotePath,
        answer: reqwest::Response,
    ) -> Result<SessionState<DriveFile>, StorageError> {
        match answer.status().as_u16() {
            200 | 201 => Ok(SessionState::Finished(
                self.json(Operation::Upload, remote, answer).await?,
            )),
            308 => {
                // `Range: bytes=0-N`; absent when nothing has arrived yet.
                let held = answer
                    .headers()
                    .get(reqwest::header::RANGE)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("bytes=0-"))
                    .and_then(|last| last.parse::<u64>().ok())
                    .map_or(0, |last| last + 1);
                Ok(SessionState::Next(held))
            }
            404 | 410 => Ok(SessionState::Gone),
            _ => Err(self.failure(Operation::Upload, remote, answer).await),
        }
    }
}

#[async_trait]
impl SessionProtocol for GoogleDrive {
    type Digest = Md5;
    type Finished = DriveFile;

    fn chunk_size(&self) -> u64 {
        self.chunk
    }

    async fn open_session(&self, request: &UploadRequest) -> Result<String, StorageError> {
        self.create_session(request).await
    }

    /// `PUT` with `Content-Range: bytes */size` and no body.
    async fn session_status(
        &self,
        session: &str,
        request: &UploadRequest,
    ) -> Result<SessionState<DriveFile>, StorageError> {
        let size = request.size;
        let answer = self
            .send(Operation::Upload, &request.remote_path, |http, token| {
                http.put(session)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_LENGTH, 0)
                    .header(reqwest::header::CONTENT_RANGE, format!("bytes */{size}"))
            })
            .await?;
        self.session_answer(&request.remote_path, answer).await
    }

    async fn send_chunk(
        &self,
        session: &str,
        request: &UploadRequest,
        offset: u64,
        body: bytes::Bytes,
    ) -> Result<SessionState<DriveFile>, StorageError> {
        let (size, length) = (request.size, body.len() as u64);
        let range = if size == 0 {
            "bytes */0".to_owned()
        } else {
            format!("bytes {offset}-{}/{size}", offset + length - 1)
        };
        let answer = self
            .send(Operation::Upload, &request.remote_path, |http, token| {
                http.put(session)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_RANGE, &range)
                    .header(reqwest::header::CONTENT_LENGTH, length)
                    .body(body.clone())
            })
            .await?;
        self.session_answer(&request.remote_path, answer).await
    }
}

impl JsonApi for GoogleDrive {
    const SERVICE: BackendKind = BackendKind::GoogleDrive;

    fn access(&self) -> &CloudAccess {
        &self.access
    }

    /// Drive's errors: `{"error": {"errors": [{"reason": …}], "message": …}}`.
    fn classify(status: u16, body: &serde_json::Value) -> (ErrorKind, String) {
        let reason = body["error"]["errors"][0]["reason"]
            .as_str()
            .unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        let kind = match (status, reason) {
            (429, _) | (403, "rateLimitExceeded" | "userRateLimitExceeded") => {
                ErrorKind::RateLimited
            }
            (403, "storageQuotaExceeded" | "quotaExceeded") => ErrorKind::NoSpace,
            (401, _) => ErrorKind::Unauthenticated,
            (403, _) => ErrorKind::PermissionDenied,
            (404, _) => ErrorKind::NotFound,
            (500..=599, _) => ErrorKind::Temporary,
            _ => ErrorKind::Other,
        };
        let hint = match kind {
            ErrorKind::NoSpace => "; the Drive is full: free space or pick another backend",
            ErrorKind::PermissionDenied => {
                "; Offload may only touch files it created (scope drive.file): check the folder id"
            }
            _ => "",
        };
        (
            kind,
            format!(
                "Google Drive answered {}{hint}",
                super::network::said(status, reason, message)
            ),
        )
    }
}

#[async_trait]
impl StorageBackend for GoogleDrive {
    fn kind(&self) -> BackendKind {
        BackendKind::GoogleDrive
    }

    async fn upload(
        &self,
        request: &UploadRequest,
        transfer: &dyn Transfer,
    ) -> Result<StoredObject, StorageError> {
        let remote = &request.remote_path;
        let size = request.size;
        let (finished, md5, checksum) =
            chunked::upload_in_sessions(self, request, transfer).await?;
        let stored_size = finished
            .size
            .as_deref()
            .and_then(|text| text.parse::<u64>().ok());
        let md5 = hex::encode(md5.finalize());
        if stored_size != Some(size) || finished.md5_checksum.as_deref() != Some(md5.as_str()) {
            return Err(self.error(
                Operation::Verify,
                ErrorKind::Integrity,
                remote,
                format!(
                    "Google Drive holds {} bytes with MD5 {}, but {size} bytes with MD5 {md5} were sent",
                    stored_size.map_or("?".into(), |size| size.to_string()),
                    finished.md5_checksum.as_deref().unwrap_or("?")
                ),
            ));
        }
        self.record_checksum(&finished.id, &checksum, &md5).await;
        Ok(StoredObject {
            size,
            checksum,
            verified: true,
            id: Some(finished.id),
            tag: Some(md5),
        })
    }

    async fn stat(&self, remote: &RemotePath) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self
            .file_of(Operation::Stat, remote)
            .await?
            .map(|file| ObjectMeta {
                size: file
                    .size
                    .as_deref()
                    .and_then(|size| size.parse().ok())
                    .unwrap_or(0),
                checksum: None,
                modified: file
                    .modified_time
                    .as_deref()
                    .and_then(|time| chrono::DateTime::parse_from_rfc3339(time).ok())
                    .map(std::time::SystemTime::from),
            }))
    }

    async fn abandon(&self, resume: &serde_json::Value) -> Result<(), StorageError> {
        let Some(session) = chunked::saved_session(&self.access, Some(resume), None) else {
            return Ok(());
        };
        // Cancelling a session is a DELETE to its URI; an unknown session is already gone.
        let _ = self
            .send(Operation::Delete, &"upload session", |http, token| {
                http.delete(session.as_str()).bearer_auth(token)
            })
            .await;
        Ok(())
    }

    async fn delete(&self, remote: &RemotePath) -> Result<(), StorageError> {
        self.lock_streamed().remove(remote.as_str());
        let Some(file) = self.file_of(Operation::Delete, remote).await? else {
            return Ok(());
        };
        self.delete_at(&format!("{}/drive/v3/files/{}", self.api, file.id), remote)
            .await
    }

    async fn stream_target(
        &self,
        remote: &RemotePath,
        _lifetime: Duration,
    ) -> Result<StreamTarget, StorageError> {
        let cached = self
            .lock_streamed()
            .get(remote.as_str())
            .filter(|(_, at)| at.elapsed() < STREAM_ID_LIFETIME)
            .map(|(id, _)| id.clone());
        let id = match cached {
            Some(id) => id,
            None => {
                let id = self
                    .existing_file(Operation::StreamTarget, remote)
                    .await?
                    .id;
                self.lock_streamed().insert(
                    remote.as_str().to_owned(),
                    (id.clone(), std::time::Instant::now()),
                );
                id
            }
        };
        let token = self
            .access
            .bearer(
                BackendKind::GoogleDrive,
                Operation::StreamTarget,
                remote,
                false,
            )
            .await?;
        Ok(StreamTarget::Proxy {
            url: format!("{}/drive/v3/files/{id}?alt=media", self.api),
            headers: vec![(
                "Authorization".to_owned(),
                format!("Bearer {}", token.as_str()),
            )],
        })
    }

    /// The backend's folder and its subfolders, one `files.list` page (up to 1,000 children of one
    /// folder) per call, depth first by the cursor. Under the `drive.file` scope Drive shows only
    /// the files Offload's OAuth client created, from any computer: what the Drive website or
    /// another tool put there is not listed.
    async fn list(&self, cursor: Option<&str>) -> Result<ListPage, StorageError> {
        let mut walk = FolderWalk::resume(BackendKind::GoogleDrive, cursor, &self.root)?;
        let Some((folder, path)) = walk.folder() else {
            return Ok(ListPage::default());
        };
        let query = format!("'{}' in parents and trashed = false", quoted(&folder));
        let url = format!("{}/drive/v3/files", self.api);
        let token = walk.page().map(str::to_owned);
        let answer = self
            .send(Operation::List, &path, |http, bearer| {
                let mut request = http.get(&url).bearer_auth(bearer).query(&[
                    ("q", query.as_str()),
                    ("fields", LIST_FIELDS),
                    ("pageSize", "1000"),
                    ("spaces", "drive"),
                ]);
                if let Some(token) = &token {
                    request = request.query(&[("pageToken", token.as_str())]);
                }
                request
            })
            .await?;
        let list: FileList = self.json(Operation::List, &path, answer).await?;
        for file in list.files {
            let Some(name) = file.name.clone() else {
                continue;
            };
            if file.mime_type.as_deref() == Some(FOLDER_MIME) {
                walk.subfolder(file.id.clone(), file.id, &name);
            } else {
                let (size, tag, checksum) = (file.size(), file.tag(), file.offload_checksum());
                walk.file(file.id, &name, size, tag, checksum);
            }
        }
        Ok(walk.finish(list.next_page_token))
    }

    /// Drive's `changes.getStartPageToken`, and the id of the backend's folder (`root` is an
    /// alias the feed never uses: it names the real id).
    async fn change_point(&self) -> Result<Option<ChangePoint>, StorageError> {
        let url = format!("{}/drive/v3/changes/startPageToken", self.api);
        let answer = self
            .send(Operation::List, &"changes", |http, bearer| {
                http.get(&url).bearer_auth(bearer)
            })
            .await?;
        let start: StartPageToken = self.json(Operation::List, &"changes", answer).await?;
        let url = format!("{}/drive/v3/files/{}", self.api, self.root);
        let answer = self
            .send(Operation::List, &"changes", |http, bearer| {
                http.get(&url)
                    .bearer_auth(bearer)
                    .query(&[("fields", "id")])
            })
            .await?;
        let root: DriveFile = self.json(Operation::List, &self.root, answer).await?;
        Ok(Some(ChangePoint {
            point: start.start_page_token,
            root: root.id,
        }))
    }

    /// `changes.list` from `since`: under `drive.file` it names only files Offload can see, so a
    /// file put there by another app is not in it, as it is not in a listing.
    async fn changes(&self, since: &str) -> Result<FeedPage, StorageError> {
        let url = format!("{}/drive/v3/changes", self.api);
        let answer = self
            .send(Operation::List, &"changes", |http, bearer| {
                http.get(&url).bearer_auth(bearer).query(&[
                    ("pageToken", since),
                    ("pageSize", "1000"),
                    ("spaces", "drive"),
                    ("includeRemoved", "true"),
                    ("fields", CHANGE_FIELDS),
                ])
            })
            .await?;
        // A page token Drive no longer knows is answered as an invalid value or not found.
        let list: ChangeList = self.feed_page(answer, &[400, 404, 410]).await?;
        let items = list
            .changes
            .into_iter()
            .map(|change| match change.file {
                Some(file) if !change.removed && !file.trashed => {
                    let parent = file.parents.first().cloned().unwrap_or_default();
                    let name = file.name.clone().unwrap_or_default();
                    if file.mime_type.as_deref() == Some(FOLDER_MIME) {
                        FeedItem::Folder {
                            id: file.id,
                            parent,
                            name,
                        }
                    } else {
                        FeedItem::File {
                            size: file.size(),
                            tag: file.tag(),
                            checksum: file.offload_checksum(),
                            id: file.id,
                            parent,
                            name,
                        }
                    }
                }
                _ => FeedItem::Gone { id: change.file_id },
            })
            .collect();
        Ok(FeedPage {
            items,
            next: list.next_page_token,
            point: list.new_start_page_token,
        })
    }

    async fn download(&self, remote: &RemotePath, local: &Path) -> Result<u64, StorageError> {
        let file = self.existing_file(Operation::Download, remote).await?;
        let url = format!("{}/drive/v3/files/{}", self.api, file.id);
        let answer = self
            .send(Operation::Download, remote, |http, token| {
                http.get(&url).bearer_auth(token).query(&[("alt", "media")])
            })
            .await?;
        self.save_answer(remote, local, answer).await
    }

    async fn test_connection(&self) -> ConnectionReport {
        let mut report = ConnectionReport::default();
        let url = format!("{}/drive/v3/about", self.api);
        let about = self
            .send(Operation::TestConnection, &"account", |http, token| {
                http.get(&url)
                    .bearer_auth(token)
                    .query(&[("fields", "user,storageQuota")])
            })
            .await;
        match about {
            Ok(answer) if answer.status().is_success() => {
                let body: serde_json::Value = answer.json().await.unwrap_or_default();
                report.pass(
                    "account",
                    body["user"]["emailAddress"]
                        .as_str()
                        .unwrap_or("signed in")
                        .to_owned(),
                );
                let quota = &body["storageQuota"];
                let number = |key: &str| quota[key].as_str().and_then(|v| v.parse::<u64>().ok());
                match (number("limit"), number("usage")) {
                    (Some(limit), Some(usage)) => report.pass(
                        "space",
                        format!("{} GiB free", limit.saturating_sub(usage) / (1 << 30)),
                    ),
                    _ => report.pass("space", "no limit"),
                }
            }
            Ok(answer) => {
                let error = self
                    .failure(Operation::TestConnection, &"account", answer)
                    .await;
                report.failed("account", error);
                return report;
            }
            Err(error) => {
                report.failed("account", error);
                return report;
            }
        }
        if self.root != "root" {
            let url = format!("{}/drive/v3/files/{}", self.api, self.root);
            match self
                .send(Operation::TestConnection, &"folder", |http, token| {
                    http.get(&url)
                        .bearer_auth(token)
                        .query(&[("fields", "id,mimeType")])
                })
                .await
            {
                Ok(answer) if answer.status().is_success() => {
                    report.pass("folder", format!("folder {} is reachable", self.root))
                }
                Ok(_) | Err(_) => report.fail(
                    "folder",
                    format!(
                        "folder {} cannot be reached; check the folder id",
                        self.root
                    ),
                    Some(Fix::Change(Field::FolderId)),
                ),
            }
        }
        report
    }
}
