//! Google Drive and OneDrive through a link of 100 MiB/s: `offload upload` of 1 GiB to the fakes in
//! `tests/` (which follow the providers' upload-session rules), against the time the link itself
//! needs — the same bytes sent by curl in one PUT through the same kind of link, to a server that
//! reads and drops them. Median of 3; the link is the throttling proxy the tests use.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod common;
#[path = "../tests/common/mod.rs"]
#[allow(clippy::duplicate_mod)]
mod testing;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;

use common::{measure, median, Measure};
use testing::cloud::Setup;
use testing::oauth_fake::FakeIdentity;
use testing::proxy::FaultProxy;

const MIB: u64 = 1024 * 1024;
const LINK: u64 = 100 * MIB;
const SIZE: u64 = 1024 * MIB;
const RUNS: usize = 3;

/// A server that reads each request's body, drops it and answers `200`: the far end of the link
/// for curl, which costs nothing beyond reading.
fn sink() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                // Requests one after another on the connection, as a client keeps it alive.
                loop {
                    let mut length = 0u64;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let _ = std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink());
                    if (&stream)
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn throttled(upstream: u16) -> FaultProxy {
    let proxy = FaultProxy::start(upstream);
    proxy.limit_rate(LINK);
    proxy
}

fn print_row(case: &str, tool: &str, run: &Measure, link: f64) {
    println!(
        "| {case} | {tool} | {:.2} s | {:.0} MiB/s | {:.0} MiB | {:.2} |",
        run.seconds,
        SIZE as f64 / MIB as f64 / run.seconds,
        run.peak_rss_mib,
        run.seconds / link
    );
}

fn main() {
    if !common::wanted(&["cloud", "drive", "onedrive", "upload"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let film = dir.path().join("film.mkv");
    testing::write_random(&film, SIZE as usize);
    let film_text = film.display().to_string();

    let sink_link = throttled(sink());
    let link = median(
        (0..RUNS)
            .filter_map(|_| {
                let mut curl = Command::new("curl");
                curl.args(["-sS", "-f", "-H", "Expect:", "-o", "/dev/null", "-T"])
                    .arg(&film)
                    .arg(format!("{}/sink", sink_link.endpoint()));
                measure(curl)
            })
            .collect(),
    )
    .expect("curl through the link");

    println!(
        "\n1 GiB through a link of {} MiB/s (median of {RUNS}; the link alone: curl, one PUT)\n",
        LINK / MIB
    );
    println!("| case | tool | median time | throughput | peak RSS | time ÷ the link's |");
    println!("|---|---|---|---|---|---|");
    print_row("the link", "curl", &link, link.seconds);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (kind, name) in [("google-drive", "Google Drive"), ("onedrive", "OneDrive")] {
        let fake = FakeIdentity::start();
        let port = fake.base.rsplit(':').next().unwrap().parse().unwrap();
        let proxy = throttled(port);
        let setup = runtime.block_on(Setup::reached_at(fake, &proxy.endpoint(), kind));
        // One upload first, not counted, and the file deleted at the fake after each: memory
        // the fake touches for the first time is slow to come by on this VM (perf: three
        // quarters of the fake's time in the kernel clearing fresh pages), and this way every
        // counted run reuses what the one before freed.
        let runs = (0..=RUNS)
            .filter_map(|run| {
                // A new job each run: Offload does not upload an unchanged file twice.
                let _ = Command::new("touch").arg(&film).status();
                let mut upload = setup.sandbox.offload();
                upload
                    .args(["upload", "--profile", "Home", &film_text])
                    .env("OFFLOAD_LOG", "error");
                let measured = measure(upload);
                setup.fake.delete_stored(kind, "film.mkv");
                let measured = measured?;
                eprintln!("{name}, run {run}: {:.2} s", measured.seconds);
                (run > 0).then_some(measured)
            })
            .collect();
        let ours = median(runs).unwrap_or_else(|| panic!("offload upload to the {name} fake"));
        assert_eq!(
            setup.fake.received(kind),
            (RUNS as u64 + 1) * SIZE,
            "every run sent the file once"
        );
        print_row(name, "Offload", &ours, link.seconds);
    }
}
