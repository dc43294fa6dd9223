//! Secrets at rest: a 256-bit master key kept in the OS keychain (or, by explicit opt-in, in
//! `OFFLOAD_MASTER_KEY`), and AES-256-GCM sealing of every secret before it reaches SQLite.
//!
//! A sealed value is `v1:` followed by base64 of `nonce (12 bytes) || ciphertext || tag`. The
//! record it belongs to (table, row id, field) is bound in as associated data, so a sealed value
//! copied into another row or field does not open.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use zeroize::Zeroizing;

/// The environment variable that opts out of the keychain (headless servers).
pub const MASTER_KEY_ENV: &str = "OFFLOAD_MASTER_KEY";
/// Names the keychain entry's service; lets two installs (or tests) keep separate keys.
pub const KEYCHAIN_SERVICE_ENV: &str = "OFFLOAD_KEYCHAIN_SERVICE";
const KEYCHAIN_SERVICE: &str = "offload";
const KEYCHAIN_ACCOUNT: &str = "master-key";
const SEALED_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "no OS keychain is reachable to keep Offload's master key ({detail}). Either start a \
         Secret Service (for example gnome-keyring or KeePassXC, inside a D-Bus session) and \
         unlock it, or opt in to keeping the key yourself: set {MASTER_KEY_ENV} to the base64 \
         of 32 random bytes (`head -c32 /dev/urandom | base64`) in the daemon's environment"
    )]
    KeychainUnavailable { detail: String },
    #[error(
        "the OS keychain is locked or refused access to Offload's master key ({detail}); unlock \
         your keyring and try again"
    )]
    KeychainLocked { detail: String },
    #[error("{MASTER_KEY_ENV} is set but is not the base64 of 32 bytes")]
    BadEnvKey,
    #[error("the master key stored in the OS keychain is damaged (not 32 bytes)")]
    BadStoredKey,
    #[error(
        "this database's secrets were sealed with a different master key than the one in use \
         now (keychain or {MASTER_KEY_ENV}); restore the original key, or remove and re-add the \
         storage backends and accounts"
    )]
    WrongKey,
    #[error("the sealed value for {context} does not open: it was altered, moved from another record, or sealed with another key")]
    Tampered { context: String },
    #[error("the sealed value for {context} is not in a format this version understands")]
    Malformed { context: String },
}

/// Where the master key came from, for `offload` to tell the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Keychain,
    Environment,
}

/// The master key. Its bytes are wiped when dropped and never printed.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Arc<Zeroizing<[u8; 32]>>,
    source: KeySource,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32], source: KeySource) -> MasterKey {
        MasterKey {
            bytes: Arc::new(Zeroizing::new(bytes)),
            source,
        }
    }

    pub fn source(&self) -> KeySource {
        self.source
    }

    /// A short public name for the key, to tell two keys apart without revealing either.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"offload-key-fingerprint:")
            .chain_update(self.bytes.as_slice())
            .finalize();
        hex::encode(&digest[..6])
    }

    /// A key for one purpose, derived from the master key (HMAC-SHA256 of the purpose), so that
    /// the master key itself only ever seals and a derived key can be handed to other parts
    /// without exposing it.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        use hmac::{Hmac, Mac};
        let mut mac = match <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(self.bytes.as_slice()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(b"offload-derive:");
        mac.update(purpose.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// The key from `OFFLOAD_MASTER_KEY` when set; otherwise the keychain's, created there on
    /// first use.
    pub fn load() -> Result<MasterKey, SecretsError> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(value) => Self::from_base64(value.trim(), KeySource::Environment),
            Err(_) => Self::load_from_keychain(),
        }
    }

    fn from_base64(text: &str, source: KeySource) -> Result<MasterKey, SecretsError> {
        let decoded = Zeroizing::new(BASE64.decode(text).map_err(|_| SecretsError::BadEnvKey)?);
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| SecretsError::BadEnvKey)?;
        Ok(MasterKey::from_bytes(bytes, source))
    }

    fn load_from_keychain() -> Result<MasterKey, SecretsError> {
        let entry =
            keyring::Entry::new(KEYCHAIN_SERVICE, KEYCHAIN_ACCOUNT).map_err(keychain_error)?;
        match entry.get_secret() {
            Ok(stored) => {
                let stored = Zeroizing::new(stored);
                let bytes: [u8; 32] = stored
                    .as_slice()
                    .try_into()
                    .map_err(|_| SecretsError::BadStoredKey)?;
                Ok(MasterKey::from_bytes(bytes, KeySource::Keychain))
            }
            Err(keyring::Error::NoEntry) => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                entry.set_secret(&bytes).map_err(keychain_error)?;
                tracing::info!("created Offload's master key in the OS keychain");
                // Read back so a keychain that silently drops writes is caught now, not after
                // secrets were sealed under a key that is gone.
                let stored = Zeroizing::new(entry.get_secret().map_err(keychain_error)?);
                if stored.as_slice() != bytes {
                    return Err(SecretsError::BadStoredKey);
                }
                Ok(MasterKey::from_bytes(bytes, KeySource::Keychain))
            }
            Err(error) => Err(keychain_error(error)),
        }
    }
}

