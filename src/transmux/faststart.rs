//! Faststart: an MP4 or MOV whose index (`moov`) comes after its media data (`mdat`) rewritten
//! with the index first, so that a player reading it through a URL can start from the first
//! bytes instead of fetching the end of the file first.
//!
//! The rewrite moves one box and changes nothing else: the boxes before the first `mdat` stay
//! where they are, the index goes in front of the media data, and every chunk offset (`stco`,
//! or `co64` where 32 bits no longer reach) moves by what now comes before it. The media data is
//! copied unchanged (by the kernel, where it copies files itself). Only the index is held in
//! memory, so memory does not grow with the file. Anything the rewrite does not fully
//! understand — a fragmented file, media data in another file, offsets kept elsewhere in the
//! index, damage — is refused, and the file is uploaded as it is.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::probe::{self, BoxHeader, FileSource, Reader};

/// The largest index rewritten. A three-hour film's is a few megabytes; far more is damage, and
/// the index is what the rewrite holds in memory.
const MOST_INDEX: u64 = 256 << 20;
/// How much is copied between two looks at whether to stop.
const STEP: u64 = 64 << 20;

/// Why a file is uploaded as it is rather than rewritten.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("it is not an MP4 or MOV file")]
    NotMp4,
    #[error("it is a fragmented MP4, whose index is spread through the file")]
    Fragmented,
    #[error("{0}")]
    Unsupported(String),
    #[error("its MP4 structure is damaged: {0}")]
    Malformed(String),
    #[error("it could not be read or the copy written: {0}")]
    Io(#[from] io::Error),
    #[error("the rewrite was stopped")]
    Stopped,
}

