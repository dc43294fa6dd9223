//! Probing a 10 GB film whose index sits at its end (as ffmpeg and most downloads write MP4s):
//! Offload's probe against `ffprobe` (what a person would run to ask the same question) on the
//! same file in the page cache, in one run, with the bytes and reads Offload's probe takes. The
//! film is a 10-minute clip (15,000 frames, so its sample tables are a film's) grown to 10 GB as
//! a sparse file. Run with `scripts/bench probe`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::media::{boxes, clip, probe_counted, sparse_mp4};

const RUNS: usize = 21;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    if !common::wanted(&["probe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("clip.mp4");
    clip(&small, 600, "160x120", &[], &[]);
    let film = dir.path().join("film.mp4");
    sparse_mp4(&small, 10_000_000_000, &film);

    let mut reads = 0;
    let mut bytes = 0;
    let ours = median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                let (info, probe_reads, probe_bytes) = probe_counted(&film);
                let took = started.elapsed();
                assert_eq!(info.duration_ms.map(|ms| ms / 1000), Some(600));
                (reads, bytes) = (probe_reads, probe_bytes);
                took
            })
            .collect(),
    );
    let ffprobe = median(
        (0..5)
            .map(|_| {
                let started = Instant::now();
                let status = std::process::Command::new("ffprobe")
                    .args([
                        "-v",
                        "error",
                        "-show_entries",
                        "format=duration",
                        "-of",
                        "csv=p=0",
                    ])
                    .arg(&film)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("ffprobe (Debian package ffmpeg)");
                assert!(status.success());
                started.elapsed()
            })
            .collect(),
    );
    let clip_bytes = std::fs::read(&small).unwrap();
    let moov = boxes(&clip_bytes)
        .iter()
        .find(|(kind, _)| kind == b"moov")
        .map_or(0, |(_, whole)| whole.len());
    println!(
        "Probing a 10 GB MP4 with its {} KiB index at the end, median:",
        moov / 1024
    );
    println!(
        "  Offload    {:8.3} ms   {reads} reads, {} KiB read",
        ours.as_secs_f64() * 1000.0,
        bytes / 1024
    );
    println!(
        "  ffprobe    {:8.2} ms   (Offload {:.0}x faster; ffprobe starts a process and opens its decoders)",
        ffprobe.as_secs_f64() * 1000.0,
        ffprobe.as_secs_f64() / ours.as_secs_f64()
    );
}
