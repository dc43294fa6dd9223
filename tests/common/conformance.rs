//! One suite every storage backend must pass, each against its real server or a faithful fake:
//! sizes around every threshold arrive byte-identical, exists/stat/delete/download behave, and
//! the stream target answers a Range request with exactly the bytes asked for.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use offload::storage::{
    BackendKind, RemotePath, StorageBackend, StorageError, StreamTarget, Transfer, UploadRequest,
};
use sha2::{Digest, Sha256};

/// A transfer that records progress and resume records, and can stop after a number of bytes.
#[derive(Default)]
pub struct Recorder {
    pub sent: AtomicU64,
    pub resumed: AtomicU64,
    pub stop_after: Option<u64>,
    pub resume: Mutex<Option<serde_json::Value>>,
}

#[async_trait]
impl Transfer for Recorder {
    async fn advance(&self, bytes: u64) -> Result<(), StorageError> {
        let sent = self.sent.fetch_add(bytes, Ordering::SeqCst) + bytes;
        match self.stop_after {
            Some(limit) if sent >= limit => {
                Err(StorageError::interrupted(BackendKind::Local, "test"))
            }
            _ => Ok(()),
        }
    }

    async fn resumed(&self, bytes: u64) {
        self.resumed.fetch_add(bytes, Ordering::SeqCst);
    }

    async fn save_resume(&self, record: serde_json::Value) -> Result<(), StorageError> {
        *self.resume.lock().unwrap() = Some(record);
        Ok(())
    }
}

impl Recorder {
    pub fn resume_record(&self) -> Option<serde_json::Value> {
        self.resume.lock().unwrap().clone()
    }
}

pub fn request(
    local: &Path,
    remote: &str,
    size: u64,
    resume: Option<serde_json::Value>,
) -> UploadRequest {
    UploadRequest {
        local_path: local.to_owned(),
        remote_path: RemotePath::parse(remote).unwrap(),
        size,
        content_type: "video/x-matroska".into(),
        resume,
    }
}

pub fn sha256_file(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

const MIB: usize = 1024 * 1024;

/// Reads `range` (an HTTP Range value) of a stream target the way a player would.
fn read_range(target: &StreamTarget, range: &str) -> (u16, Vec<u8>) {
    match target {
        StreamTarget::Redirect { url, .. } => super::s3::http(url, "GET", &[("Range", range)]),
        StreamTarget::LocalFile(path) => {
            let bytes = std::fs::read(path).unwrap();
            let spec = range.strip_prefix("bytes=").unwrap();
            let (start, end) = spec.split_once('-').unwrap();
            let slice = if start.is_empty() {
                let n: usize = end.parse().unwrap();
                &bytes[bytes.len() - n..]
            } else {
                &bytes[start.parse::<usize>().unwrap()..=end.parse::<usize>().unwrap()]
            };
            (206, slice.to_vec())
        }
        // What the stream server does for a player: the same request, with the headers added.
        StreamTarget::Proxy { url, headers } => {
            let mut all: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            all.push(("Range", range));
            super::s3::http(url, "GET", &all)
        }
    }
}

/// Runs the suite. `threshold` is the backend's single-upload limit; sizes around it and S3's
/// 5 MiB part minimum are all tried.
pub async fn run(backend: &dyn StorageBackend, threshold: usize, scratch: &Path) {
    let mut sizes = vec![
        0,
        1,
        5 * MIB - 1,
        5 * MIB,
        5 * MIB + 1,
        threshold - 1,
        threshold,
        threshold + 1,
        100 * MIB,
    ];
    sizes.sort_unstable();
    sizes.dedup();
    let mut uploaded = Vec::new();
    for (index, size) in sizes.iter().copied().enumerate() {
        let local = scratch.join(format!("file-{index}.mkv"));
        let bytes = super::write_random(&local, size);
        let remote = format!("conformance/{index} size {size}.mkv");
        let recorder = Recorder::default();
        let stored = backend
            .upload(&request(&local, &remote, size as u64, None), &recorder)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "{:?}: uploading {size} bytes failed: {error}",
                    backend.kind()
                )
            });
        assert_eq!(stored.size, size as u64);
        assert_eq!(
            recorder.sent.load(Ordering::SeqCst),
            size as u64,
            "progress adds up to the size ({size} bytes)"
        );
        let path = RemotePath::parse(&remote).unwrap();
        let meta = backend
            .stat(&path)
            .await
            .unwrap()
            .expect("the object exists after upload");
        assert_eq!(meta.size, size as u64);
        assert!(backend.exists(&path).await.unwrap());

        let copy = scratch.join(format!("download-{index}.mkv"));
        assert_eq!(backend.download(&path, &copy).await.unwrap(), size as u64);
        assert_eq!(
            sha256_file(&copy),
            Sha256::digest(&bytes).to_vec(),
            "{size} bytes read back differ"
        );
        std::fs::remove_file(&copy).unwrap();
        uploaded.push((path, bytes));
    }

    let (path, bytes) = uploaded.last().unwrap();
    let target = backend
        .stream_target(path, Duration::from_secs(3600))
        .await
        .unwrap();
    for (range, expected) in [
        ("bytes=0-0", &bytes[0..1]),
        ("bytes=1000-1999", &bytes[1000..2000]),
        ("bytes=52428800-52429823", &bytes[50 * MIB..50 * MIB + 1024]),
        ("bytes=-500", &bytes[bytes.len() - 500..]),
    ] {
        let (status, body) = read_range(&target, range);
        assert_eq!(status, 206, "{range}");
        assert!(body == expected, "{range}: the bytes differ");
    }

    for (path, _) in &uploaded {
        backend.delete(path).await.unwrap();
        assert!(!backend.exists(path).await.unwrap());
        assert!(backend.stat(path).await.unwrap().is_none());
    }
    backend
        .delete(&uploaded[0].0)
        .await
        .expect("deleting what is gone is not an error");
}
