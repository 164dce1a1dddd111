//! Opening plugin libraries ([`Candidate`]s of [`super::discovery`]): the
//! only module with `unsafe` code.
//!
//! Before any of a library's Rust code runs, the loader checks the file
//! (owner, permissions, where a link leads) and the SDK fingerprint the
//! plugin exports as a `#[repr(C)]` static, read from the file before the
//! dynamic loader opens it (`hookspecs::loader`). Libraries are never
//! unloaded (thread-local destructors would run after `dlclose`).

use std::path::Path;

use hookspecs::PluginExport;
use hookspecs::loader::{FINGERPRINT, Fingerprint, symbols};

use super::discovery::Candidate;

/// Refuses a library that others could have changed (it, the plugin folder
/// `dir`, or the folders a link of the folder leads through), that a link
/// puts outside `dir` (for prebuilt ones; built ones live in the build
/// folder), or that is not a regular file (a named pipe would block the
/// reading of it for good).
pub fn check_file(candidate: &Candidate, dir: &Path) -> Result<(), String> {
    check_folder(dir)?;
    let path = &candidate.library;
    let link = std::fs::symlink_metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if candidate.source != *path => format!(
            "its library {} is not built: run `cargo build` at the workspace root, \
             which builds the app and every plugin together",
            path.display()
        ),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    if link.file_type().is_symlink() {
        let target = std::fs::canonicalize(path)
            .map_err(|e| format!("{} is a broken link: {e}", path.display()))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
        if !target.starts_with(&dir) {
            return Err(format!(
                "{} is a link leading outside the plugin folder, to {}",
                path.display(),
                target.display()
            ));
        }
        // Its subfolders of the plugin folder: whoever may write one may
        // put another file in the target's place.
        for folder in target.ancestors().skip(1).take_while(|f| *f != dir) {
            check_folder(folder)?;
        }
    }
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    regular(path, &meta)?;
    check_owned(path, &meta)
}

/// Refuses a plugin folder others could write to: they could put any
/// library in it, or one in the place of another between its check and its
/// load.
pub fn check_folder(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    check_owned(dir, &meta).map_err(|why| format!("the plugin folder is not trusted: {why}"))
}

/// Refuses what is not a regular file (after links): a folder, a named pipe
/// (reading it waits for a writer), a device, a socket.
fn regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    if meta.is_file() {
        return Ok(());
    }
    let kind = if meta.is_dir() {
        "a directory"
    } else {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            let kind = meta.file_type();
            if kind.is_fifo() {
                "a named pipe"
            } else if kind.is_socket() {
                "a socket"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else {
                "not a file"
            }
        }
        #[cfg(not(unix))]
        "not a file"
    };
    Err(format!(
        "cannot load {}: it is {kind}, not a regular file",
        path.display()
    ))
}

/// Refuses a component crate whose sources others could have changed (the
/// plugin folder `dir`, the crate's folder and every file and folder in it,
/// `target/` aside): the app builds it, and building runs its build script
/// and macros natively.
pub fn check_crate(krate: &Path, dir: &Path) -> Result<(), String> {
    check_folder(dir)?;
    check_tree(krate)
}

fn check_tree(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    check_owned(dir, &meta)?;
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if kind.is_dir() {
            if entry.file_name() != "target" {
                check_tree(&path)?;
            }
        } else {
            // A link is judged by what it leads to (never followed into a folder).
            let meta = std::fs::metadata(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            check_owned(&path, &meta)?;
        }
    }
    Ok(())
}

/// Refuses what `meta` describes (the file or folder `path`) if others
/// could have changed it: writable by its group or by everyone, or
/// another user's.
fn check_owned(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{} is writable by its group or by everyone (mode {:o}): `chmod go-w` it",
                path.display(),
                meta.mode() & 0o777
            ));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(format!(
                "{} belongs to user {}, not to the user running the app ({me})",
                path.display(),
                meta.uid()
            ));
        }
    }
    Ok(())
}

/// The bytes of the regular file `path`, judged on the file as opened (a
/// named pipe put in its place since its check is opened without waiting
/// for a writer, then refused).
fn read_regular(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let mut file = options.open(path).map_err(cannot)?;
    regular(path, &file.metadata().map_err(cannot)?)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(cannot)?;
    Ok(data)
}

