//! The library, as both shells list it, play from it and remove from it.

use serde::Serialize;

use super::{BackendView, Engine};
use crate::error::{Error, Result};
use crate::library::{self, LibraryEntry, LibraryItem, ScanProgress, ScanReport};
use crate::queue::Event;

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
}

impl Engine {
    /// What the library holds of one profile (or all): items removed from storage are not
    /// listed.
    pub fn library(&self, profile_id: Option<i64>) -> Result<Vec<LibraryRow>> {
        let links = self.stream_links().ok();
        Ok(library::list(&self.db, profile_id)?
            .into_iter()
            .filter(|entry| entry.status == "uploaded")
            .map(|entry| LibraryRow {
                stream_url: links.as_ref().map(|links| links.item_url(entry.item)),
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
        library::remove(&self.db, &self.backends, item).await
    }
}
