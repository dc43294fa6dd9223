//! Benchmarks of the headless daemon, run with `scripts/bench` (or `cargo bench --bench daemon`).
//! Each figure is measured on the release `offload` binary against the tool a user would use
//! instead, in the same run; README.md reports the results and ratios.
//!
//! 1. Arrival latency: from a file's last write to its job being queued, minus the quiet period.
//! 2. Start-up scan of 100,000 files, against `find` and `rclone lsf -R`.
//! 3. Idle CPU and RSS of `offload run` watching those 100,000 files.
//! 4. Upload throughput to the local backend (copy, fsync, read back, verify), against `cp` +
//!    `sync` and `rclone copyto`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const OFFLOAD: &str = env!("CARGO_BIN_EXE_offload");

struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn offload(&self) -> Command {
        let mut command = Command::new(OFFLOAD);
        command
            .env("OFFLOAD_DATA_DIR", self.path("data"))
            .env("OFFLOAD_LOG", "offload=info")
            .stdin(Stdio::null());
        command
    }

    fn ok(&self, args: &[&str]) {
        let status = self
            .offload()
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "offload {args:?} failed");
    }

    fn profile(&self, watch: &Path) {
        std::fs::create_dir_all(watch).unwrap();
        self.ok(&[
            "profile",
            "add",
            "Bench",
            "--watch",
            watch.to_str().unwrap(),
        ]);
        self.ok(&[
            "backend",
            "add",
            "Lib",
            "--profile",
            "Bench",
            "--type",
            "local",
            "--path",
            self.path("library").to_str().unwrap(),
        ]);
    }

    fn daemon(&self, quiet: &str) -> (Child, PathBuf) {
        let log = self.path(&format!("daemon-{}.log", std::process::id()));
        let child = self
            .offload()
            .args(["run", "--no-default-profile", "--quiet-period", quiet])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_log(&log, "offload is running");
        (child, log)
    }
}

