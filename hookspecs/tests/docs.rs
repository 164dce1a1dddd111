//! The plugin example is written once, in `docs/plugin.md`: the crate
//! docs include it (so it is compiled and run as a doc test), and README
//! shows the same code, checked here.

use std::path::Path;

/// The ```rust blocks of a markdown text, each as its lines.
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == "```rust" => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
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
fn readme_shows_the_compiled_plugin_example() {
    let example = rust_blocks(&read("docs/plugin.md"));
    assert_eq!(example.len(), 1, "docs/plugin.md holds one example");
    let readme = rust_blocks(&read("../README.md"));
    assert!(
        readme.contains(&example[0]),
        "README's plugin example differs from hookspecs/docs/plugin.md (the one compiled): \
         copy it from there"
    );
}
