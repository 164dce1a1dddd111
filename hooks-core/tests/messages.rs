//! The messages a user sees for the usual mistakes, pinned as rustc prints
//! them: each mistake is compiled in a crate of its own that depends on the
//! engine as a user's crate does (under this test's scratch folder, with a
//! target folder kept between runs), and the test checks that `cargo check`
//! fails with the message that says what to write instead. The same crate
//! without the mistake must build, so a message cannot come from an
//! unrelated error. Also: a sync-only crate (no `async` feature) builds.

use std::path::Path;
use std::process::Command;

/// A scratch crate `name` depending on the engine with `features`, whose
/// lib.rs is `text`. Returns whether `cargo check` succeeded, and its stderr.
fn check(name: &str, features: &str, text: &str) -> (bool, String) {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("messages");
    let dir = scratch.join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let engine = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [dependencies]\nhookery = {{ path = {engine:?}, features = [{features}] }}\n\n\
             [workspace]\n"
        ),
    )
    .unwrap();
    let lib = dir.join("src/lib.rs");
    // Written only when changed: cargo then rechecks only what changed.
    if std::fs::read_to_string(&lib).ok().as_deref() != Some(text) {
        std::fs::write(&lib, text).unwrap();
    }
    let out = cargo()
        .args(["check", "--offline", "--quiet", "--message-format=human"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .output()
        .expect("running cargo check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// cargo, without the variables cargo sets for this test process (they
/// would make the scratch build differ from a user's).
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME") || key == "OUT_DIR" {
            cmd.env_remove(&*key);
        }
    }
    cmd.env("CARGO_TERM_COLOR", "never");
    cmd
}

/// Fails unless `source` builds with `MISTAKE` replaced by `right`, and
/// with it replaced by `wrong` fails with every one of `expected` in the
/// output.
fn assert_teaches(
    name: &str,
    features: &str,
    source: &str,
    [right, wrong]: [&str; 2],
    expected: &[&str],
) {
    let (ok, stderr) = check(name, features, &source.replace("MISTAKE", right));
    assert!(ok, "{name} without the mistake:\n{stderr}");
    let (ok, stderr) = check(name, features, &source.replace("MISTAKE", wrong));
    assert!(!ok, "{name} with the mistake built");
    for message in expected {
        assert!(
            stderr.contains(message),
            "{name}: expected {message:?} in:\n{stderr}"
        );
    }
}

const SPEC: &str = r#"
use hookery::prelude::*;

#[hookspec]
pub trait Events {
    async fn on_shutdown(&self) -> HookResult<()>;
    fn compute(&self, x: u32) -> HookResult<u32>;
}

pub struct P;
"#;

const ASYNC: &str = "\"async\"";

#[test]
fn a_mut_argument_names_refcell_and_mutex() {
    let source = r#"
use hookery::prelude::*;

#[hookspec]
pub trait Events {
    fn collect(&self, into: MISTAKE) -> HookResult<()>;
}
"#;
    assert_teaches(
        "mut_argument",
        ASYNC,
        source,
        ["&std::cell::RefCell<Vec<u32>>", "&mut Vec<u32>"],
        &[
            "error: a hook argument cannot be `&mut`",
            "take `&RefCell<T>` (sync hooks) or `&Mutex<T>`",
        ],
    );
}

#[test]
fn a_sync_implementation_of_an_async_hook_says_write_async_fn() {
    let source = format!(
        "{SPEC}
#[hookimpl]
impl Events for P {{
    MISTAKE fn on_shutdown(&self) -> HookResult<()> {{
        Ok(())
    }}
}}
"
    );
    assert_teaches(
        "sync_impl",
        ASYNC,
        &source,
        ["async", ""],
        &["hook `on_shutdown` of `Events` is async: write `async fn on_shutdown`"],
    );
}

