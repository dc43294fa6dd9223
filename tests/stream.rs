//! The stream server as players meet it: ffprobe and ffmpeg (real media clients) read uploaded
//! videos through stream URLs and playlists, byte ranges are exact, and everything that is not a
//! valid URL for this library on this machine is turned away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::media::{assert_plays, make_video};
use common::s3::{fetch, garage, Answer};
use common::{add_s3_backend, wait_for, Sandbox, MASTER_KEY};
use offload::library::LibraryItem;
use offload::secrets::{KeySource, MasterKey};
use offload::stream::token::{Subject, TokenKey};

fn media_url(sandbox: &Sandbox, id: i64) -> String {
    sandbox
        .ok(&["media", "url", &id.to_string()])
        .trim()
        .to_owned()
}

/// The only item in the library, once the daemon or `offload upload` recorded it.
fn only_media_id(sandbox: &Sandbox) -> i64 {
    let media = sandbox.media();
    assert_eq!(media.len(), 1, "{media:?}");
    media[0]["item"]["id"].as_i64().unwrap()
}

/// The stream URLs a playlist lists.
fn playlist_urls(text: &str) -> Vec<String> {
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(str::to_owned)
        .collect()
}

fn range(url: &str, spec: &str) -> Answer {
    fetch(url, "GET", &[("Range", spec)])
}

/// First, middle, last and suffix ranges, each byte for byte; past the end is `416`.
fn assert_ranges_exact(url: &str, expected: &[u8], follow: impl Fn(&str) -> String) {
    let size = expected.len();
    let cases = [
        ("bytes=0-99".to_owned(), 0..100),
        (
            format!("bytes={}-{}", size / 2, size / 2 + 4095),
            size / 2..size / 2 + 4096,
        ),
        (format!("bytes={}-", size - 10), size - 10..size),
        ("bytes=-1000".to_owned(), size - 1000..size),
        (format!("bytes=10-{}", size * 2), 10..size),
    ];
    for (spec, want) in cases {
        let answer = range(&follow(url), &spec);
        assert_eq!(
            answer.status,
            206,
            "{spec}: {:?}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(
            answer.header("content-range"),
            Some(format!("bytes {}-{}/{size}", want.start, want.end - 1).as_str()),
            "{spec}"
        );
        assert!(
            answer.body == expected[want.clone()],
            "{spec}: bytes differ"
        );
    }
    let past = range(&follow(url), &format!("bytes={size}-"));
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    // HEAD is answered by the stream URL itself: a presigned GET URL refuses HEAD.
    let head = fetch(url, "HEAD", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    assert_eq!(head.header("content-type"), Some("video/mp4"));
}

#[test]
fn a_local_video_plays_and_seeks_through_its_url_and_the_playlist() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);
    let video = make_video(&sandbox.path("Big Film (2024).mp4"));
    std::fs::rename(
        sandbox.path("Big Film (2024).mp4"),
        watch.join("Big Film (2024).mp4"),
    )
    .unwrap();
    wait_for("the upload", || sandbox.media().len() == 1);
    assert_eq!(
        std::fs::read(library.join("Big Film (2024).mp4")).unwrap(),
        video
    );

    let url = media_url(&sandbox, only_media_id(&sandbox));
    assert!(
        url.starts_with(&format!(
            "http://127.0.0.1:{}/api/media/",
            sandbox.stream_port
        )),
        "{url}"
    );
    assert_plays(&url);
    assert_ranges_exact(&url, &video, str::to_owned);

    let whole = fetch(&url, "GET", &[]);
    assert_eq!(whole.status, 200);
    assert!(whole.body == video);
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").expect("an ETag").to_owned();
    let modified = whole
        .header("last-modified")
        .expect("Last-Modified")
        .to_owned();
    // A player that has the file already is told so; one resuming a different file gets all of it.
    assert_eq!(fetch(&url, "GET", &[("If-None-Match", &etag)]).status, 304);
    assert_eq!(
        fetch(&url, "GET", &[("If-Modified-Since", &modified)]).status,
        304
    );
    let resumed = fetch(&url, "GET", &[("Range", "bytes=0-9"), ("If-Range", &etag)]);
    assert_eq!((resumed.status, resumed.body.len()), (206, 10));
    let changed = fetch(
        &url,
        "GET",
        &[("Range", "bytes=0-9"), ("If-Range", "\"other\"")],
    );
    assert_eq!(changed.status, 200);
    assert!(changed.body == video);

    // What the file holds, read from its headers before the upload, in the library.
    let media = &sandbox.media()[0]["media"];
    assert_eq!(media["duration_ms"], 5000, "{media}");
    assert_eq!(media["video"]["codec"], "mpeg4", "{media}");
    assert_eq!(
        (
            media["video"]["width"].as_u64(),
            media["video"]["height"].as_u64()
        ),
        (Some(160), Some(120))
    );
    let listed = sandbox.ok(&["media", "list"]);
    assert!(listed.contains("0:05 · 120p · MPEG-4"), "{listed}");

    // The playlist the README tells people to open: from the command line and from the server,
    // with the length players show before they open the file.
    let printed = sandbox.ok(&["playlist", "--profile", "Home"]);
    assert!(printed.contains("#EXTINF:5,Big Film (2024)\n"), "{printed}");
    assert_eq!(playlist_urls(&printed), vec![url.clone()]);
    let playlist_url = sandbox
        .ok(&["playlist", "--profile", "Home", "--url"])
        .trim()
        .to_owned();
    let served = fetch(&playlist_url, "GET", &[]);
    assert_eq!(served.status, 200);
    assert_eq!(
        served.header("content-type"),
        Some("audio/x-mpegurl; charset=utf-8")
    );
    assert_eq!(String::from_utf8(served.body).unwrap(), printed);
    for entry in playlist_urls(&printed) {
        assert_plays(&entry);
    }

    // Every request is logged without its token (request lines are written in batches).
    wait_for("the request log", || {
        daemon.log().contains("path=\"/api/profiles/")
    });
    let log = daemon.log();
    assert!(log.contains("path=\"/api/media/"), "{log}");
    let token = url.split("token=").nth(1).unwrap();
    assert!(!log.contains(token), "a token reached the log");
    daemon.stop();
}

