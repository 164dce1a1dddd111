//! Finding plugins in the plugin folder: a crate `app_plugin_<name>`, built
//! with the app by the same `cargo` invocation (its library sits next to the
//! running binary), a prebuilt `libapp_plugin_<name>.so` placed there, or a
//! sandboxed plugin: a WebAssembly component `app_plugin_<name>.wasm`
//! ([`super::component`]), or a component crate (its Cargo.toml says
//! `[package.metadata.app-plugin] kind = "component"`), which the app builds
//! for `wasm32-wasip2` itself (`plugins/build.rs`).

use std::path::{Path, PathBuf};

use super::report::printable;

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
    /// Why it cannot be a plugin as it is (misnamed, or its name found
    /// twice): reported as a failure, never silently skipped.
    pub problem: Option<String>,
    /// A component crate: the app builds it before loading `library`.
    pub component_crate: bool,
}

/// Lists the plugins in `dir`, sorted by name: crate folders (named by the
/// package name in their Cargo.toml; their library was built next to the
/// running binary, in `build_dir`) and prebuilt libraries. A crate or a
/// library misnamed (the prefix missing, or a name [`check_name`]
/// refuses) is listed with its problem (cargo builds every crate in
/// `plugins/`: it would be built and never loaded), as are two plugins of
/// one name (see `mark_twins`); any other file is ignored with a debug
/// line.
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
        match library_candidate(path, &file_name) {
            Some(candidate) => found.push(candidate),
            None => tracing::debug!(
                path = %printable(&entry.path().display().to_string()),
                "not a plugin (neither a crate nor a library): ignored"
            ),
        }
    }
    found.sort_by(|a, b| (&a.name, &a.source).cmp(&(&b.name, &b.source)));
    mark_twins(&mut found);
    Ok(found)
}

/// The longest plugin name: PostgreSQL cuts identifiers at 63 bytes, and
/// `plugin_<name>_migrations` (its migration history) must stay whole, or
/// two long names would share tables.
const MAX_NAME: usize = 40;

/// The keys of `[plugins]` itself: a plugin of one of these names could
/// not have a `[plugins.<name>]` table.
const RESERVED: [&str; 3] = ["dir", "disabled", "required"];

/// The rule for a plugin's name, for `app plugin new` and for what is found
/// in the folder alike: it is written into the plugin's routes
/// (`/plugins/<name>/`) and tables (`plugin_<name>_*`), so lowercase ASCII
/// letters, digits and `_`, starting with a letter, at most 40 (`MAX_NAME`);
/// not the app's own, nor a key of `[plugins]` (`RESERVED`).
///
/// # Errors
///
/// Why `name` is not one.
pub fn check_name(name: &str) -> Result<(), String> {
    if name == super::APP_PLUGIN {
        return Err(format!("`{name}` is the name of the app's own plugin"));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "`{name}` is a key of the `[plugins]` table, so no `[plugins.{name}]` table could \
             hold the plugin's settings: choose another name"
        ));
    }
    if name.len() > MAX_NAME && hookspecs::sql::is_plain_name(name) {
        return Err(format!(
            "`{name}` is too long for a plugin name: at most {MAX_NAME} characters, so that \
             its tables' names (`plugin_<name>_...`) fit PostgreSQL's 63 bytes"
        ));
    }
    if hookspecs::sql::is_plain_name(name) && !name.starts_with('_') {
        return Ok(());
    }
    let shown = if name.is_empty() {
        "an empty name".to_owned()
    } else {
        format!("`{}`", printable(name))
    };
    Err(format!(
        "{shown} is not a plugin name: use lowercase letters, digits and `_`, starting with a letter"
    ))
}

/// A file of the folder that is a library (`*.so`, or the platform's
/// equivalent) or a component (`*.wasm`), however it is named: one named
/// otherwise than `libapp_plugin_<name>.so` (`app_plugin_<name>.wasm`) gets
/// the problem, with the name to give it. `None`: any other file.
fn library_candidate(path: PathBuf, file_name: &str) -> Option<Candidate> {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    let component_suffix = format!(".{}", super::component::EXTENSION);
    let (stem, lib, suffix) = match file_name.strip_suffix(DLL_SUFFIX) {
        Some(stem) => (stem, DLL_PREFIX, DLL_SUFFIX),
        None => (
            file_name.strip_suffix(&component_suffix)?,
            "",
            &*component_suffix,
        ),
    };
    let unprefixed = stem.strip_prefix(lib).unwrap_or(stem);
    let named = unprefixed.strip_prefix(PREFIX);
    let name = named.unwrap_or(unprefixed).to_owned();
    let shown = printable(&path.display().to_string()).into_owned();
    let well_named = named.is_some() && unprefixed.len() + lib.len() == stem.len();
    let must = format!(
        "a library in the plugin folder must be named {DLL_PREFIX}{PREFIX}<name>{DLL_SUFFIX} \
         (a component {PREFIX}<name>{component_suffix})"
    );
    let problem = match check_name(&name) {
        Ok(()) if well_named => None,
        Ok(()) => Some(format!(
            "{must}: rename {shown} to {lib}{PREFIX}{name}{suffix} to load it, or move it out \
             of the folder"
        )),
        Err(why) if well_named => Some(format!("{why}: rename {shown}")),
        Err(_) => Some(format!(
            "{must}, <name> being lowercase letters, digits and `_`, starting with a letter: \
             rename {shown} to load it, or move it out of the folder"
        )),
    };
    Some(Candidate {
        name,
        library: path.clone(),
        source: path,
        problem,
        component_crate: false,
    })
}