#[test]
fn an_async_implementation_of_a_sync_hook_says_write_fn() {
    let source = format!(
        "{SPEC}
#[hookimpl]
impl Events for P {{
    MISTAKE fn compute(&self, x: u32) -> HookResult<u32> {{
        Ok(x)
    }}
}}
"
    );
    assert_teaches(
        "async_impl",
        ASYNC,
        &source,
        ["", "async"],
        &["hook `compute` of `Events` is sync: write `fn compute`, without `async`"],
    );
}

#[test]
fn a_wrapper_mistake_names_the_hook_not_a_generated_method() {
    let source = format!(
        "{SPEC}
#[hookimpl]
impl Events for P {{
    #[hookimpl(wrapper)]
    fn compute(&self, _x: u32, next: Next<'_, MISTAKE>) -> HookResult<Results<u32>> {{
        Ok(next.call()?)
    }}
}}
"
    );
    assert_teaches(
        "wrapper",
        ASYNC,
        &source,
        ["Results<u32>", "Option<u32>"],
        &["method `compute_wrapper` has an incompatible type for trait"],
    );
}

#[test]
fn a_sync_wrapper_of_an_async_hook_says_how_an_async_wrapper_looks() {
    let source = format!(
        "{SPEC}
#[hookimpl]
impl Events for P {{
    #[hookimpl(wrapper)]
    MISTAKE
}}
"
    );
    assert_teaches(
        "async_wrapper",
        ASYNC,
        &source,
        [
            "async fn on_shutdown(&self, next: AsyncNext<'_, Results<()>>) \
             -> HookResult<Results<()>> { Ok(next.await?) }",
            "fn on_shutdown(&self, next: Next<'_, Results<()>>) \
             -> HookResult<Results<()>> { Ok(next.call()?) }",
        ],
        &[
            "hook `on_shutdown` of `Events` is async: its wrapper is `async fn on_shutdown(&self, \
           ..., next: AsyncNext<'_, _>)` and runs the rest of the call with `next.await`",
        ],
    );
}

#[test]
fn a_missing_hookimpl_says_which_attribute_to_write() {
    let source = format!(
        "{SPEC}
MISTAKE
impl Events for P {{
    fn compute(&self, x: u32) -> HookResult<u32> {{
        Ok(x)
    }}
}}

pub fn run() -> Result<(), Box<dyn std::error::Error>> {{
    PluginManager::<dyn Events>::new().register(\"p\", P)?;
    Ok(())
}}
"
    );
    assert_teaches(
        "missing_hookimpl",
        ASYNC,
        &source,
        ["#[hookimpl]", ""],
        &[
            "`P` is not a plugin of `(dyn Events + 'static)`: its implementation of the \
             trait lacks `#[hookimpl]`",
            "write `#[hookimpl]` on `impl Trait for P`, and `#[hookspec]` on the trait itself",
        ],
    );
}

#[test]
fn a_missing_hookspec_says_which_attribute_to_write() {
    let source = r#"
use hookery::prelude::*;

MISTAKE
pub trait Events {
    fn compute(&self, x: u32) -> HookResult<u32>;
}

pub fn manager() -> PluginManager<dyn Events> {
    PluginManager::new()
}
"#;
    assert_teaches(
        "missing_hookspec",
        ASYNC,
        source,
        ["#[hookspec]", ""],
        &["`(dyn Events + 'static)` is not a hook spec: the trait lacks `#[hookspec]`"],
    );
}

#[test]
fn a_sync_only_crate_builds_and_an_async_hook_in_it_names_the_feature() {
    let source = r#"
use hookery::prelude::*;

#[hookspec]
pub trait Events {
    fn compute(&self, x: u32) -> HookResult<u32>;
    MISTAKE
}
"#;
    assert_teaches(
        "sync_only",
        "",
        source,
        ["", "async fn on_shutdown(&self) -> HookResult<()>;"],
        &["async hooks need hookery's `async` feature"],
    );
}
