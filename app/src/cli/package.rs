//! `app package <dir>`: a folder that runs on a machine without a Rust
//! toolchain: the binaries (`app`, which checks and starts `app-main`), the
//! shared libraries it needs (the SDK and Rust's
//! std, exactly the files this process loaded), and every plugin as a
//! prebuilt library in `<dir>/plugins/` (a component crate built for
//! `wasm32-wasip2` first, and shipped as its `.wasm`). The binaries' RUNPATH starts with
//! `$ORIGIN/`, so the libraries beside it are the ones it loads.
//!
//! A plugin the app would refuse before opening it (misnamed, found twice,
//! disabled, or refused by the loader's file checks: a link out of the
//! folder, another user's file...) is left out, saying why: copied, it
//! would be a file of the package's own, trusted there. A `required` one
//! left out fails the package, as it would fail the app's start.
//!
//! Packaging again into the same folder removes every file of
//! `<dir>/plugins/` named as a plugin that this package does not ship (a
//! plugin disabled or removed since), or the packaged app would load it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::PluginsConfig;
use crate::plugins::discovery::{self, Candidate};
use crate::plugins::{Status, loader, printable, refusal};

/// What `package` did: the files it copied, and the plugins it left out,
/// each with why.
pub struct Packaged {
    /// Every file written, in order.
    pub copied: Vec<PathBuf>,
    /// `plugin <name> (<source>): <why>`, one per plugin left out.
    pub left_out: Vec<String>,
    /// Plugin files of an earlier package in the same folder that this one
    /// does not ship, removed.
    pub removed: Vec<PathBuf>,
}

/// Copies the app, its shared libraries and its plugins into `out`.
/// `linked`: the names of the plugins linked into the binary.
pub fn package(out: &Path, plugins: &PluginsConfig, linked: &[String]) -> anyhow::Result<Packaged> {
    let exe = std::env::current_exe().context("finding the running binary")?;
    let build_dir = exe.parent().context("the binary's folder")?;
    let plugin_dir = out.join("plugins");
    // Before anything is created: a `plugins/` made beside the binary
    // would become its plugin folder.
    let (dir, _) = plugins.folder();
    check_out(out, build_dir, &plugin_dir, &dir)?;
    std::fs::create_dir_all(&plugin_dir).with_context(|| format!("creating {}", out.display()))?;
    let earlier = discovery::discover(&plugin_dir, build_dir)
        .with_context(|| format!("reading {}", plugin_dir.display()))?;
    if let Some(folder) = earlier.iter().find(|c| c.source.is_dir()) {
        bail!(
            "{} is a folder in the package's plugin folder, which the packaged app would \
             take for a plugin crate and cannot build: remove it, or package into another \
             folder",
            folder.source.display()
        );
    }
    // Writable by its owner alone whatever the umask (002 makes it group
    // writable), or the packaged app refuses every plugin in it.
    {
        use std::os::unix::fs::PermissionsExt;
        let owner_only = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(&plugin_dir, owner_only)
            .with_context(|| format!("setting the mode of {}", plugin_dir.display()))?;
    }
    // `app` checks that `app-main` (this binary) can start with the
    // libraries beside it, then runs it (src/launcher.rs).
    let launcher = exe.with_file_name("app");
    let mut copied = vec![
        copy(&launcher, &out.join("app"))?,
        copy(&exe, &out.join("app-main"))?,
    ];
    for library in loaded_rust_libraries()? {
        let name = library.file_name().context("a library's name")?;
        copied.push(copy(&library, &out.join(name))?);
    }
    let found = discovery::discover(&dir, build_dir)
        .with_context(|| format!("reading the plugin folder {}", dir.display()))?;
    let names: Vec<String> = (found.iter().map(|c| c.name.clone()))
        .chain(linked.iter().cloned())
        .collect();
    let mut left_out = Vec::new();
    for candidate in &found {
        let (name, source) = (&candidate.name, candidate.source.display());
        let refused = match checked(candidate, &dir, build_dir, plugins, &names)? {
            Ok(()) => {
                let file = candidate
                    .library
                    .file_name()
                    .context("a plugin library's name")?;
                copied.push(copy(&candidate.library, &plugin_dir.join(file))?);
                continue;
            }
            Err(why) => why,
        };
        if plugins.required.contains(name) {
            bail!("required plugin `{name}` ({source}) cannot be packaged: {refused}");
        }
        left_out.push(printable(&format!("plugin {name} ({source}): {refused}")).into_owned());
    }
    // Only files named as plugins: a misnamed one is no plugin the
    // packaged app loads, and may be the user's.
    let mut removed = Vec::new();
    let well_named = earlier.into_iter().filter(|c| c.problem.is_none());
    for stale in well_named.map(|c| c.source) {
        if !copied.contains(&stale) {
            std::fs::remove_file(&stale)
                .with_context(|| format!("removing {}", stale.display()))?;
            removed.push(stale);
        }
    }
    Ok(Packaged {
        copied,
        left_out,
        removed,
    })
}