#[test]
fn episodes_are_grouped_in_order_in_the_playlist() {
    let sandbox = Sandbox::new();
    let (watch, _) = sandbox.home_profile(&[]);
    for name in ["Show.S01E02.mkv", "Show.S01E01.mkv", "A Film.mp4"] {
        std::fs::write(watch.join(name), name.as_bytes()).unwrap();
    }
    for name in ["Show.S01E02.mkv", "Show.S01E01.mkv", "A Film.mp4"] {
        sandbox.upload("Home", &watch.join(name));
    }
    let daemon = sandbox.daemon(&[]);
    let printed = sandbox.ok(&["playlist", "--profile", "Home"]);
    let info: Vec<&str> = printed
        .lines()
        .filter(|line| line.starts_with("#EXTINF"))
        .collect();
    assert_eq!(
        info,
        [
            "#EXTINF:-1,A Film",
            "#EXTINF:-1 group-title=\"Show\",Show S01E01",
            "#EXTINF:-1 group-title=\"Show\",Show S01E02",
        ],
        "{printed}"
    );
    let urls = playlist_urls(&printed);
    assert!(urls[1].contains("/api/episodes/"), "{}", urls[1]);
    let first = fetch(&urls[1], "GET", &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, b"Show.S01E01.mkv");
    assert_eq!(first.header("content-type"), Some("video/x-matroska"));
    daemon.stop();
}

