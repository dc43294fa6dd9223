//! Indexing a bucket against a bare listing, in one run on one Garage: 100,000 objects (films,
//! and series in season folders), Offload's first `library scan` (a fresh data folder each run)
//! and an unchanged rescan, against `rclone lsf -R` and `aws s3api list-objects-v2` over the same
//! bucket. Reports median wall time and peak RSS, and the ratios to rclone's listing.
//! Run with `scripts/bench index`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{measure, median, s3, Measure};

const RUNS: usize = 3;
const OBJECTS: usize = 100_000;

/// Key `n` of the bucket: nine in ten an episode, the rest films.
fn key(n: usize) -> String {
    if n.is_multiple_of(10) {
        format!("Films/Film {n:06} (2019)/Film.{n:06}.2019.1080p.mkv")
    } else {
        let show = n / 1000;
        let season = n / 100 % 10 + 1;
        let episode = n % 100;
        format!(
            "Shows/Show {show:03}/Season {season:02}/Show.{show:03}.S{season:02}E{episode:02}.mkv"
        )
    }
}

fn fill(server: &s3::S3Server) {
    use futures_util::StreamExt;
    let client = server.client();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        futures_util::stream::iter(0..OBJECTS)
            .map(|n| {
                client
                    .put_object()
                    .bucket(&server.bucket)
                    .key(key(n))
                    .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
                    .send()
            })
            .buffer_unordered(64)
            .for_each(|put| async move {
                put.unwrap();
            })
            .await;
    });
}

fn main() {
    if !common::wanted(&["index"]) {
        return;
    }
    let server = s3::garage();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    fill(&server);
    eprintln!(
        "put {OBJECTS} objects in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let aws_config = dir.path().join("aws-config");
    std::fs::write(&aws_config, "[default]\nregion = garage\n").unwrap();

    let scan = |data: &std::path::Path| {
        let mut command = common::offload(data, &["library", "scan", "--profile", "Bench"]);
        command.env("OFFLOAD_LOG", "error");
        command
    };
    let (mut first, mut again, mut rclone, mut aws) = (vec![], vec![], vec![], vec![]);
    for run in 0..RUNS {
        let data = dir.path().join(format!("data{run}"));
        common::offload_on(&data, &server);
        first.extend(measure(scan(&data)));
        again.extend(measure(scan(&data)));
        rclone.extend(measure(common::rclone(
            &server,
            &["lsf", "-R", &format!("garage:{}", server.bucket)],
        )));
        aws.extend(measure(common::aws(
            &server,
            &aws_config,
            &[
                "s3api",
                "list-objects-v2",
                "--bucket",
                &server.bucket,
                "--output",
                "text",
            ],
        )));
    }
    let listed = {
        let data = dir.path().join("data0");
        let rows = common::offload(&data, &["media", "list", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&rows.stdout)
            .unwrap()
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(listed, OBJECTS, "the scan found every object");
    let rows: [(&str, Option<Measure>); 4] = [
        ("rclone lsf -R", median(rclone)),
        ("aws s3api list-objects-v2", median(aws)),
        ("Offload: first scan", median(first)),
        ("Offload: rescan, nothing changed", median(again)),
    ];
    let base = rows[0].1.as_ref().map(|m| m.seconds);
    println!("| {OBJECTS} objects on Garage | median time | peak RSS | time ÷ rclone's |");
    println!("|---|---|---|---|");
    for (tool, result) in &rows {
        match result {
            Some(m) => println!(
                "| {tool} | {:.2} s | {:.0} MiB | {} |",
                m.seconds,
                m.peak_rss_mib,
                base.map_or("-".into(), |b| format!("{:.2}", m.seconds / b))
            ),
            None => println!("| {tool} | failed or not installed | | |"),
        }
    }
}