/// Refuses a file that is not a whole shared library (the dynamic loader
/// maps segments past the end of a truncated file, and touching them later
/// would crash the process), then reads the SDK fingerprint the library
/// exports from the file itself, so that a stale or foreign library is
/// named as such without running any of it, even one the dynamic loader
/// could not load.
fn check_image(path: &Path) -> Result<(), String> {
    use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
    let data = read_regular(path)?;
    let file = object::File::parse(&*data)
        .map_err(|e| format!("cannot load {}: not a shared library ({e})", path.display()))?;
    let len = data.len() as u64;
    let ranges = file
        .segments()
        .map(|s| Some(s.file_range()))
        .chain(file.sections().map(|s| s.file_range()));
    for (offset, size) in ranges.flatten() {
        if offset.saturating_add(size) > len {
            return Err(format!(
                "cannot load {}: the file is truncated ({len} bytes, its contents reach {})",
                path.display(),
                offset.saturating_add(size)
            ));
        }
    }
    let not_a_plugin = || {
        format!(
            "not a plugin: {} exports no `{}` (add `hookspecs::export_plugin!(...)`)",
            path.display(),
            symbols::FINGERPRINT
        )
    };
    let symbol = file
        .dynamic_symbols()
        .find(|s| s.name() == Ok(symbols::FINGERPRINT))
        .ok_or_else(not_a_plugin)?;
    let older = || {
        "stale plugin: it was built against an older SDK (loader protocol 1); \
         rebuild it with the app: `cargo build` at the workspace root"
            .to_owned()
    };
    if symbol.kind() != object::SymbolKind::Data {
        return Err(older());
    }
    let bytes = symbol
        .section_index()
        .and_then(|i| file.section_by_index(i).ok())
        .and_then(|section| {
            let start = symbol.address().checked_sub(section.address())?;
            let data = section.data().ok()?;
            data.get(usize::try_from(start).ok()?..)
        })
        .ok_or_else(not_a_plugin)?;
    let theirs = Fingerprint::from_bytes(bytes).ok_or_else(older)?;
    match FINGERPRINT.mismatch(&theirs) {
        Some(why) => Err(format!("stale or foreign plugin: {why}")),
        None => Ok(()),
    }
}

/// Refuses to run on an SDK library rebuilt from other sources than the
/// ones this binary was compiled against (its code would disagree with the
/// binary's on every type): the launcher catches a library that lacks the
/// binary's symbols, this what symbols cannot show.
pub fn check_sdk() -> Result<(), String> {
    let library = hookspecs::loader::library_fingerprint();
    match FINGERPRINT.mismatch(&library) {
        None => Ok(()),
        Some(_) => Err(
            "the SDK library (libhookspecs) this binary runs on was rebuilt from other \
             sources since the binary was linked (by a cargo command that builds some \
             packages only, such as `cargo build -p <plugin>` after an edit of hookspecs \
             or hooks-core). Fix: `cargo build` at the workspace root, which rebuilds \
             the app and every plugin together"
                .to_owned(),
        ),
    }
}

/// Checks the file and its fingerprint, opens the library, and only then
/// calls its registration function with the plugin's configuration table
/// (an invalid configuration or a panic there fails this plugin only).
pub fn load(library: &Path, config: &serde_json::Value) -> Result<PluginExport, String> {
    check_image(library)?;
    // SAFETY: opening a library runs its initialisers. Plugins are trusted
    // code by design (ARCHITECTURE.md: not a sandbox); the file checks above
    // keep out libraries others could have changed, and ones built against
    // another SDK.
    let lib = unsafe { libloading::Library::new(library) }.map_err(|e| {
        let mut message = format!("cannot load {}: {e}", library.display());
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        if message.contains("undefined symbol") {
            // Same SDK sources and profile (the fingerprint matched), so the
            // SDK library was rebuilt under other features or dependency
            // versions since this plugin was built.
            message.push_str(
                ": it was built against another build of the SDK library (libhookspecs) \
                 than the one the app runs on (other features or dependency versions, \
                 e.g. after a `cargo build -p` with RUSTFLAGS set, or a changed Cargo.lock); \
                 rebuild the app and its plugins together: `cargo build` at the workspace root",
            );
        }
        message
    })?;
    // SAFETY: the fingerprints match, so the library was built by the same
    // compiler against the same SDK build (and it loaded, so its symbols,
    // whose names carry that build's hash, resolved): the Rust-ABI function
    // has exactly the signature `export_plugin!` gave it.
    let register = unsafe {
        lib.get::<fn(&serde_json::Value) -> Result<PluginExport, String>>(symbols::REGISTER)
    }
    .map_err(|_| "not a plugin: it exports no `app_plugin_register`".to_owned())?;
    let export = std::panic::catch_unwind(|| register(config)).map_err(|panic| {
        let why = super::panic_message(&*panic);
        format!("its registration function panicked: {why}")
    })??;
    // Never unloaded: thread-local destructors may still point into it.
    std::mem::forget(lib);
    Ok(export)
}

/// The compiled component in `entry` of the component cache `dir`
/// ([`super::component`]), `None` if there is no such entry. Its bytes are
/// machine code, so the folder and the entry must be the app user's and
/// writable by nobody else (the entry checked on the file as opened, then
/// read from it), as a library must.
///
/// # Errors
///
/// The folder or the entry could have been written by someone else, the
/// entry cannot be read, or wasmtime refuses its bytes (another engine,
/// another version, corrupt).
pub fn cached_component(
    engine: &wasmtime::Engine,
    dir: &Path,
    entry: &Path,
) -> Result<Option<wasmtime::component::Component>, String> {
    use std::io::Read;
    let mut file = match std::fs::File::open(entry) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", entry.display())),
    };
    check_owned(dir, &std::fs::metadata(dir).map_err(|e| e.to_string())?)?;
    check_owned(entry, &file.metadata().map_err(|e| e.to_string())?)?;
    let mut compiled = Vec::new();
    file.read_to_end(&mut compiled)
        .map_err(|e| format!("cannot read {}: {e}", entry.display()))?;
    deserialize(engine, &compiled)
        .map(Some)
        .map_err(|e| format!("{e:#}"))
}

