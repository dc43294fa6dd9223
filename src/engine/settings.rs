//! The settings, as both shells read and change them.

use super::Engine;
use crate::error::Result;
use crate::settings::Settings;

/// Set once the desktop app's welcome was dismissed; until then every launch opens the window.
const WELCOMED: &str = "app.welcomed";

impl Engine {
    pub fn settings(&self) -> Result<Settings> {
        Settings::load(&self.db)
    }

    /// Saves `settings`, checked and in one transaction. A running daemon (this process's or
    /// another's) uses them at once: the bandwidth limit live, the rest by starting again in place.
    pub fn save_settings(&self, settings: &Settings) -> Result<()> {
        settings.save(&self.db)?;
        self.wake_daemon();
        Ok(())
    }

    /// Changes some settings: `change` edits the current ones, which are then saved as a whole.
    pub fn change_settings(&self, change: impl FnOnce(&mut Settings)) -> Result<Settings> {
        let mut settings = self.settings()?;
        change(&mut settings);
        self.save_settings(&settings)?;
        Ok(settings)
    }

    /// Whether the desktop app has not shown its welcome yet.
    pub fn first_run(&self) -> Result<bool> {
        Ok(self.db.setting(WELCOMED)?.is_none())
    }

    pub fn dismiss_welcome(&self) -> Result<()> {
        Ok(self.db.set_setting(WELCOMED, "1")?)
    }
}
