//! MPEG transport streams (`.ts`, and Blu-ray's `.m2ts` with its 4-byte packet prefix): the
//! program tables at the start name the streams; the first and last presentation times, from
//! a window at each end of the file, give the duration; the video's sequence header in the
//! first window gives its picture size. Nothing between the two windows is read.

use std::collections::HashMap;

use super::bits::{be, Bits};
use super::{language, malformed, Container, MediaInfo, ReadAt, Reader, Result, Track, Video};

const FORMAT: &str = "MPEG-TS";
const SYNC: u8 = 0x47;
/// How much of each end of the file is read: enough for the tables, the first picture's
/// headers and a presentation time of every stream at realistic bit rates.
const WINDOW: usize = 256 * 1024;
/// Presentation times count a 90 kHz clock in 33 bits.
const PTS_WRAP: u64 = 1 << 33;

/// A stream's packets: their size (188, or 192 with the Blu-ray prefix) and where the
/// 188-byte packet starts inside each.
#[derive(Debug, Clone, Copy)]
pub struct Packets {
    size: usize,
    offset: usize,
}

/// The packet layout, if the file starts like a transport stream: sync bytes where three
/// packets in a row would have them.
pub fn sniff<S: ReadAt>(reader: &mut Reader<S>) -> Result<Option<Packets>> {
    let head = reader.up_to(0, 3 * 192)?;
    let layouts = [
        Packets {
            size: 188,
            offset: 0,
        },
        Packets {
            size: 192,
            offset: 4,
        },
    ];
    Ok(layouts
        .into_iter()
        .find(|layout| (0..3).all(|n| head.get(n * layout.size + layout.offset) == Some(&SYNC))))
}

struct Stream {
    kind: Kind,
    codec: String,
    language: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Video,
    Audio,
    Subtitle,
}

pub fn probe<S: ReadAt>(reader: &mut Reader<S>, packets: Packets) -> Result<MediaInfo> {
    let size = reader.size();
    let head = reader.up_to(0, WINDOW)?;
    let head = payloads(&head, packets);
    let pmt = head
        .iter()
        .find(|packet| packet.pid == 0 && packet.start)
        .and_then(|pat| program_map_pid(pat.payload))
        .ok_or_else(|| malformed(FORMAT, "its program table is not in its first packets"))?;
    let streams = head
        .iter()
        .find(|packet| packet.pid == pmt && packet.start)
        .map(|pmt| program_streams(pmt.payload, packets.size == 192))
        .ok_or_else(|| malformed(FORMAT, "its program map is not in its first packets"))?;
    let mut order: Vec<(u16, &Stream)> =
        streams.iter().map(|(pid, stream)| (*pid, stream)).collect();
    order.sort_by_key(|(pid, _)| *pid);

    let first = head
        .iter()
        .filter(|packet| packet.start && streams.contains_key(&packet.pid))
        .filter_map(|packet| pts(packet.payload))
        .min();
    // The tail window starts on a packet boundary counted from the start of the file.
    let tail_start = size.saturating_sub(WINDOW as u64);
    let tail_start = tail_start - tail_start % packets.size as u64;
    let tail = reader.up_to(tail_start, WINDOW)?;
    let last = payloads(&tail, packets)
        .iter()
        .filter(|packet| packet.start && streams.contains_key(&packet.pid))
        .filter_map(|packet| pts(packet.payload))
        .max_by_key(|pts| first.map_or(*pts, |first| pts.wrapping_sub(first) % PTS_WRAP));
    let duration_ms = match (first, last) {
        (Some(first), Some(last)) => {
            let ticks = (last + PTS_WRAP - first) % PTS_WRAP;
            (ticks > 0).then_some(ticks / 90)
        }
        _ => None,
    };

    let mut info = MediaInfo {
        container: Container::Mpegts,
        duration_ms,
        video: None,
        audio: Vec::new(),
        subtitles: Vec::new(),
    };
    for (pid, stream) in order {
        match stream.kind {
            Kind::Video if info.video.is_none() => {
                let (width, height) = picture_size(&head, pid, &stream.codec).unzip();
                info.video = Some(Video {
                    codec: stream.codec.clone(),
                    width,
                    height,
                });
            }
            Kind::Video => {}
            Kind::Audio => info.audio.push(Track {
                codec: stream.codec.clone(),
                language: stream.language.clone(),
            }),
            Kind::Subtitle => info.subtitles.push(Track {
                codec: stream.codec.clone(),
                language: stream.language.clone(),
            }),
        }
    }
    Ok(info)
}