impl From<probe::ProbeError> for Refused {
    fn from(error: probe::ProbeError) -> Refused {
        match error {
            probe::ProbeError::Io(error) if error.kind() != io::ErrorKind::UnexpectedEof => {
                Refused::Io(error)
            }
            other => Refused::Malformed(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, Refused>;

/// What a file needs.
#[derive(Debug)]
pub enum Verdict {
    /// Its index already comes before its media data.
    Ready,
    Rewrite(Plan),
}

/// How to rewrite one file: where the index goes, and the index with its offsets moved.
#[derive(Debug)]
pub struct Plan {
    size: u64,
    insert_at: u64,
    old_index: (u64, u64),
    index: Vec<u8>,
}

impl Plan {
    /// The size of the rewritten file: the original's, unless 32-bit chunk offsets had to grow.
    pub fn output_size(&self) -> u64 {
        self.size - (self.old_index.1 - self.old_index.0) + self.index.len() as u64
    }
}

/// A finished rewrite.
#[derive(Debug)]
pub struct Rewritten {
    pub size: u64,
    /// SHA-256 of the original file, read in the same pass.
    pub source_sha256: [u8; 32],
}

/// Reads the file's top-level boxes and its index, and says whether and how to rewrite it.
pub fn plan(path: &Path) -> Result<Verdict> {
    let mut reader = Reader::new(FileSource::open(path)?, probe::LOCAL_BLOCK);
    let size = reader.size();
    if !probe::looks_like_mp4(&reader.up_to(0, 16)?) {
        return Err(Refused::NotMp4);
    }
    let top = probe::mp4_boxes(&mut reader, 0, size)?;
    let is = |header: &&BoxHeader, kind: &[u8; 4]| &header.kind == kind;
    if top.iter().any(|h| is(&h, b"moof") || is(&h, b"mfra")) {
        return Err(Refused::Fragmented);
    }
    let mut indexes = top.iter().filter(|h| is(h, b"moov"));
    let index = *indexes
        .next()
        .ok_or_else(|| Refused::Malformed("it has no movie (moov) box".into()))?;
    if indexes.next().is_some() {
        return Err(Refused::Unsupported("it has two movie (moov) boxes".into()));
    }
    let index_start = index.start;
    let Some(first_data) = top.iter().find(|h| is(h, b"mdat")).copied() else {
        return Err(Refused::Unsupported(
            "it has no media data (mdat) box".into(),
        ));
    };
    let insert_at = first_data.start;
    if index_start < insert_at {
        return Ok(Verdict::Ready);
    }
    let index_len = index.end - index_start;
    if index_len > MOST_INDEX {
        return Err(Refused::Unsupported(format!(
            "its index is {index_len} bytes, more than Offload rewrites"
        )));
    }
    let bytes = reader.bytes(index.body, (index.end - index.body) as usize)?;
    let mut movie = Node::Container {
        kind: *b"moov",
        prefix: Vec::new(),
        children: parse(&bytes)?,
    };
    let layout = Layout {
        size,
        insert_at,
        old_index: (index_start, index.end),
    };
    layout.check(&movie)?;
    let index = settle(&mut movie, &layout);
    Ok(Verdict::Rewrite(Plan {
        size,
        insert_at,
        old_index: layout.old_index,
        index,
    }))
}

/// The index with its chunk offsets moved to where the rewrite puts the data.
fn settle(movie: &mut Node, layout: &Layout) -> Vec<u8> {
    // Moving the index in front moves the data by the index's new length, which grows where a
    // 32-bit table no longer reaches and must become a 64-bit one: settle that first.
    loop {
        let new_len = movie.len();
        let mut grew = false;
        movie.each_table(&mut |table| {
            if !table.large
                && table
                    .entries
                    .iter()
                    .any(|&at| layout.moved(at, new_len) > u64::from(u32::MAX))
            {
                table.large = true;
                grew = true;
            }
        });
        if !grew {
            break;
        }
    }
    let new_len = movie.len();
    movie.each_table(&mut |table| {
        for at in &mut table.entries {
            *at = layout.moved(*at, new_len);
        }
    });
    let mut index = Vec::with_capacity(new_len as usize);
    movie.write(&mut index);
    index
}

/// Writes the rewritten file to `out` (which must not exist), hashing the original on a second
/// thread meanwhile; `stop` is asked between steps. `out` is left for the caller to remove when
/// this fails.
pub fn rewrite(
    source: &Path,
    plan: &Plan,
    out: &Path,
    stop: &dyn Fn() -> bool,
) -> Result<Rewritten> {
    let file = File::open(source)?;
    if file.metadata()?.len() != plan.size {
        return Err(Refused::Unsupported(
            "it changed while being rewritten".into(),
        ));
    }
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| super::sha256_of(source, &failed));
        let written = copy(&file, plan, out, stop);
        if written.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        let digest = hashing
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the hashing thread failed")));
        let size = written?;
        confirm(source, out)?;
        Ok(Rewritten {
            size,
            source_sha256: digest?,
        })
    })
}

fn copy(file: &File, plan: &Plan, out: &Path, stop: &dyn Fn() -> bool) -> Result<u64> {
    // The buffer carries the index; the ranges go through `io::copy`, which hands a file-to-file
    // copy to the kernel where the OS can do that (`copy_file_range` on Linux).
    let mut writer = BufWriter::with_capacity(1 << 20, File::create_new(out)?);
    let (index_start, index_end) = plan.old_index;
    copy_range(file, 0, plan.insert_at, &mut writer, stop)?;
    writer.write_all(&plan.index)?;
    copy_range(file, plan.insert_at, index_start, &mut writer, stop)?;
    copy_range(file, index_end, plan.size, &mut writer, stop)?;
    writer.flush()?;
    let written = writer.get_ref().metadata()?.len();
    if written != plan.output_size() {
        return Err(Refused::Io(io::Error::other(format!(
            "the copy has {written} bytes where {} were written",
            plan.output_size()
        ))));
    }
    Ok(written)
}

/// The rewrite must read as the original does, with its index first: a last look, a few reads.
fn confirm(source: &Path, out: &Path) -> Result<()> {
    let same = probe::probe_file(source)? == probe::probe_file(out)?;
    match plan(out)? {
        Verdict::Ready if same => Ok(()),
        _ => Err(Refused::Unsupported(
            "its rewrite did not read as the original does".into(),
        )),
    }
}

fn copy_range(
    mut file: &File,
    from: u64,
    to: u64,
    out: &mut BufWriter<File>,
    stop: &dyn Fn() -> bool,
) -> Result<()> {
    file.seek(SeekFrom::Start(from))?;
    let mut at = from;
    while at < to {
        if stop() {
            return Err(Refused::Stopped);
        }
        let step = STEP.min(to - at);
        let copied = io::copy(&mut file.take(step), out)?;
        if copied < step {
            return Err(Refused::Unsupported(
                "it got shorter while being rewritten".into(),
            ));
        }
        at += step;
    }
    Ok(())
}

/// Where the boxes of the original file are, and where they go.
struct Layout {
    size: u64,
    insert_at: u64,
    old_index: (u64, u64),
}

impl Layout {
    /// Where the byte at `at` of the original is in the rewrite, given the new index's length.
    fn moved(&self, at: u64, index_len: u64) -> u64 {
        let (start, end) = self.old_index;
        if at < self.insert_at {
            at
        } else if at < start {
            at + index_len
        } else {
            at - (end - start) + index_len
        }
    }

