//! The engine's error type: each module has its own `thiserror` enum; this one gathers them for
//! callers that do many things (the engine, the command line, the desktop shell).

use crate::db::DbError;
use crate::oauth::OAuthError;
use crate::secrets::SecretsError;
use crate::storage::{PathError, StorageError};
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
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// Something named by the user does not exist; the message says how to list what does.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be carried out as asked; the message says why and what to change.
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
    pub fn io(context: impl Into<String>, error: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            error,
        }
    }
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
