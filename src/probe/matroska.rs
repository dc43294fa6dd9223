//! Matroska and WebM: the EBML header, then the segment's top-level elements by their headers,
//! reading only the segment information (duration) and the track list; clusters, cues and
//! attachments are skipped unread, or found through the seek head when they come first.

use super::{language, malformed, Container, MediaInfo, ReadAt, Reader, Result, Track, Video};

const FORMAT: &str = "Matroska";

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const LANGUAGE: u32 = 0x22_B59C;
const LANGUAGE_BCP47: u32 = 0x22_B59D;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const CLUSTER: u32 = 0x1F43_B675;

pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(&EBML.to_be_bytes())
}

/// An element's id with its length marker kept (as the specification writes ids), and the
/// header's length. Ids are 1 to 4 bytes.
fn id(bytes: &[u8]) -> Option<(u32, usize)> {
    let first = *bytes.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let id = bytes
        .get(..len)?
        .iter()
        .fold(0, |n, b| (n << 8) | u32::from(*b));
    Some((id, len))
}

/// An element's size (`None` for "unknown", all value bits set) and the header's length.
fn size(bytes: &[u8]) -> Option<(Option<u64>, usize)> {
    let first = *bytes.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let mut value = u64::from(first) & (0xFF >> len);
    for byte in bytes.get(1..len)? {
        value = (value << 8) | u64::from(*byte);
    }
    let unknown = value == (1u64 << (7 * len)) - 1;
    Some(((!unknown).then_some(value), len))
}

/// An element in a file: its id, where its data starts, and its size if known.
struct Element {
    id: u32,
    data: u64,
    size: Option<u64>,
}

fn element_at<S: ReadAt>(reader: &mut Reader<S>, at: u64) -> Result<Element> {
    let head = reader.up_to(at, 12)?;
    let damaged = || {
        malformed(
            FORMAT,
            format!("an element header at byte {at} cannot be read"),
        )
    };
    let (id, id_len) = id(&head).ok_or_else(damaged)?;
    let (size, size_len) = size(&head[id_len..]).ok_or_else(damaged)?;
    Ok(Element {
        id,
        data: at + (id_len + size_len) as u64,
        size,
    })
}

/// The children of an element held in memory: (id, data).
fn elements(mut bytes: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    while let Some((id, id_len)) = id(bytes) {
        let Some((Some(size), size_len)) = bytes.get(id_len..).and_then(size) else {
            break;
        };
        let start = id_len + size_len;
        let Some(data) = usize::try_from(size)
            .ok()
            .and_then(|size| bytes.get(start..start + size))
        else {
            break;
        };
        out.push((id, data));
        bytes = &bytes[start + data.len()..];
    }
    out
}

fn uint(data: &[u8]) -> u64 {
    data.iter().take(8).fold(0, |n, b| (n << 8) | u64::from(*b))
}

