//! Reading numbers out of headers: big-endian fields at offsets, and the bit-packed,
//! Exp-Golomb-coded fields of an H.264 sequence parameter set.

/// The big-endian unsigned number in `bytes[at..at + width]`, if the slice is long enough.
pub fn be(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(width)?)?;
    Some(field.iter().fold(0, |n, byte| (n << 8) | u64::from(*byte)))
}

/// Bits of a NAL unit's payload, its emulation-prevention bytes (`00 00 03`) already removed.
pub struct Bits {
    data: Vec<u8>,
    at: usize,
}

impl Bits {
    /// The payload of a NAL unit, `00 00 03` read as `00 00`.
    pub fn unescaped(nal: &[u8]) -> Bits {
        let mut data = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &byte in nal {
            if zeros >= 2 && byte == 3 {
                zeros = 0;
                continue;
            }
            zeros = if byte == 0 { zeros + 1 } else { 0 };
            data.push(byte);
        }
        Bits { data, at: 0 }
    }

    pub fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.at / 8)?;
        let bit = (byte >> (7 - self.at % 8)) & 1;
        self.at += 1;
        Some(u32::from(bit))
    }

    pub fn bits(&mut self, count: u32) -> Option<u32> {
        (0..count).try_fold(0, |n, _| Some((n << 1) | self.bit()?))
    }

    pub fn skip(&mut self, count: usize) -> Option<()> {
        self.at += count;
        (self.at <= self.data.len() * 8).then_some(())
    }

    /// An unsigned Exp-Golomb number (`ue(v)`).
    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    /// A signed Exp-Golomb number (`se(v)`).
    pub fn se(&mut self) -> Option<i32> {
        let code = self.ue()? as i64;
        let value = if code % 2 == 1 {
            (code + 1) / 2
        } else {
            -(code / 2)
        };
        i32::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_and_escapes() {
        // 1 → 0; 010 → 1; 011 → 2; 00100 → 3; then se 00101 → -2 ... packed:
        // bits: 1 010 011 00100 00101 → 1010 0110 0100 0010 1(000)
        let mut bits = Bits::unescaped(&[0b1010_0110, 0b0100_0010, 0b1000_0000]);
        assert_eq!(bits.ue(), Some(0));
        assert_eq!(bits.ue(), Some(1));
        assert_eq!(bits.ue(), Some(2));
        assert_eq!(bits.ue(), Some(3));
        assert_eq!(bits.se(), Some(-2));
        let unescaped = Bits::unescaped(&[0, 0, 3, 1, 0, 0, 3]);
        assert_eq!(unescaped.data, vec![0, 0, 1, 0, 0]);
        assert_eq!(be(&[1, 2, 3], 1, 2), Some(0x0203));
        assert_eq!(be(&[1, 2, 3], 2, 2), None);
    }
}
