//! Offload's engine: everything that is not a window. It watches download folders, queues each
//! finished media file for upload to the storage a profile chose, verifies the remote copy, and
//! keeps the library of what was uploaded. The `offload` command and the desktop app both drive it.

pub mod accounts;
pub mod backends;
pub mod db;
pub mod engine;
mod error;
pub mod filter;
pub mod library;
pub mod logging;
pub mod oauth;
pub mod platform;
pub mod playback;
pub mod posters;
pub mod probe;
pub mod profiles;
pub mod queue;
pub mod schedule;
pub mod secrets;
pub mod settings;
pub mod storage;
pub mod stream;
pub mod summary;
pub mod template;
pub mod transmux;
pub mod watch;

pub use engine::Engine;
pub use error::{Action, Error, Result, Setting};