#[test]
fn an_s3_video_redirects_to_a_presigned_url_that_plays_and_expires() {
    let server = garage();
    let sandbox = Sandbox::new();
    sandbox.home_profile(&[]);
    let output = add_s3_backend(&sandbox, &server, &server.secret_access_key, &[]);
    assert!(output.status.success(), "{output:?}");
    let video = make_video(&sandbox.path("Film.mp4"));
    sandbox.upload("Home", &sandbox.path("Film.mp4"));
    let url = media_url(&sandbox, only_media_id(&sandbox));

    let daemon = sandbox.daemon(&[]);
    let location = |url: &str| {
        let answer = common::s3::redirected(url);
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        answer.header("location").unwrap().to_owned()
    };
    let presigned = location(&url);
    assert!(
        presigned.starts_with(&format!("{}/{}/", server.endpoint, server.bucket)),
        "{presigned}"
    );
    assert!(presigned.contains("X-Amz-Signature="), "{presigned}");
    assert_plays(&url);
    assert_ranges_exact(&url, &video, location);
    // Each line says what was sent: a redirect has no body.
    wait_for("the request log", || {
        daemon.log().contains("status=302 bytes=0 ")
    });
    assert!(
        !daemon.log().contains("X-Amz-Signature"),
        "a presigned URL reached the log"
    );

    // With a short lifetime, given while the daemon runs, a minted URL works at once and stops
    // working after it.
    sandbox.ok(&["stream", "--url-lifetime", "3s"]);
    wait_for("the running daemon to serve with the new lifetime", || {
        daemon.log().matches("stream server listening").count() == 2
    });
    let presigned = location(&url);
    assert!(presigned.contains("X-Amz-Expires=3"), "{presigned}");
    let fresh = range(&presigned, "bytes=0-9");
    assert_eq!((fresh.status, fresh.body.as_slice()), (206, &video[..10]));
    // AWS answers 403 "Request has expired", Garage 400 "Date is too old".
    wait_for("the presigned URL to expire", || {
        matches!(
            fetch(&presigned, "GET", &[("Range", "bytes=0-9")]).status,
            400 | 403
        )
    });
    assert_eq!(
        range(&location(&url), "bytes=0-9").status,
        206,
        "a new request works again"
    );
    daemon.stop();
}

#[test]
fn only_a_valid_token_for_that_item_on_a_loopback_host_is_served() {
    let sandbox = Sandbox::new();
    let (watch, _) = sandbox.home_profile(&[]);
    for name in ["one.mp4", "two.mp4"] {
        std::fs::write(watch.join(name), name.as_bytes()).unwrap();
        sandbox.upload("Home", &watch.join(name));
    }
    let daemon = sandbox.daemon(&[]);
    let media = sandbox.media();
    let ids: Vec<i64> = media
        .iter()
        .map(|entry| entry["item"]["id"].as_i64().unwrap())
        .collect();
    let one = media_url(&sandbox, ids[0]);
    let two = media_url(&sandbox, ids[1]);
    assert_eq!(fetch(&one, "GET", &[]).body, b"one.mp4");
    assert_eq!(fetch(&two, "GET", &[]).body, b"two.mp4");

    let base = format!("http://127.0.0.1:{}", sandbox.stream_port);
    let token_of = |url: &str| url.split("token=").nth(1).unwrap().to_owned();
    // A token made with the right key for an item that does not exist: the answer must be the
    // same as for a wrong token, so probing tells nothing.
    let key = MasterKey::from_bytes(
        base64::engine::general_purpose::STANDARD
            .decode(MASTER_KEY)
            .unwrap()
            .try_into()
            .unwrap(),
        KeySource::Environment,
    );
    let missing_token = TokenKey::new(&key).token(Subject::Item(LibraryItem::Media(9999)));
    let refused = [
        format!("{base}/api/media/{}/stream", ids[0]),
        format!("{base}/api/media/{}/stream?token=", ids[0]),
        format!(
            "{base}/api/media/{}/stream?token=AAAAAAAAAAAAAAAAAAAAAA",
            ids[0]
        ),
        format!(
            "{base}/api/media/{}/stream?token={}",
            ids[1],
            token_of(&one)
        ),
        format!(
            "{base}/api/episodes/{}/stream?token={}",
            ids[0],
            token_of(&one)
        ),
        format!(
            "{base}/api/profiles/1/playlist.m3u8?token={}",
            token_of(&one)
        ),
        format!("{base}/api/media/9999/stream?token={missing_token}"),
        format!(
            "{base}/api/media/..%2F..%2Fetc%2Fpasswd/stream?token={}",
            token_of(&one)
        ),
        format!("{base}/api/media/"),
        format!("{base}/"),
    ];
    for url in &refused {
        let answer = fetch(url, "GET", &[]);
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (404, b"Not found.\n".as_slice()),
            "{url}"
        );
        assert!(answer.header("access-control-allow-origin").is_none());
    }

    // DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own name.
    let port = sandbox.stream_port;
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("127.0.0.1:{}", port + 1),
    ] {
        let answer = fetch(&one, "GET", &[("Host", &host)]);
        assert_eq!(answer.status, 421, "Host: {host}");
        assert!(answer.body != b"one.mp4");
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        assert_eq!(
            fetch(&one, "GET", &[("Host", &host)]).body,
            b"one.mp4",
            "Host: {host}"
        );
    }

    // Only loopback listens: another address of this machine refuses the connection.
    let mut elsewhere = vec![std::net::IpAddr::from([127, 0, 0, 2])];
    elsewhere.extend(outward_address());
    for ip in elsewhere {
        let refused = std::net::TcpStream::connect((ip, port));
        assert!(refused.is_err(), "{ip}:{port} accepted a connection");
    }

    let health = fetch(&format!("{base}/health"), "GET", &[]);
    assert_eq!(health.status, 200);
    let health: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(health["status"], "ok");
    daemon.stop();
}