fn keychain_error(error: keyring::Error) -> SecretsError {
    match error {
        keyring::Error::NoStorageAccess(detail) => SecretsError::KeychainLocked {
            detail: detail.to_string(),
        },
        keyring::Error::NoDefaultStore => SecretsError::KeychainUnavailable {
            detail: match keyring::Entry::store_status() {
                Err(status) => status.to_string(),
                Ok(()) => "no credential store".to_owned(),
            },
        },
        other => SecretsError::KeychainUnavailable {
            detail: other.to_string(),
        },
    }
}

/// Names the record a sealed value belongs to; it becomes the value's associated data.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub table: &'a str,
    pub record: i64,
    pub field: &'a str,
}

impl fmt::Display for SealContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.table, self.record, self.field)
    }
}

impl SealContext<'_> {
    fn associated_data(&self) -> Vec<u8> {
        format!("offload:v1:{self}").into_bytes()
    }
}

/// Seals and opens values under the master key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    key: MasterKey,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("key", &self.key).finish()
    }
}

impl Sealer {
    pub fn new(key: MasterKey) -> Sealer {
        let cipher = Aes256Gcm::new(key.bytes.as_slice().into());
        Sealer { cipher, key }
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    pub fn seal(&self, plaintext: &[u8], context: SealContext<'_>) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = context.associated_data();
        let payload = Payload {
            msg: plaintext,
            aad: &aad,
        };
        // Encryption fails only for inputs beyond AES-GCM's 64 GiB limit, which no secret is.
        let ciphertext = match self.cipher.encrypt(Nonce::from_slice(&nonce), payload) {
            Ok(ciphertext) => ciphertext,
            Err(_) => unreachable!("AES-GCM input limit exceeded by a secret"),
        };
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", BASE64.encode(blob))
    }

    pub fn seal_str(&self, plaintext: &str, context: SealContext<'_>) -> String {
        self.seal(plaintext.as_bytes(), context)
    }

    pub fn open(
        &self,
        sealed: &str,
        context: SealContext<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let malformed = || SecretsError::Malformed {
            context: context.to_string(),
        };
        let body = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(malformed)?;
        let blob = BASE64.decode(body).map_err(|_| malformed())?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(malformed());
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let aad = context.associated_data();
        let payload = Payload {
            msg: ciphertext,
            aad: &aad,
        };
        self.cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| SecretsError::Tampered {
                context: context.to_string(),
            })
    }

    pub fn open_string(
        &self,
        sealed: &str,
        context: SealContext<'_>,
    ) -> Result<Zeroizing<String>, SecretsError> {
        let bytes = self.open(sealed, context)?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| SecretsError::Malformed {
                context: context.to_string(),
            })
    }
}

/// The master key as the rest of the engine meets it: loaded the first time a secret is sealed
/// or opened (so a local-only setup never needs a keychain), and checked against the database so
/// that a different key is reported as such rather than as a damaged value.
#[derive(Debug)]
pub struct Vault {
    db: crate::db::Db,
    sealer: std::sync::Mutex<Option<Sealer>>,
}

