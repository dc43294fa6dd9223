//! The task that owns all watcher state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind, RemoveKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use walkdir::WalkDir;

use super::partial::{is_partial_name, primary_of, with_suffix, COMPANION_SUFFIXES};
use super::{Arrival, Msg, WatchEvent, WatchOptions, WatchSpec};

/// How often a folder is walked when the OS cannot watch it (limit reached,
/// folder missing). Short enough that files still flow, long enough that an
/// idle machine stays idle.
const FALLBACK_RESCAN: Duration = Duration::from_secs(60);
/// Bounds the time spent in one blocking stat pass so raw events and control
/// messages are not starved during a flood.
const STAT_BATCH: usize = 2048;
const DRAIN_BATCH: usize = 1024;

/// The task must end: stop was asked for or the consumer is gone.
struct Halt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootState {
    Unwatched,
    Watched,
    /// Only periodic rescans find new files here.
    Degraded,
}

struct Folder {
    spec: WatchSpec,
    root: PathBuf,
    state: RootState,
    missing_reported: bool,
    limit_reported: bool,
    next_rescan: Instant,
}

impl Folder {
    fn relative(&self, path: &Path) -> Option<PathBuf> {
        let rel = path.strip_prefix(&self.root).ok()?;
        if rel.as_os_str().is_empty() {
            return None;
        }
        if !self.spec.recursive && rel.components().count() != 1 {
            return None;
        }
        Some(rel.to_path_buf())
    }

    fn wants(&self, path: &Path) -> Option<PathBuf> {
        self.relative(path)
            .filter(|rel| self.spec.filter.accepts(rel))
    }
}

/// Size and modification time: the file's identity for "has it changed".
type Stamp = (u64, SystemTime);

struct Pending {
    /// `None` while the path is being probed.
    deadline: Option<(Instant, u64)>,
    last_event: Option<Instant>,
    last_stat: Option<Stamp>,
    /// When a stat last showed a different stamp than the one before.
    stable_since: Option<Instant>,
}

enum Probe {
    Gone,
    Dir,
    /// Unfinished (partial name or companion), or not a regular file; an event
    /// will bring it back when that changes.
    Skip,
    File(Stamp),
}

pub(crate) struct Engine {
    folders: Vec<Folder>,
    quiet: Duration,
    rescan_interval: Duration,
    events: mpsc::Sender<WatchEvent>,
    watcher: Arc<Mutex<RecommendedWatcher>>,
    pending: HashMap<PathBuf, Pending>,
    deadlines: BTreeMap<(Instant, u64), PathBuf>,
    seq: u64,
    /// Suppresses repeats when nothing changed; the consumer deduplicates too,
    /// this only keeps the channel quiet.
    reported: HashMap<(usize, PathBuf), Stamp>,
}

enum Step {
    Msg(Option<Msg>),
    Due,
    Rescan,
    Closed,
}

