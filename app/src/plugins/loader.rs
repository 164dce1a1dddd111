//! Loading plugin libraries from the plugins folder: the only module with
//! `unsafe` code.
//!
//! A plugin is a crate `app_plugin_<name>` in the folder, built with the app
//! by the same `cargo` invocation (its library sits next to the running
//! binary), or a prebuilt `libapp_plugin_<name>.so` placed in the folder.
//! Before any of a library's Rust code runs, the loader checks the file
//! (owner, permissions, where a link leads) and the SDK fingerprint the
//! plugin exports through a C-ABI function. Libraries are never unloaded
//! (thread-local destructors would run after `dlclose`).

use std::path::{Path, PathBuf};

use hookspecs::{FINGERPRINT, Fingerprint, PluginExport, symbols};

/// The prefix of every plugin crate and library name.
pub const PREFIX: &str = "app_plugin_";

/// A plugin found in the folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The plugin's name (the crate name without the prefix).
    pub name: String,
    /// The library to load.
    pub library: PathBuf,
    /// Where it was found (the crate folder or the library itself).
    pub source: PathBuf,
}

/// Lists the plugins in `dir`, sorted by name: crate folders (whose library
/// was built next to the running binary, in `build_dir`) and prebuilt
/// libraries. Anything else is ignored with a debug line.
pub fn discover(dir: &Path, build_dir: &Path) -> std::io::Result<Vec<Candidate>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(name) = file_name.strip_prefix(PREFIX) {
            if path.join("Cargo.toml").is_file() {
                let library = build_dir.join(library_file(&file_name));
                found.push(Candidate {
                    name: name.to_owned(),
                    library,
                    source: path,
                });
                continue;
            }
        }
        let prebuilt = file_name
            .strip_prefix(std::env::consts::DLL_PREFIX)
            .and_then(|f| f.strip_suffix(std::env::consts::DLL_SUFFIX))
            .and_then(|f| f.strip_prefix(PREFIX));
        match prebuilt {
            Some(name) => found.push(Candidate {
                name: name.to_owned(),
                library: path.clone(),
                source: path,
            }),
            None => {
                tracing::debug!(path = %path.display(), "not a plugin (name does not start with {PREFIX}): ignored")
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

fn library_file(crate_name: &str) -> String {
    format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Refuses a library that others could have changed, or that a link puts
/// outside `dir` (for prebuilt ones; built ones live in the build folder).
pub fn check_file(candidate: &Candidate, dir: &Path) -> Result<(), String> {
    let path = &candidate.library;
    let link = std::fs::symlink_metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if candidate.source != *path => format!(
            "its library {} is not built: run `cargo build` at the workspace root \
             (not `cargo build -p`), which builds the app and every plugin together",
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
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
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

/// Refuses a file that is not a whole shared library: the dynamic loader
/// maps segments past the end of a truncated file, and touching them later
/// would crash the process.
fn check_image(path: &Path) -> Result<(), String> {
    use object::{Object, ObjectSection, ObjectSegment};
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
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
    Ok(())
}

/// Opens the library, checks its fingerprint, and only then calls its
/// registration function with the plugin's configuration table (an invalid
/// configuration or a panic there fails this plugin only).
pub fn load(library: &Path, config: &serde_json::Value) -> Result<PluginExport, String> {
    check_image(library)?;
    // SAFETY: opening a library runs its initialisers. Plugins are trusted
    // code by design (DESIGN.md: not a sandbox); the file checks above keep
    // out libraries others could have changed.
    let lib = unsafe { libloading::Library::new(library) }.map_err(|e| {
        let mut message = format!("cannot load {}: {e}", library.display());
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    })?;
    // SAFETY: the symbol is looked up as the C-ABI function the loader
    // protocol defines: no arguments, a #[repr(C)] plain-data result, so
    // calling it is sound whatever compiler or SDK built the library.
    let fingerprint = unsafe { lib.get::<extern "C" fn() -> Fingerprint>(symbols::FINGERPRINT) }
        .map_err(|_| {
            "not a plugin: it exports no `app_plugin_fingerprint` (add `hookspecs::export_plugin!(...)`)"
                .to_owned()
        })?;
    if let Some(why) = FINGERPRINT.mismatch(&fingerprint()) {
        return Err(format!(
            "stale or foreign plugin: {why}; rebuild it with the app: `cargo build` at the workspace root"
        ));
    }
    // SAFETY: the fingerprints match, so the library was built by the same
    // compiler against the same SDK build: the Rust-ABI function has exactly
    // the signature `export_plugin!` gave it.
    let register = unsafe {
        lib.get::<fn(&serde_json::Value) -> Result<PluginExport, String>>(symbols::REGISTER)
    }
    .map_err(|_| "not a plugin: it exports no `app_plugin_register`".to_owned())?;
    let export = std::panic::catch_unwind(|| register(config))
        .map_err(|_| "its registration function panicked".to_owned())??;
    // Never unloaded: thread-local destructors may still point into it.
    std::mem::forget(lib);
    Ok(export)
}
