//! The library, as both shells list it, play from it and remove from it.

use serde::Serialize;

use std::path::Path;

use super::{BackendView, Engine};
use crate::error::{Error, Result};
use crate::library::{self, LibraryEntry, LibraryItem, ScanProgress, ScanReport};
use crate::profiles::{self, Profile};
use crate::queue::Event;
use crate::stream::StrmReport;

/// What a scan of one backend came to.
#[derive(Debug)]
pub struct BackendScan {
    pub backend: BackendView,
    pub outcome: Result<ScanReport>,
}

/// An item of the library with the stable URL a player opens (none without a master key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct LibraryRow {
    #[serde(flatten)]
    pub entry: LibraryEntry,
    pub stream_url: Option<String>,
    /// Its picture, where one was taken (ffmpeg installed) and a stream URL can be signed.
    pub poster_url: Option<String>,
}

impl Engine {
    /// What the library holds of one profile (or all): items removed from storage are not
    /// listed.
    pub fn library(&self, profile_id: Option<i64>) -> Result<Vec<LibraryRow>> {
        let links = self.stream_links().ok();
        let pictures = crate::posters::taken(&self.data_dir);
        Ok(library::list(&self.db, profile_id)?
            .into_iter()
            .filter(|entry| entry.status == "uploaded")
            .map(|entry| LibraryRow {
                stream_url: links.as_ref().map(|links| links.item_url(entry.item)),
                poster_url: links
                    .as_ref()
                    .filter(|_| {
                        pictures.contains(&crate::posters::path(&self.data_dir, entry.item))
                    })
                    .map(|links| links.poster_url(entry.item)),
                entry,
            })
            .collect())
    }

    /// One item, removed or not (a removed item's URL still answers, with 410 Gone).
    pub fn library_item(&self, item: LibraryItem) -> Result<LibraryEntry> {
        library::get(&self.db, item)?
            .ok_or_else(|| Error::NotFound(format!("there is no {item} in the library")))
    }

    /// The stable URL a player opens for one item.
    pub fn stream_url(&self, item: LibraryItem) -> Result<String> {
        self.library_item(item)?;
        Ok(self.stream_links()?.item_url(item))
    }

    /// A profile's library as an extended M3U playlist of stream URLs.
    pub fn playlist(&self, profile_id: i64) -> Result<String> {
        crate::stream::playlist(&self.db, &self.stream_links()?, profile_id)
    }

    /// Writes a profile's library into `dir` as `.strm` files for Kodi, Jellyfin and Emby, and
    /// removes those of items gone since the last export (see [`crate::stream::export_strm`]).
    pub fn export_strm(&self, profile_id: i64, dir: &Path) -> Result<StrmReport> {
        crate::stream::export_strm(&self.db, &self.stream_links()?, profile_id, dir)
    }

    /// Keeps profile `id`'s library in `dir` as `.strm` files from now on (the daemon brings the
    /// folder up to date as items arrive, change or go), or (`None`) stops. The folder is
    /// written at once, so a folder that cannot be written is refused here.
    pub fn set_strm_dir(
        &self,
        id: i64,
        dir: Option<&Path>,
    ) -> Result<(Profile, Option<StrmReport>)> {
        profiles::get(&self.db, id)?;
        let report = match dir {
            Some(dir) if !dir.is_absolute() => {
                return Err(Error::Invalid(format!(
                    "the media centre folder must be a full path, not {}",
                    dir.display()
                )))
            }
            Some(dir) => Some(self.export_strm(id, dir)?),
            None => None,
        };
        let profile = profiles::set_strm_dir(&self.db, id, dir)?;
        self.wake_daemon();
        Ok((profile, report))
    }

    /// Reads, in the background, what the items found in storage hold and takes their pictures,
    /// through this process's stream server (see [`crate::stream::describe_found`]).
    pub(crate) fn describe_found_items(&self) -> Option<tokio::task::JoinHandle<()>> {
        let links = self.stream_links().ok()?;
        let (db, data_dir, events) = (self.db.clone(), self.data_dir.clone(), self.events.clone());
        Some(tokio::spawn(async move {
            match crate::stream::describe_found(&db, &links, &data_dir).await {
                Ok(0) => {}
                Ok(items) => {
                    let _ = events.send(Event::Described { items });
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read what the items found in storage hold")
                }
            }
        }))
    }

