//! The layering check that the engine's, the SDK's and the app's
//! `tests/layering.rs` share: each includes this file with
//! `#[path = ".../hooks-core/tests/common/layering.rs"]`. It lives in the
//! engine, the lowest crate, so that the engine depends on nothing of the
//! app's.
//!
//! A crate's modules form layers: each uses only modules of the layers
//! before it, so no two import each other, directly or round a circle.
//! Checked from the `crate::` and `super::` paths of the sources' code
//! (comment lines, which may link anywhere, and a file's own
//! `#[cfg(test)]` part and `tests.rs`, which may use anything, are left
//! out).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One crate's layers.
pub struct Layers {
    /// Its `src` folder.
    pub src: PathBuf,
    /// Lowest layer first. A layer is a module with its folder; a nested
    /// path (`http::pipeline`) sits apart from (higher than) the rest of
    /// its folder.
    pub layers: &'static [&'static str],
    /// Files of `src` that are in no layer (the crate root, binaries).
    pub not_layered: &'static [&'static str],
    /// Whether a module may name an item of the crate root
    /// (`crate::Change`): the SDK and the engine re-export there; the app's
    /// root only lists modules.
    pub root_items: bool,
}

impl Layers {
    /// Every breach, one line each: a file in no layer, a layer with no
    /// file, a module using one not below it, a root item named where none
    /// may be.
    pub fn problems(&self) -> Vec<String> {
        let mut all = Vec::new();
        files(&self.src, &mut all);
        let mut problems = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for file in &all {
            let name = file.file_name().unwrap().to_string_lossy();
            if file.parent() == Some(self.src.as_path()) && self.not_layered.contains(&&*name)
                || name == "tests.rs"
            {
                continue;
            }
            let module = self.module_of(file);
            let Some(own) = self.unit(&module) else {
                problems.insert(format!("{}: in no layer", file.display()));
                continue;
            };
            seen.insert(own);
            let own_layer = self.layer(own);
            let text = std::fs::read_to_string(file).unwrap();
            let code: Vec<&str> = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect();
            for path in named_paths(&code.join("\n"), &module) {
                let Some(first) = path.first() else { continue };
                if first == "self" {
                    continue;
                }
                match self.unit(&path) {
                    Some(used) if used == own => {}
                    Some(used) if self.layer(used) > own_layer => {
                        problems.insert(format!(
                            "`{own}` ({}) uses `{used}`, which is not below it",
                            module.join("::")
                        ));
                    }
                    Some(_) => {}
                    // Not a module: an item of the crate root.
                    None if !self.root_items
                        && (path.len() == 1
                            || !self.layers.iter().any(|l| l.starts_with(first.as_str()))) =>
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
        for layer in self.layers {
            if !seen.contains(layer) {
                problems.insert(format!("`{layer}` is listed, and no file is it"));
            }
        }
        problems.into_iter().collect()
    }

    fn layer(&self, unit: &str) -> usize {
        self.layers.iter().position(|l| *l == unit).unwrap()
    }

    /// The module path of a file: `http/pipeline.rs` is `http::pipeline`.
    fn module_of(&self, file: &Path) -> Vec<String> {
        let relative = file.strip_prefix(&self.src).unwrap().with_extension("");
        let mut parts: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        parts
    }

    /// The layer a module path belongs to: its longest prefix in the layers.
    fn unit(&self, path: &[String]) -> Option<&'static str> {
        (1..=path.len().min(2))
            .rev()
            .map(|n| path[..n].join("::"))
            .find_map(|prefix| self.layers.iter().copied().find(|l| *l == prefix))
    }
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

/// The module paths named after `crate::` or `super::` in `source`
/// (`crate::{a, b::c}` names `a` and `b`).
fn named_paths(source: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (keyword, base) in [
        ("crate::", Vec::new()),
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        for (at, _) in source.match_indices(keyword) {
            if keyword == "crate::" && source[..at].ends_with('$') {
                continue; // a macro's `$crate::`
            }
            let rest = &source[at + keyword.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '{' | ',' | ' '))
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