const KEY_CHECK_SETTING: &str = "secrets.key_check";
const KEY_CHECK_CONTEXT: SealContext<'static> = SealContext {
    table: "settings",
    record: 0,
    field: KEY_CHECK_SETTING,
};

impl Vault {
    pub fn new(db: crate::db::Db) -> Vault {
        Vault {
            db,
            sealer: std::sync::Mutex::new(None),
        }
    }

    /// A vault with a key given directly (tests, and callers that loaded it themselves).
    pub fn with_key(db: crate::db::Db, key: MasterKey) -> Result<Vault, crate::Error> {
        let vault = Vault::new(db);
        vault.install(Sealer::new(key))?;
        Ok(vault)
    }

    pub fn sealer(&self) -> Result<Sealer, crate::Error> {
        if let Some(sealer) = self.lock().as_ref() {
            return Ok(sealer.clone());
        }
        let sealer = Sealer::new(MasterKey::load()?);
        self.install(sealer.clone())?;
        Ok(sealer)
    }

    fn install(&self, sealer: Sealer) -> Result<(), crate::Error> {
        match self.db.setting(KEY_CHECK_SETTING)? {
            Some(check) => {
                if sealer.open(&check, KEY_CHECK_CONTEXT).is_err() {
                    return Err(SecretsError::WrongKey.into());
                }
            }
            None => self.db.set_setting(
                KEY_CHECK_SETTING,
                &sealer.seal(b"offload", KEY_CHECK_CONTEXT),
            )?,
        }
        *self.lock() = Some(sealer);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Sealer>> {
        self.sealer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(byte: u8) -> Sealer {
        Sealer::new(MasterKey::from_bytes([byte; 32], KeySource::Environment))
    }

    const CONTEXT: SealContext<'static> = SealContext {
        table: "storage_backends",
        record: 7,
        field: "secret_access_key",
    };

    #[test]
    fn round_trip() {
        let sealer = sealer(1);
        let sealed = sealer.seal_str("hunter2", CONTEXT);
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            sealer.open_string(&sealed, CONTEXT).unwrap().as_str(),
            "hunter2"
        );
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let sealer = sealer(1);
        assert_ne!(sealer.seal_str("x", CONTEXT), sealer.seal_str("x", CONTEXT));
    }

    #[test]
    fn tampered_value_is_rejected() {
        let sealer = sealer(1);
        let sealed = sealer.seal_str("hunter2", CONTEXT);
        let mut blob = BASE64.decode(&sealed[3..]).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        let tampered = format!("v1:{}", BASE64.encode(blob));
        assert!(matches!(
            sealer.open(&tampered, CONTEXT),
            Err(SecretsError::Tampered { .. })
        ));
    }

    #[test]
    fn value_moved_to_another_record_or_field_is_rejected() {
        let sealer = sealer(1);
        let sealed = sealer.seal_str("hunter2", CONTEXT);
        let other_row = SealContext {
            record: 8,
            ..CONTEXT
        };
        let other_field = SealContext {
            field: "access_key_id",
            ..CONTEXT
        };
        assert!(matches!(
            sealer.open(&sealed, other_row),
            Err(SecretsError::Tampered { .. })
        ));
        assert!(matches!(
            sealer.open(&sealed, other_field),
            Err(SecretsError::Tampered { .. })
        ));
    }

    #[test]
    fn wrong_key_is_an_error_not_garbage() {
        let sealed = sealer(1).seal_str("hunter2", CONTEXT);
        assert!(matches!(
            sealer(2).open(&sealed, CONTEXT),
            Err(SecretsError::Tampered { .. })
        ));
    }

    #[test]
    fn malformed_values_are_named() {
        let sealer = sealer(1);
        for bad in ["hunter2", "v1:!!!", "v1:AAAA", "v2:AAAA"] {
            assert!(
                matches!(
                    sealer.open(bad, CONTEXT),
                    Err(SecretsError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let text = format!("{:?}", sealer(0xAB));
        assert!(
            !text.contains("171") && !text.to_lowercase().contains("ab, "),
            "{text}"
        );
    }
}