fn float(data: &[u8]) -> Option<f64> {
    match data.len() {
        4 => Some(f64::from(f32::from_be_bytes(data.try_into().ok()?))),
        8 => Some(f64::from_be_bytes(data.try_into().ok()?)),
        _ => None,
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .trim_end_matches('\0')
        .to_owned()
}

/// The data of a small element read whole.
fn data_of<S: ReadAt>(reader: &mut Reader<S>, element: &Element) -> Result<Vec<u8>> {
    // Segment information and track lists are kilobytes (codec private data included); a
    // huge one is damage.
    const MOST: u64 = 4 << 20;
    match element.size {
        Some(size) if size <= MOST => Ok(reader.bytes(element.data, size as usize)?),
        _ => Err(malformed(
            FORMAT,
            "its segment information or track list is too large",
        )),
    }
}

pub fn probe<S: ReadAt>(reader: &mut Reader<S>) -> Result<MediaInfo> {
    let header = element_at(reader, 0)?;
    let header_size = header
        .size
        .ok_or_else(|| malformed(FORMAT, "its EBML header has no size"))?;
    let doc_type = elements(&data_of(reader, &header)?)
        .into_iter()
        .find(|(id, _)| *id == DOC_TYPE)
        .map(|(_, data)| text(data));
    let container = match doc_type.as_deref() {
        Some("webm") => Container::Webm,
        Some("matroska") | None => Container::Matroska,
        Some(other) => return Err(malformed(FORMAT, format!("its document type is {other:?}"))),
    };
    let segment = element_at(reader, header.data + header_size)?;
    if segment.id != SEGMENT {
        return Err(malformed(FORMAT, "no segment follows its EBML header"));
    }
    let end = segment.size.map_or(reader.size(), |size| {
        (segment.data + size).min(reader.size())
    });
    let mut info = None;
    let mut tracks = None;
    let mut seeks: Vec<(u32, u64)> = Vec::new();
    let mut at = segment.data;
    while at < end && (info.is_none() || tracks.is_none()) {
        let element = element_at(reader, at)?;
        match element.id {
            INFO => info = Some(data_of(reader, &element)?),
            TRACKS => tracks = Some(data_of(reader, &element)?),
            SEEK_HEAD => seeks.extend(seek_entries(&data_of(reader, &element)?, segment.data)),
            _ => {}
        }
        match element.size {
            // Clusters are the media; what is still missing is wherever the seek head says.
            _ if element.id == CLUSTER => break,
            Some(size) => at = element.data + size,
            None => break,
        }
    }
    for (id, position) in seeks {
        let slot = match id {
            INFO if info.is_none() => &mut info,
            TRACKS if tracks.is_none() => &mut tracks,
            _ => continue,
        };
        let element = element_at(reader, position)?;
        if element.id == id {
            *slot = Some(data_of(reader, &element)?);
        }
    }
    let tracks = tracks.ok_or_else(|| malformed(FORMAT, "it has no track list"))?;
    let mut probed = MediaInfo {
        container,
        duration_ms: info.as_deref().and_then(duration_ms),
        video: None,
        audio: Vec::new(),
        subtitles: Vec::new(),
    };
    for (id, entry) in elements(&tracks) {
        if id == TRACK_ENTRY {
            add_track(&mut probed, entry);
        }
    }
    Ok(probed)
}

/// The seek head's entries: which top-level element is where (positions count from the
/// segment's data).
fn seek_entries(seek_head: &[u8], segment_data: u64) -> Vec<(u32, u64)> {
    elements(seek_head)
        .into_iter()
        .filter(|(id, _)| *id == SEEK)
        .filter_map(|(_, seek)| {
            let fields = elements(seek);
            let id = fields.iter().find(|(id, _)| *id == SEEK_ID)?.1;
            let position = fields.iter().find(|(id, _)| *id == SEEK_POSITION)?.1;
            Some((uint(id) as u32, segment_data + uint(position)))
        })
        .collect()
}

/// The segment's duration: a float in timestamp-scale units (nanoseconds each by default).
fn duration_ms(info: &[u8]) -> Option<u64> {
    let fields = elements(info);
    let scale = fields
        .iter()
        .find(|(id, _)| *id == TIMESTAMP_SCALE)
        .map_or(1_000_000, |(_, data)| uint(data));
    let duration = fields
        .iter()
        .find(|(id, _)| *id == DURATION)
        .and_then(|(_, data)| float(data))?;
    let ms = duration * scale as f64 / 1e6;
    (ms.is_finite() && ms > 0.0).then_some(ms.round() as u64)
}

fn add_track(info: &mut MediaInfo, entry: &[u8]) {
    let mut kind = 0;
    let mut codec = String::new();
    // Matroska's default language is English when a track names none.
    let mut iso = Some("eng".to_owned());
    let mut bcp47 = None;
    let mut width = None;
    let mut height = None;
    for (id, data) in elements(entry) {
        match id {
            TRACK_TYPE => kind = uint(data),
            CODEC_ID => codec = text(data),
            LANGUAGE => iso = Some(text(data)),
            LANGUAGE_BCP47 => bcp47 = Some(text(data)),
            VIDEO => {
                for (id, data) in elements(data) {
                    match id {
                        PIXEL_WIDTH => width = u32::try_from(uint(data)).ok(),
                        PIXEL_HEIGHT => height = u32::try_from(uint(data)).ok(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let language = iso.as_deref().and_then(language).or_else(|| {
        bcp47
            .as_deref()
            .and_then(|tag| language(tag.split('-').next()?))
    });
    let codec = codec_name(&codec);
    match kind {
        1 if info.video.is_none() => {
            info.video = Some(Video {
                codec,
                width,
                height,
            })
        }
        2 => info.audio.push(Track { codec, language }),
        17 => info.subtitles.push(Track { codec, language }),
        _ => {}
    }
}

/// ffmpeg's name for a Matroska codec id.
fn codec_name(id: &str) -> String {
    let name = match id {
        "V_MPEG4/ISO/AVC" => "h264",
        "V_MPEGH/ISO/HEVC" => "hevc",
        "V_AV1" => "av1",
        "V_VP9" => "vp9",
        "V_VP8" => "vp8",
        "V_MPEG2" => "mpeg2video",
        "V_MPEG1" => "mpeg1video",
        "V_MJPEG" => "mjpeg",
        "V_THEORA" => "theora",
        "V_PRORES" => "prores",
        "A_AC3" => "ac3",
        "A_EAC3" => "eac3",
        "A_DTS" => "dts",
        "A_OPUS" => "opus",
        "A_VORBIS" => "vorbis",
        "A_FLAC" => "flac",
        "A_ALAC" => "alac",
        "A_TRUEHD" => "truehd",
        "A_MPEG/L3" => "mp3",
        "A_MPEG/L2" => "mp2",
        "A_PCM/INT/LIT" => "pcm_s16le",
        "A_PCM/INT/BIG" => "pcm_s16be",
        "A_PCM/FLOAT/IEEE" => "pcm_f32le",
        "S_TEXT/UTF8" => "subrip",
        "S_TEXT/ASS" | "S_TEXT/SSA" | "S_ASS" | "S_SSA" => "ass",
        "S_TEXT/WEBVTT" => "webvtt",
        "S_HDMV/PGS" => "hdmv_pgs_subtitle",
        "S_HDMV/TEXTST" => "hdmv_text_subtitle",
        "S_VOBSUB" => "dvd_subtitle",
        "S_DVBSUB" => "dvb_subtitle",
        id if id.starts_with("A_AAC") => "aac",
        "V_MPEG4/ISO/ASP" | "V_MPEG4/ISO/SP" | "V_MPEG4/ISO/AP" => "mpeg4",
        other => return other.to_ascii_lowercase(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sizes_read_as_the_specification_writes_them() {
        assert_eq!(id(&[0x1A, 0x45, 0xDF, 0xA3]), Some((EBML, 4)));
        assert_eq!(id(&[0xAE]), Some((TRACK_ENTRY, 1)));
        assert_eq!(size(&[0x81]), Some((Some(1), 1)));
        assert_eq!(size(&[0x40, 0x02]), Some((Some(2), 2)));
        assert_eq!(size(&[0xFF]), Some((None, 1)), "all ones is unknown");
        assert_eq!(
            size(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            Some((None, 8))
        );
        assert_eq!(size(&[0x00]), None);
    }
}
