//! The workspace README's two examples are written once, each where it is
//! compiled and run as a doc test, and README shows the same code:
//!
//! - the plugin example, in hookspecs/docs/plugin.md (the SDK's crate docs
//!   and `AppHooks`'s include it);
//! - the engine example, in hooks-core/README.md (`ReadmeDoctests` in the
//!   engine's lib.rs includes it).

use std::path::Path;

/// The ```rust blocks of a markdown text (not `rust,ignore` ones).
fn rust_blocks(relative: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let markdown =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == "```rust" => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// README.md shows `source`'s one example verbatim.
fn readme_shows(source: &str) {
    let example = rust_blocks(source);
    assert_eq!(example.len(), 1, "{source} holds one example");
    assert!(
        rust_blocks("../README.md").contains(&example[0]),
        "README.md's copy of the example in {source} (the one compiled) differs: copy it from there"
    );
}

#[test]
fn readme_shows_the_compiled_plugin_example() {
    readme_shows("docs/plugin.md");
}

#[test]
fn readme_shows_the_compiled_engine_example() {
    readme_shows("../hooks-core/README.md");
}
