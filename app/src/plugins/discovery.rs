//! Finding plugins in the plugin folder: a crate `app_plugin_<name>`, built
//! with the app by the same `cargo` invocation (its library sits next to the
//! running binary), a prebuilt `libapp_plugin_<name>.so` placed there, or a
//! sandboxed plugin: a WebAssembly component `app_plugin_<name>.wasm`
//! ([`super::component`]), or a component crate (its Cargo.toml says
//! `[package.metadata.app-plugin] kind = "component"`), which the app builds
//! for `wasm32-wasip2` itself (`plugins/build.rs`).

use std::path::{Path, PathBuf};

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
    /// Why it cannot be a plugin as it is (a name without the prefix):
    /// reported as a failure, never silently skipped.
    pub problem: Option<String>,
    /// A component crate: the app builds it before loading `library`.
    pub component_crate: bool,
}

/// Lists the plugins in `dir`, sorted by name: crate folders (named by the
/// package name in their Cargo.toml; their library was built next to the
/// running binary, in `build_dir`) and prebuilt libraries. A crate or a
/// library whose name lacks the prefix is listed with its problem (cargo
/// builds every crate in `plugins/`: it would be built and never loaded),
/// as are two plugins of one name (see `mark_twins`); any other file is
/// ignored with a debug line.
pub fn discover(dir: &Path, build_dir: &Path) -> std::io::Result<Vec<Candidate>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let manifest = path.join("Cargo.toml");
        if manifest.is_file() {
            found.push(crate_candidate(&path, &manifest, &file_name, build_dir));
            continue;
        }
        let component_suffix = format!(".{}", super::component::EXTENSION);
        let library = file_name
            .strip_prefix(std::env::consts::DLL_PREFIX)
            .and_then(|f| f.strip_suffix(std::env::consts::DLL_SUFFIX))
            .or_else(|| file_name.strip_suffix(&component_suffix));
        match library {
            Some(stem) => {
                let problem = (!stem.starts_with(PREFIX)).then(|| {
                    format!(
                        "a library in the plugin folder must be named {}{PREFIX}<name>{} \
                         (a component {PREFIX}<name>{component_suffix}): rename it to load \
                         it, or move it out of the folder",
                        std::env::consts::DLL_PREFIX,
                        std::env::consts::DLL_SUFFIX
                    )
                });
                found.push(Candidate {
                    name: stem.strip_prefix(PREFIX).unwrap_or(stem).to_owned(),
                    library: path.clone(),
                    source: path,
                    problem,
                    component_crate: false,
                });
            }
            None => {
                tracing::debug!(path = %path.display(), "not a plugin (neither a crate nor a library): ignored")
            }
        }
    }
    found.sort_by(|a, b| (&a.name, &a.source).cmp(&(&b.name, &b.source)));
    mark_twins(&mut found);
    Ok(found)
}

/// Gives each of two (or more) plugins of one name (a crate and the
/// `.wasm` built from it copied beside it) the problem of both: which one
/// ran, and which one a reload would pick, would be a guess, so neither
/// loads.
fn mark_twins(found: &mut [Candidate]) {
    for twins in found.chunk_by_mut(|a, b| a.name == b.name) {
        if twins.len() < 2 {
            continue;
        }
        let sources: Vec<String> = twins
            .iter()
            .map(|t| t.source.display().to_string())
            .collect();
        let problem = format!(
            "the plugin `{}` is found twice in the folder, as {}: remove all but one",
            twins[0].name,
            sources.join(" and ")
        );
        for twin in twins {
            twin.problem = Some(problem.clone());
        }
    }
}

/// A crate folder: the plugin is named by its package name, the name cargo
/// gives its library. A component crate's library is the component cargo
/// builds for `wasm32-wasip2` ([`super::build::output`]); a native one's is
/// the dylib the workspace's build put beside the binary.
fn crate_candidate(path: &Path, manifest: &Path, folder: &str, build_dir: &Path) -> Candidate {
    let table = std::fs::read_to_string(manifest)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .unwrap_or_default();
    let package = table.get("package");
    let name = package
        .and_then(|p| p.get("name")?.as_str())
        .unwrap_or(folder);
    let component_crate = package
        .and_then(|p| p.get("metadata")?.get(METADATA)?.get("kind")?.as_str())
        .is_some_and(|kind| kind == "component");
    let crate_name = name.replace('-', "_");
    let problem = (!crate_name.starts_with(PREFIX)).then(|| {
        format!(
            "its package name `{name}` lacks the `{PREFIX}` prefix, so it is built but \
             never loaded: set `name = \"{PREFIX}{}\"` under [package] in {}",
            crate_name.strip_prefix("app_").unwrap_or(&crate_name),
            manifest.display()
        )
    });
    let library = if component_crate {
        super::build::output(build_dir, &crate_name)
    } else {
        build_dir.join(library_file(&crate_name))
    };
    Candidate {
        name: crate_name
            .strip_prefix(PREFIX)
            .unwrap_or(&crate_name)
            .to_owned(),
        library,
        source: path.to_path_buf(),
        problem,
        component_crate,
    }
}

/// The table of a plugin crate's Cargo.toml that says which kind it is:
/// `[package.metadata.app-plugin] kind = "component"` (else native).
pub const METADATA: &str = "app-plugin";

fn library_file(crate_name: &str) -> String {
    format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

impl Candidate {
    /// A sandboxed plugin (a WebAssembly component), not a native library.
    pub fn is_component(&self) -> bool {
        self.library
            .extension()
            .is_some_and(|e| e == super::component::EXTENSION)
    }

    /// Which kind of plugin it is, for the report.
    pub fn kind(&self) -> super::report::Kind {
        if self.is_component() {
            super::report::Kind::Component
        } else {
            super::report::Kind::Native
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crate_and_a_component_of_one_name_are_both_refused_naming_both() {
        let dir = std::env::temp_dir().join(format!("discovery-twins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("app_plugin_x")).unwrap();
        std::fs::write(
            dir.join("app_plugin_x/Cargo.toml"),
            "[package]\nname = \"app_plugin_x\"\n\n[package.metadata.app-plugin]\nkind = \"component\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("app_plugin_x.wasm"), b"").unwrap();
        std::fs::write(dir.join("app_plugin_y.wasm"), b"").unwrap();
        let found = discover(&dir, &dir.join("build")).unwrap();
        let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["x", "x", "y"]);
        let expected = format!(
            "the plugin `x` is found twice in the folder, as {} and {}: remove all but one",
            dir.join("app_plugin_x").display(),
            dir.join("app_plugin_x.wasm").display()
        );
        assert_eq!(found[0].problem.as_deref(), Some(&*expected));
        assert_eq!(found[1].problem.as_deref(), Some(&*expected));
        assert_eq!(found[2].problem, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
