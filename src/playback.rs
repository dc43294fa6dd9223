//! Whether a player is being served from remote storage: the stream server says so with every
//! request it redirects or proxies (and while a proxied body streams), and the upload queue asks,
//! so that uploads leave the link to the film someone is watching.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Playback {
    /// When a player last asked for something.
    last: Mutex<Option<Instant>>,
    /// Proxied bodies streaming now.
    streaming: AtomicUsize,
}

/// A proxied body streaming to a player; playback lasts while it lives.
pub struct Streaming(Arc<Playback>);

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.streaming.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Playback {
    /// A player asked for something from remote storage.
    pub fn touch(&self) {
        *self.lock() = Some(Instant::now());
    }

    /// A proxied body starts streaming to a player.
    pub fn streaming(self: &Arc<Self>) -> Streaming {
        self.streaming.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Streaming(self.clone())
    }

    /// Whether a player streams now, or asked for something less than `idle` ago.
    pub fn active_within(&self, idle: Duration) -> bool {
        self.streaming.load(Ordering::Relaxed) > 0
            || self.lock().is_some_and(|last| last.elapsed() < idle)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_lasts_while_a_body_streams_and_for_a_while_after_a_request() {
        let playback = Arc::new(Playback::default());
        assert!(!playback.active_within(Duration::from_secs(60)));
        let streaming = playback.streaming();
        assert!(
            playback.active_within(Duration::ZERO),
            "a body is streaming"
        );
        drop(streaming);
        assert!(!playback.active_within(Duration::ZERO));
        assert!(playback.active_within(Duration::from_secs(60)));
    }
}
