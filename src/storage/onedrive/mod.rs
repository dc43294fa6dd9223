//! OneDrive (Microsoft Graph v1.0), through upload sessions.
//!
//! Remote paths are addressed by path under the backend's folder (`/me/drive/items/{id}:/path:`)
//! or the drive's root; Graph creates the folders on the way. Limits and rules, from "Upload
//! large files with an upload session" and the driveItem reference:
//! - files up to [`SIMPLE_UPLOAD_LIMIT`] go in one `PUT …:/content`; larger ones through
//!   `POST …:/createUploadSession`, which answers an `uploadUrl`;
//! - fragments are multiples of 320 KiB ([`FRAGMENT_MULTIPLE`]) except the last, and under
//!   60 MiB; each `PUT` to the `uploadUrl` carries **no** `Authorization` header (the URL is the
//!   credential, and Graph may refuse a request that has one);
//! - `202 Accepted` answers carry `nextExpectedRanges`; a `GET` of the `uploadUrl` says where a
//!   session stands; `404` means it expired and the upload starts over;
//! - the finished item's `file.hashes.quickXorHash` must equal the hash Offload computed while
//!   reading ([`quickxor`]);
//! - players are redirected to `@microsoft.graph.downloadUrl`, fetched fresh for each request
//!   (it needs no token and lives about an hour);
//! - `429` and `503` with `Retry-After` are temporary.

pub mod quickxor;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::chunked::{self, SessionProtocol, SessionState};
use super::cloud::{CloudAccess, CloudConfig};
use super::folder_walk::FolderWalk;
use super::json_api::JsonApi;
use super::network::transport_failure;
use super::{
    records, BackendKind, ChangePoint, Checksum, ChecksumHasher, ConnectionReport, ErrorKind,
    FeedItem, FeedPage, Field, Fix, ListPage, ObjectMeta, Operation, RemotePath, StorageBackend,
    StorageError, StoredObject, StreamTarget, Transfer, UploadRequest,
};
use quickxor::QuickXorHash;