/// This machine's address on its network, if it has one (no packet is sent).
fn outward_address() -> Option<std::net::IpAddr> {
    ["192.0.2.1:9", "10.255.255.255:9", "8.8.8.8:9"]
        .iter()
        .find_map(|target| {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.connect(target).ok()?;
            let ip = socket.local_addr().ok()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
}

#[test]
fn a_taken_port_is_a_clear_error_naming_the_setting() {
    let sandbox = Sandbox::new();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", sandbox.stream_port)).unwrap();
    let output = sandbox.run(&["run", "--no-default-profile"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {}", sandbox.stream_port))
            && stderr.contains("offload stream --port")
            && stderr.contains("stream.port"),
        "{stderr}"
    );
}

#[test]
fn an_item_whose_file_is_gone_says_so() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    std::fs::write(watch.join("gone.mp4"), b"soon gone").unwrap();
    sandbox.upload("Home", &watch.join("gone.mp4"));
    let daemon = sandbox.daemon(&[]);
    let url = media_url(&sandbox, only_media_id(&sandbox));
    std::fs::remove_file(library.join("gone.mp4")).unwrap();
    let answer = fetch(&url, "GET", &[]);
    assert_eq!(answer.status, 404);
    assert!(
        String::from_utf8_lossy(&answer.body).contains("no longer in storage"),
        "{answer:?}"
    );
    daemon.stop();
}

#[test]
fn a_removed_item_leaves_storage_the_library_and_the_playlist_but_not_the_disk() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    std::fs::write(watch.join("kept.mp4"), b"kept").unwrap();
    std::fs::write(watch.join("done.mp4"), b"watched, done").unwrap();
    sandbox.upload("Home", &watch.join("kept.mp4"));
    sandbox.upload("Home", &watch.join("done.mp4"));
    let daemon = sandbox.daemon(&[]);
    let done = sandbox
        .media()
        .iter()
        .find(|row| row["title"] == "done")
        .map(|row| row["item"]["id"].as_i64().unwrap())
        .unwrap();
    let url = media_url(&sandbox, done);
    assert_eq!(fetch(&url, "GET", &[]).status, 200);

    let said = sandbox.ok(&["media", "remove", &done.to_string()]);
    assert!(said.contains("removed done"), "{said}");
    assert!(!library.join("done.mp4").exists(), "the remote copy goes");
    assert!(watch.join("done.mp4").exists(), "the local file stays");
    let titles: Vec<_> = sandbox
        .media()
        .iter()
        .map(|row| row["title"].clone())
        .collect();
    assert_eq!(
        titles,
        vec!["kept"],
        "the window and `media list` no longer show it"
    );
    let playlist = sandbox.ok(&["playlist", "--profile", "Home"]);
    assert!(!playlist.contains("done"), "{playlist}");
    // The stream server rereads the library within a second of a change.
    wait_for("the removed item's URL to answer 410 Gone", || {
        fetch(&url, "GET", &[]).status == 410
    });

    let again = sandbox.run(&["media", "remove", &done.to_string()]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already removed"), "{stderr}");
    daemon.stop();
}

#[test]
fn an_uploaded_film_has_a_picture_served_with_its_token_until_it_is_removed() {
    let sandbox = Sandbox::new();
    let (watch, _) = sandbox.home_profile(&[]);
    make_video(&watch.join("Pictured (2022).mp4"));
    std::fs::write(watch.join("notes.mkv"), b"not a video at all").unwrap();
    let daemon = sandbox.daemon(&[]);
    let mut media = Vec::new();
    let row = |media: &[serde_json::Value], title: &str| {
        media.iter().find(|row| row["title"] == title).cloned()
    };
    // The picture is taken right after the library row is written.
    wait_for("both uploads and the film's picture", || {
        media = sandbox.media();
        media.len() == 2
            && row(&media, "Pictured (2022)").is_some_and(|film| film["poster_url"].is_string())
    });
    let row = |title: &str| row(&media, title).unwrap();
    assert_eq!(
        row("notes")["poster_url"],
        serde_json::Value::Null,
        "no video, no picture"
    );
    let poster = row("Pictured (2022)")["poster_url"]
        .as_str()
        .unwrap()
        .to_owned();

    let answer = fetch(&poster, "GET", &[]);
    assert_eq!(answer.status, 200, "{poster}");
    assert_eq!(answer.header("content-type"), Some("image/jpeg"));
    assert_eq!(&answer.body[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    // ffprobe reads it as a picture the size of the video.
    let picture = common::media::stream_sizes(&poster);
    assert_eq!(picture, (160, 120));
    let forged = format!("{}A", poster.trim_end_matches(|c: char| c != '='));
    assert_eq!(fetch(&forged, "GET", &[]).status, 404, "{forged}");
    let other = poster.replace("/media/", "/episodes/");
    assert_eq!(
        fetch(&other, "GET", &[]).status,
        404,
        "another item's token"
    );

    let id = row("Pictured (2022)")["item"]["id"].as_i64().unwrap();
    sandbox.ok(&["media", "remove", &id.to_string()]);
    assert_eq!(
        fetch(&poster, "GET", &[]).status,
        404,
        "the picture goes with the item"
    );
    daemon.stop();
}

/// Every `.strm` file under `dir` (relative, `/`-separated) with its one line.
fn strm_tree(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let mut tree = std::collections::BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    // A running Offload removes the files and the folders it emptied while this walks: one gone
    // by the time it is read holds nothing any more.
    let gone = |error: &std::io::Error| error.kind() == std::io::ErrorKind::NotFound;
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if gone(&error) && folder != dir => continue,
            Err(error) => panic!("{}: {error}", folder.display()),
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "strm") {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                match std::fs::read_to_string(&path) {
                    Ok(line) => {
                        tree.insert(relative, line);
                    }
                    Err(error) if gone(&error) => {}
                    Err(error) => panic!("{}: {error}", path.display()),
                }
            }
        }
    }
    tree
}

#[test]
fn a_media_centre_folder_of_strm_files_follows_the_library() {
    let sandbox = Sandbox::new();
    let (watch, _library) = sandbox.home_profile(&[]);
    let _daemon = sandbox.daemon(&[]);
    let names = [
        "Big.Film.2024.1080p.WEB-DL.mp4",
        "Night Walk (2023).mp4",
        "The.Show.S01E01.mp4",
        "The.Show.S01E02.mp4",
        "The.Show.S02E01.mp4",
    ];
    for name in names {
        make_video(&sandbox.path(name));
        std::fs::rename(sandbox.path(name), watch.join(name)).unwrap();
    }
    wait_for("the uploads", || sandbox.media().len() == names.len());

    // What the person keeps there, and what a media centre adds, is never touched.
    let centre = sandbox.path("media centre");
    std::fs::create_dir_all(centre.join("Films/Night Walk (2023)")).unwrap();
    std::fs::write(centre.join("notes.txt"), "mine").unwrap();
    std::fs::write(centre.join("Films/Night Walk (2023)/poster.jpg"), "art").unwrap();

    let export = || {
        sandbox.ok(&[
            "library",
            "export",
            "--profile",
            "Home",
            "--strm",
            centre.to_str().unwrap(),
        ])
    };
    let said = export();
    assert!(said.contains("5 written, 0 unchanged, 0 removed"), "{said}");
    let tree = strm_tree(&centre);
    let paths: Vec<&str> = tree.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "Films/Big Film (2024)/Big Film (2024).strm",
            "Films/Night Walk (2023)/Night Walk (2023).strm",
            "Shows/The Show/Season 01/The Show S01E01.strm",
            "Shows/The Show/Season 01/The Show S01E02.strm",
            "Shows/The Show/Season 02/The Show S02E01.strm",
        ],
        "the layout Kodi, Jellyfin and Emby document"
    );
    // Each file holds the item's stable stream URL, which a player plays.
    let listed: std::collections::BTreeSet<String> = sandbox
        .media()
        .iter()
        .map(|row| format!("{}\n", row["stream_url"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tree.values()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        listed
    );
    for url in tree.values() {
        assert_plays(url.trim());
    }

    // Again with nothing changed: nothing is written.
    let again = export();
    assert!(
        again.contains("0 written, 5 unchanged, 0 removed"),
        "{again}"
    );

    // An episode and a film removed from the library: their files and emptied folders go.
    let id_of = |title: &str| {
        sandbox
            .media()
            .iter()
            .find(|row| row["title"] == title)
            .map(|row| row["item"]["id"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("{title} in the library"))
    };
    let episode = id_of("The Show S02E01").to_string();
    sandbox.ok(&["media", "remove", &episode, "--episode"]);
    let film = id_of("Night Walk (2023)").to_string();
    sandbox.ok(&["media", "remove", &film]);
    let synced = export();
    assert!(
        synced.contains("0 written, 3 unchanged, 2 removed"),
        "{synced}"
    );
    assert_eq!(strm_tree(&centre).len(), 3);
    assert!(
        !centre.join("Shows/The Show/Season 02").exists(),
        "the emptied season folder goes"
    );
    assert_eq!(
        std::fs::read_to_string(centre.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(centre.join("Films/Night Walk (2023)/poster.jpg")).unwrap(),
        "art",
        "a film's folder that holds the media centre's picture stays, with it"
    );
}

#[test]
fn a_running_offload_keeps_the_media_centre_folder_in_step() {
    let sandbox = Sandbox::new();
    let (watch, _library) = sandbox.home_profile(&[]);
    let _daemon = sandbox.daemon(&[]);
    let centre = sandbox.path("jellyfin/offload");
    // Set while Offload runs, before anything was uploaded: an empty library, an empty folder.
    let said = sandbox.ok(&["profile", "strm", "Home", centre.to_str().unwrap()]);
    assert!(said.contains("0 films and episodes there now"), "{said}");
    assert!(strm_tree(&centre).is_empty());

    let name = "The.Show.S01E04.mp4";
    make_video(&sandbox.path(name));
    std::fs::rename(sandbox.path(name), watch.join(name)).unwrap();
    let episode = "Shows/The Show/Season 01/The Show S01E04.strm";
    wait_for("the new episode's .strm file", || {
        strm_tree(&centre).contains_key(episode)
    });
    let url = strm_tree(&centre)[episode].trim().to_owned();
    assert_plays(&url);

    let id = sandbox.media()[0]["item"]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    sandbox.ok(&["media", "remove", &id, "--episode"]);
    wait_for("the removed episode's file to go", || {
        strm_tree(&centre).is_empty()
    });
    assert!(centre.exists(), "the folder itself stays");

    let off = sandbox.ok(&["profile", "strm", "Home", "off"]);
    assert!(off.contains("keeps no media centre folder"), "{off}");
}
