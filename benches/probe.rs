//! Probing a 10 GB film whose index sits at its end (as ffmpeg and most downloads write MP4s):
//! Offload's probe against `ffprobe` (what a person would run to ask the same question) on the
//! same file in the page cache, in one run, with the bytes and reads Offload's probe takes. The
//! film is a 10-minute clip (15,000 frames, so its sample tables are a film's) grown to 10 GB as
//! a sparse file. Then the same film stored in Garage (uploaded by Offload with faststart off, so
//! its index stays at the end), probed through a presigned URL by Range requests — as a running
//! Offload describes an item found in storage — against ffprobe on the same URL. Run with
//! `scripts/bench probe`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::media::{boxes, clip, probe_counted, probe_counted_from, sparse_mp4};
use common::s3;

const RUNS: usize = 21;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// Offload's probe (its median, reads and bytes) beside ffprobe's time.
fn report(ours: Duration, reads: usize, bytes: u64, ffprobe: Duration) {
    println!(
        "  Offload    {:8.3} ms   {reads} reads, {} KiB read",
        ours.as_secs_f64() * 1000.0,
        bytes / 1024
    );
    println!(
        "  ffprobe    {:8.2} ms   (Offload {:.1}x faster; ffprobe starts a process and opens its decoders)",
        ffprobe.as_secs_f64() * 1000.0,
        ffprobe.as_secs_f64() / ours.as_secs_f64()
    );
}

/// ffprobe's time to say how long `input` (a file or a URL) is, median of 5.
fn ffprobe_time(input: &std::ffi::OsStr) -> Duration {
    median(
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
                    .arg(input)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("ffprobe (Debian package ffmpeg)");
                assert!(status.success());
                started.elapsed()
            })
            .collect(),
    )
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
    let ffprobe = ffprobe_time(film.as_os_str());
    let clip_bytes = std::fs::read(&small).unwrap();
    let moov = boxes(&clip_bytes)
        .iter()
        .find(|(kind, _)| kind == b"moov")
        .map_or(0, |(_, whole)| whole.len());
    println!(
        "Probing a 10 GB MP4 with its {} KiB index at the end, median:",
        moov / 1024
    );
    report(ours, reads, bytes, ffprobe);

    through_s3(dir.path(), &film);
}

/// The film in Garage, probed through a presigned URL.
fn through_s3(dir: &std::path::Path, film: &std::path::Path) {
    let server = s3::garage();
    let data = dir.join("data");
    common::offload_on(&data, &server);
    let run = |args: &[&str]| {
        let output = common::offload(&data, args).output().unwrap();
        assert!(output.status.success(), "offload {args:?}: {output:?}");
        output.stdout
    };
    run(&["profile", "faststart", "Bench", "off"]);
    run(&["upload", "--profile", "Bench", film.to_str().unwrap()]);
    let listed: serde_json::Value =
        serde_json::from_slice(&run(&["media", "list", "--json"])).unwrap();
    let key = listed[0]["storage_path"].as_str().unwrap().to_owned();
    let size = std::fs::metadata(film).unwrap().len();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(async {
        let config =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(3600))
                .unwrap();
        let request = server
            .client()
            .get_object()
            .bucket(&server.bucket)
            .key(&key);
        request.presigned(config).await.unwrap().uri().to_owned()
    });
    let client = reqwest::Client::new();
    let mut reads = 0;
    let mut bytes = 0;
    let ours = median(
        (0..11)
            .map(|_| {
                let source = offload::stream::UrlSource::new(
                    client.clone(),
                    runtime.handle().clone(),
                    url.clone(),
                    size,
                );
                let started = Instant::now();
                let (info, probe_reads, probe_bytes) =
                    probe_counted_from(source, offload::probe::REMOTE_BLOCK);
                let took = started.elapsed();
                assert_eq!(info.duration_ms.map(|ms| ms / 1000), Some(600));
                (reads, bytes) = (probe_reads, probe_bytes);
                took
            })
            .collect(),
    );
    let ffprobe = ffprobe_time(std::ffi::OsStr::new(&url));
    println!("The same film in Garage (index at the end), through a presigned URL, median:");
    report(ours, reads, bytes, ffprobe);
}
