//! Planning a multipart upload: how big each part is so a file of any size fits S3's limits.
//!
//! Limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): parts of 5 MiB
//! to 5 GiB except the last, at most 10,000 parts, objects up to 5 TiB.

pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// The product plan's part size, and where every plan starts.
pub const DEFAULT_PART_SIZE: u64 = 10 * 1024 * 1024;
/// Files below this go up in one PUT.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;
/// Parts in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How a file is cut into parts: every part `part_size` bytes except the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub size: u64,
    pub part_size: u64,
    pub parts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{size} bytes is larger than the 5 TiB an S3 object can hold")]
pub struct TooLarge {
    pub size: u64,
}

impl PartPlan {
    /// Starts at `preferred` (clamped to S3's limits) and doubles-free grows to the smallest
    /// MiB-aligned size that keeps the file within 10,000 parts.
    pub fn new(size: u64, preferred: u64) -> Result<PartPlan, TooLarge> {
        if size > MAX_OBJECT_SIZE {
            return Err(TooLarge { size });
        }
        const MIB: u64 = 1024 * 1024;
        let mut part_size = preferred.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        let needed = size.div_ceil(MAX_PARTS);
        if needed > part_size {
            part_size = needed.div_ceil(MIB) * MIB;
        }
        let parts = size.div_ceil(part_size).max(1);
        Ok(PartPlan {
            size,
            part_size,
            parts,
        })
    }

    /// The byte range of part `number` (1-based).
    pub fn range(&self, number: u64) -> (u64, u64) {
        let start = (number - 1) * self.part_size;
        let len = self.part_size.min(self.size.saturating_sub(start));
        (start, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn small_and_typical_files_use_the_default_part_size() {
        let plan = PartPlan::new(95 * MIB, DEFAULT_PART_SIZE).unwrap();
        assert_eq!((plan.part_size, plan.parts), (10 * MIB, 10));
        assert_eq!(plan.range(10), (90 * MIB, 5 * MIB));
        assert_eq!(PartPlan::new(0, DEFAULT_PART_SIZE).unwrap().parts, 1);
    }

    #[test]
    fn parts_grow_so_a_file_never_needs_more_than_10000() {
        // More than 10,000 × 10 MiB.
        let size = 10_000 * 10 * MIB + 1;
        let plan = PartPlan::new(size, DEFAULT_PART_SIZE).unwrap();
        assert!(plan.part_size > 10 * MIB);
        assert!(plan.parts <= MAX_PARTS);
        assert_eq!(plan.part_size % MIB, 0);
        let (start, len) = plan.range(plan.parts);
        assert_eq!(start + len, size, "the parts cover the file exactly");

        let two_hundred_gb = 200 * 1000 * 1000 * 1000;
        let plan = PartPlan::new(two_hundred_gb, DEFAULT_PART_SIZE).unwrap();
        assert!(plan.parts <= MAX_PARTS && plan.part_size <= MAX_PART_SIZE);

        let biggest = PartPlan::new(MAX_OBJECT_SIZE, DEFAULT_PART_SIZE).unwrap();
        assert!(biggest.parts <= MAX_PARTS && biggest.part_size <= MAX_PART_SIZE);
        assert!(PartPlan::new(MAX_OBJECT_SIZE + 1, DEFAULT_PART_SIZE).is_err());
    }

    #[test]
    fn preferred_sizes_are_clamped_to_the_limits() {
        assert_eq!(PartPlan::new(GIB, 1).unwrap().part_size, MIN_PART_SIZE);
        assert_eq!(
            PartPlan::new(GIB, 10 * GIB).unwrap().part_size,
            MAX_PART_SIZE
        );
    }
}
