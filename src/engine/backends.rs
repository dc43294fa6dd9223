//! Storage backends, as both shells add, change, test and remove them.

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::backends::{self, BackendForm, BackendRecord, Readiness};
use crate::error::{Error, Result};
use crate::queue;
use crate::storage::cloud::Provider;
use crate::storage::{BackendKind, ConnectionReport};

/// A backend as the shells list it: no secrets, where it is, and whether it can be used now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct BackendView {
    pub id: i64,
    pub profile_id: i64,
    pub name: String,
    pub kind: BackendKind,
    pub is_default: bool,
    /// One line: the folder, the endpoint with bucket and prefix, or the drive folder.
    pub location: String,
    #[serde(flatten)]
    pub readiness: Readiness,
}

/// The storage form as the window and the local API send it: where it goes, and the backend it
/// describes; with `id`, a change of that backend's settings (empty secrets keep the stored ones).
#[derive(Debug, Deserialize, ts_rs::TS)]
pub struct NewBackend {
    #[serde(default)]
    pub id: Option<i64>,
    pub profile_id: i64,
    pub name: String,
    #[serde(default)]
    pub make_default: bool,
    #[serde(flatten)]
    pub form: BackendForm,
}

/// How saving a backend's settings went.
#[derive(Debug)]
pub enum Saved {
    /// Saved; with the report of the test it passed (S3), and how many of its uploads go again.
    Done {
        backend: BackendView,
        report: Option<ConnectionReport>,
        queued: usize,
    },
    /// The test before saving failed, so nothing was saved; the report says what to fix.
    Refused { report: ConnectionReport },
}

impl Engine {
    fn view(&self, record: BackendRecord) -> Result<BackendView> {
        Ok(BackendView {
            readiness: record.readiness(&self.db)?,
            location: record.location(),
            id: record.id,
            profile_id: record.profile_id,
            name: record.name,
            kind: record.kind,
            is_default: record.is_default,
        })
    }

    /// The backends of a profile (or of all), by profile and name.
    pub fn list_backends(&self, profile_id: Option<i64>) -> Result<Vec<BackendView>> {
        backends::list(&self.db, profile_id)?
            .into_iter()
            .map(|record| self.view(record))
            .collect()
    }

    pub fn backend_view(&self, id: i64) -> Result<BackendView> {
        self.view(backends::get(&self.db, id)?)
    }

    /// Whether backends of `kind` can be signed in without a client id of their own: a person's
    /// registration is configured, or this build carries one. Storage that needs no sign-in:
    /// always.
    pub fn client_id_configured(&self, kind: BackendKind) -> Result<bool> {
        match Provider::of(kind) {
            Some(provider) => Ok(!backends::configured_client_id(&self.db, provider)?.is_empty()),
            None => Ok(true),
        }
    }

    pub fn backend_named(&self, profile_id: i64, name: &str) -> Result<BackendRecord> {
        backends::by_name(&self.db, profile_id, name)
    }

    /// Where a profile's uploads go unless told otherwise.
    pub fn default_backend(&self, profile_id: i64) -> Result<BackendRecord> {
        backends::default_for(&self.db, profile_id)
    }

    /// A stored backend's settings as a form, secrets included: for the command line, whose
    /// flags change only what they name. (A shell that shows the form leaves the secrets out.)
    pub fn backend_form(&self, id: i64) -> Result<BackendForm> {
        backends::get(&self.db, id)?.form(&self.vault)
    }

    /// What `form` describes, with the secrets of backend `changing` where the form leaves them
    /// empty.
    fn settings_of(
        &self,
        form: &BackendForm,
        changing: Option<i64>,
    ) -> Result<backends::BackendSettings> {
        let mut form = form.clone();
        if let Some(id) = changing {
            form.keep_secrets_of(&self.backend_form(id)?);
        }
        form.settings(&self.db, &self.data_dir)
    }

    /// Tests what a form describes without saving anything (a local folder too); a cloud account
    /// can only be tested once signed in, so its report is empty.
    pub async fn test_backend_form(
        &self,
        form: &BackendForm,
        changing: Option<i64>,
    ) -> Result<ConnectionReport> {
        Ok(match self.settings_of(form, changing)?.open_unsaved() {
            Some(backend) => backend.test_connection().await,
            None => ConnectionReport::default(),
        })
    }

    /// Checks that a saved backend works, and says what to fix if not.
    pub async fn test_backend(&self, id: i64) -> Result<ConnectionReport> {
        Ok(self.backend(id)?.test_connection().await)
    }

    /// Adds a backend to a profile (its first becomes its default). S3 settings are tested first
    /// unless `skip_test`, and not saved when the test fails: a typo in a key or a bucket is the
    /// usual mistake.
    pub async fn add_backend(
        &self,
        profile_id: i64,
        name: &str,
        form: &BackendForm,
        make_default: bool,
        skip_test: bool,
    ) -> Result<Saved> {
        let settings = self.settings_of(form, None)?;
        let report = match tested(&settings, skip_test).await {
            Ok(report) => report,
            Err(report) => return Ok(Saved::Refused { report }),
        };
        let record = backends::add(
            &self.db,
            &self.vault,
            profile_id,
            name,
            &settings,
            make_default,
        )?;
        self.wake_daemon();
        Ok(Saved::Done {
            backend: self.view(record)?,
            report,
            queued: 0,
        })
    }

    /// Gives a backend new settings (and, with `name`, a new name): tested as when it was added,
    /// empty secrets keep the stored ones, and a cloud backend keeps its account. A running
    /// daemon uses them for its next upload, and the backend's waiting, retrying and failed
    /// uploads go again at once (see [`backends::update`] for what may not change).
    pub async fn change_backend(
        &self,
        id: i64,
        name: Option<&str>,
        form: &BackendForm,
        skip_test: bool,
    ) -> Result<Saved> {
        let settings = self.settings_of(form, Some(id))?;
        let report = match tested(&settings, skip_test).await {
            Ok(report) => report,
            Err(report) => return Ok(Saved::Refused { report }),
        };
        let sealer = settings.sealer_for(&self.vault)?;
        let (record, queued) = self.db.transaction(|tx| {
            let record = backends::update(tx, id, name, &settings, sealer.as_ref())?;
            let queued = queue::backend_changed(tx, id)?;
            Ok::<_, Error>((record, queued))
        })?;
        self.wake_daemon();
        Ok(Saved::Done {
            backend: self.view(record)?,
            report,
            queued,
        })
    }

    pub fn set_default_backend(&self, id: i64) -> Result<()> {
        backends::set_default(&self.db, id)?;
        self.wake_daemon();
        Ok(())
    }

    /// Removes a backend that holds no library items and has no upload in progress; its files
    /// stay where they are.
    pub fn remove_backend(&self, id: i64) -> Result<()> {
        backends::remove(&self.db, id)?;
        self.wake_daemon();
        Ok(())
    }
}

/// The test `settings` pass before they are saved (none for a kind that cannot be tested
/// unsaved, or when `skip_test`); the report as the error when it failed.
async fn tested(
    settings: &backends::BackendSettings,
    skip_test: bool,
) -> std::result::Result<Option<ConnectionReport>, ConnectionReport> {
    if skip_test {
        return Ok(None);
    }
    match settings.test_before_saving().await {
        Some(report) if !report.is_ok() => Err(report),
        report => Ok(report),
    }
}
