//! `app serve --watch`: polls the components' files and crates (modified
//! times and sizes, every interval; no dependency, no inotify limits) and
//! reloads a component whose file or crate changed. A change is acted on
//! once two polls in a row see the same state, so a file still being
//! written, or an editor's burst of saves, gives one reload of the result.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::reload::Reloader;

/// What a poll sees of a component's source: the latest modified time and
/// the total size of its files (a crate's, but its `target/`).
type Seen = Option<(SystemTime, u64, usize)>;

/// Watches until the returned task is aborted.
pub fn spawn(reloader: Arc<Reloader>, every: Duration) -> tokio::task::JoinHandle<()> {
    tracing::info!(
        "watching the components of {} every {} ms: a changed one is reloaded",
        reloader.dir().display(),
        every.as_millis()
    );
    tokio::spawn(async move {
        // What each was loaded from, and what the previous poll saw.
        let mut loaded: HashMap<String, Seen> = HashMap::new();
        let mut last: HashMap<String, Seen> = HashMap::new();
        for (name, source) in reloader.components() {
            let seen = seen(&source);
            loaded.insert(name.clone(), seen);
            last.insert(name, seen);
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (name, source) in reloader.components() {
                let now = tokio::task::spawn_blocking(move || seen(&source))
                    .await
                    .unwrap_or(None);
                let settled = last.insert(name.clone(), now) == Some(now);
                let changed = loaded.get(&name) != Some(&now);
                if settled && changed {
                    loaded.insert(name.clone(), now);
                    tracing::info!("plugin {name}: changed on disk, reloading");
                    // The outcome is logged and kept in the report.
                    let _ = reloader.reload(&name).await;
                }
            }
        }
    })
}

/// The latest modified time, the total size and the number of the files
/// of `source` (a file, or a crate folder but its `target/`); `None` if
/// it cannot be read.
fn seen(source: &Path) -> Seen {
    let meta = std::fs::metadata(source).ok()?;
    if !meta.is_dir() {
        return Some((meta.modified().ok()?, meta.len(), 1));
    }
    let mut latest = meta.modified().ok()?;
    let (mut size, mut files) = (0u64, 0usize);
    let mut folders = vec![source.to_path_buf()];
    // Bounded: a crate with more files than this is watched by its first.
    while let Some(folder) = folders.pop().filter(|_| files < 10_000) {
        for entry in std::fs::read_dir(&folder).ok()?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if entry.file_name() != "target"
                    && !entry.file_name().to_string_lossy().starts_with('.')
                {
                    folders.push(entry.path());
                }
                continue;
            }
            files += 1;
            size += meta.len();
            if let Ok(modified) = meta.modified() {
                latest = latest.max(modified);
            }
        }
    }
    Some((latest, size, files))
}