    /// Every chunk offset must point at the file's data, never into the index being moved.
    fn check(&self, movie: &Node) -> Result<()> {
        let (start, end) = self.old_index;
        let mut wrong = None;
        movie.tables(&mut |table| {
            if let Some(&at) = table
                .entries
                .iter()
                .find(|&&at| at >= self.size || (start..end).contains(&at))
            {
                wrong.get_or_insert(at);
            }
        });
        match wrong {
            Some(at) => Err(Refused::Malformed(format!(
                "a chunk offset ({at}) points outside its media data"
            ))),
            None => Ok(()),
        }
    }
}

/// A chunk offset table.
#[derive(Debug)]
struct Table {
    large: bool,
    version_flags: [u8; 4],
    entries: Vec<u64>,
}

/// The index as a tree, opened only where chunk offsets live or where something could point
/// outside it.
#[derive(Debug)]
enum Node {
    Container {
        kind: [u8; 4],
        /// A full box's version and flags, before its children (`meta`).
        prefix: Vec<u8>,
        children: Vec<Node>,
    },
    Table(Table),
    /// A box kept byte for byte, header included.
    Opaque(Vec<u8>),
    /// Fewer than 8 bytes after the last box (QuickTime's 32-bit zero terminator).
    Padding(Vec<u8>),
}

impl Node {
    fn len(&self) -> u64 {
        match self {
            Node::Container {
                prefix, children, ..
            } => 8 + prefix.len() as u64 + children.iter().map(Node::len).sum::<u64>(),
            Node::Table(table) => 16 + table.entries.len() as u64 * if table.large { 8 } else { 4 },
            Node::Opaque(bytes) | Node::Padding(bytes) => bytes.len() as u64,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        // Lengths fit 32 bits: the whole index is at most MOST_INDEX.
        let header = |out: &mut Vec<u8>, len: u64, kind: &[u8; 4]| {
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(kind);
        };
        match self {
            Node::Container {
                kind,
                prefix,
                children,
            } => {
                header(out, self.len(), kind);
                out.extend_from_slice(prefix);
                for child in children {
                    child.write(out);
                }
            }
            Node::Table(table) => {
                header(out, self.len(), if table.large { b"co64" } else { b"stco" });
                out.extend_from_slice(&table.version_flags);
                out.extend_from_slice(&(table.entries.len() as u32).to_be_bytes());
                for &at in &table.entries {
                    if table.large {
                        out.extend_from_slice(&at.to_be_bytes());
                    } else {
                        out.extend_from_slice(&(at as u32).to_be_bytes());
                    }
                }
            }
            Node::Opaque(bytes) | Node::Padding(bytes) => out.extend_from_slice(bytes),
        }
    }

    fn each_table(&mut self, visit: &mut dyn FnMut(&mut Table)) {
        match self {
            Node::Container { children, .. } => {
                for child in children {
                    child.each_table(visit);
                }
            }
            Node::Table(table) => visit(table),
            Node::Opaque(_) | Node::Padding(_) => {}
        }
    }

    fn tables(&self, visit: &mut dyn FnMut(&Table)) {
        match self {
            Node::Container { children, .. } => {
                for child in children {
                    child.tables(visit);
                }
            }
            Node::Table(table) => visit(table),
            Node::Opaque(_) | Node::Padding(_) => {}
        }
    }
}

fn be32(bytes: &[u8], at: usize) -> Option<u64> {
    probe::be(bytes, at, 4)
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    probe::be(bytes, at, 8)
}

fn name(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// The boxes in `bytes`, opened where offsets can be.
fn parse(bytes: &[u8]) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = be32(bytes, at).unwrap_or(0);
        let kind = [bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]];
        let (header, len) = match size {
            0 => (8, (bytes.len() - at) as u64),
            1 => (
                16,
                be64(bytes, at + 8)
                    .ok_or_else(|| Refused::Malformed("a box header is cut short".into()))?,
            ),
            size => (8, size),
        };
        let end = at as u64 + len;
        if len < header || end > bytes.len() as u64 {
            return Err(Refused::Malformed(format!(
                "the {} box claims {len} bytes, past the end of its parent",
                name(&kind)
            )));
        }
        let whole = &bytes[at..end as usize];
        nodes.push(node(kind, &whole[header as usize..], whole)?);
        at = end as usize;
    }
    if at < bytes.len() {
        nodes.push(Node::Padding(bytes[at..].to_vec()));
    }
    Ok(nodes)
}