/// Fragments must be multiples of this, except the last.
pub const FRAGMENT_MULTIPLE: u64 = 320 * 1024;
/// Fragments must be smaller than this.
pub const FRAGMENT_LIMIT: u64 = 60 * 1024 * 1024;
/// 32 × 320 KiB = 10 MiB, the size Microsoft suggests.
pub const DEFAULT_FRAGMENT: u64 = 32 * FRAGMENT_MULTIPLE;
/// Above this, an upload session; at or below, one `PUT`.
pub const SIMPLE_UPLOAD_LIMIT: u64 = 4 * 1024 * 1024;
/// How long a `@microsoft.graph.downloadUrl` is good for, as far as Offload relies on.
const DOWNLOAD_URL_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct OneDrive {
    access: CloudAccess,
    api: String,
    folder: Option<String>,
    fragment: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DriveItem {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    file: Option<FileFacet>,
    #[serde(default, rename = "lastModifiedDateTime")]
    modified: Option<String>,
    #[serde(default, rename = "@microsoft.graph.downloadUrl")]
    download_url: Option<String>,
}

/// One page of a folder's children, and the address of the next.
#[derive(Debug, Deserialize)]
struct Children {
    #[serde(default)]
    value: Vec<Child>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// A page of the `delta` feed: the items changed, and the address of the next page or, on
/// the last one, of the next feed.
#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    value: Vec<Child>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(default, rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ParentReference {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Child {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "parentReference")]
    parent: Option<ParentReference>,
    #[serde(default)]
    deleted: Option<serde_json::Value>,
    #[serde(default)]
    root: Option<serde_json::Value>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    file: Option<FileFacet>,
    #[serde(default)]
    folder: Option<serde_json::Value>,
    #[serde(default, rename = "cTag")]
    c_tag: Option<String>,
    #[serde(default, rename = "eTag")]
    e_tag: Option<String>,
}

impl Child {
    /// Its QuickXorHash, else the tags Graph gives every item.
    fn tag(&mut self) -> String {
        self.file
            .take()
            .and_then(|file| file.hashes)
            .and_then(|hashes| hashes.quick_xor_hash)
            .or(self.c_tag.take())
            .or(self.e_tag.take())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
struct FileFacet {
    #[serde(default)]
    hashes: Option<Hashes>,
}

#[derive(Debug, Clone, Deserialize)]
struct Hashes {
    #[serde(default, rename = "quickXorHash")]
    quick_xor_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SessionStatus {
    #[serde(default, rename = "uploadUrl")]
    upload_url: Option<String>,
    #[serde(default, rename = "nextExpectedRanges")]
    next_expected_ranges: Vec<String>,
}

impl OneDrive {
    pub fn new(config: &CloudConfig, access: CloudAccess) -> OneDrive {
        OneDrive {
            access,
            api: config.client.api_base.clone(),
            folder: config.folder_id.clone(),
            fragment: DEFAULT_FRAGMENT,
        }
    }

    /// Fragments of `bytes`, rounded down to a 320 KiB multiple and kept under 60 MiB.
    pub fn with_fragment_size(mut self, bytes: u64) -> OneDrive {
        let multiples =
            (bytes / FRAGMENT_MULTIPLE).clamp(1, (FRAGMENT_LIMIT - 1) / FRAGMENT_MULTIPLE);
        self.fragment = multiples * FRAGMENT_MULTIPLE;
        self
    }

    /// `…/root:/a/b.mkv:` or `…/items/{folder}:/a/b.mkv:`, each segment percent-encoded.
    fn item_url(&self, remote: &RemotePath) -> String {
        let path = super::path::percent_encode_path(remote.as_str());
        match &self.folder {
            Some(folder) => format!("{}/me/drive/items/{folder}:/{path}:", self.api),
            None => format!("{}/me/drive/root:/{path}:", self.api),
        }
    }

    /// Records a verified upload's SHA-256 beside it, in an empty file of the records folder
    /// ([`records::flat_name`]): OneDrive keeps no app data with a personal account's files. The
    /// upload stands without it: a failure is logged.
    async fn record(&self, remote: &RemotePath, checksum: &Checksum, tag: &str) {
        let Some(name) = records::flat_name(remote, checksum, tag) else {
            return;
        };
        let Ok(record) = RemotePath::parse(&format!("{}/{name}", records::FOLDER)) else {
            return;
        };
        let url = format!("{}/content", self.item_url(&record));
        let sent = self
            .send(Operation::Upload, remote, |http, token| {
                http.put(&url).bearer_auth(token).body(Vec::new())
            })
            .await;
        self.settle_record(remote, sent).await;
    }

    /// The names of the files in the records folder.
    async fn record_names(&self) -> Result<Vec<String>, StorageError> {
        let mut names = Vec::new();
        let mut url = Some(self.children_url(records::FOLDER));
        while let Some(next) = url {
            let answer = self
                .send(Operation::Delete, &records::FOLDER, |http, token| {
                    http.get(&next).bearer_auth(token)
                })
                .await?;
            if answer.status() == reqwest::StatusCode::NOT_FOUND {
                break;
            }
            let page: Children = self
                .json(Operation::Delete, &records::FOLDER, answer)
                .await?;
            names.extend(page.value.into_iter().map(|child| child.name));
            url = page.next_link;
        }
        Ok(names)
    }

    /// The first page of the children of the folder at `path` under the backend's folder.
    fn children_url(&self, path: &str) -> String {
        let base = match &self.folder {
            Some(folder) => format!("{}/me/drive/items/{folder}", self.api),
            None => format!("{}/me/drive/root", self.api),
        };
        if path.is_empty() {
            format!("{base}/children?$top=1000")
        } else {
            let path = super::path::percent_encode_path(path);
            format!("{base}:/{path}:/children?$top=1000")
        }
    }

    /// The item at `remote`, or `None`; with `download_url` asked for when `with_url`.
    async fn item(
        &self,
        operation: Operation,
        remote: &RemotePath,
        with_url: bool,
    ) -> Result<Option<DriveItem>, StorageError> {
        let mut url = self.item_url(remote);
        if with_url {
            url.push_str("?select=id,size,@microsoft.graph.downloadUrl");
        }
        let answer = self
            .send(operation, remote, |http, token| {
                http.get(&url).bearer_auth(token)
            })
            .await?;
        if answer.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.json(operation, remote, answer).await.map(Some)
    }

    async fn put_whole(
        &self,
        request: &UploadRequest,
        transfer: &dyn Transfer,
    ) -> Result<(DriveItem, QuickXorHash, Checksum), StorageError> {
        let remote = &request.remote_path;
        let bytes = tokio::fs::read(&request.local_path)
            .await
            .map_err(|error| {
                StorageError::from_io(BackendKind::Onedrive, Operation::Upload, remote, &error)
            })?;
        if bytes.len() as u64 != request.size {
            return Err(StorageError::interrupted(BackendKind::Onedrive, remote));
        }
        let mut xor = QuickXorHash::default();
        let mut sha = ChecksumHasher::default();
        xor.update(&bytes);
        sha.update(&bytes);
        let checksum = sha.finish();
        transfer.advance(request.size).await?;
        let body = bytes::Bytes::from(bytes);
        let url = format!(
            "{}/content?@microsoft.graph.conflictBehavior=replace",
            self.item_url(remote)
        );
        let answer = self
            .send(Operation::Upload, remote, |http, token| {
                http.put(&url)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, &request.content_type)
                    .body(body.clone())
            })
            .await?;
        let item = self.json(Operation::Upload, remote, answer).await?;
        Ok((item, xor, checksum))
    }

    async fn create_session(&self, remote: &RemotePath) -> Result<String, StorageError> {
        let url = format!("{}/createUploadSession", self.item_url(remote));
        let body = serde_json::json!({
            "item": { "@microsoft.graph.conflictBehavior": "replace", "name": remote.file_name() }
        });
        let answer = self
            .send(Operation::Upload, remote, |http, token| {
                http.post(&url).bearer_auth(token).json(&body)
            })
            .await?;
        let status: SessionStatus = self.json(Operation::Upload, remote, answer).await?;
        status.upload_url.ok_or_else(|| {
            self.error(
                Operation::Upload,
                ErrorKind::Other,
                remote,
                "OneDrive opened no upload session (no uploadUrl)",
            )
        })
    }

    /// Reads a session's answer: `202` (more wanted), `200`/`201` (finished), `404` (expired).
    async fn session_answer(
        &self,
        remote: &RemotePath,
        answer: reqwest::Response,
        finished_on_ok: bool,
    ) -> Result<SessionState<DriveItem>, StorageError> {
        match answer.status().as_u16() {
            202 => {
                let status: SessionStatus = self.json(Operation::Upload, remote, answer).await?;
                Ok(SessionState::Next(first_expected(&status)))
            }
            200 if !finished_on_ok => {
                let status: SessionStatus = self.json(Operation::Upload, remote, answer).await?;
                Ok(SessionState::Next(first_expected(&status)))
            }
            200 | 201 => Ok(SessionState::Finished(
                self.json(Operation::Upload, remote, answer).await?,
            )),
            404 | 410 => Ok(SessionState::Gone),
            _ => Err(self.failure(Operation::Upload, remote, answer).await),
        }
    }
}

/// The start of the first range a session still expects (`"26-"` or `"26-100"`).
fn first_expected(status: &SessionStatus) -> u64 {
    status
        .next_expected_ranges
        .first()
        .and_then(|range| range.split('-').next())
        .and_then(|start| start.parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl SessionProtocol for OneDrive {
    type Digest = QuickXorHash;
    type Finished = DriveItem;

    fn chunk_size(&self) -> u64 {
        self.fragment
    }

    async fn open_session(&self, request: &UploadRequest) -> Result<String, StorageError> {
        self.create_session(&request.remote_path).await
    }

    /// A `GET` of the upload URL answers `nextExpectedRanges` (no token: the URL is the
    /// credential).
    async fn session_status(
        &self,
        session: &str,
        request: &UploadRequest,
    ) -> Result<SessionState<DriveItem>, StorageError> {
        let remote = &request.remote_path;
        let request = self.access.http().get(session);
        let answer = self
            .access
            .send_plain(BackendKind::Onedrive, Operation::Upload, remote, request)
            .await?;
        self.session_answer(remote, answer, false).await
    }

    /// A fragment `PUT` to the upload URL, again without a token.
    async fn send_chunk(
        &self,
        session: &str,
        request: &UploadRequest,
        offset: u64,
        body: bytes::Bytes,
    ) -> Result<SessionState<DriveItem>, StorageError> {
        let remote = &request.remote_path;
        let length = body.len() as u64;
        let put = self
            .access
            .http()
            .put(session)
            .header(reqwest::header::CONTENT_LENGTH, length)
            .header(
                reqwest::header::CONTENT_RANGE,
                format!("bytes {offset}-{}/{}", offset + length - 1, request.size),
            )
            .body(body);
        let answer = self
            .access
            .send_plain(BackendKind::Onedrive, Operation::Upload, remote, put)
            .await?;
        self.session_answer(remote, answer, true).await
    }
}

impl JsonApi for OneDrive {
    const SERVICE: BackendKind = BackendKind::Onedrive;

    fn access(&self) -> &CloudAccess {
        &self.access
    }

    /// Graph's errors: `{"error": {"code": …, "message": …}}`.
    fn classify(status: u16, body: &serde_json::Value) -> (ErrorKind, String) {
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        let kind = match (status, code) {
            (429, _) => ErrorKind::RateLimited,
            (507, _) | (_, "quotaLimitReached") => ErrorKind::NoSpace,
            (401, _) => ErrorKind::Unauthenticated,
            (403, _) => ErrorKind::PermissionDenied,
            (404, _) => ErrorKind::NotFound,
            (500..=599, _) => ErrorKind::Temporary,
            _ => ErrorKind::Other,
        };
        let hint = match kind {
            ErrorKind::NoSpace => "; the OneDrive is full: free space or pick another backend",
            _ => "",
        };
        (
            kind,
            format!(
                "OneDrive answered {}{hint}",
                super::network::said(status, code, message)
            ),
        )
    }
}

#[async_trait]
impl StorageBackend for OneDrive {
    fn kind(&self) -> BackendKind {
        BackendKind::Onedrive
    }

    async fn upload(
        &self,
        request: &UploadRequest,
        transfer: &dyn Transfer,
    ) -> Result<StoredObject, StorageError> {
        let remote = &request.remote_path;
        let (item, xor, checksum) = if request.size <= SIMPLE_UPLOAD_LIMIT {
            self.put_whole(request, transfer).await?
        } else {
            chunked::upload_in_sessions(self, request, transfer).await?
        };
        let ours = xor.finish_base64();
        let theirs = item
            .file
            .as_ref()
            .and_then(|file| file.hashes.as_ref())
            .and_then(|hashes| hashes.quick_xor_hash.clone());
        if item.size != Some(request.size) || theirs.as_deref() != Some(ours.as_str()) {
            return Err(self.error(
                Operation::Verify,
                ErrorKind::Integrity,
                remote,
                format!(
                    "OneDrive holds {} bytes with QuickXorHash {}, but {} bytes with {ours} were sent",
                    item.size.map_or("?".into(), |size| size.to_string()),
                    theirs.as_deref().unwrap_or("?"),
                    request.size
                ),
            ));
        }
        self.record(remote, &checksum, &ours).await;
        Ok(StoredObject {
            size: request.size,
            checksum,
            verified: true,
            id: item.id,
            tag: Some(ours),
        })
    }

    async fn stat(&self, remote: &RemotePath) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self
            .item(Operation::Stat, remote, false)
            .await?
            .map(|item| ObjectMeta {
                size: item.size.unwrap_or(0),
                checksum: None,
                modified: item
                    .modified
                    .as_deref()
                    .and_then(|time| chrono::DateTime::parse_from_rfc3339(time).ok())
                    .map(std::time::SystemTime::from),
            }))
    }

    async fn abandon(&self, resume: &serde_json::Value) -> Result<(), StorageError> {
        if let Some(session) = chunked::saved_session(&self.access, Some(resume), None) {
            // Cancelling is a DELETE of the upload URL, again without a token.
            let _ = self.access.http().delete(session.as_str()).send().await;
        }
        Ok(())
    }

    async fn delete(&self, remote: &RemotePath) -> Result<(), StorageError> {
        self.delete_at(&self.item_url(remote), remote).await?;
        let prefix = records::flat_prefix(remote);
        for name in self.record_names().await? {
            if name.starts_with(&prefix) {
                if let Ok(record) = RemotePath::parse(&format!("{}/{name}", records::FOLDER)) {
                    self.delete_at(&self.item_url(&record), remote).await?;
                }
            }
        }
        Ok(())
    }

    async fn stream_target(
        &self,
        remote: &RemotePath,
        _lifetime: Duration,
    ) -> Result<StreamTarget, StorageError> {
        let item = self
            .item(Operation::StreamTarget, remote, true)
            .await?
            .ok_or_else(|| {
                self.error(
                    Operation::StreamTarget,
                    ErrorKind::NotFound,
                    remote,
                    "the file is not in OneDrive",
                )
            })?;
        let url = item.download_url.ok_or_else(|| {
            self.error(
                Operation::StreamTarget,
                ErrorKind::Other,
                remote,
                "OneDrive gave no download URL",
            )
        })?;
        Ok(StreamTarget::Redirect {
            url,
            expires_in: DOWNLOAD_URL_LIFETIME,
        })
    }

    /// The backend's folder and its subfolders, one page of one folder's children per call
    /// (following `@odata.nextLink`), each file with its size and QuickXorHash.
    async fn list(&self, cursor: Option<&str>) -> Result<ListPage, StorageError> {
        // Folders are addressed by their path under the backend's folder ("" is that folder).
        let target = self.folder.clone().unwrap_or_else(|| "root".into());
        let mut walk = FolderWalk::resume(BackendKind::Onedrive, cursor, "")?;
        let Some((_, path)) = walk.folder() else {
            return Ok(ListPage::default());
        };
        let url = walk
            .page()
            .map(str::to_owned)
            .unwrap_or_else(|| self.children_url(&path));
        let answer = self
            .send(Operation::List, &target, |http, token| {
                http.get(&url).bearer_auth(token)
            })
            .await?;
        let page: Children = self.json(Operation::List, &target, answer).await?;
        let mut found = Vec::new();
        for mut child in page.value {
            if path == records::FOLDER {
                found.extend(records::parse_flat(&child.name));
            } else if child.folder.is_some() {
                let address = walk.path_of(&child.name);
                walk.subfolder(address, child.id, &child.name);
            } else if child.file.is_some() {
                let tag = child.tag();
                walk.file(child.id, &child.name, child.size.unwrap_or(0), tag, None);
            }
        }
        let mut listed = walk.finish(page.next_link);
        listed.records = found;
        Ok(listed)
    }

    /// `delta?token=latest` of the drive's root (OneDrive for Business and SharePoint keep a
    /// feed for the root only), and the id of the backend's folder.
    async fn change_point(&self) -> Result<Option<ChangePoint>, StorageError> {
        let root = match &self.folder {
            Some(folder) => folder.clone(),
            None => {
                let url = format!("{}/me/drive/root?select=id", self.api);
                let answer = self
                    .send(Operation::List, &"root", |http, token| {
                        http.get(&url).bearer_auth(token)
                    })
                    .await?;
                let root: Child = self.json(Operation::List, &"root", answer).await?;
                root.id
            }
        };
        let url = format!("{}/me/drive/root/delta?token=latest", self.api);
        let answer = self
            .send(Operation::List, &"delta", |http, token| {
                http.get(&url).bearer_auth(token)
            })
            .await?;
        let delta: Delta = self.json(Operation::List, &"delta", answer).await?;
        let point = delta.delta_link.ok_or_else(|| {
            self.error(
                Operation::List,
                ErrorKind::Other,
                &"delta",
                "OneDrive gave no delta link",
            )
        })?;
        Ok(Some(ChangePoint { point, root }))
    }

    /// A page of `delta` (`since` is the `@odata.nextLink` or `@odata.deltaLink` Graph gave).
    /// The feed covers the whole drive; the library keeps what is under the backend's folder.
    async fn changes(&self, since: &str) -> Result<FeedPage, StorageError> {
        let answer = self
            .send(Operation::List, &"delta", |http, token| {
                http.get(since).bearer_auth(token)
            })
            .await?;
        // `410 Gone` (resyncRequired): the token is too old; the feed must start again.
        let delta: Delta = self.feed_page(answer, &[410]).await?;
        let items = delta
            .value
            .into_iter()
            .filter_map(|mut child| {
                let parent = child
                    .parent
                    .as_ref()
                    .and_then(|parent| parent.id.clone())
                    .unwrap_or_default();
                if child.deleted.is_some() {
                    Some(FeedItem::Gone { id: child.id })
                } else if child.root.is_some() {
                    None
                } else if child.folder.is_some() {
                    Some(FeedItem::Folder {
                        id: child.id,
                        parent,
                        name: child.name,
                    })
                } else if child.file.is_some() {
                    let tag = child.tag();
                    Some(FeedItem::File {
                        id: child.id,
                        parent,
                        name: child.name,
                        size: child.size.unwrap_or(0),
                        tag,
                        checksum: None,
                    })
                } else {
                    None
                }
            })
            .collect();
        Ok(match delta.next_link {
            Some(next) => FeedPage {
                items,
                next: Some(next),
                point: None,
            },
            None => FeedPage {
                items,
                next: None,
                point: delta.delta_link,
            },
        })
    }

    async fn download(&self, remote: &RemotePath, local: &Path) -> Result<u64, StorageError> {
        let StreamTarget::Redirect { url, .. } =
            self.stream_target(remote, DOWNLOAD_URL_LIFETIME).await?
        else {
            return Err(self.error(
                Operation::Download,
                ErrorKind::Other,
                remote,
                "OneDrive gave no download URL",
            ));
        };
        let answer = self.access.http().get(&url).send().await.map_err(|error| {
            transport_failure(BackendKind::Onedrive, Operation::Download, remote, error)
        })?;
        self.save_answer(remote, local, answer).await
    }

    async fn test_connection(&self) -> ConnectionReport {
        let mut report = ConnectionReport::default();
        let url = format!("{}/me/drive", self.api);
        let drive = self
            .send(Operation::TestConnection, &"account", |http, token| {
                http.get(&url).bearer_auth(token)
            })
            .await;
        let drive: serde_json::Value = match drive {
            Ok(answer) => match self
                .json(Operation::TestConnection, &"account", answer)
                .await
            {
                Ok(drive) => drive,
                Err(error) => {
                    report.failed("account", error);
                    return report;
                }
            },
            Err(error) => {
                report.failed("account", error);
                return report;
            }
        };
        report.pass(
            "account",
            drive["owner"]["user"]["displayName"]
                .as_str()
                .unwrap_or("signed in")
                .to_owned(),
        );
        match drive["quota"]["remaining"].as_u64() {
            Some(remaining) => report.pass("space", format!("{} GiB free", remaining / (1 << 30))),
            None => report.pass("space", "unknown"),
        }
        if let Some(folder) = &self.folder {
            let url = format!("{}/me/drive/items/{folder}", self.api);
            match self
                .send(Operation::TestConnection, &"folder", |http, token| {
                    http.get(&url).bearer_auth(token)
                })
                .await
            {
                Ok(answer) if answer.status().is_success() => {
                    report.pass("folder", format!("folder {folder} is reachable"))
                }
                _ => report.fail(
                    "folder",
                    format!("folder {folder} cannot be reached; check the folder id"),
                    Some(Fix::Change(Field::FolderId)),
                ),
            }
        }
        report
    }
}
