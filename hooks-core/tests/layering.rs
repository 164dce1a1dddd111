//! The engine's modules form layers: each uses only modules of the layers
//! before it (the order `lib.rs` lists), so no two import each other,
//! directly or round a circle. Checked from the sources' `use crate::`
//! lines.

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest layer first, as `lib.rs` lists them.
const LAYERS: [&str; 16] = [
    "names",
    "error",
    "hookspec",
    "hookimpl",
    "order",
    "monitoring",
    "result",
    "depth",
    "panics",
    "registry",
    "call_loop",
    "caller",
    "spec",
    "historic",
    "manager",
    "discovery",
];

/// The source of `module`: its file and its submodules' (`src/<module>/`).
fn source(module: &str) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let path = src.join(format!("{module}.rs"));
    let mut source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    if let Ok(children) = std::fs::read_dir(src.join(module)) {
        for child in children {
            source.push_str(&std::fs::read_to_string(child.unwrap().path()).unwrap());
        }
    }
    source
}

/// The engine modules `module`'s source names through `crate::`.
fn uses(module: &str) -> BTreeSet<String> {
    let source = source(module);
    let mut found = BTreeSet::new();
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if LAYERS.contains(&name.as_str()) && name != module {
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_engine_module_uses_only_modules_of_lower_layers() {
    let on_disk: BTreeSet<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".rs").map(str::to_owned)
            })
            .filter(|name| name != "lib")
            .collect();
    let listed: BTreeSet<String> = LAYERS.iter().map(|s| s.to_string()).collect();
    assert_eq!(on_disk, listed, "every module has its layer");
    for (layer, module) in LAYERS.iter().enumerate() {
        for used in uses(module) {
            let used_layer = LAYERS.iter().position(|m| *m == used).unwrap();
            assert!(
                used_layer < layer,
                "`{module}` uses `{used}`, which is not below it"
            );
        }
    }
}