fn node(kind: [u8; 4], body: &[u8], whole: &[u8]) -> Result<Node> {
    let container = |prefix: &[u8], rest: &[u8]| -> Result<Node> {
        Ok(Node::Container {
            kind,
            prefix: prefix.to_vec(),
            children: parse(rest)?,
        })
    };
    match &kind {
        b"trak" | b"mdia" | b"minf" | b"stbl" | b"dinf" | b"udta" => container(&[], body),
        // ISO's `meta` is a full box (version and flags first); QuickTime's is a plain
        // container, whose first four bytes are a child's size and never zero.
        b"meta" if body.get(..4) == Some(&[0; 4]) => container(&body[..4], &body[4..]),
        b"meta" => container(&[], body),
        b"stco" | b"co64" => table(&kind, body).map(Node::Table),
        b"dref" => {
            self_contained(body)?;
            Ok(Node::Opaque(whole.to_vec()))
        }
        b"mvex" => Err(Refused::Fragmented),
        // Offsets into the file that are not chunk offsets: item locations (HEIF-style
        // metadata) and sample auxiliary information (encryption).
        b"iloc" | b"saio" => Err(Refused::Unsupported(format!(
            "its index holds file offsets in a {} box, which Offload does not rewrite",
            name(&kind)
        ))),
        _ => Ok(Node::Opaque(whole.to_vec())),
    }
}

fn table(kind: &[u8; 4], body: &[u8]) -> Result<Table> {
    let large = kind == b"co64";
    let width = if large { 8 } else { 4 };
    let count = be32(body, 4)
        .ok_or_else(|| Refused::Malformed(format!("its {} box is cut short", name(kind))))?;
    if body.len() as u64 != 8 + count * width {
        return Err(Refused::Malformed(format!(
            "its {} box says {count} chunks in {} bytes",
            name(kind),
            body.len()
        )));
    }
    let entries = (0..count as usize)
        .map(|i| {
            let at = 8 + i * width as usize;
            if large {
                be64(body, at)
            } else {
                be32(body, at)
            }
            .unwrap_or(0)
        })
        .collect();
    Ok(Table {
        large,
        version_flags: [body[0], body[1], body[2], body[3]],
        entries,
    })
}

