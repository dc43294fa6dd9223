//! Upload throughput to S3 against the tools a user would pick instead, in one run, against the
//! same Garage on loopback: one 2 GiB file, and 1,000 files of 1 MiB, with Offload, rclone and
//! the AWS CLI, all with 10 MiB parts and 4 requests at once. Reports median wall time,
//! throughput and peak RSS (GNU time's maximum resident set size), and the ratios to Offload.
//! Run with `scripts/bench s3`.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{measure, median, s3};

const RUNS: usize = 3;
const MIB: usize = 1024 * 1024;

fn write_file(path: &Path, len: usize, seed: u8) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut block = vec![0u8; MIB];
    let mut state = seed as u64 | 1;
    for chunk in 0..len.div_ceil(MIB) {
        for byte in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        let take = MIB.min(len - chunk * MIB);
        file.write_all(&block[..take]).unwrap();
    }
}

fn main() {
    if !common::wanted(&["s3", "upload"]) {
        return;
    }
    let server = s3::garage();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.mkv");
    write_file(&big, 2048 * MIB, 1);
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    for i in 0..1000 {
        write_file(
            &small.join(format!("clip-{i:04}.mp4")),
            MIB,
            (i % 250) as u8 + 2,
        );
    }
    let small_files: Vec<String> = (0..1000)
        .map(|i| small.join(format!("clip-{i:04}.mp4")).display().to_string())
        .collect();

    // Offload: a profile whose S3 backend is this Garage.
    let data = dir.path().join("data");
    common::offload_on(&data, &server);
    let offload = |args: &[&str]| common::offload(&data, args);
    let rclone = |args: &[&str]| {
        let mut command = common::rclone(&server, args);
        command.args([
            "--s3-chunk-size",
            "10M",
            "--s3-upload-concurrency",
            "4",
            "--transfers",
            "4",
            "--ignore-times",
        ]);
        command
    };
    let aws_config = dir.path().join("aws-config");
    std::fs::write(&aws_config, "[default]\nregion = garage\ns3 =\n  multipart_chunksize = 10MB\n  multipart_threshold = 8MB\n  max_concurrent_requests = 4\n").unwrap();
    let aws = |args: &[&str]| {
        let mut command = common::aws(&server, &aws_config, args);
        command.arg("--only-show-errors");
        command
    };

    let big_text = big.display().to_string();
    let small_text = small.display().to_string();
    let bucket = &server.bucket;
    let mut rows = Vec::new();
    for (case, bytes) in [
        ("one 2 GiB file", 2048 * MIB),
        ("1,000 files of 1 MiB", 1000 * MIB),
    ] {
        let mut ours = Vec::new();
        let mut theirs_rclone = Vec::new();
        let mut theirs_aws = Vec::new();
        for run in 0..RUNS {
            // A new job each run: Offload does not upload an unchanged file twice.
            let _ = Command::new("touch").arg(&big).status();
            let _ = Command::new("find")
                .args([
                    small_text.as_str(),
                    "-type",
                    "f",
                    "-exec",
                    "touch",
                    "{}",
                    "+",
                ])
                .status();
            let target = format!("run{run}");
            if case.starts_with("one") {
                ours.extend(measure({
                    let mut command =
                        offload(&["upload", &big_text, "--profile", "Bench", "--workers", "4"]);
                    command.env("OFFLOAD_LOG", "error");
                    command
                }));
                theirs_rclone.extend(measure(rclone(&[
                    "copyto",
                    &big_text,
                    &format!("garage:{bucket}/{target}/rclone-big.mkv"),
                ])));
                theirs_aws.extend(measure(aws(&[
                    "s3",
                    "cp",
                    &big_text,
                    &format!("s3://{bucket}/{target}/aws-big.mkv"),
                ])));
            } else {
                let mut args: Vec<&str> = vec!["upload", "--profile", "Bench", "--workers", "4"];
                args.extend(small_files.iter().map(String::as_str));
                ours.extend(measure({
                    let mut command = offload(&args);
                    command.env("OFFLOAD_LOG", "error");
                    command
                }));
                theirs_rclone.extend(measure(rclone(&[
                    "copy",
                    &small_text,
                    &format!("garage:{bucket}/{target}/rclone-small"),
                ])));
                theirs_aws.extend(measure(aws(&[
                    "s3",
                    "cp",
                    &small_text,
                    &format!("s3://{bucket}/{target}/aws-small"),
                    "--recursive",
                ])));
            }
        }
        rows.push((
            case,
            bytes,
            median(ours),
            median(theirs_rclone),
            median(theirs_aws),
        ));
    }

    println!("| case | tool | median time | throughput | peak RSS | time ÷ Offload's |");
    println!("|---|---|---|---|---|---|");
    for (case, bytes, ours, rclone, aws) in rows {
        let ours_seconds = ours.as_ref().map(|m| m.seconds);
        for (tool, result) in [("Offload", ours), ("rclone", rclone), ("AWS CLI", aws)] {
            match result {
                Some(m) => println!(
                    "| {case} | {tool} | {:.2} s | {:.0} MiB/s | {:.0} MiB | {} |",
                    m.seconds,
                    bytes as f64 / MIB as f64 / m.seconds,
                    m.peak_rss_mib,
                    ours_seconds.map_or("-".into(), |o| format!("{:.2}", m.seconds / o))
                ),
                None => println!("| {case} | {tool} | failed or not installed | | | |"),
            }
        }
    }
}
