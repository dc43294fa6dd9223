//! What the items found in storage hold (another computer or tool put them there, so nothing
//! probed them at upload): read through each item's own stream URL by Range requests, as a
//! player would — the stream server redirects to the bucket, proxies Drive or OneDrive, or serves
//! the local file — a few requests per item, never the whole file. Its picture is taken through
//! the same URL where ffmpeg is installed.

use std::io;
use std::path::Path;

use rusqlite::params;

use super::Links;
use crate::db::{now_ms, Db};
use crate::error::Result;
use crate::library::LibraryItem;
use crate::probe::{self, MediaInfo, ReadAt};

/// Items described per pass: a first scan of a large bucket is described over several passes,
/// so a pass never holds the daemon's follow-ups up for long.
const PER_PASS: usize = 50;

/// A stored object read by Range requests through a URL (its stream URL, or the presigned URL
/// it redirects to), on `runtime` from a blocking thread.
pub struct UrlSource {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    url: String,
    size: u64,
}

impl UrlSource {
    pub fn new(
        client: reqwest::Client,
        runtime: tokio::runtime::Handle,
        url: String,
        size: u64,
    ) -> UrlSource {
        UrlSource {
            client,
            runtime,
            url,
            size,
        }
    }
}

impl ReadAt for UrlSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(len as u64).min(self.size);
        if end <= offset {
            return Ok(Vec::new());
        }
        let request = self.client.get(&self.url).header(
            reqwest::header::RANGE,
            format!("bytes={offset}-{}", end - 1),
        );
        self.runtime.block_on(async {
            let answer = request.send().await.map_err(io::Error::other)?;
            if answer.status() != reqwest::StatusCode::PARTIAL_CONTENT {
                return Err(io::Error::other(format!(
                    "the stream URL answered {} to a range request",
                    answer.status()
                )));
            }
            Ok(answer.bytes().await.map_err(io::Error::other)?.to_vec())
        })
    }
}

/// Describes the items not described yet, [`PER_PASS`] at a time, until none is left or a pass
/// could read none of them (storage out of reach: the next pass tries again); returns how many
/// it described.
pub async fn describe_found(db: &Db, links: &Links, data_dir: &Path) -> Result<usize> {
    let mut total = 0;
    loop {
        let (looked, described) = describe_some(db, links, data_dir).await?;
        total += described;
        if looked < PER_PASS || described == 0 {
            return Ok(total);
        }
    }
}

/// One pass: how many items it looked at, and how many it could read.
async fn describe_some(db: &Db, links: &Links, data_dir: &Path) -> Result<(usize, usize)> {
    let waiting: Vec<(LibraryItem, u64, String)> = {
        let conn = db.lock();
        let mut statement = conn.prepare(
            "SELECT 0, id, size, storage_path FROM media
               WHERE kind = 'file' AND status = 'uploaded' AND described_at IS NULL
             UNION ALL
             SELECT 1, id, size, storage_path FROM episodes WHERE status = 'uploaded' AND described_at IS NULL
             LIMIT ?1",
        )?;
        let rows = statement.query_map([PER_PASS as i64], |row| {
            Ok((
                LibraryItem::of(row.get(0)?, row.get(1)?),
                row.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
                row.get::<_, Option<String>>(3)?.unwrap_or_default(),
            ))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // Redirects followed: a bucket's presigned URL is where the bytes are.
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let mut described = 0;
    for (item, size, name) in &waiting {
        let (item, size) = (*item, *size);
        let url = links.item_url(item);
        let Some(info) = describe(&client, &url, size, name).await else {
            continue;
        };
        described += 1;
        let (table, id) = crate::library::table_of(item);
        db.lock().execute(
            &format!("UPDATE {table} SET media_info = ?2, described_at = ?3 WHERE id = ?1"),
            params![
                id,
                info.as_ref()
                    .and_then(|info| serde_json::to_string(info).ok()),
                now_ms()
            ],
        )?;
        let Some(info) = info.filter(|info| info.video.is_some()) else {
            continue;
        };
        match crate::posters::take(data_dir, item, std::ffi::OsStr::new(&url), info.duration_ms)
            .await
        {
            Ok(_) => {}
            Err(error @ crate::posters::PosterError::NoFfmpeg) => tracing::debug!(%item, "{error}"),
            Err(error) => tracing::info!(%item, %error, "no picture for it"),
        }
    }
    if described > 0 {
        tracing::info!(items = described, "read what items found in storage hold");
    }
    Ok((waiting.len(), described))
}

/// What the item at `url` holds (`Some(None)`: it cannot be told, and need not be asked again),
/// or `None` where it could not be read now.
async fn describe(
    client: &reqwest::Client,
    url: &str,
    size: u64,
    name: &str,
) -> Option<Option<MediaInfo>> {
    let ask_ffprobe = probe::for_ffprobe(Path::new(name));
    let source = UrlSource::new(
        client.clone(),
        tokio::runtime::Handle::current(),
        url.to_owned(),
        size,
    );
    let address = url.to_owned();
    let read =
        tokio::task::spawn_blocking(move || match probe::probe(source, probe::REMOTE_BLOCK) {
            Err(probe::ProbeError::Unrecognised) if ask_ffprobe => {
                probe::ffprobe(std::ffi::OsStr::new(&address))
            }
            other => other,
        });
    match read.await {
        Ok(Ok(info)) => Some(Some(info)),
        Ok(Err(probe::ProbeError::Unrecognised)) => Some(None),
        Ok(Err(probe::ProbeError::Io(error))) if error.kind() != io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%error, url = %url.split('?').next().unwrap_or_default(), "cannot read a file found in storage now");
            None
        }
        Ok(Err(error)) => {
            tracing::info!(%error, "cannot tell what a file found in storage holds");
            Some(None)
        }
        Err(_) => None,
    }
}