/// Every data reference must say "in this file" (flag 1): otherwise the chunk offsets point
/// into another file, which moving this one's boxes must not touch.
fn self_contained(body: &[u8]) -> Result<()> {
    let count =
        be32(body, 4).ok_or_else(|| Refused::Malformed("its dref box is cut short".into()))?;
    let mut at = 8;
    for _ in 0..count {
        let (Some(size), Some(flags)) = (be32(body, at), be32(body, at + 8)) else {
            return Err(Refused::Malformed("its dref box is cut short".into()));
        };
        if flags & 1 == 0 {
            return Err(Refused::Unsupported(
                "its media data is kept in another file".into(),
            ));
        }
        at += size.max(12) as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn stco(entries: &[u32]) -> Vec<u8> {
        let mut body = vec![0; 4];
        body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for entry in entries {
            body.extend_from_slice(&entry.to_be_bytes());
        }
        boxed(b"stco", &body)
    }

    fn movie(tables: &[Vec<u8>], extra: &[u8]) -> Vec<u8> {
        let mut body = boxed(b"mvhd", &[0; 100]);
        for table in tables {
            let stbl = boxed(b"stbl", table);
            let minf = boxed(b"minf", &stbl);
            let mdia = boxed(b"mdia", &minf);
            body.extend(boxed(b"trak", &mdia));
        }
        body.extend_from_slice(extra);
        boxed(b"moov", &body)
    }

    /// ftyp, then `data` in an mdat, then the index: what a camera or ffmpeg writes.
    fn late_index(
        dir: &Path,
        data: &[u8],
        index: impl Fn(u32) -> Vec<u8>,
    ) -> (std::path::PathBuf, u32) {
        let mut file = boxed(b"ftyp", b"isom\0\0\x02\0isomiso2mp41");
        let data_at = file.len() as u32 + 8;
        file.extend(boxed(b"mdat", data));
        file.extend(index(data_at));
        let path = dir.join("film.mp4");
        std::fs::write(&path, &file).unwrap();
        (path, data_at)
    }

    fn rewritten(path: &Path) -> Vec<u8> {
        let Verdict::Rewrite(plan) = plan(path).unwrap() else {
            panic!("not rewritten")
        };
        let out = path.with_extension("out");
        let done = rewrite(path, &plan, &out, &|| false).unwrap();
        assert_eq!(
            done.source_sha256,
            <[u8; 32]>::from(Sha256::digest(std::fs::read(path).unwrap()))
        );
        std::fs::read(out).unwrap()
    }

    #[test]
    fn the_index_moves_in_front_and_every_offset_follows() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..=255).collect();
        let (path, at) = late_index(dir.path(), &data, |at| {
            movie(&[stco(&[at, at + 100]), stco(&[at + 200])], &[0; 4])
        });
        let out = rewritten(&path);
        let original = std::fs::read(&path).unwrap();
        let index_len = original.len() - (at as usize + data.len());
        assert_eq!(out.len(), original.len());
        // ftyp as it was, then the index, then the media data unchanged.
        assert_eq!(out[..at as usize - 8], original[..at as usize - 8]);
        assert_eq!(&out[at as usize - 8 + 4..at as usize - 8 + 8], b"moov");
        let data_at = at as usize + index_len;
        assert_eq!(&out[data_at - 4..data_at], b"mdat");
        assert_eq!(out[data_at..data_at + data.len()], data[..]);
        // Each offset still names the same byte of media data.
        let Verdict::Ready = plan(&path.with_extension("out")).unwrap() else {
            panic!("the rewrite is not ready to stream")
        };
        let find = |needle: &[u8]| out.windows(4).position(|w| w == needle).unwrap();
        let first = find(b"stco") + 8;
        let offset = be32(&out, first + 4).unwrap() as usize;
        assert_eq!(offset, data_at);
        assert_eq!(out[be32(&out, first + 8).unwrap() as usize], data[100]);
    }

    #[test]
    fn offsets_past_four_gib_become_64_bit() {
        // Data just under 4 GiB, its index at the end: once the index is in front, 32 bits no
        // longer reach the data, and the table grows to 64-bit entries (which moves it further).
        let near = u64::from(u32::MAX) - 10;
        let layout = Layout {
            size: u64::from(u32::MAX) + 100,
            insert_at: 32,
            old_index: (u64::from(u32::MAX), u64::from(u32::MAX) + 100),
        };
        let table = |entries: Vec<u64>| {
            Node::Table(Table {
                large: false,
                version_flags: [0; 4],
                entries,
            })
        };
        let mut movie = Node::Container {
            kind: *b"moov",
            prefix: Vec::new(),
            children: vec![table(vec![40, near]), table(vec![50])],
        };
        let index = settle(&mut movie, &layout);
        assert_eq!(index.len() as u64, movie.len());
        assert_eq!(&index[12..16], b"co64", "the far table grew");
        assert_eq!(be64(&index, 24), Some(40 + index.len() as u64));
        assert_eq!(be64(&index, 32), Some(near + index.len() as u64));
        assert_eq!(&index[44..48], b"stco", "the near one did not");
        assert_eq!(be32(&index, 56), Some(50 + index.len() as u64));
    }

    #[test]
    fn what_it_does_not_fully_understand_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |index: &dyn Fn(u32) -> Vec<u8>| {
            let (path, _) = late_index(dir.path(), &[1; 64], index);
            plan(&path).unwrap_err().to_string()
        };
        assert!(refused(&|at| movie(&[stco(&[at])], &boxed(b"mvex", &[]))).contains("fragmented"));
        let external = {
            let mut body = vec![0, 0, 0, 0, 0, 0, 0, 1];
            body.extend(boxed(b"url ", &[0, 0, 0, 0]));
            boxed(b"dinf", &boxed(b"dref", &body))
        };
        assert!(refused(&|at| movie(&[stco(&[at])], &external)).contains("another file"));
        assert!(
            refused(&|at| movie(&[stco(&[at]), boxed(b"saio", &[0; 8])], &[])).contains("saio")
        );
        assert!(refused(&|_| movie(&[stco(&[9_999])], &[])).contains("chunk offset"));
        assert!(refused(&|at| {
            let mut bad = stco(&[at]);
            bad[15] = 9;
            movie(&[bad], &[])
        })
        .contains("says 9 chunks"));
        std::fs::write(dir.path().join("notes.txt"), "not a film").unwrap();
        assert!(matches!(
            plan(&dir.path().join("notes.txt")),
            Err(Refused::NotMp4)
        ));
    }

    #[test]
    fn a_stop_request_ends_the_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = late_index(dir.path(), &[1; 64], |at| movie(&[stco(&[at])], &[]));
        let Verdict::Rewrite(plan) = plan(&path).unwrap() else {
            panic!()
        };
        let out = dir.path().join("out.mp4");
        assert!(matches!(
            rewrite(&path, &plan, &out, &|| true),
            Err(Refused::Stopped)
        ));
    }
}
