//! Making a media file ready to stream before it is uploaded: the product plan's "transmux"
//! step. The local file is never altered; what is uploaded in its place is a rewritten copy,
//! which the queue keeps in its scratch folder for the length of one attempt.

pub mod faststart;
pub mod remux;

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// The SHA-256 of the original, read while its copy is written (the library keeps both
/// hashes); gives up when `failed` says the copy did.
fn sha256_of(source: &Path, failed: &AtomicBool) -> io::Result<[u8; 32]> {
    let mut file = File::open(source)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        if failed.load(Ordering::Relaxed) {
            return Err(io::Error::other("the copy failed"));
        }
        match file.read(&mut buffer)? {
            0 => return Ok(hasher.finalize().into()),
            read => hasher.update(&buffer[..read]),
        }
    }
}
