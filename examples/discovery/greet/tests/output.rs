//! Runs the real binary and checks what it prints: both plugins found,
//! the plugin crate's and the host's default, in call order.

use std::process::Command;

#[test]
fn the_binary_finds_the_default_plugin_and_the_plugin_crate() {
    let out = Command::new(env!("CARGO_BIN_EXE_greet"))
        .args(["ada", "bob"])
        .output()
        .expect("running greet");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "plugins: plain, shout\n\
         shout: HELLO, COUNTESS ADA!\n\
         plain: hello, Countess ada\n\
         shout: HELLO, BOB!\n\
         plain: hello, bob\n"
    );
}

/// A program without hookery's `async` feature builds no async runtime:
/// neither Tokio nor async-trait nor futures is in its dependency tree.
#[test]
fn a_sync_only_program_has_no_async_crates_in_its_tree() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["tree", "--locked", "--manifest-path", manifest])
        .args(["-e", "normal,build", "--prefix", "none", "-f", "{p}"])
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("hookery v"), "{tree}");
    let asynchronous: Vec<&str> = tree
        .lines()
        .filter(|p| {
            ["tokio", "async-trait", "futures"]
                .iter()
                .any(|a| p.starts_with(a))
        })
        .collect();
    assert!(asynchronous.is_empty(), "{asynchronous:?}");
}
