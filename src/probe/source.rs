//! Positioned reads for the probes: a file, or anything else that can read a byte range, behind
//! a small block cache so that walking a header a few bytes at a time costs a few reads.

use std::collections::HashMap;
use std::fs::File;
use std::io;

/// Something a probe reads ranges of: a local file, or a stored object read by Range requests.
pub trait ReadAt {
    /// The length of the whole file.
    fn size(&self) -> u64;
    /// Up to `len` bytes from `offset`; fewer only where the file ends.
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// A local file.
pub struct FileSource {
    file: File,
    size: u64,
}

impl FileSource {
    pub fn open(path: &std::path::Path) -> io::Result<FileSource> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(FileSource { file, size })
    }
}

impl ReadAt for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use io::{Read, Seek};
        self.file.seek(io::SeekFrom::Start(offset))?;
        let mut buffer = Vec::with_capacity(len);
        (&mut self.file).take(len as u64).read_to_end(&mut buffer)?;
        Ok(buffer)
    }
}

/// Reads through whole blocks and keeps them, so that a walk over neighbouring headers reads
/// each block once. Probes touch a handful of places, so nothing is ever evicted.
pub struct Reader<S> {
    source: S,
    block: u64,
    blocks: HashMap<u64, Vec<u8>>,
}

impl<S: ReadAt> Reader<S> {
    pub fn new(source: S, block: usize) -> Reader<S> {
        Reader {
            source,
            block: block.max(512) as u64,
            blocks: HashMap::new(),
        }
    }

    pub fn size(&self) -> u64 {
        self.source.size()
    }

    /// Exactly `len` bytes from `offset`, or `UnexpectedEof` where the file is shorter.
    pub fn bytes(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = offset
            .checked_add(len as u64)
            .filter(|end| *end <= self.size())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "past the end of the file")
            })?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let first = offset / self.block;
        let last = (end - 1) / self.block;
        // The blocks not read yet, fetched in runs: one read for a run of neighbours.
        let mut index = first;
        while index <= last {
            if self.blocks.contains_key(&index) {
                index += 1;
                continue;
            }
            let mut run_end = index;
            while run_end < last && !self.blocks.contains_key(&(run_end + 1)) {
                run_end += 1;
            }
            let start = index * self.block;
            let want = ((run_end + 1) * self.block).min(self.size()) - start;
            let data = self.source.read_at(start, want as usize)?;
            if (data.len() as u64) < want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended before its stated size",
                ));
            }
            for (n, chunk) in data.chunks(self.block as usize).enumerate() {
                self.blocks.insert(index + n as u64, chunk.to_vec());
            }
            index = run_end + 1;
        }
        let mut out = Vec::with_capacity(len);
        let mut at = offset;
        while at < end {
            let block = &self.blocks[&(at / self.block)];
            let from = (at % self.block) as usize;
            let take = (block.len() - from).min((end - at) as usize);
            out.extend_from_slice(&block[from..from + take]);
            at += take as u64;
        }
        Ok(out)
    }

    /// Up to `len` bytes from `offset`, fewer where the file ends.
    pub fn up_to(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let len = self.size().saturating_sub(offset).min(len as u64) as usize;
        self.bytes(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counted {
        data: Vec<u8>,
        reads: Vec<(u64, usize)>,
    }

    impl ReadAt for &mut Counted {
        fn size(&self) -> u64 {
            self.data.len() as u64
        }
        fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            self.reads.push((offset, len));
            let start = offset as usize;
            Ok(self.data[start..(start + len).min(self.data.len())].to_vec())
        }
    }

    #[test]
    fn neighbouring_reads_share_blocks_and_runs_are_one_read() {
        let mut counted = Counted {
            data: (0..10_000u32).map(|n| n as u8).collect(),
            reads: Vec::new(),
        };
        let mut reader = Reader::new(&mut counted, 1024);
        assert_eq!(reader.bytes(10, 4).unwrap(), vec![10, 11, 12, 13]);
        assert_eq!(reader.bytes(20, 8).unwrap().len(), 8);
        let across = reader.bytes(1000, 3000).unwrap();
        assert_eq!(across[0], (1000 % 256) as u8);
        assert_eq!(across[2999], (3999 % 256) as u8);
        assert!(reader.bytes(9990, 11).is_err(), "past the end");
        assert_eq!(reader.up_to(9990, 100).unwrap().len(), 10);
        drop(reader);
        assert_eq!(
            counted.reads,
            vec![(0, 1024), (1024, 3072), (9216, 784)],
            "block 0 once, blocks 1-3 in one read, the last block once"
        );
    }
}
