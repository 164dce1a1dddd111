//! The engine's example is written once, in its README (compiled and run
//! as a doc test: `ReadmeDoctests` in lib.rs); the workspace's README shows
//! the same code, checked here.

use std::path::Path;

/// The ```rust blocks of a markdown text (not `rust,ignore` ones).
fn rust_blocks(markdown: &str) -> Vec<String> {
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

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_workspace_readme_shows_the_engines_compiled_example() {
    let engine = rust_blocks(&read("README.md"));
    assert_eq!(
        engine.len(),
        1,
        "hooks-core/README.md holds one runnable example"
    );
    let workspace = rust_blocks(&read("../README.md"));
    assert!(
        workspace.contains(&engine[0]),
        "README.md's engine example differs from hooks-core/README.md's (the one compiled): \
         copy it from there"
    );
}
