//! The engine's modules form layers: each uses only modules of the layers
//! before it (the order `lib.rs` lists), so no two import each other,
//! directly or round a circle (the check: `common/layering.rs`, shared with
//! the SDK's and the app's).

#[path = "common/layering.rs"]
mod layering;

use std::path::Path;

/// Lowest layer first, as `lib.rs` lists them.
const LAYERS: &[&str] = &[
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

#[test]
fn every_engine_module_uses_only_modules_of_lower_layers() {
    let problems = layering::Layers {
        src: Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        layers: LAYERS,
        not_layered: &["lib.rs"],
        root_items: true,
    }
    .problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The shared check itself, on a made-up crate: a module using one above
/// it, a file in no layer, a listed layer with no file, and (where the root
/// only lists modules) a root item.
#[test]
fn the_check_reports_each_kind_of_breach() {
    let src = std::env::temp_dir().join(format!("layering-{}", std::process::id()));
    std::fs::create_dir_all(src.join("low")).unwrap();
    let files = [
        (
            "low.rs",
            "use crate::high::Thing;\n// crate::ghost in a comment\n",
        ),
        ("low/part.rs", "use super::Own;\n"),
        (
            "high.rs",
            "use crate::{low, Root};\n#[cfg(test)]\nuse crate::stray;\n",
        ),
        ("stray.rs", ""),
        ("lib.rs", ""),
    ];
    for (name, text) in files {
        std::fs::write(src.join(name), text).unwrap();
    }
    let check = |root_items| {
        layering::Layers {
            src: src.clone(),
            layers: &["low", "high", "ghost"],
            not_layered: &["lib.rs"],
            root_items,
        }
        .problems()
    };
    let strict = check(false);
    let lenient = check(true);
    std::fs::remove_dir_all(&src).unwrap();
    let stray = format!("{}: in no layer", src.join("stray.rs").display());
    assert_eq!(
        strict,
        [
            stray.as_str(),
            "`ghost` is listed, and no file is it",
            "`low` (low) uses `high`, which is not below it",
            "high imports `crate::Root` from the crate root",
        ]
    );
    assert_eq!(lenient, strict[..3]);
}