impl Engine {
    pub(crate) fn new(
        specs: Vec<WatchSpec>,
        options: WatchOptions,
        events: mpsc::Sender<WatchEvent>,
        watcher: RecommendedWatcher,
    ) -> Engine {
        let now = Instant::now();
        let folders = specs
            .into_iter()
            .map(|spec| Folder {
                root: normalise_root(&spec.root),
                spec,
                state: RootState::Unwatched,
                missing_reported: false,
                limit_reported: false,
                next_rescan: now,
            })
            .collect();
        Engine {
            folders,
            quiet: options.quiet_period,
            // A zero interval would rescan in a tight loop.
            rescan_interval: options.rescan_interval.max(Duration::from_secs(1)),
            events,
            watcher: Arc::new(Mutex::new(watcher)),
            pending: HashMap::new(),
            deadlines: BTreeMap::new(),
            seq: 0,
            reported: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        for i in 0..self.folders.len() {
            if self.rescan_folder(i).await.is_err() {
                return;
            }
        }
        let events = self.events.clone();
        loop {
            let due = self.deadlines.first_key_value().map(|(key, _)| key.0);
            let rescan_at = self.folders.iter().map(|f| f.next_rescan).min();
            let step = tokio::select! {
                msg = rx.recv() => Step::Msg(msg),
                () = sleep_opt(due) => Step::Due,
                () = sleep_opt(rescan_at) => Step::Rescan,
                () = events.closed() => Step::Closed,
            };
            let outcome = match step {
                Step::Msg(None) | Step::Closed => Err(Halt),
                Step::Msg(Some(msg)) => self.handle_msgs(msg, &mut rx).await,
                Step::Due => self.process_due().await,
                Step::Rescan => self.rescan_due().await,
            };
            if outcome.is_err() {
                tracing::debug!("folder watcher stopped");
                return;
            }
        }
    }

    async fn handle_msgs(
        &mut self,
        first: Msg,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
    ) -> Result<(), Halt> {
        let mut msg = first;
        let mut to_rescan = HashSet::new();
        for _ in 0..DRAIN_BATCH {
            match msg {
                Msg::Stop => return Err(Halt),
                Msg::Rescan => to_rescan.extend(0..self.folders.len()),
                Msg::Fs(Ok(event)) => self.on_event(event, &mut to_rescan),
                Msg::Fs(Err(err)) => self.on_error(err).await?,
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        let mut to_rescan: Vec<usize> = to_rescan.into_iter().collect();
        to_rescan.sort_unstable();
        for i in to_rescan {
            self.rescan_folder(i).await?;
        }
        Ok(())
    }

    fn on_event(&mut self, event: Event, to_rescan: &mut HashSet<usize>) {
        if event.need_rescan() {
            tracing::info!("the system dropped file events; rescanning");
            for (i, folder) in self.folders.iter().enumerate() {
                if event.paths.is_empty() || event.paths.iter().any(|p| p.starts_with(&folder.root))
                {
                    to_rescan.insert(i);
                }
            }
            return;
        }
        let now = Instant::now();
        match event.kind {
            // Reads (including our own uploader's) must not restart the wait.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for path in &event.paths {
                    self.touch_if_wanted(path, false, now);
                }
            }
            EventKind::Access(_) => {}
            EventKind::Remove(kind) => {
                for path in &event.paths {
                    self.forget(path, kind == RemoveKind::Folder);
                    self.touch_primary(path, now);
                    if self.is_root(path) {
                        self.touch(path, now);
                    }
                }
            }
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(_)) => {
                // May be a directory moved in, so look at it whatever its name.
                for path in &event.paths {
                    self.touch_if_wanted(path, true, now);
                    self.touch_primary(path, now);
                }
            }
            _ => {
                for path in &event.paths {
                    self.touch_if_wanted(path, false, now);
                }
            }
        }
    }

    async fn on_error(&mut self, err: notify::Error) -> Result<(), Halt> {
        if !is_limit(&err) {
            tracing::warn!(error = %err, "file watching error");
            return Ok(());
        }
        for i in 0..self.folders.len() {
            let folder = &self.folders[i];
            let concerned = folder.state == RootState::Watched
                && (err.paths.is_empty() || err.paths.iter().any(|p| p.starts_with(&folder.root)));
            if concerned {
                self.folders[i].state = RootState::Degraded;
                self.folders[i].next_rescan = Instant::now() + FALLBACK_RESCAN;
                self.report_limit(i).await?;
            }
        }
        Ok(())
    }

    fn is_root(&self, path: &Path) -> bool {
        self.folders.iter().any(|f| f.root == path)
    }

    fn touch_if_wanted(&mut self, path: &Path, maybe_dir: bool, now: Instant) {
        let wanted = self.folders.iter().any(|f| match f.relative(path) {
            Some(rel) => maybe_dir || f.spec.filter.accepts(&rel),
            None => false,
        });
        if wanted {
            self.touch(path, now);
        }
    }

    /// A companion that went away (or was renamed) may have released its file.
    fn touch_primary(&mut self, path: &Path, now: Instant) {
        if let Some(primary) = primary_of(path) {
            self.touch_if_wanted(&primary, false, now);
        }
    }

    fn touch(&mut self, path: &Path, now: Instant) {
        let entry = self
            .pending
            .entry(path.to_path_buf())
            .or_insert_with(|| Pending {
                deadline: None,
                last_event: None,
                last_stat: None,
                stable_since: None,
            });
        entry.last_event = Some(now);
        let at = now + self.quiet;
        schedule(entry, &mut self.deadlines, &mut self.seq, path, at);
    }

    fn forget(&mut self, path: &Path, folder: bool) {
        if let Some(entry) = self.pending.remove(path) {
            if let Some(key) = entry.deadline {
                self.deadlines.remove(&key);
            }
        }
        if folder {
            self.reported.retain(|(_, p), _| !p.starts_with(path));
        } else {
            for i in 0..self.folders.len() {
                self.reported.remove(&(i, path.to_path_buf()));
            }
        }
    }

