//! The SDK's modules form layers: each uses only modules listed before it
//! here, so no two import each other, directly or round a circle (the
//! check: the engine's `tests/common/layering.rs`, shared with the app's).

#[path = "../../hooks-core/tests/common/layering.rs"]
mod layering;

use std::path::Path;

/// Lowest layer first.
const LAYERS: &[&str] = &[
    "util", "model", "page", "error", "authz", "changes", "uow", "context", "services", "http",
    "hooks", "loader", "export", "guest", "sql", "client", "host", "lib",
];

#[test]
fn every_sdk_module_uses_only_modules_of_lower_layers() {
    let problems = layering::Layers {
        src: Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        layers: LAYERS,
        not_layered: &[],
        root_items: true,
    }
    .problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
