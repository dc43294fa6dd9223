//! QuickXorHash, OneDrive's digest, which Offload computes over every byte it uploads there:
//! Offload's against `rclone hashsum QuickXorHash` (the tool a OneDrive user would pick) over the
//! same 1 GiB file (in the page cache), in one run, and Offload's in memory alone, which is the
//! issue's target (1 GB/s on one core). Median of five. Run with `scripts/bench hash`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use offload::storage::onedrive::quickxor::QuickXorHash;

const SIZE: usize = 1 << 30;
const RUNS: usize = 5;

/// The median time `run` takes over [`RUNS`] runs.
fn timed(mut run: impl FnMut()) -> Duration {
    let mut runs: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    runs.sort();
    runs[runs.len() / 2]
}

fn gb_per_s(time: Duration) -> f64 {
    SIZE as f64 / time.as_secs_f64() / 1e9
}

fn main() {
    if !common::wanted(&["hash"]) {
        return;
    }
    let data: Vec<u8> = (0..SIZE as u64)
        .map(|n| (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("film.mkv");
    std::fs::write(&file, &data).unwrap();

    let memory = timed(|| {
        let mut hash = QuickXorHash::default();
        for chunk in data.chunks(1 << 20) {
            hash.update(chunk);
        }
        std::hint::black_box(hash.finish());
    });
    let ours = timed(|| {
        let mut hash = QuickXorHash::default();
        let mut reader = std::fs::File::open(&file).unwrap();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = reader.read(&mut buffer).unwrap();
            if read == 0 {
                break;
            }
            hash.update(&buffer[..read]);
        }
        std::hint::black_box(hash.finish_base64());
    });
    let rclone = timed(|| {
        let status = std::process::Command::new("rclone")
            .args(["hashsum", "QuickXorHash"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("rclone (scripts/bench installs it)");
        assert!(status.success());
    });
    println!("QuickXorHash of 1 GiB, median of {RUNS}:");
    println!("  Offload, in memory        {:6.2} GB/s", gb_per_s(memory));
    println!("  Offload, from the file    {:6.2} GB/s", gb_per_s(ours));
    println!(
        "  rclone hashsum            {:6.2} GB/s   (Offload {:.2}x rclone)",
        gb_per_s(rclone),
        rclone.as_secs_f64() / ours.as_secs_f64()
    );
}