    async fn process_due(&mut self) -> Result<(), Halt> {
        let now = Instant::now();
        let mut batch = Vec::new();
        while batch.len() < STAT_BATCH {
            match self.deadlines.first_key_value() {
                Some((key, _)) if key.0 <= now => {}
                _ => break,
            }
            if let Some((_, path)) = self.deadlines.pop_first() {
                if let Some(entry) = self.pending.get_mut(&path) {
                    entry.deadline = None;
                }
                batch.push(path);
            }
        }
        let probes = blocking(move || {
            batch
                .into_iter()
                .map(|path| {
                    let probe = probe(&path);
                    (path, probe)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let now = Instant::now();
        let mut dirs = Vec::new();
        for (path, probe) in probes {
            match probe {
                Probe::File(stamp) => self.settle(path, stamp, now).await?,
                Probe::Skip => {
                    self.pending.remove(&path);
                }
                Probe::Dir => {
                    self.pending.remove(&path);
                    if !self.is_root(&path) {
                        dirs.push(path);
                    }
                }
                Probe::Gone => {
                    self.forget(&path, false);
                    self.root_gone(&path).await?;
                }
            }
        }
        for dir in dirs {
            self.scan_dir(dir).await?;
        }
        Ok(())
    }

    /// Reports the file if it has held still for the quiet period, measured
    /// from the latest of: the last event, the last stat that saw a change,
    /// and its modification time.
    async fn settle(&mut self, path: PathBuf, stamp: Stamp, now: Instant) -> Result<(), Halt> {
        let Some(entry) = self.pending.get_mut(&path) else {
            return Ok(());
        };
        let wall_now = SystemTime::now();
        let mtime_in_future = stamp.1 > wall_now;
        entry.stable_since = match entry.last_stat {
            Some(previous) if previous == stamp => entry.stable_since,
            Some(_) => Some(now),
            // A clock-skewed mtime says nothing; start counting from now.
            None if mtime_in_future => Some(now),
            None => None,
        };
        entry.last_stat = Some(stamp);
        let modified_at = wall_now
            .duration_since(stamp.1)
            .ok()
            .and_then(|age| now.checked_sub(age));
        let changed_at = [entry.last_event, entry.stable_since, modified_at]
            .into_iter()
            .flatten()
            .max();
        match changed_at {
            Some(at) if at + self.quiet > now => {
                let deadline = at + self.quiet;
                schedule(entry, &mut self.deadlines, &mut self.seq, &path, deadline);
                Ok(())
            }
            _ => {
                self.pending.remove(&path);
                self.report(&path, stamp).await
            }
        }
    }

    async fn report(&mut self, path: &Path, stamp: Stamp) -> Result<(), Halt> {
        for i in 0..self.folders.len() {
            let folder = &self.folders[i];
            let Some(relative) = folder.wants(path) else {
                continue;
            };
            let key = (i, path.to_path_buf());
            if self.reported.get(&key) == Some(&stamp) {
                continue;
            }
            let arrival = Arrival {
                folder_id: folder.spec.folder_id,
                profile_id: folder.spec.profile_id,
                path: path.to_path_buf(),
                relative,
                size: stamp.0,
                modified: stamp.1,
            };
            self.reported.insert(key, stamp);
            tracing::debug!(path = %path.display(), size = stamp.0, "file finished");
            self.events
                .send(WatchEvent::Arrived(arrival))
                .await
                .map_err(|_| Halt)?;
        }
        Ok(())
    }

    async fn rescan_due(&mut self) -> Result<(), Halt> {
        let now = Instant::now();
        for i in 0..self.folders.len() {
            if self.folders[i].next_rescan <= now {
                self.rescan_folder(i).await?;
            }
        }
        Ok(())
    }

    async fn rescan_folder(&mut self, i: usize) -> Result<(), Halt> {
        let configured = self.folders[i].spec.root.clone();
        let root = self.folders[i].root.clone();
        let (is_dir, canonical) = blocking(move || {
            let canonical = normalise_root(&configured);
            (root.is_dir(), canonical)
        })
        .await
        .unwrap_or((false, PathBuf::new()));
        if !is_dir {
            let folder = &mut self.folders[i];
            folder.state = RootState::Unwatched;
            folder.next_rescan = Instant::now() + FALLBACK_RESCAN.min(self.rescan_interval);
            if !folder.missing_reported {
                folder.missing_reported = true;
                let message = format!(
                    "The watched folder {} is missing or is not a folder. Check that the drive is \
                     connected or fix the path in the folder settings; Offload keeps checking for it.",
                    folder.spec.root.display()
                );
                self.problem(i, message).await?;
            }
            return Ok(());
        }
        if self.folders[i].state == RootState::Unwatched {
            if !canonical.as_os_str().is_empty() {
                self.folders[i].root = canonical;
            }
            self.watch_folder(i).await?;
        }
        if self.folders[i].missing_reported {
            self.folders[i].missing_reported = false;
            tracing::info!(
                folder_id = self.folders[i].spec.folder_id,
                "watched folder is back"
            );
        }
        let interval = match self.folders[i].state {
            RootState::Watched => self.rescan_interval,
            _ => FALLBACK_RESCAN.min(self.rescan_interval),
        };
        self.folders[i].next_rescan = Instant::now() + interval;

        let root = self.folders[i].root.clone();
        let depth = (!self.folders[i].spec.recursive).then_some(1);
        let started = Instant::now();
        match blocking(move || walk(&root, depth)).await {
            Some(Ok(found)) => {
                tracing::info!(
                    folder_id = self.folders[i].spec.folder_id,
                    files = found.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "folder scanned"
                );
                self.offer_all(found).await
            }
            Some(Err(err)) => {
                let message = format!(
                    "Offload could not read the folder {}: {err}. Check its permissions.",
                    self.folders[i].root.display()
                );
                self.problem(i, message).await
            }
            None => Ok(()),
        }
    }

    /// A directory that appeared (moved in, or created before its watch was
    /// added) may already hold finished files.
    async fn scan_dir(&mut self, dir: PathBuf) -> Result<(), Halt> {
        let inside_recursive = self
            .folders
            .iter()
            .any(|f| f.spec.recursive && f.relative(&dir).is_some());
        if !inside_recursive {
            return Ok(());
        }
        if let Some(Ok(found)) = blocking(move || walk(&dir, None)).await {
            self.offer_all(found).await?;
        }
        Ok(())
    }

    async fn offer_all(&mut self, found: Vec<(PathBuf, Stamp)>) -> Result<(), Halt> {
        let now = Instant::now();
        for (path, stamp) in found {
            self.offer_scanned(path, stamp, now).await?;
        }
        Ok(())
    }

    /// A file found by walking rather than by an event: old enough means
    /// finished now; otherwise it waits like a changed file.
    async fn offer_scanned(
        &mut self,
        path: PathBuf,
        stamp: Stamp,
        now: Instant,
    ) -> Result<(), Halt> {
        if self.pending.contains_key(&path) {
            // Already waiting on events, which are newer evidence than this walk.
            return Ok(());
        }
        if !self.folders.iter().any(|f| f.wants(&path).is_some()) {
            return Ok(());
        }
        let age = SystemTime::now().duration_since(stamp.1).ok();
        match age {
            Some(age) if age >= self.quiet => self.report(&path, stamp).await,
            _ => {
                let wait = age.map_or(self.quiet, |age| self.quiet - age);
                let mut entry = Pending {
                    deadline: None,
                    last_event: None,
                    last_stat: Some(stamp),
                    stable_since: age.is_none().then_some(now),
                };
                schedule(
                    &mut entry,
                    &mut self.deadlines,
                    &mut self.seq,
                    &path,
                    now + wait,
                );
                self.pending.insert(path, entry);
                Ok(())
            }
        }
    }

    async fn watch_folder(&mut self, i: usize) -> Result<(), Halt> {
        let root = self.folders[i].root.clone();
        let mode = if self.folders[i].spec.recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        let watcher = Arc::clone(&self.watcher);
        let target = root.clone();
        // notify walks the whole tree to add watches; keep that off the runtime.
        let result = blocking(move || {
            let mut watcher = watcher.lock().unwrap_or_else(PoisonError::into_inner);
            // A root that vanished and came back may still be registered.
            let _ = watcher.unwatch(&target);
            watcher.watch(&target, mode)
        })
        .await;
        match result {
            Some(Ok(())) => {
                self.folders[i].state = RootState::Watched;
                Ok(())
            }
            Some(Err(err)) if is_limit(&err) => {
                self.folders[i].state = RootState::Degraded;
                self.report_limit(i).await
            }
            Some(Err(err)) => {
                self.folders[i].state = RootState::Degraded;
                let message = format!(
                    "Offload can't watch the folder {} for changes ({err}); new files there \
                     will be picked up by a rescan every minute instead.",
                    root.display()
                );
                self.problem(i, message).await
            }
            None => {
                self.folders[i].state = RootState::Degraded;
                Ok(())
            }
        }
    }

    async fn root_gone(&mut self, path: &Path) -> Result<(), Halt> {
        for i in 0..self.folders.len() {
            if self.folders[i].root != path || self.folders[i].missing_reported {
                continue;
            }
            let folder = &mut self.folders[i];
            folder.state = RootState::Unwatched;
            folder.missing_reported = true;
            folder.next_rescan = Instant::now() + FALLBACK_RESCAN.min(self.rescan_interval);
            let message = format!(
                "The watched folder {} was removed or renamed. Offload will resume when it is \
                 back; otherwise remove it from the watched folders.",
                folder.spec.root.display()
            );
            self.problem(i, message).await?;
        }
        Ok(())
    }

    async fn report_limit(&mut self, i: usize) -> Result<(), Halt> {
        if self.folders[i].limit_reported {
            return Ok(());
        }
        self.folders[i].limit_reported = true;
        let message = limit_message(&self.folders[i].root);
        self.problem(i, message).await
    }

    async fn problem(&self, i: usize, message: String) -> Result<(), Halt> {
        let folder_id = self.folders[i].spec.folder_id;
        tracing::warn!(folder_id, "{message}");
        self.events
            .send(WatchEvent::Problem { folder_id, message })
            .await
            .map_err(|_| Halt)
    }
}

fn schedule(
    entry: &mut Pending,
    deadlines: &mut BTreeMap<(Instant, u64), PathBuf>,
    seq: &mut u64,
    path: &Path,
    at: Instant,
) {
    if let Some(old) = entry.deadline.take() {
        deadlines.remove(&old);
    }
    *seq += 1;
    let key = (at, *seq);
    deadlines.insert(key, path.to_path_buf());
    entry.deadline = Some(key);
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn blocking<T, F>(f: F) -> Option<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::error!(error = %err, "folder watcher file-system task failed");
            None
        }
    }
}

fn normalise_root(root: &Path) -> PathBuf {
    // Event paths come back in canonical form on some platforms (macOS), so prefix matching
    // needs the canonical root; on Windows without the `\\?\` prefix std adds, or the root
    // would not match the paths `offload upload` and the window record.
    dunce::canonicalize(root)
        .or_else(|_| std::path::absolute(root))
        .unwrap_or_else(|_| root.to_path_buf())
}

fn is_limit(err: &notify::Error) -> bool {
    crate::platform::is_watch_limit(err)
}

fn limit_message(root: &Path) -> String {
    crate::platform::watch_limit_message(root)
}

fn probe(path: &Path) -> Probe {
    // Symlinks are skipped (here and in walks) so a link cannot make a file
    // outside the folder look like a download.
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(_) => return Probe::Gone,
    };
    if meta.is_dir() {
        return Probe::Dir;
    }
    if !meta.is_file() {
        return Probe::Skip;
    }
    let partial = path
        .file_name()
        .is_some_and(|n| is_partial_name(&n.to_string_lossy()));
    if partial || super::has_partial_companion(path) {
        return Probe::Skip;
    }
    Probe::File((
        meta.len(),
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    ))
}

/// Finished-looking regular files under `dir` (not partial, no companion).
fn walk(dir: &Path, max_depth: Option<usize>) -> Result<Vec<(PathBuf, Stamp)>, String> {
    let mut walker = WalkDir::new(dir).min_depth(1);
    if let Some(depth) = max_depth {
        walker = walker.max_depth(depth);
    }
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) if err.depth() == 0 => return Err(err.to_string()),
            Err(err) => {
                tracing::debug!(error = %err, "skipping unreadable entry");
                continue;
            }
        };
        seen.insert(entry.path().to_path_buf());
        if !entry.file_type().is_file() || is_partial_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let stamp = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        files.push((entry.into_path(), stamp));
    }
    files.retain(|(path, _)| {
        !COMPANION_SUFFIXES
            .iter()
            .any(|suffix| seen.contains(&with_suffix(path, suffix)))
    });
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_limit_is_recognised_and_explained() {
        assert!(is_limit(&notify::Error::new(
            notify::ErrorKind::MaxFilesWatch
        )));
        assert!(!is_limit(&notify::Error::path_not_found()));
        assert!(limit_message(Path::new("/media/downloads")).contains("/media/downloads"));
    }

    #[test]
    fn walk_skips_partials_and_files_with_companions() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        for name in [
            "done.mkv",
            "busy.mkv",
            "busy.mkv.aria2",
            "half.mkv.part",
            "sub/deep.mkv",
        ] {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, b"x")?;
        }
        let names = |found: Vec<(PathBuf, Stamp)>| {
            let mut names: Vec<String> = found
                .into_iter()
                .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            names.sort();
            names
        };
        let all = walk(dir.path(), None).map_err(std::io::Error::other)?;
        assert_eq!(names(all), vec!["deep.mkv", "done.mkv"]);
        let top = walk(dir.path(), Some(1)).map_err(std::io::Error::other)?;
        assert_eq!(names(top), vec!["done.mkv"]);
        assert!(walk(&dir.path().join("missing"), None).is_err());
        Ok(())
    }
}
