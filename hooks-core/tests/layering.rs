//! The engine's modules form layers: each uses only modules of the layers
//! before it (the order `lib.rs` lists), so no two import each other,
//! directly or round a circle. Checked from the sources' `use crate::`
//! lines.

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest layer first, as `lib.rs` lists them.
const LAYERS: [&str; 13] = [
    "names",
    "error",
    "hookspec",
    "hookimpl",
    "order",
    "monitoring",
    "result",
    "depth",
    "registry",
    "call_loop",
    "caller",
    "spec",
    "manager",
];

/// The engine modules `module`'s source names through `crate::`.
fn uses(module: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/{module}.rs"));
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
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
