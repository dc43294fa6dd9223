//! MP4, MOV, M4V and M4A (ISO base media files): the boxes are walked by their headers, the
//! media data (`mdat`) and the sample tables are skipped unread, and only the small boxes that
//! name a track's kind, codec, language, picture size and duration are read.

use super::bits::be;
use super::{language, malformed, Container, MediaInfo, ReadAt, Reader, Result, Track, Video};

const FORMAT: &str = "MP4";

/// Top-level box types an ISO media file starts with.
const FIRST_BOXES: [&[u8; 4]; 8] = [
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp",
];

pub fn sniff(head: &[u8]) -> bool {
    head.get(4..8)
        .is_some_and(|kind| FIRST_BOXES.iter().any(|first| &first[..] == kind))
}

/// A box: its type, and where its body starts and it ends.
#[derive(Debug, Clone, Copy)]
pub struct BoxHeader {
    pub kind: [u8; 4],
    /// Where its header starts.
    pub start: u64,
    pub body: u64,
    pub end: u64,
}

/// The box whose header is at `at`, which must end by `limit`.
fn header_at<S: ReadAt>(reader: &mut Reader<S>, at: u64, limit: u64) -> Result<BoxHeader> {
    let head = reader.bytes(at, 8)?;
    let kind = [head[4], head[5], head[6], head[7]];
    let size = be(&head, 0, 4).unwrap_or(0);
    let (body, end) = match size {
        // The box runs to the end of its parent (an `mdat` still being written, often).
        0 => (at + 8, limit),
        1 => {
            let large = be(&reader.bytes(at + 8, 8)?, 0, 8).unwrap_or(0);
            (at + 16, at.saturating_add(large))
        }
        size => (at + 8, at + size),
    };
    if end < body || end > limit {
        return Err(malformed(
            FORMAT,
            format!(
                "the {} box at byte {at} claims {} bytes, past where it can end",
                String::from_utf8_lossy(&kind),
                end.saturating_sub(at)
            ),
        ));
    }
    Ok(BoxHeader {
        kind,
        start: at,
        body,
        end,
    })
}

/// The boxes from `start` to `end`, read by their headers alone.
pub fn children<S: ReadAt>(reader: &mut Reader<S>, start: u64, end: u64) -> Result<Vec<BoxHeader>> {
    let mut boxes = Vec::new();
    let mut at = start;
    // Fewer than 8 bytes left is padding some writers leave; it holds no box.
    while at + 8 <= end {
        let header = header_at(reader, at, end)?;
        at = header.end;
        boxes.push(header);
    }
    Ok(boxes)
}

fn find(boxes: &[BoxHeader], kind: &[u8; 4]) -> Option<BoxHeader> {
    boxes.iter().find(|header| &header.kind == kind).copied()
}

/// The body of a small box, read whole.
fn body<S: ReadAt>(reader: &mut Reader<S>, header: &BoxHeader) -> Result<Vec<u8>> {
    // The boxes read whole (headers of tracks and sample descriptions) are small; a huge
    // one is damage, and reading it would defeat reading only headers.
    const MOST: u64 = 1 << 20;
    let len = header.end - header.body;
    if len > MOST {
        return Err(malformed(
            FORMAT,
            format!(
                "its {} box is {len} bytes",
                String::from_utf8_lossy(&header.kind)
            ),
        ));
    }
    Ok(reader.bytes(header.body, len as usize)?)
}

/// The file's top-level boxes; `moov` must be among them.
pub fn movie<S: ReadAt>(reader: &mut Reader<S>) -> Result<(Vec<BoxHeader>, BoxHeader)> {
    let size = reader.size();
    let top = children(reader, 0, size)?;
    let moov =
        find(&top, b"moov").ok_or_else(|| malformed(FORMAT, "it has no movie (moov) box"))?;
    Ok((top, moov))
}

pub fn probe<S: ReadAt>(reader: &mut Reader<S>) -> Result<MediaInfo> {
    let (_, moov) = movie(reader)?;
    let mut info = MediaInfo {
        container: Container::Mp4,
        duration_ms: None,
        video: None,
        audio: Vec::new(),
        subtitles: Vec::new(),
    };
    let mut track_longest: Option<u64> = None;
    let mut timescale = 0;
    for child in children(reader, moov.body, moov.end)? {
        match &child.kind {
            b"mvhd" => {
                let mvhd = body(reader, &child)?;
                timescale = times(&mvhd).map_or(0, |(timescale, _)| timescale);
                info.duration_ms = duration(&mvhd);
            }
            b"mvex" if info.duration_ms.is_none() => {
                // A fragmented file's movie header may say 0; the extends header says how long.
                let inner = children(reader, child.body, child.end)?;
                if let Some(mehd) = find(&inner, b"mehd") {
                    info.duration_ms = fragment_duration(&body(reader, &mehd)?, timescale);
                }
            }
            b"trak" => {
                let Some(track) = track(reader, &child)? else {
                    continue;
                };
                track_longest = track_longest.max(track.duration_ms);
                match track.kind {
                    Kind::Video if info.video.is_none() => {
                        info.video = Some(Video {
                            codec: track.codec,
                            width: track.width,
                            height: track.height,
                        })
                    }
                    Kind::Video => {}
                    Kind::Audio => info.audio.push(Track {
                        codec: track.codec,
                        language: track.language,
                    }),
                    Kind::Subtitle => info.subtitles.push(Track {
                        codec: track.codec,
                        language: track.language,
                    }),
                }
            }
            _ => {}
        }
    }
    if info.duration_ms.is_none() {
        info.duration_ms = track_longest;
    }
    Ok(info)
}

