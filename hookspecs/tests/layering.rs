//! The SDK's modules form layers: each uses only modules listed before it
//! here, so no two import each other, directly or round a circle. Checked
//! from the `crate::` paths of the sources' code (doc comments may link
//! anywhere).

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest layer first.
const LAYERS: [&str; 14] = [
    "util",
    "model",
    "page",
    "error",
    "authz",
    "changes",
    "context",
    "http",
    "hooks",
    "loader",
    "export",
    "client",
    "host",
    "lib",
];

fn source(module: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/{module}.rs"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The SDK modules `module`'s source names through `crate::` (in `use`
/// lines and paths; `crate::Name` at the root counts as using `lib`).
fn uses(module: &str) -> BTreeSet<&'static str> {
    let source: String = source(module)
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (at, _) in source.match_indices("crate::") {
        let name: String = source[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if let Some(layer) = LAYERS.iter().find(|m| **m == name) {
            found.insert(*layer);
        }
    }
    found.remove(module);
    found
}

#[test]
fn every_sdk_module_uses_only_modules_of_lower_layers() {
    let on_disk: BTreeSet<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
            .unwrap()
            .filter_map(|e| {
                e.unwrap()
                    .file_name()
                    .into_string()
                    .unwrap()
                    .strip_suffix(".rs")
                    .map(str::to_owned)
            })
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
