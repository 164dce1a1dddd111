//! `app package <dir>`: a folder that runs on a machine without a Rust
//! toolchain: the binaries (`app`, which checks and starts `app-main`), the
//! shared libraries it needs (the SDK and Rust's
//! std, exactly the files this process loaded), and every plugin as a
//! prebuilt library in `<dir>/plugins/` (a component crate built for
//! `wasm32-wasip2` first, and shipped as its `.wasm`). The binaries' RUNPATH starts with
//! `$ORIGIN/`, so the libraries beside it are the ones it loads.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::PluginsConfig;
use crate::plugins::discovery;

/// Copies the app, its shared libraries and its plugins into `out`.
pub fn package(out: &Path, plugins: &PluginsConfig) -> anyhow::Result<Vec<PathBuf>> {
    let exe = std::env::current_exe().context("finding the running binary")?;
    let build_dir = exe.parent().context("the binary's folder")?;
    std::fs::create_dir_all(out.join("plugins"))
        .with_context(|| format!("creating {}", out.display()))?;
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
    let (dir, _) = plugins.folder();
    let found = discovery::discover(&dir, build_dir)
        .with_context(|| format!("reading the plugin folder {}", dir.display()))?;
    let wanted = found
        .iter()
        .filter(|c| !plugins.disabled.contains(&c.name) && c.problem.is_none());
    for candidate in wanted {
        let name = candidate
            .library
            .file_name()
            .context("a plugin library's name")?;
        if candidate.component_crate {
            crate::plugins::build_component(&candidate.source, &candidate.name, build_dir)
                .map_err(|why| anyhow::anyhow!("plugin {}: {why}", candidate.name))?;
        }
        if !candidate.library.exists() {
            bail!(
                "plugin {} is not built ({}): run `cargo build` at the workspace root first",
                candidate.name,
                candidate.library.display()
            );
        }
        copied.push(copy(&candidate.library, &out.join("plugins").join(name))?);
    }
    Ok(copied)
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<PathBuf> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
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
