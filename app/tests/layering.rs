//! The host's modules form layers: each uses only modules of the layers
//! before it, so no two import each other, directly or round a circle, and
//! nothing imports up into the crate root (which only lists modules). The
//! check is the engine's `tests/common/layering.rs`, shared with the SDK's.

#[path = "../../hooks-core/tests/common/layering.rs"]
mod layering;

use std::path::Path;

/// Lowest layer first. A folder is one unit, except the parts named here
/// with their path, which sit higher than the rest of their folder: the
/// request pipeline and the transport use the shared state, which holds
/// the router and the limits; the delivery worker (races, queue, worker)
/// uses the state too.
const LAYERS: &[&str] = &[
    "db",
    "policy",
    "http",
    "outbox",
    "services",
    "config",
    "plugins",
    "api",
    "state",
    "outbox::races",
    "outbox::queue",
    "outbox::worker",
    "http::pipeline",
    "http::server",
    "startup",
    "cli",
];

/// Files that are no module of the library: the crate root and the
/// binaries.
const NOT_LAYERED: &[&str] = &["lib.rs", "main.rs", "launcher.rs"];

#[test]
fn every_host_module_uses_only_modules_of_lower_layers() {
    let problems = layering::Layers {
        src: Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        layers: LAYERS,
        not_layered: NOT_LAYERED,
        root_items: false,
    }
    .problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