/// The duration in a movie or media header (`mvhd`, `mdhd`), in milliseconds.
fn duration(body: &[u8]) -> Option<u64> {
    let (timescale, duration) = times(body)?;
    (timescale > 0 && duration > 0)
        .then(|| (u128::from(duration) * 1000 / u128::from(timescale)) as u64)
}

/// The timescale and duration of an `mvhd` or `mdhd` body, the duration 0 where it says
/// "unknown". Version 0 has 32-bit times after two 32-bit dates, version 1 64-bit ones after
/// two 64-bit dates.
fn times(body: &[u8]) -> Option<(u64, u64)> {
    let (timescale, duration) = if body.first()? == &1 {
        (be(body, 20, 4)?, be(body, 24, 8)?)
    } else {
        (be(body, 12, 4)?, be(body, 16, 4)?)
    };
    let unknown = duration == u64::from(u32::MAX) || duration == u64::MAX;
    Some((timescale, if unknown { 0 } else { duration }))
}

fn fragment_duration(mehd: &[u8], timescale: u64) -> Option<u64> {
    let duration = if mehd.first()? == &1 {
        be(mehd, 4, 8)?
    } else {
        be(mehd, 4, 4)?
    };
    (timescale > 0 && duration > 0)
        .then(|| (u128::from(duration) * 1000 / u128::from(timescale)) as u64)
}

enum Kind {
    Video,
    Audio,
    Subtitle,
}

struct Found {
    kind: Kind,
    codec: String,
    language: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    duration_ms: Option<u64>,
}

/// A track's kind (from its handler), codec (from its first sample description), language and
/// duration (from its media header). Tracks of other kinds (timecodes, hints) are `None`.
fn track<S: ReadAt>(reader: &mut Reader<S>, trak: &BoxHeader) -> Result<Option<Found>> {
    let Some(mdia) = find(&children(reader, trak.body, trak.end)?, b"mdia") else {
        return Ok(None);
    };
    let in_mdia = children(reader, mdia.body, mdia.end)?;
    let Some(hdlr) = find(&in_mdia, b"hdlr") else {
        return Ok(None);
    };
    let handler = body(reader, &hdlr)?;
    let kind = match handler.get(8..12) {
        Some(b"vide") => Kind::Video,
        Some(b"soun") => Kind::Audio,
        Some(b"subt" | b"sbtl" | b"text" | b"clcp") => Kind::Subtitle,
        _ => return Ok(None),
    };
    let (language, duration_ms) = match find(&in_mdia, b"mdhd") {
        Some(mdhd) => {
            let mdhd = body(reader, &mdhd)?;
            let lang_at = if mdhd.first() == Some(&1) {
                4 + 28
            } else {
                4 + 16
            };
            (packed_language(be(&mdhd, lang_at, 2)), duration(&mdhd))
        }
        None => (None, None),
    };
    let stsd = match find(&in_mdia, b"minf") {
        Some(minf) => match find(&children(reader, minf.body, minf.end)?, b"stbl") {
            Some(stbl) => find(&children(reader, stbl.body, stbl.end)?, b"stsd"),
            None => None,
        },
        None => None,
    };
    let Some(stsd) = stsd else {
        return Err(malformed(FORMAT, "a track has no sample description"));
    };
    let stsd = body(reader, &stsd)?;
    // version/flags, entry count, then the first entry: size, format, its fields.
    let entry = stsd.get(8..).unwrap_or_default();
    let format: [u8; 4] = entry
        .get(4..8)
        .and_then(|format| format.try_into().ok())
        .ok_or_else(|| malformed(FORMAT, "a track's sample description is empty"))?;
    let entry = &entry[..(be(entry, 0, 4).unwrap_or(0) as usize).clamp(8, entry.len())];
    let (codec, width, height) = match kind {
        Kind::Video => {
            let codec = video_codec(&format, entry);
            // Width and height follow 16 bytes of reserved and predefined fields.
            let width = be(entry, 32, 2).map(|n| n as u32).filter(|n| *n > 0);
            let height = be(entry, 34, 2).map(|n| n as u32).filter(|n| *n > 0);
            (codec, width, height)
        }
        Kind::Audio => (audio_codec(&format, entry), None, None),
        Kind::Subtitle => (subtitle_codec(&format), None, None),
    };
    Ok(Some(Found {
        kind,
        codec,
        language,
        width,
        height,
        duration_ms,
    }))
}