/// A packet's payload.
struct Payload<'a> {
    pid: u16,
    /// The payload starts a table section or a PES packet.
    start: bool,
    payload: &'a [u8],
}

fn payloads(window: &[u8], packets: Packets) -> Vec<Payload<'_>> {
    window
        .chunks_exact(packets.size)
        .filter_map(|chunk| {
            let packet = chunk.get(packets.offset..packets.offset + 188)?;
            if packet[0] != SYNC {
                return None;
            }
            let pid = (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2]);
            let control = (packet[3] >> 4) & 3;
            if control & 1 == 0 {
                return None;
            }
            let at = if control & 2 != 0 {
                5 + usize::from(packet[4])
            } else {
                4
            };
            Some(Payload {
                pid,
                start: packet[1] & 0x40 != 0,
                payload: packet.get(at..)?,
            })
        })
        .collect()
}

/// The section a payload starts, after its pointer field.
fn section(payload: &[u8]) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let section = payload.get(1 + pointer..)?;
    let length = (be(section, 1, 2)? & 0x0FFF) as usize;
    // Header (3 bytes), then `length` bytes whose last four are the CRC.
    section.get(..(3 + length).min(section.len()))
}

/// The program association table's first program's map PID.
fn program_map_pid(payload: &[u8]) -> Option<u16> {
    let section = section(payload)?;
    if section.first()? != &0 {
        return None;
    }
    let entries = section.get(8..section.len().checked_sub(4)?)?;
    entries.chunks_exact(4).find_map(|entry| {
        let program = be(entry, 0, 2)?;
        let pid = (be(entry, 2, 2)? & 0x1FFF) as u16;
        (program != 0).then_some(pid)
    })
}

/// The streams a program map lists, by PID.
fn program_streams(payload: &[u8], blu_ray: bool) -> HashMap<u16, Stream> {
    let mut streams = HashMap::new();
    let Some(section) = section(payload).filter(|section| section.first() == Some(&2)) else {
        return streams;
    };
    let info_length = be(section, 10, 2).unwrap_or(0) as usize & 0x0FFF;
    let mut at = 12 + info_length;
    let end = section.len().saturating_sub(4);
    while at + 5 <= end {
        let stream_type = section[at];
        let pid = (be(section, at + 1, 2).unwrap_or(0) & 0x1FFF) as u16;
        let es_length = be(section, at + 3, 2).unwrap_or(0) as usize & 0x0FFF;
        let descriptors = section
            .get(at + 5..(at + 5 + es_length).min(end))
            .unwrap_or_default();
        at += 5 + es_length;
        if let Some((kind, codec)) = codec_of(stream_type, descriptors, blu_ray) {
            streams.insert(
                pid,
                Stream {
                    kind,
                    codec: codec.to_owned(),
                    language: language_of(descriptors),
                },
            );
        }
    }
    streams
}

/// The descriptors of a stream: (tag, data).
fn descriptors(mut bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let tag = *bytes.first()?;
        let len = usize::from(*bytes.get(1)?);
        let data = bytes.get(2..2 + len)?;
        bytes = &bytes[2 + len..];
        Some((tag, data))
    })
}