    /// Brings every profile's media centre folder up to date. One that cannot be written (an
    /// unplugged drive) is said as a notice once, not after every upload, until it works again:
    /// `failing` holds the profiles already said; the others are still kept.
    pub async fn sync_strm_folders(&self, failing: &mut std::collections::HashSet<String>) {
        // Without the master key there are no stream URLs to write.
        let Ok(links) = self.stream_links() else {
            return;
        };
        let db = self.db.clone();
        let synced = tokio::task::spawn_blocking(move || {
            let profiles = profiles::list(&db)?;
            Ok::<_, Error>(
                profiles
                    .into_iter()
                    .filter_map(|profile| {
                        let dir = profile.strm_dir?;
                        let result = crate::stream::export_strm(&db, &links, profile.id, &dir);
                        Some((profile.name, result))
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await;
        let Ok(Ok(synced)) = synced else { return };
        for (profile, result) in synced {
            match result {
                Ok(report) => {
                    failing.remove(&profile);
                    if report.written + report.removed > 0 {
                        tracing::info!(%profile, written = report.written, removed = report.removed, "media centre folder brought up to date");
                    }
                }
                Err(error) if failing.contains(&profile) => {
                    tracing::debug!(%profile, %error, "the media centre folder still cannot be updated");
                }
                Err(error) => {
                    tracing::warn!(%profile, %error, "cannot update the media centre folder");
                    let _ = self.events.send(Event::Notice {
                        message: format!(
                            "The media centre folder of profile {profile} is out of date: {error}."
                        ),
                    });
                    failing.insert(profile);
                }
            }
        }
    }

    /// The URL of a profile's playlist, for a player that is not on this disk.
    pub fn playlist_url(&self, profile_id: i64) -> Result<String> {
        crate::profiles::get(&self.db, profile_id)?;
        Ok(self.stream_links()?.playlist_url(profile_id))
    }

    /// Finds what storage holds (see [`library::scan_backend`]): in one backend, or in every
    /// backend of a profile (or of all profiles). Each backend is scanned on
    /// its own, so one that fails does not stop the others; `progress` hears the backend being
    /// scanned and the number of media items found in it so far.
    pub async fn scan_library(
        &self,
        profile_id: Option<i64>,
        backend_id: Option<i64>,
        progress: &mut (dyn FnMut(&BackendView, u64) + Send),
    ) -> Result<Vec<BackendScan>> {
        let targets = match backend_id {
            Some(id) => vec![self.backend_view(id)?],
            None => self.list_backends(profile_id)?,
        };
        let mut scans = Vec::new();
        for backend in targets {
            // The tray's line and the window hear it too, whichever shell asked.
            let tell = |found, done| {
                let _ = self.events.send(Event::Scan(ScanProgress {
                    backend_id: backend.id,
                    backend_name: backend.name.clone(),
                    found,
                    done,
                }));
            };
            let outcome = {
                let mut heard = |found| {
                    progress(&backend, found);
                    tell(found, false);
                };
                library::scan_backend(&self.db, &self.backends, backend.id, &mut heard).await
            };
            tell(outcome.as_ref().map_or(0, |report| report.found), true);
            scans.push(BackendScan { backend, outcome });
        }
        Ok(scans)
    }

    /// Deletes an item's remote copy, then removes it from the library (its URL answers 410).
    pub async fn remove_library_item(&self, item: LibraryItem) -> Result<()> {
        if self.library_item(item)?.status == "removed" {
            return Err(Error::NotFound(format!(
                "{item} was already removed from the library"
            )));
        }
        library::remove(&self.db, &self.backends, item).await?;
        crate::posters::remove(&self.data_dir, item);
        // A running daemon brings media centre folders up to date.
        self.wake_daemon();
        Ok(())
    }
}
