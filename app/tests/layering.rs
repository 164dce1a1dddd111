//! The host's modules form layers: each uses only modules of the layers
//! before it, so no two import each other, directly or round a circle, and
//! nothing imports up into the crate root (which only lists modules).
//! Checked from the sources' `crate::` and `super::` paths; a module's own
//! unit tests (`tests.rs`) may use anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Lowest layer first. A folder is one unit, except the parts named here
/// with their path, which sit higher than the rest of their folder: the
/// request pipeline and the transport use the shared state, which holds
/// the router and the limits; the delivery worker uses the state too.
const LAYERS: [&str; 14] = [
    "db",
    "policy",
    "http",
    "outbox",
    "services",
    "config",
    "plugins",
    "api",
    "state",
    "outbox::worker",
    "http::pipeline",
    "http::server",
    "startup",
    "cli",
];

/// Files that are no module of the library: the crate root and the
/// binaries.
const NOT_LAYERED: [&str; 3] = ["lib.rs", "main.rs", "launcher.rs"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `http/pipeline.rs` is `http::pipeline`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The layer a module path belongs to: its longest prefix in [`LAYERS`].
fn unit(path: &[String]) -> Option<&'static str> {
    (1..=path.len().min(2))
        .rev()
        .map(|n| path[..n].join("::"))
        .find_map(|prefix| LAYERS.iter().copied().find(|l| *l == prefix))
}

/// The module paths named after `crate::` or `super::` in `source`.
fn named_paths(source: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (keyword, base) in [
        ("crate::", Vec::new()),
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        for (at, _) in source.match_indices(keyword) {
            if keyword == "crate::" && source[..at].ends_with("$") {
                continue; // a macro's `$crate::`
            }
            let rest = &source[at + keyword.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| {
                    c.is_alphanumeric()
                        || *c == '_'
                        || *c == ':'
                        || *c == '{'
                        || *c == ','
                        || *c == ' '
                })
                .collect();
            let (prefix, group) = match path.find('{') {
                Some(open) => (&path[..open], &path[open + 1..]),
                None => (path.as_str(), ""),
            };
            let prefix: Vec<String> = prefix
                .split("::")
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_owned())
                .collect();
            let mut heads = vec![prefix.clone()];
            if !group.is_empty() {
                heads = group
                    .split(',')
                    .map(|name| name.trim().split("::").next().unwrap_or("").to_owned())
                    .filter(|name| !name.is_empty())
                    .map(|name| prefix.iter().cloned().chain([name]).collect())
                    .collect();
            }
            for head in heads {
                found.push(base.iter().cloned().chain(head).collect());
            }
        }
    }
    found
}

#[test]
fn every_host_module_uses_only_modules_of_lower_layers() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut problems = BTreeSet::new();
    for file in &all {
        let name = file.file_name().unwrap().to_string_lossy();
        if file.parent() == Some(src().as_path()) && NOT_LAYERED.contains(&&*name)
            || name == "tests.rs"
        {
            continue;
        }
        let module = module_of(file);
        let Some(own) = unit(&module) else {
            problems.insert(format!("{}: in no layer", file.display()));
            continue;
        };
        let own_layer = LAYERS.iter().position(|l| *l == own).unwrap();
        let source = std::fs::read_to_string(file).unwrap();
        // A file's own `#[cfg(test)] mod tests` may use anything.
        let source = source.split("#[cfg(test)]").next().unwrap_or_default();
        for path in named_paths(source, &module) {
            let Some(first) = path.first() else { continue };
            if first == "self" {
                continue;
            }
            match unit(&path) {
                Some(used) if used == own => {}
                Some(used) => {
                    let used_layer = LAYERS.iter().position(|l| *l == used).unwrap();
                    if used_layer > own_layer {
                        problems.insert(format!(
                            "`{own}` ({}) uses `{used}`, which is not below it",
                            module.join("::")
                        ));
                    }
                }
                // Not a module: an item of the crate root.
                None if path.len() == 1
                    || !LAYERS.iter().any(|l| l.starts_with(first.as_str())) =>
                {
                    problems.insert(format!(
                        "{} imports `crate::{}` from the crate root",
                        module.join("::"),
                        path.join("::")
                    ));
                }
                None => {}
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}
