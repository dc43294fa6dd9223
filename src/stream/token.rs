//! Capability tokens: the unguessable part of every stream and playlist URL.
//!
//! A token is the HMAC-SHA256 of what the URL names ("media/42", "playlist/3") under a key derived
//! from the master key, cut to 128 bits. It is stable across restarts (URLs saved in a player keep
//! working), different for every item (one shared URL does not open the rest of the library), and
//! cannot be made without the master key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::library::LibraryItem;
use crate::secrets::MasterKey;

const PURPOSE: &str = "stream-token-v1";
const TOKEN_BYTES: usize = 16;
/// 16 bytes in unpadded base64.
const TOKEN_CHARS: usize = 22;

/// What a URL gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Item(LibraryItem),
    Playlist { profile_id: i64 },
}

impl Subject {
    /// What the token is the HMAC of, fed to `mac` without a string of its own: tokens are
    /// checked on every stream request.
    fn feed(self, mac: &mut Hmac<Sha256>) {
        use std::fmt::Write as _;
        struct Feed<'a>(&'a mut Hmac<Sha256>);
        impl std::fmt::Write for Feed<'_> {
            fn write_str(&mut self, text: &str) -> std::fmt::Result {
                self.0.update(text.as_bytes());
                Ok(())
            }
        }
        let mut feed = Feed(mac);
        let _ = match self {
            Subject::Item(LibraryItem::Media(id)) => write!(feed, "media/{id}"),
            Subject::Item(LibraryItem::Episode(id)) => write!(feed, "episode/{id}"),
            Subject::Playlist { profile_id } => write!(feed, "playlist/{profile_id}"),
        };
    }
}

/// The HMAC keyed once with the derived key; each token starts from a clone of it.
#[derive(Clone)]
pub struct TokenKey(Hmac<Sha256>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(master: &MasterKey) -> TokenKey {
        let key: Zeroizing<[u8; 32]> = master.derive(PURPOSE);
        match <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice()) {
            Ok(mac) => TokenKey(mac),
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }

    fn mac(&self, subject: Subject) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        subject.feed(&mut mac);
        mac
    }

    pub fn token(&self, subject: Subject) -> String {
        let tag = self.mac(subject).finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(&tag[..TOKEN_BYTES])
    }

    /// Whether `token` opens `subject`, compared in constant time.
    pub fn verify(&self, subject: Subject, token: &str) -> bool {
        if token.len() != TOKEN_CHARS {
            return false;
        }
        // Decoded on the stack; base64 asks for room for a whole last group of three.
        let mut tag = [0u8; TOKEN_BYTES + 2];
        match URL_SAFE_NO_PAD.decode_slice(token, &mut tag) {
            Ok(TOKEN_BYTES) => self
                .mac(subject)
                .verify_truncated_left(&tag[..TOKEN_BYTES])
                .is_ok(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::KeySource;

    fn key(byte: u8) -> TokenKey {
        TokenKey::new(&MasterKey::from_bytes([byte; 32], KeySource::Environment))
    }

    #[test]
    fn tokens_open_only_their_own_subject() {
        let key = key(7);
        let media = Subject::Item(LibraryItem::Media(1));
        let token = key.token(media);
        assert_eq!(token.len(), TOKEN_CHARS);
        assert!(key.verify(media, &token));
        assert_eq!(key.token(media), token, "stable for the same key");
        for other in [
            Subject::Item(LibraryItem::Media(2)),
            Subject::Item(LibraryItem::Episode(1)),
            Subject::Playlist { profile_id: 1 },
        ] {
            assert!(!key.verify(other, &token), "{other:?}");
        }
        assert!(!self::key(8).verify(media, &token), "another master key");
        assert!(!key.verify(media, ""));
        assert!(!key.verify(media, &token[..21]));
        assert!(!key.verify(media, "not base64 at all!!!!!"));
    }
}
