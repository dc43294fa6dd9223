//! The engine's error type: the modules below the records (db, secrets, storage, template) have
//! their own `thiserror` enums, which this one gathers for the modules that do many things; it
//! depends on nothing above them. Modules above it that have error types of their own (`oauth`)
//! turn them into one of these at their edge.

use serde::{Deserialize, Serialize};

use crate::db::DbError;
use crate::secrets::SecretsError;
use crate::storage::{Field, FieldError, Fix, PathError, StorageError};
use crate::template::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A value in a backend's settings cannot be used; the field says which.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A sign-in did not complete, or an account must be signed in again; `backend_id` names
    /// the backend to sign in to, where it is known.
    #[error("{message}")]
    SignIn {
        message: String,
        backend_id: Option<i64>,
    },
    /// One of Offload's settings cannot take this value; the message says why.
    #[error("{message}")]
    Setting { setting: Setting, message: String },
    /// Something named by the user does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be carried out as asked; the message says why and what to change (in
    /// words, never a command).
    #[error("{0}")]
    Invalid(String),
    // The I/O error is part of the message rather than a `source`, so that error chains do not
    // print it twice.
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Error {
        Error::Db(DbError::Sql(error))
    }
}

impl Error {
    /// What a person can do about it, where the engine knows.
    pub fn action(&self) -> Option<Action> {
        match self {
            Error::SignIn {
                backend_id: Some(backend_id),
                ..
            } => Some(Action::SignIn {
                backend_id: *backend_id,
            }),
            Error::Storage(error) => error.fix.map(|fix| Action::for_backend(None, fix)),
            Error::Field(error) => Some(Action::ChangeBackend {
                backend_id: None,
                field: error.field,
            }),
            Error::Setting { setting, .. } => Some(Action::ChangeSetting { setting: *setting }),
            _ => None,
        }
    }

    pub fn io(context: impl Into<String>, error: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            error,
        }
    }
}

/// What a person can do about a failure, as data. Each shell says it in its own words: the
/// command line names the command to run and its flag, the window the button to press or the
/// field to correct. The engine's messages never name either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Action {
    /// Sign in to this backend's account (again).
    SignIn { backend_id: i64 },
    /// Correct this part of a backend's settings (with no id: of the backend being described).
    ChangeBackend {
        backend_id: Option<i64>,
        field: Field,
    },
    /// Choose another value for one of Offload's settings.
    ChangeSetting { setting: Setting },
    /// Set this computer's clock.
    SetClock,
    /// Free space where the files go.
    FreeSpace,
}

impl Action {
    /// What `fix` means for the backend `backend_id` (none: the one being described).
    pub fn for_backend(backend_id: Option<i64>, fix: Fix) -> Action {
        match (fix, backend_id) {
            (Fix::SignIn, Some(backend_id)) => Action::SignIn { backend_id },
            // Without a backend there is no account to sign in to; its settings are what the
            // person is filling in.
            (Fix::SignIn, None) => Action::ChangeBackend {
                backend_id: None,
                field: Field::ClientId,
            },
            (Fix::Change(field), backend_id) => Action::ChangeBackend { backend_id, field },
            (Fix::SetClock, _) => Action::SetClock,
            (Fix::FreeSpace, _) => Action::FreeSpace,
        }
    }
}

/// One of Offload's settings, as actions name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// Uploads at once.
    Workers,
    /// How long a file must hold still.
    QuietPeriod,
    BandwidthLimit,
    /// The bandwidth limit by time of day.
    BandwidthSchedule,
    /// What uploads keep to while a player streams.
    PlayerYieldLimit,
    StreamPort,
    /// The address the stream server listens on.
    StreamBind,
    /// How long a presigned stream URL lives.
    UrlLifetime,
    /// How often the daemon looks through storage for changes.
    LibraryScan,
}

/// True when `error` is SQLite refusing a row because a UNIQUE constraint already holds it.
pub(crate) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(inner, _)
            if inner.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || inner.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