/// A component this process has just compiled
/// (`Engine::precompile_component`), ready to run.
///
/// # Errors
///
/// wasmtime refuses the bytes (it would not: they are its own).
pub fn compiled_component(
    engine: &wasmtime::Engine,
    compiled: &[u8],
) -> wasmtime::Result<wasmtime::component::Component> {
    deserialize(engine, compiled)
}

/// wasmtime's own format, checked by wasmtime for its version and the
/// engine's settings before use.
fn deserialize(
    engine: &wasmtime::Engine,
    compiled: &[u8],
) -> wasmtime::Result<wasmtime::component::Component> {
    // SAFETY: the bytes are machine code, run as is. They come from
    // `Engine::precompile_component` of this app: just now in this process
    // (`compiled_component`), or from a cache entry that `cached_component`
    // found, with its folder, owned by the app's user and writable by no
    // one else (`check_owned`), so written by this app's user only; under a
    // key that includes the engine's compatibility hash; wasmtime checks
    // the header for version and settings besides.
    unsafe { wasmtime::component::Component::deserialize(engine, compiled) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder of mode 0700 with one entry of mode `mode`.
    fn cache_with_entry(tag: &str, mode: u32) -> (std::path::PathBuf, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("loader-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let entry = dir.join("entry.cwasm");
        std::fs::write(&entry, b"not machine code").unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, entry)
    }

    #[test]
    fn a_component_crate_others_could_change_is_refused_before_its_build() {
        use std::os::unix::fs::PermissionsExt;
        let krate = std::env::temp_dir().join(format!("loader-crate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&krate);
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::create_dir_all(krate.join("target")).unwrap();
        let mode = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        for (file, m) in [
            ("Cargo.toml", 0o644),
            ("src/lib.rs", 0o644),
            ("target/junk", 0o666),
        ] {
            std::fs::write(krate.join(file), "").unwrap();
            mode(&krate.join(file), m);
        }
        mode(&krate, 0o755);
        mode(&krate.join("src"), 0o755);
        assert_eq!(
            check_tree(&krate),
            Ok(()),
            "target/ is the build's, not checked"
        );
        mode(&krate.join("src/lib.rs"), 0o664);
        let refused = check_tree(&krate).unwrap_err();
        assert!(
            refused.contains("src/lib.rs") && refused.contains("writable by its group"),
            "{refused}"
        );
        mode(&krate.join("src/lib.rs"), 0o644);
        mode(&krate.join("src"), 0o777);
        assert!(check_tree(&krate).unwrap_err().contains("src"));
        std::fs::remove_dir_all(&krate).unwrap();
    }

    #[test]
    fn a_plugin_folder_others_could_write_refuses_its_crates_and_libraries() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("loader-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("app_plugin_x")).unwrap();
        std::fs::write(dir.join("libapp_plugin_y.so"), b"").unwrap();
        let mode = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        mode(&dir.join("libapp_plugin_y.so"), 0o644);
        mode(&dir.join("app_plugin_x"), 0o755);
        let library = Candidate {
            name: "y".into(),
            library: dir.join("libapp_plugin_y.so"),
            source: dir.join("libapp_plugin_y.so"),
            problem: None,
            component_crate: false,
        };
        mode(&dir, 0o755);
        assert_eq!(check_crate(&dir.join("app_plugin_x"), &dir), Ok(()));
        assert_eq!(check_file(&library, &dir), Ok(()));
        mode(&dir, 0o777);
        let expected = format!(
            "the plugin folder is not trusted: {} is writable by its group or by everyone \
             (mode 777): `chmod go-w` it",
            dir.display()
        );
        assert_eq!(
            check_crate(&dir.join("app_plugin_x"), &dir),
            Err(expected.clone())
        );
        assert_eq!(check_file(&library, &dir), Err(expected));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cache_entry_others_could_write_is_never_deserialized() {
        use std::os::unix::fs::PermissionsExt;
        let engine = wasmtime::Engine::default();
        // The app's own entry reaches wasmtime, which refuses these bytes.
        let (dir, entry) = cache_with_entry("own", 0o600);
        let why = cached_component(&engine, &dir, &entry).unwrap_err();
        assert!(!why.contains("writable"), "{why}");
        assert!(
            cached_component(&engine, &dir, &dir.join("none.cwasm"))
                .unwrap()
                .is_none()
        );
        // Its folder writable by the group: refused before reading.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        let why = cached_component(&engine, &dir, &entry).unwrap_err();
        assert!(
            why.contains("writable by its group or by everyone (mode 770)"),
            "{why}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        // The entry writable by everyone.
        let (dir, entry) = cache_with_entry("open", 0o666);
        let why = cached_component(&engine, &dir, &entry).unwrap_err();
        assert!(
            why.contains("writable by its group or by everyone (mode 666)"),
            "{why}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
