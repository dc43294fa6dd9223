//! Upload throughput to S3 against the tools a user would pick instead, in one run, against the
//! same Garage on loopback: one 1 GiB file, and 1,000 files of 1 MiB, with Offload, rclone and
//! the AWS CLI, all with 10 MiB parts and 4 requests at once. Beside them, the server-bound
//! limit: the same bytes sent by curl as presigned PUTs (UploadPart for the big file, from parts
//! split beforehand), 4 at once, hashing and signing nothing. Reports median wall time,
//! throughput and peak RSS (GNU time's maximum resident set size), and the ratios to Offload.
//! Run with `scripts/bench s3`.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

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

const PART: usize = 10 * MIB;

/// A curl config that PUTs each file to its URL: `--parallel --parallel-max 4` sends them four
/// at once, as the other tools do.
fn curl(config: &Path, uploads: &[(PathBuf, String)]) -> Command {
    let mut text = String::new();
    for (file, url) in uploads {
        text.push_str(&format!(
            "upload-file = \"{}\"\nurl = \"{url}\"\noutput = \"/dev/null\"\n",
            file.display()
        ));
    }
    std::fs::write(config, text).unwrap();
    let mut command = Command::new("curl");
    command
        .args([
            "--parallel",
            "--parallel-max",
            "4",
            "--fail",
            "--silent",
            "--show-error",
        ])
        .arg("--config")
        .arg(config);
    command
}

fn presigned() -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(3600)).unwrap()
}

/// The server-bound limit: curl PUTting to URLs the SDK presigns for this bucket.
struct Limit {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Where the curl config of each run is written.
    config: PathBuf,
}

impl Limit {
    /// The big file's parts, uploaded to presigned UploadPart URLs of a new multipart upload
    /// (aborted afterwards: only the sending is timed).
    fn multipart(&self, key: &str, parts: &[PathBuf]) -> Option<common::Measure> {
        let (client, bucket) = (&self.client, self.bucket.as_str());
        let (upload_id, uploads) = self.runtime.block_on(async {
            let created = client
                .create_multipart_upload()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            let upload_id = created.upload_id().unwrap().to_owned();
            let mut uploads = Vec::new();
            for (index, part) in parts.iter().enumerate() {
                let request = client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(index as i32 + 1)
                    .presigned(presigned())
                    .await
                    .unwrap();
                uploads.push((part.clone(), request.uri().to_owned()));
            }
            (upload_id, uploads)
        });
        let measured = measure(curl(&self.config, &uploads));
        self.runtime.block_on(async {
            let listed = client
                .list_parts()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
                .unwrap();
            assert_eq!(listed.parts().len(), parts.len(), "curl sent every part");
            client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
                .unwrap();
        });
        measured
    }

    /// Each file PUT to a presigned PutObject URL under `prefix`.
    fn objects(&self, prefix: &str, files: &[PathBuf]) -> Option<common::Measure> {
        let uploads = self.runtime.block_on(async {
            let mut uploads = Vec::new();
            for file in files {
                let name = file.file_name().unwrap().to_string_lossy();
                let request = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(format!("{prefix}/{name}"))
                    .presigned(presigned())
                    .await
                    .unwrap();
                uploads.push((file.clone(), request.uri().to_owned()));
            }
            uploads
        });
        measure(curl(&self.config, &uploads))
    }
}

fn main() {
    if !common::wanted(&["s3", "upload"]) {
        return;
    }
    let server = s3::garage();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.mkv");
    write_file(&big, 1024 * MIB, 1);
    // The big file's parts as curl sends them, split beforehand (that is not timed).
    let parts_dir = dir.path().join("parts");
    std::fs::create_dir_all(&parts_dir).unwrap();
    let parts: Vec<PathBuf> = {
        let bytes = std::fs::read(&big).unwrap();
        bytes
            .chunks(PART)
            .enumerate()
            .map(|(index, chunk)| {
                let path = parts_dir.join(format!("part-{:05}", index + 1));
                std::fs::write(&path, chunk).unwrap();
                path
            })
            .collect()
    };
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    for i in 0..1000 {
        write_file(
            &small.join(format!("clip-{i:04}.mp4")),
            MIB,
            (i % 250) as u8 + 2,
        );
    }
    let small_paths: Vec<PathBuf> = (0..1000)
        .map(|i| small.join(format!("clip-{i:04}.mp4")))
        .collect();
    let small_files: Vec<String> = small_paths
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    let curl_limit = Limit {
        runtime: tokio::runtime::Runtime::new().unwrap(),
        client: server.client(),
        bucket: server.bucket.clone(),
        config: dir.path().join("curl-config"),
    };

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
        ("one 1 GiB file", 1024 * MIB),
        ("1,000 files of 1 MiB", 1000 * MIB),
    ] {
        let mut ours = Vec::new();
        let mut theirs_rclone = Vec::new();
        let mut theirs_aws = Vec::new();
        let mut limit = Vec::new();
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
                limit.extend(curl_limit.multipart(&format!("{target}/curl-big.mkv"), &parts));
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
                limit.extend(curl_limit.objects(&format!("{target}/curl-small"), &small_paths));
            }
        }
        rows.push((
            case,
            bytes,
            median(ours),
            median(theirs_rclone),
            median(theirs_aws),
            median(limit),
        ));
    }

    println!("| case | tool | median time | throughput | peak RSS | time ÷ Offload's |");
    println!("|---|---|---|---|---|---|");
    let mut against_limit = Vec::new();
    for (case, bytes, ours, rclone, aws, limit) in rows {
        let ours_seconds = ours.as_ref().map(|m| m.seconds);
        if let (Some(ours), Some(limit)) = (ours_seconds, limit.as_ref()) {
            against_limit.push(format!(
                "{case}: Offload takes {:.2}× the limit's time (target 1.25×)",
                ours / limit.seconds
            ));
        }
        for (tool, result) in [
            ("Offload", ours),
            ("rclone", rclone),
            ("AWS CLI", aws),
            ("curl, presigned PUTs (the limit)", limit),
        ] {
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
    for line in against_limit {
        println!("{line}");
    }
}