/// A stream type's kind and ffmpeg's codec name; private streams (type 6) say what they are in
/// their descriptors.
fn codec_of(stream_type: u8, es: &[u8], blu_ray: bool) -> Option<(Kind, &'static str)> {
    use Kind::{Audio, Subtitle, Video};
    Some(match stream_type {
        0x01 => (Video, "mpeg1video"),
        0x02 => (Video, "mpeg2video"),
        0x10 => (Video, "mpeg4"),
        0x1B => (Video, "h264"),
        0x24 => (Video, "hevc"),
        0x33 => (Video, "vvc"),
        0xEA => (Video, "vc1"),
        0x03 | 0x04 => (Audio, "mp3"),
        0x0F => (Audio, "aac"),
        0x11 => (Audio, "aac_latm"),
        0x81 => (Audio, "ac3"),
        0x87 => (Audio, "eac3"),
        0x80 if blu_ray => (Audio, "pcm_bluray"),
        0x82 | 0x85 | 0x86 if blu_ray => (Audio, "dts"),
        0x83 if blu_ray => (Audio, "truehd"),
        0x84 | 0xA1 if blu_ray => (Audio, "eac3"),
        0x90 if blu_ray => (Subtitle, "hdmv_pgs_subtitle"),
        0x92 if blu_ray => (Subtitle, "hdmv_text_subtitle"),
        0x06 => descriptors(es).find_map(|(tag, data)| match tag {
            0x6A => Some((Audio, "ac3")),
            0x7A => Some((Audio, "eac3")),
            0x7B => Some((Audio, "dts")),
            0x59 => Some((Subtitle, "dvb_subtitle")),
            0x56 => Some((Subtitle, "dvb_teletext")),
            0x05 => match data.get(..4)? {
                b"Opus" => Some((Audio, "opus")),
                b"AC-3" => Some((Audio, "ac3")),
                b"EAC3" => Some((Audio, "eac3")),
                _ => None,
            },
            _ => None,
        })?,
        _ => return None,
    })
}

/// The language of the ISO 639 descriptor, or of a subtitling or teletext descriptor.
fn language_of(es: &[u8]) -> Option<String> {
    descriptors(es).find_map(|(tag, data)| match tag {
        0x0A | 0x59 | 0x56 => language(&String::from_utf8_lossy(data.get(..3)?)),
        _ => None,
    })
}

/// The presentation time of the PES packet a payload starts.
fn pts(payload: &[u8]) -> Option<u64> {
    if payload.get(..3)? != [0, 0, 1] || payload.get(7)? & 0x80 == 0 {
        return None;
    }
    let p = payload.get(9..14)?;
    Some(
        (u64::from(p[0] >> 1) & 7) << 30
            | u64::from(p[1]) << 22
            | u64::from(p[2] >> 1) << 15
            | u64::from(p[3]) << 7
            | u64::from(p[4] >> 1),
    )
}