/// An `mdhd` language: three letters of five bits each, offset from 0x60. Values below 0x400
/// are QuickTime's Macintosh language numbers, which name no ISO code here.
fn packed_language(packed: Option<u64>) -> Option<String> {
    let packed = packed?;
    if packed < 0x400 {
        return None;
    }
    let letters: String = [10, 5, 0]
        .iter()
        .map(|shift| char::from((((packed >> shift) & 0x1F) as u8) + 0x60))
        .collect();
    language(&letters)
}

fn video_codec(format: &[u8; 4], entry: &[u8]) -> String {
    match format {
        b"avc1" | b"avc3" => "h264",
        b"hvc1" | b"hev1" | b"dvh1" | b"dvhe" => "hevc",
        b"av01" => "av1",
        b"vp09" => "vp9",
        b"vp08" => "vp8",
        b"mp4v" => match object_type(entry, 86) {
            Some(0x60..=0x65) => "mpeg2video",
            Some(0x6A) => "mpeg1video",
            Some(0x6C) => "mjpeg",
            _ => "mpeg4",
        },
        b"jpeg" | b"mjpa" | b"mjpb" => "mjpeg",
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores",
        b"s263" | b"h263" => "h263",
        other => return fourcc(other),
    }
    .to_owned()
}

fn audio_codec(format: &[u8; 4], entry: &[u8]) -> String {
    match format {
        b"mp4a" => {
            // A QuickTime sound description of version 1 or 2 is 16 or 36 bytes longer.
            let children = match be(entry, 16, 2) {
                Some(1) => 52,
                Some(2) => 72,
                _ => 36,
            };
            match object_type(entry, children) {
                Some(0x69 | 0x6B) => "mp3",
                Some(0xA5) => "ac3",
                Some(0xA6) => "eac3",
                Some(0xA9) => "dts",
                Some(0xAD) => "opus",
                Some(0xDD) => "vorbis",
                _ => "aac",
            }
        }
        b"ac-3" => "ac3",
        b"ec-3" => "eac3",
        b"ac-4" => "ac4",
        b"Opus" => "opus",
        b"fLaC" => "flac",
        b"alac" => "alac",
        b".mp3" => "mp3",
        b"dtsc" | b"dtsh" | b"dtsl" | b"dtse" => "dts",
        b"mlpa" => "truehd",
        b"sowt" => "pcm_s16le",
        b"twos" => "pcm_s16be",
        b"lpcm" | b"in24" | b"in32" | b"fl32" | b"fl64" | b"ipcm" => "pcm",
        other => return fourcc(other),
    }
    .to_owned()
}

fn subtitle_codec(format: &[u8; 4]) -> String {
    match format {
        b"tx3g" | b"text" => "mov_text",
        b"wvtt" => "webvtt",
        b"stpp" => "ttml",
        b"c608" => "eia_608",
        b"c708" => "eia_708",
        other => return fourcc(other),
    }
    .to_owned()
}

/// A format this table does not know, by its four letters.
fn fourcc(format: &[u8; 4]) -> String {
    String::from_utf8_lossy(format).trim().to_ascii_lowercase()
}

/// The object type (MPEG-4 systems' codec number) in the `esds` box among a sample entry's
/// child boxes, which start at `children`.
fn object_type(entry: &[u8], children: usize) -> Option<u8> {
    let mut at = children;
    while at + 8 <= entry.len() {
        let size = be(entry, at, 4)? as usize;
        if size < 8 {
            return None;
        }
        if entry.get(at + 4..at + 8)? == b"esds" {
            return es_object_type(entry.get(at + 12..(at + size).min(entry.len()))?);
        }
        at += size;
    }
    None
}

/// The object type in an ES descriptor: tag 3, then (after its own fields) tag 4, whose first
/// byte it is. Lengths are 7 bits a byte, high bit meaning "more".
fn es_object_type(descriptors: &[u8]) -> Option<u8> {
    let (tag, mut at) = descriptor(descriptors, 0)?;
    if tag != 3 {
        return None;
    }
    let flags = *descriptors.get(at + 2)?;
    at += 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*descriptors.get(at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let (tag, at) = descriptor(descriptors, at)?;
    (tag == 4).then(|| descriptors.get(at).copied())?
}

/// A descriptor's tag and where its body starts.
fn descriptor(bytes: &[u8], at: usize) -> Option<(u8, usize)> {
    let tag = *bytes.get(at)?;
    let mut at = at + 1;
    for _ in 0..4 {
        let byte = *bytes.get(at)?;
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    Some((tag, at))
}