/// Gives each of two (or more) plugins of one name (a crate and the
/// `.wasm` built from it copied beside it) the problem of both: which one
/// ran, and which one a reload would pick, would be a guess, so neither
/// loads.
fn mark_twins(found: &mut [Candidate]) {
    for named in found.chunk_by_mut(|a, b| a.name == b.name) {
        // A file that can never load (misnamed) is no twin: it would take
        // the real plugin down with it.
        let mut twins: Vec<&mut Candidate> =
            named.iter_mut().filter(|c| c.problem.is_none()).collect();
        if twins.len() < 2 {
            continue;
        }
        let sources: Vec<String> = twins
            .iter()
            .map(|t| t.source.display().to_string())
            .collect();
        let problem = format!(
            "the plugin `{}` is found twice in the folder, as {}: remove all but one",
            printable(&twins[0].name),
            printable(&sources.join(" and "))
        );
        for twin in &mut twins {
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
    let problem = match crate_name.strip_prefix(PREFIX) {
        None => Some(format!(
            "its package name `{name}` lacks the `{PREFIX}` prefix, so it is built but \
             never loaded: set `name = \"{PREFIX}{}\"` under [package] in {}",
            crate_name.strip_prefix("app_").unwrap_or(&crate_name),
            printable(&manifest.display().to_string())
        )),
        Some(plugin) => check_name(plugin).err().map(|why| {
            format!(
                "{why}: rename the package `{}` under [package] in {}",
                printable(name),
                printable(&manifest.display().to_string())
            )
        }),
    };
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
    fn a_name_is_plain_not_the_apps_and_short_enough_for_its_tables() {
        for good in ["greeter", "a", "x2_y", &"n".repeat(MAX_NAME)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "app",
            "_x",
            "2x",
            "Upper",
            "a b",
            "a:b",
            &"n".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        // The longest name's migration history is a whole PostgreSQL name.
        assert!(format!("plugin_{}_migrations", "n".repeat(MAX_NAME)).len() <= 63);
    }

    #[test]
    fn every_library_is_a_candidate_and_a_misnamed_one_is_told_the_name_to_give_it() {
        let problem = |file: &str| {
            let found = library_candidate(PathBuf::from("/p").join(file), file);
            found.map(|c| (c.name, c.problem))
        };
        assert_eq!(problem("libapp_plugin_x_2.so"), Some(("x_2".into(), None)));
        assert_eq!(problem("app_plugin_x.wasm"), Some(("x".into(), None)));
        assert_eq!(problem("README.md"), None);
        assert_eq!(problem("libapp_plugin_x.so.1"), None);
        for (file, name, to) in [
            ("four.so", "four", "libapp_plugin_four.so"),
            ("app_plugin_one.so", "one", "libapp_plugin_one.so"),
            ("libgreeter.so", "greeter", "libapp_plugin_greeter.so"),
            ("x.wasm", "x", "app_plugin_x.wasm"),
        ] {
            let (found, why) = problem(file).unwrap();
            assert_eq!(found, name);
            assert_eq!(
                why.unwrap(),
                format!(
                    "a library in the plugin folder must be named libapp_plugin_<name>.so (a \
                     component app_plugin_<name>.wasm): rename /p/{file} to {to} to load it, \
                     or move it out of the folder"
                )
            );
        }
        let (_, why) = problem("Four.so").unwrap();
        assert!(why.unwrap().contains("<name> being lowercase"));
        for (file, why) in [
            ("libapp_plugin_.so", "an empty name is not a plugin name"),
            ("libapp_plugin_A.so", "`A` is not a plugin name"),
            ("libapp_plugin_:any.so", "`:any` is not a plugin name"),
            ("libapp_plugin_x\ny.so", "`x\\ny` is not a plugin name"),
            (
                "libapp_plugin_app.so",
                "`app` is the name of the app's own plugin",
            ),
        ] {
            let problem = problem(file).unwrap().1.unwrap();
            assert!(problem.starts_with(why), "{file}: {problem}");
            assert!(!problem.contains('\n'), "{problem}");
        }
    }

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