/// The width and height the video's first sequence header gives (H.264, HEVC and MPEG-2 video).
fn picture_size(head: &[Payload<'_>], pid: u16, codec: &str) -> Option<(u32, u32)> {
    // The elementary stream's first bytes: the first PES packet's data and what follows it.
    let mut stream = Vec::new();
    for packet in head.iter().filter(|packet| packet.pid == pid) {
        if packet.start {
            if !stream.is_empty() {
                break;
            }
            let header = 9 + usize::from(*packet.payload.get(8)?);
            stream.extend_from_slice(packet.payload.get(header..)?);
        } else if !stream.is_empty() {
            stream.extend_from_slice(packet.payload);
        }
    }
    let units = stream
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .map(|(at, _)| at + 3);
    for at in units {
        let unit = &stream[at..];
        match codec {
            "h264" if unit.first()? & 0x1F == 7 => return h264_size(&unit[1..]),
            // HEVC's two-byte NAL header: type 33 is the sequence parameter set.
            "hevc" if (unit.first()? >> 1) & 0x3F == 33 => return hevc_size(unit.get(2..)?),
            "mpeg2video" | "mpeg1video" if unit.first()? == &0xB3 => {
                let width = (be(unit, 1, 2)? >> 4) as u32;
                let height = (be(unit, 2, 2)? & 0x0FFF) as u32;
                return Some((width, height));
            }
            _ => {}
        }
    }
    None
}

/// The picture size an H.264 sequence parameter set gives (ITU-T H.264 7.3.2.1.1), after the
/// cropping it asks for.
fn h264_size(sps: &[u8]) -> Option<(u32, u32)> {
    let mut bits = Bits::unescaped(sps);
    let profile = bits.bits(8)?;
    bits.skip(16)?; // constraint flags and level
    bits.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = bits.ue()?;
        if chroma_format == 3 {
            bits.skip(1)?; // separate_colour_plane_flag
        }
        bits.ue()?; // bit_depth_luma_minus8
        bits.ue()?; // bit_depth_chroma_minus8
        bits.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if bits.bit()? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for list in 0..lists {
                if bits.bit()? == 1 {
                    skip_scaling_list(&mut bits, if list < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    bits.ue()?; // log2_max_frame_num_minus4
    match bits.ue()? {
        0 => {
            bits.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            bits.skip(1)?;
            bits.se()?;
            bits.se()?;
            for _ in 0..bits.ue()? {
                bits.se()?;
            }
        }
        _ => {}
    }
    bits.ue()?; // max_num_ref_frames
    bits.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = bits.ue()? + 1;
    let height_units = bits.ue()? + 1;
    let frame_mbs_only = bits.bit()?;
    if frame_mbs_only == 0 {
        bits.skip(1)?; // mb_adaptive_frame_field_flag
    }
    bits.skip(1)?; // direct_8x8_inference_flag
    let (left, right, top, bottom) = cropping(&mut bits)?;
    let field_factor = 2 - frame_mbs_only;
    let (crop_x, crop_y) = match chroma_format {
        0 | 3 => (1, field_factor),
        1 => (2, 2 * field_factor),
        _ => (2, field_factor),
    };
    let width = (width_mbs * 16).checked_sub(crop_x * (left + right))?;
    let height = (field_factor * height_units * 16).checked_sub(crop_y * (top + bottom))?;
    Some((width, height))
}

/// The picture size an HEVC sequence parameter set gives (ITU-T H.265 7.3.2.2), after its
/// conformance window.
fn hevc_size(sps: &[u8]) -> Option<(u32, u32)> {
    let mut bits = Bits::unescaped(sps);
    bits.skip(4)?; // sps_video_parameter_set_id
    let sub_layers = bits.bits(3)? as usize; // sps_max_sub_layers_minus1
    bits.skip(1)?; // sps_temporal_id_nesting_flag

    // profile_tier_level: the general profile (88 bits) and level (8), then which sub-layers
    // carry their own, padded to eight entries, then those.
    bits.skip(96)?;
    let mut present = Vec::with_capacity(sub_layers);
    for _ in 0..sub_layers {
        present.push((bits.bit()?, bits.bit()?));
    }
    if sub_layers > 0 {
        bits.skip(2 * (8 - sub_layers))?;
    }
    for (profile, level) in present {
        bits.skip(88 * profile as usize + 8 * level as usize)?;
    }
    bits.ue()?; // sps_seq_parameter_set_id
    let chroma_format = bits.ue()?;
    let separate_planes = chroma_format == 3 && bits.bit()? == 1;
    let width = bits.ue()?;
    let height = bits.ue()?;
    let (left, right, top, bottom) = cropping(&mut bits)?;
    // The window is in chroma samples: SubWidthC and SubHeightC (H.265 table 6-1).
    let (unit_x, unit_y) = match chroma_format {
        1 if !separate_planes => (2, 2),
        2 if !separate_planes => (2, 1),
        _ => (1, 1),
    };
    Some((
        width.checked_sub(unit_x * (left + right))?,
        height.checked_sub(unit_y * (top + bottom))?,
    ))
}

/// A sequence parameter set's cropping (H.264's frame cropping, HEVC's conformance window): a
/// flag, then left, right, top and bottom offsets where it is set.
fn cropping(bits: &mut Bits) -> Option<(u32, u32, u32, u32)> {
    if bits.bit()? == 0 {
        return Some((0, 0, 0, 0));
    }
    Some((bits.ue()?, bits.ue()?, bits.ue()?, bits.ue()?))
}

fn skip_scaling_list(bits: &mut Bits, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + bits.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}
