//! The faststart rewrite of a 2 GiB late-index MP4 (a 720p H.264/AAC film as ffmpeg writes it,
//! index last) against `ffmpeg -c copy -movflags +faststart` (what a person would run to do the
//! same) and against `cp` (the floor: the same bytes copied, nothing read into a program), in one
//! run, the file in the page cache, `sync` between runs and outside the timings. Offload's figure
//! includes the SHA-256 of the original it records, computed in the same pass. Run with
//! `scripts/bench faststart`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::media::{clip, ffmpeg};
use offload::transmux::faststart::{self, Verdict};

const RUNS: usize = 3;
const TARGET: u64 = 2 << 30;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn timed(out: &Path, mut run: impl FnMut()) -> Duration {
    let runs = (0..RUNS)
        .map(|_| {
            let _ = std::fs::remove_file(out);
            sync();
            let started = Instant::now();
            run();
            let took = started.elapsed();
            assert!(out.exists());
            took
        })
        .collect();
    let _ = std::fs::remove_file(out);
    median(runs)
}

fn sync() {
    assert!(Command::new("sync").status().unwrap().success());
}

fn main() {
    if !common::wanted(&["faststart"]) {
        return;
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // A minute of 720p at a film's bitrate and packet count, looped (stream copy) to 2 GiB.
    let minute = dir.path().join("minute.mp4");
    clip(&minute, 60, "1280x720", &[], &["-b:v", "20M", "-g", "48"]);
    let loops = TARGET.div_ceil(std::fs::metadata(&minute).unwrap().len()) - 1;
    let film = dir.path().join("film.mp4");
    ffmpeg(&[
        "-stream_loop",
        &loops.to_string(),
        "-i",
        minute.to_str().unwrap(),
        "-c",
        "copy",
        film.to_str().unwrap(),
    ]);
    std::fs::remove_file(&minute).unwrap();
    let size = std::fs::metadata(&film).unwrap().len();
    let out = dir.path().join("out.mp4");
    // Into the page cache, for every contender alike.
    std::fs::copy(&film, &out).unwrap();

    let cp = timed(&out, || {
        assert!(Command::new("cp")
            .arg(&film)
            .arg(&out)
            .status()
            .unwrap()
            .success());
    });
    let ffmpeg_time = timed(&out, || {
        ffmpeg(&[
            "-i",
            film.to_str().unwrap(),
            "-map",
            "0",
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            out.to_str().unwrap(),
        ]);
    });
    let ours = timed(&out, || {
        let Verdict::Rewrite(plan) = faststart::plan(&film).unwrap() else {
            panic!("the film is not late-index")
        };
        faststart::rewrite(&film, &plan, &out, &|| false).unwrap();
    });

    let rate = |took: Duration| size as f64 / (1 << 20) as f64 / took.as_secs_f64();
    println!(
        "Faststart rewrite of a {:.2} GiB late-index MP4, median of {RUNS}:",
        size as f64 / (1u64 << 30) as f64
    );
    for (name, took) in [
        ("Offload (with SHA-256)", ours),
        ("ffmpeg -c copy +faststart", ffmpeg_time),
        ("cp", cp),
    ] {
        println!(
            "  {name:<26} {:7.2} s  {:7.0} MiB/s",
            took.as_secs_f64(),
            rate(took)
        );
    }
    println!(
        "  Offload / ffmpeg: {:.2}x the speed; Offload / cp: {:.2}x the time",
        ffmpeg_time.as_secs_f64() / ours.as_secs_f64(),
        ours.as_secs_f64() / cp.as_secs_f64()
    );
}