fn wait_for_log(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|line| line.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {needle:?} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn log_time(line: &str) -> SystemTime {
    let stamp = line.split_whitespace().next().unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(stamp).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_micros(parsed.timestamp_micros() as u64)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn arrival_latency() {
    let bench = Bench {
        dir: tempfile::tempdir().unwrap(),
    };
    let watch = bench.path("watch");
    bench.profile(&watch);
    let quiet = Duration::from_secs(1);
    let (daemon, log) = bench.daemon("1s");
    let mut overheads = Vec::new();
    for i in 0..20 {
        let path = watch.join(format!("clip-{i:02}.mkv"));
        std::fs::write(&path, vec![7u8; 64 * 1024]).unwrap();
        let written = SystemTime::now();
        let line = wait_for_log(&log, &format!("path={}", path.display()));
        let latency = log_time(&line).duration_since(written).unwrap_or_default();
        overheads.push(latency.saturating_sub(quiet).as_secs_f64() * 1000.0);
    }
    stop(daemon);
    overheads.sort_by(f64::total_cmp);
    println!(
        "arrival latency (last write → queued) = quiet period 1 s + median {:.0} ms, p95 {:.0} ms, max {:.0} ms (20 files)",
        percentile(&overheads, 0.5),
        percentile(&overheads, 0.95),
        overheads[overheads.len() - 1]
    );
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn timed(program: &str, args: &[&str]) -> Option<f64> {
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| started.elapsed().as_secs_f64())
}

fn scan_and_idle() {
    let bench = Bench {
        dir: tempfile::tempdir().unwrap(),
    };
    let watch = bench.path("watch");
    // 100,000 files in 1,000 folders. Not media, so the daemon watches them without uploading.
    for d in 0..1000 {
        let dir = watch.join(format!("folder-{d:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("note-{f:03}.txt")), b"").unwrap();
        }
    }
    bench.profile(&watch);
    let watch_text = watch.to_str().unwrap();
    let find = timed("find", &[watch_text, "-type", "f"]);
    let rclone = timed("rclone", &["lsf", "-R", "--files-only", watch_text]);

    let (daemon, log) = bench.daemon("5s");
    let line = wait_for_log(&log, "folder scanned");
    let scan_ms: f64 = line
        .split("elapsed_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let pid = daemon.id();
    // Let the start-up settle, then measure a quiet stretch.
    std::thread::sleep(Duration::from_secs(3));
    let ticks_per_second: f64 = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap_or(100.0);
    let before = cpu_ticks(pid);
    let window = Duration::from_secs(20);
    std::thread::sleep(window);
    let used = (cpu_ticks(pid) - before) as f64 / ticks_per_second;
    let rss_kib = proc_field(pid, "status", "VmRSS:");
    let hwm_kib = proc_field(pid, "status", "VmHWM:");
    stop(daemon);

    println!("start-up scan of 100,000 files: offload {:.0} ms", scan_ms);
    for (name, seconds) in [("find -type f", find), ("rclone lsf -R", rclone)] {
        match seconds {
            Some(seconds) => println!(
                "    {name}: {:.0} ms (offload/{name} = {:.2})",
                seconds * 1000.0,
                scan_ms / (seconds * 1000.0)
            ),
            None => println!("    {name}: not installed"),
        }
    }
    println!(
        "idle CPU watching 100,000 files: {:.2}% over {} s",
        used / window.as_secs_f64() * 100.0,
        window.as_secs()
    );
    println!(
        "idle RSS: {:.1} MiB (peak during the scan {:.1} MiB)",
        rss_kib as f64 / 1024.0,
        hwm_kib as f64 / 1024.0
    );
}

fn upload_throughput() {
    let bench = Bench {
        dir: tempfile::tempdir().unwrap(),
    };
    let watch = bench.path("watch");
    bench.profile(&watch);
    let size = 1024 * 1024 * 1024;
    let source = bench.path("source.mkv");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
        let mut block = vec![0u8; 1024 * 1024];
        for (i, byte) in block.iter_mut().enumerate() {
            *byte = (i * 31 % 251) as u8;
        }
        for i in 0..1024 {
            block[0] = i as u8;
            file.write_all(&block).unwrap();
        }
    }
    let source_text = source.to_str().unwrap();
    let runs = 3;
    let mut offload = Vec::new();
    let mut cp = Vec::new();
    let mut rclone = Vec::new();
    for run in 0..runs {
        // Each run writes a new target; the previous one is removed so the disk holds one copy.
        let _ = std::fs::remove_dir_all(bench.path("library"));
        let _ = Command::new("sync").status();
        let started = Instant::now();
        // A fresh job each run: touch the file so it is not "already uploaded".
        let _ = Command::new("touch").arg(&source).status();
        let status = bench
            .offload()
            .args(["upload", source_text, "--profile", "Bench"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        offload.push(started.elapsed().as_secs_f64());

        let target = bench.path(&format!("cp-{run}.mkv"));
        let started = Instant::now();
        if Command::new("cp")
            .args([source_text, target.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success())
        {
            let _ = Command::new("sync").arg(&target).status();
            cp.push(started.elapsed().as_secs_f64());
        }
        let _ = std::fs::remove_file(&target);

        let target = bench.path(&format!("rclone-{run}.mkv"));
        if let Some(seconds) = timed(
            "rclone",
            &[
                "copyto",
                "--ignore-times",
                source_text,
                target.to_str().unwrap(),
            ],
        ) {
            rclone.push(seconds);
        }
        let _ = std::fs::remove_file(&target);
    }
    let median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times.get(times.len() / 2).copied()
    };
    let ours = median(&mut offload).unwrap();
    let mib = size as f64 / (1024.0 * 1024.0);
    println!(
        "upload 1 GiB to the local backend (median of {runs}): offload {:.0} MiB/s ({:.2} s)",
        mib / ours,
        ours
    );
    for (name, times) in [("cp + sync", &mut cp), ("rclone copyto", &mut rclone)] {
        match median(times) {
            Some(theirs) => println!(
                "    {name}: {:.0} MiB/s ({:.2} s); offload takes {:.2}x its time",
                mib / theirs,
                theirs,
                ours / theirs
            ),
            None => println!("    {name}: not installed"),
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; any other argument picks one benchmark by name.
    let wanted = |name: &str| common::wanted(&[name]);
    if wanted("latency") {
        arrival_latency();
    }
    if wanted("scan") {
        scan_and_idle();
    }
    if wanted("upload") {
        upload_throughput();
    }
}