/// Refuses an `out` whose files would replace the ones being packaged (the
/// running binary's folder, or a plugin folder that is the one read), and
/// an `out/plugins` that is a link: what is removed from it would be
/// removed elsewhere.
fn check_out(out: &Path, build_dir: &Path, plugin_dir: &Path, source: &Path) -> anyhow::Result<()> {
    if plugin_dir.is_symlink() {
        bail!(
            "cannot package into {}: its plugins/ is a link; package into a folder whose \
             plugins/ is a real folder",
            out.display()
        );
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(out, build_dir) {
        bail!(
            "cannot package into {}: it is the folder of the running app, whose files would \
             be copied onto themselves; name another folder",
            out.display()
        );
    }
    if same(plugin_dir, source) {
        bail!(
            "cannot package into {}: its plugins/ is the plugin folder being packaged ({}), \
             whose files would be copied onto themselves; name another folder",
            out.display(),
            source.display()
        );
    }
    Ok(())
}

/// Whether `candidate` is one the app would open, checked as the app
/// checks it (`Err`: why not), a component crate built first. `names`:
/// every plugin of the folder.
///
/// # Errors
///
/// Its build failed, or a crate's library is not built: the package would
/// lack a plugin the folder means to have.
fn checked(
    candidate: &Candidate,
    dir: &Path,
    build_dir: &Path,
    plugins: &PluginsConfig,
    names: &[String],
) -> anyhow::Result<Result<(), String>> {
    if let Some(why) = refusal(candidate, plugins, names).and_then(Status::reason) {
        return Ok(Err(why));
    }
    if candidate.component_crate {
        if let Err(why) = loader::check_crate(&candidate.source, dir) {
            return Ok(Err(why));
        }
        crate::plugins::build_component(&candidate.source, &candidate.name, build_dir)
            .map_err(|why| anyhow::anyhow!("plugin {}: {why}", candidate.name))?;
    }
    let built = candidate.source != candidate.library;
    if built && !candidate.library.exists() {
        bail!(
            "plugin {} is not built ({}): run `cargo build` at the workspace root first",
            candidate.name,
            candidate.library.display()
        );
    }
    Ok(loader::check_file(candidate, dir))
}

/// Copies `from` to a new file renamed over `to`: never written through
/// `to` itself, which may be a link, or `from` under another name (a
/// hard link), and would then be emptied.
fn copy(from: &Path, to: &Path) -> anyhow::Result<PathBuf> {
    let name = to.file_name().context("a file's name")?.to_string_lossy();
    let partial = to.with_file_name(format!(".{name}.partial"));
    let done = std::fs::copy(from, &partial).and_then(|_| std::fs::rename(&partial, to));
    if done.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    done.with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(to.to_path_buf())
}

/// The Rust shared libraries this process runs on (std, the SDK): read from
/// the process's own memory map, so they are exactly the right builds.
fn loaded_rust_libraries() -> anyhow::Result<Vec<PathBuf>> {
    let maps = std::fs::read_to_string("/proc/self/maps").context("reading /proc/self/maps")?;
    let mut found: Vec<PathBuf> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(PathBuf::from)
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            name.starts_with("libstd-") && name.ends_with(".so") || name == "libhookspecs.so"
        })
        .collect();
    found.sort();
    found.dedup();
    if found.len() < 2 {
        bail!("could not find libstd and libhookspecs among the loaded libraries");
    }
    Ok(found)
}
