//! The bound of the on-disk cache of compiled components
//! (`component-cache/`): every reload of a changed component and every
//! upgrade of the engine leaves an entry that nothing reads again. Entries
//! are kept by last use (a hit renews an entry's modified time); past
//! [`MAX_ENTRIES`] or [`MAX_BYTES`], the least recently used go.

use std::path::Path;
use std::time::SystemTime;

/// At most this many entries...
const MAX_ENTRIES: usize = 64;

/// ...and this many bytes.
const MAX_BYTES: u64 = 512 << 20;

/// The extension of an entry.
pub const EXTENSION: &str = "cwasm";

/// Marks `entry` as just used. A cache that cannot be written only costs
/// a compilation later, so a failure is ignored.
pub fn used(entry: &Path) {
    let renewed = std::fs::File::options()
        .write(true)
        .open(entry)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = renewed {
        tracing::debug!(path = %entry.display(), "component cache entry not renewed: {e}");
    }
}

/// Removes the least recently used entries of `dir` beyond the bounds,
/// never `keep` (the entry just written).
pub fn evict(dir: &Path, keep: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(SystemTime, u64, std::path::PathBuf)> = read
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == EXTENSION))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    // Newest first: what is kept is a prefix.
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut total = 0u64;
    for (kept, (_, size, path)) in entries.iter().enumerate() {
        total += size;
        let over = kept >= MAX_ENTRIES || total > MAX_BYTES;
        if over && path != keep {
            match std::fs::remove_file(path) {
                Ok(()) => tracing::debug!(path = %path.display(), "component cache entry evicted"),
                Err(e) => {
                    tracing::debug!(path = %path.display(), "component cache entry not evicted: {e}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_least_recently_used_entries_beyond_the_bound_go() {
        let dir = std::env::temp_dir().join(format!("component-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let start = SystemTime::now() - Duration::from_secs(10_000);
        let path = |i: usize| dir.as_path().join(format!("{i:03}.{EXTENSION}"));
        for i in 0..MAX_ENTRIES + 3 {
            std::fs::write(path(i), b"x").unwrap();
            let file = std::fs::File::options().write(true).open(path(i)).unwrap();
            file.set_modified(start + Duration::from_secs(i as u64))
                .unwrap();
        }
        std::fs::write(dir.as_path().join("other.txt"), b"not an entry").unwrap();
        // Entry 0, the oldest, was just used: it stays; 1, 2 and 3 go.
        used(&path(0));
        evict(dir.as_path(), &path(5));
        let gone: Vec<usize> = (0..MAX_ENTRIES + 3)
            .filter(|i| !path(*i).exists())
            .collect();
        assert_eq!(gone, [1, 2, 3]);
        assert!(dir.as_path().join("other.txt").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
