//! Profiles and their watched folders, as both shells change them.

use serde::Serialize;

use super::Engine;
use crate::error::{Error, Result};
use crate::profiles::{self, AfterUpload, NewWatchFolder, Profile, Switch, WatchFolder};
use crate::schedule::Window;

/// A profile as the shells show it: with its watched folders, and the URL of its library as a
/// playlist (none without a master key, which stream URLs need).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct ProfileView {
    #[serde(flatten)]
    pub profile: Profile,
    pub folders: Vec<WatchFolder>,
    pub playlist_url: Option<String>,
    /// Whether ffmpeg is installed where Offload looks for it: the remux needs it (and the
    /// Library's pictures).
    pub ffmpeg: bool,
}

impl Engine {
    /// Every profile with its folders, by name.
    pub fn profiles(&self) -> Result<Vec<ProfileView>> {
        let folders = profiles::watch_folders(&self.db, None)?;
        let links = self.stream_links().ok();
        let ffmpeg = crate::transmux::remux::ffmpeg().is_some();
        Ok(profiles::list(&self.db)?
            .into_iter()
            .map(|profile| ProfileView {
                folders: folders
                    .iter()
                    .filter(|folder| folder.profile_id == profile.id)
                    .cloned()
                    .collect(),
                playlist_url: links.as_ref().map(|links| links.playlist_url(profile.id)),
                ffmpeg,
                profile,
            })
            .collect())
    }

    /// Lets profile `id` upload only inside `window` (`01:00-07:00`, local time), or at any time
    /// (`None`). A running Offload holds back or lets go of its uploads within seconds.
    pub fn set_upload_window(&self, id: i64, window: Option<&str>) -> Result<Profile> {
        let window = window
            .map(Window::parse)
            .transpose()
            .map_err(|error| Error::Invalid(error.to_string()))?;
        let profile = profiles::set_upload_window(&self.db, id, window)?;
        self.wake_daemon();
        Ok(profile)
    }

    /// Turns one of profile `id`'s switches (making its media ready to stream before upload)
    /// on or off; the next upload to start follows it.
    pub fn set_switch(&self, id: i64, switch: Switch, on: bool) -> Result<Profile> {
        profiles::set_switch(&self.db, id, switch, on)
    }

    pub fn profile(&self, id: i64) -> Result<ProfileView> {
        // Profiles are few: one way of putting a view together beats a second copy of it.
        self.profiles()?
            .into_iter()
            .find(|view| view.profile.id == id)
            .ok_or_else(|| profiles::missing(id))
    }

    pub fn profile_named(&self, name: &str) -> Result<Profile> {
        profiles::by_name(&self.db, name)
    }

    /// Creates a profile watching `folders` (each must be an existing folder).
    pub fn create_profile(
        &self,
        name: &str,
        remote_template: &str,
        after_upload: &AfterUpload,
        folders: &[NewWatchFolder],
    ) -> Result<ProfileView> {
        let profile = profiles::create(&self.db, name, remote_template, after_upload, folders)?;
        self.wake_daemon();
        self.profile(profile.id)
    }

    pub fn rename_profile(&self, id: i64, name: &str) -> Result<()> {
        profiles::rename(&self.db, id, name)?;
        self.wake_daemon();
        Ok(())
    }

    /// Where the profile's uploads go and what happens to its local files afterwards; jobs
    /// already queued keep the remote path they were given.
    pub fn update_profile(
        &self,
        id: i64,
        remote_template: &str,
        after_upload: &AfterUpload,
    ) -> Result<()> {
        profiles::update(&self.db, id, remote_template, after_upload)?;
        self.wake_daemon();
        Ok(())
    }

    /// Removes a profile and Offload's records of it; what it uploaded stays in storage.
    pub fn delete_profile(&self, id: i64) -> Result<()> {
        profiles::remove(&self.db, id)?;
        self.wake_daemon();
        Ok(())
    }

    /// Watches another folder for a profile; the running daemon starts watching it at once.
    pub fn add_watch_folder(&self, profile_id: i64, folder: &NewWatchFolder) -> Result<()> {
        profiles::get(&self.db, profile_id)?;
        profiles::add_watch_folder(&self.db, profile_id, folder)?;
        self.wake_daemon();
        Ok(())
    }

    /// Stops watching a folder (by its id); what came from it stays in the queue and library.
    pub fn remove_watch_folder(&self, id: i64) -> Result<()> {
        profiles::remove_watch_folder_by_id(&self.db, id)?;
        self.wake_daemon();
        Ok(())
    }

    /// Stops watching `path` for a profile.
    pub fn unwatch(&self, profile_id: i64, path: &std::path::Path) -> Result<()> {
        profiles::remove_watch_folder(&self.db, profile_id, path)?;
        self.wake_daemon();
        Ok(())
    }
}
