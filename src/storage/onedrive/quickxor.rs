//! QuickXorHash, the digest OneDrive keeps for every file (`file.hashes.quickXorHash`).
//!
//! From Microsoft's description ("QuickXorHash", OneDrive developer docs): a 160-bit state; byte
//! `i` of the input is XORed into the state at bit `11 × i mod 160`, wrapping around; at the end
//! the input's length, as a 64-bit little-endian number, is XORed into the last 8 bytes. The
//! digest is sent base64-encoded.

const WIDTH_BITS: usize = 160;
const SHIFT: usize = 11;
const BYTES: usize = WIDTH_BITS / 8;
/// Byte `i` lands at bit `11 × i mod 160`, so bytes 160 apart land on the same bits (11 and 160
/// share no factor): the input is first XORed together in 160-byte blocks — plain XOR of whole
/// blocks, which the compiler turns into vector instructions — and only the 160 lanes are spread
/// into the state at the end.
const LANES: usize = WIDTH_BITS;

#[derive(Clone)]
pub struct QuickXorHash {
    /// Lane `k`: the XOR of every input byte whose index is `k` modulo 160.
    lanes: [u8; LANES],
    length: u64,
}

impl Default for QuickXorHash {
    fn default() -> QuickXorHash {
        QuickXorHash {
            lanes: [0; LANES],
            length: 0,
        }
    }
}

impl QuickXorHash {
    pub fn update(&mut self, bytes: &[u8]) {
        // Up to the next whole block, byte by byte.
        let start = (self.length % LANES as u64) as usize;
        let head = bytes.len().min((LANES - start) % LANES);
        for (lane, byte) in self.lanes[start..].iter_mut().zip(&bytes[..head]) {
            *lane ^= byte;
        }
        let mut blocks = bytes[head..].chunks_exact(LANES);
        for block in &mut blocks {
            for (lane, byte) in self.lanes.iter_mut().zip(block) {
                *lane ^= byte;
            }
        }
        for (lane, byte) in self.lanes.iter_mut().zip(blocks.remainder()) {
            *lane ^= byte;
        }
        self.length += bytes.len() as u64;
    }

    pub fn finish(self) -> [u8; BYTES] {
        let mut digest = [0u8; BYTES];
        for (k, &lane) in self.lanes.iter().enumerate() {
            let position = k * SHIFT % WIDTH_BITS;
            let (index, offset) = (position / 8, position % 8);
            let spread = u16::from(lane) << offset;
            digest[index] ^= spread as u8;
            digest[(index + 1) % BYTES] ^= (spread >> 8) as u8;
        }
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

    /// The per-byte definition, as Microsoft describes it, against which the block-wise one is
    /// checked on inputs longer than the published vectors.
    fn by_definition(input: &[u8]) -> [u8; BYTES] {
        let mut state = [0u8; BYTES];
        let mut position = 0;
        for &byte in input {
            let spread = u16::from(byte) << (position % 8);
            state[position / 8] ^= spread as u8;
            state[(position / 8 + 1) % BYTES] ^= (spread >> 8) as u8;
            position = (position + SHIFT) % WIDTH_BITS;
        }
        for (slot, byte) in state[BYTES - 8..]
            .iter_mut()
            .zip((input.len() as u64).to_le_bytes())
        {
            *slot ^= byte;
        }
        state
    }

    #[test]
    fn long_inputs_in_any_pieces_match_the_definition() {
        let input: Vec<u8> = (0..10_007u32)
            .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for piece in [1, 13, 160, 1000, 4096] {
            let mut hash = QuickXorHash::default();
            for chunk in input.chunks(piece) {
                hash.update(chunk);
            }
            assert_eq!(hash.finish(), by_definition(&input), "pieces of {piece}");
        }
    }

    #[test]
    fn matches_the_published_vectors_whole_and_in_pieces() {
        for (input, digest) in VECTORS {
            let input = STANDARD.decode(input).unwrap();
            let mut whole = QuickXorHash::default();
            whole.update(&input);
            assert_eq!(whole.finish_base64(), *digest, "{} bytes", input.len());
            for piece in [1, 3, 7, 64, 159, 161] {
                let mut pieces = QuickXorHash::default();
                for chunk in input.chunks(piece) {
                    pieces.update(chunk);
                }
                assert_eq!(pieces.finish_base64(), *digest, "pieces of {piece}");
            }
        }
    }
}
