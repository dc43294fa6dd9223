//! QuickXorHash, the digest OneDrive keeps for every file (`file.hashes.quickXorHash`).
//!
//! From Microsoft's description ("QuickXorHash", OneDrive developer docs): a 160-bit state; byte
//! `i` of the input is XORed into the state at bit `11 × i mod 160`, wrapping around; at the end
//! the input's length, as a 64-bit little-endian number, is XORed into the last 8 bytes. The
//! digest is sent base64-encoded.

const WIDTH_BITS: usize = 160;
const SHIFT: usize = 11;
const BYTES: usize = WIDTH_BITS / 8;

#[derive(Clone)]
pub struct QuickXorHash {
    state: [u8; BYTES],
    /// Where the next byte goes, in bits.
    position: usize,
    length: u64,
}

impl Default for QuickXorHash {
    fn default() -> QuickXorHash {
        QuickXorHash {
            state: [0; BYTES],
            position: 0,
            length: 0,
        }
    }
}

impl QuickXorHash {
    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            let index = self.position / 8;
            let offset = self.position % 8;
            let spread = u16::from(byte) << offset;
            self.state[index] ^= spread as u8;
            self.state[(index + 1) % BYTES] ^= (spread >> 8) as u8;
            self.position += SHIFT;
            if self.position >= WIDTH_BITS {
                self.position -= WIDTH_BITS;
            }
        }
        self.length += bytes.len() as u64;
    }

    pub fn finish(self) -> [u8; BYTES] {
        let mut digest = self.state;
        for (slot, byte) in digest[BYTES - 8..]
            .iter_mut()
            .zip(self.length.to_le_bytes())
        {
            *slot ^= byte;
        }
        digest
    }

    /// The digest as OneDrive shows it.
    pub fn finish_base64(self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.finish())
    }
}

impl crate::storage::chunked::ProviderDigest for QuickXorHash {
    fn absorb(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    /// Input and digest pairs, both base64, from rclone's QuickXorHash tests (which check its
    /// implementation against OneDrive's).
    const VECTORS: &[(&str, &str)] = &[
        ("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
        ("tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
        ("h490d57Pqz5q2rtT", "h3gEHe7giWeswgdq3MYupgAAAAA="),
        ("2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg="),
        (
            "T6LYJIfDh81JrAK309H2JMJTXis=",
            "zBTHrspn3mEcohlJdIUAbjGNaNg=",
        ),
        (
            "DWAAX5/CIfrmErgZa8ot6ZraeSbu",
            "LR2Z0PjuRYGKQB/mhQAuMrAGZbQ=",
        ),
        (
            "Mb7EGva2rEE5fENDL85P+BsapHEEjv2/siVhKjvAQe02feExVOQSkfmuYzU/kTF1MaKjPmKF/w+cbvwfdWL8aQ==",
            "n1anP5NfvD4XDYWIeRPW3ZkPv1Y=",
        ),
        (
            "jyibxJSzO6ZiZ0O1qe3tG/bvIAYssvukh9suIT5wEy1JBINVgPiqdsTW0cOpP0aUfP7mgqLfADkzI/m/GgCuVhr8oFLrOCoTx1/psBOWwhltCbhUx51Icm9aH8tY4Z3ccU+6BKpYQkLCy0B/A9Zc",
            "hZfLIilSITC6N3e3tQ/iSgEzkto=",
        ),
    ];

    #[test]
    fn matches_the_published_vectors_whole_and_in_pieces() {
        for (input, digest) in VECTORS {
            let input = STANDARD.decode(input).unwrap();
            let mut whole = QuickXorHash::default();
            whole.update(&input);
            assert_eq!(whole.finish_base64(), *digest, "{} bytes", input.len());
            for piece in [1, 3, 7, 64] {
                let mut pieces = QuickXorHash::default();
                for chunk in input.chunks(piece) {
                    pieces.update(chunk);
                }
                assert_eq!(pieces.finish_base64(), *digest, "pieces of {piece}");
            }
        }
    }
}
