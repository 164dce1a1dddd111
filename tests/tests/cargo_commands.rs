//! Every cargo command a Rust developer types builds the same SDK: after
//! `cargo build`, building or testing one package, a plugin with its own
//! direct dependencies on tokio, serde or sqlx, and clippy, all leave the
//! SDK library (and so the app and every plugin linked against it) as they
//! were (ARCHITECTURE.md, "One SDK build for every cargo command").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use e2e_tests::{app_binary, cargo, copy_sources, workspace};
use serde_json::Value;

/// The packages of the SDK: hookspecs and everything it is built from.
fn sdk_packages(cargo_in: impl Fn() -> Command) -> BTreeSet<String> {
    let out = cargo_in()
        .args(["tree", "--offline", "-p", "hookspecs", "-e", "normal,build"])
        .args(["--prefix", "none", "-f", "{p}"])
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect()
}

/// `package version` -> the feature sets it is built with (one per way it
/// is built: for the target, for build scripts and proc macros), as
/// `cargo tree` resolves them for `args`.
fn features(cargo_in: &impl Fn() -> Command, args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let out = cargo_in()
        .args(["tree", "--offline", "--prefix", "none", "-f", "{p}|{f}"])
        .args(args)
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        let mut words = package.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let features = features.trim_end_matches(" (*)").to_owned();
        found
            .entry(format!("{name} {version}"))
            .or_default()
            .insert(features);
    }
    found
}

/// Every SDK package `args` builds has the features the whole workspace
/// build gives it; else the name of the crate to pin in hookspecs/features.
fn assert_same_sdk(
    cargo_in: &impl Fn() -> Command,
    sdk: &BTreeSet<String>,
    what: &str,
    args: &[&str],
) {
    let whole = features(cargo_in, &["-e", "normal,build,dev"]);
    let selected = features(cargo_in, args);
    let differ: Vec<String> = selected
        .iter()
        .filter(|(package, _)| sdk.contains(*package))
        .filter(|(package, sets)| whole.get(*package) != Some(sets))
        .map(|(package, sets)| {
            format!(
                "{package}: {sets:?}, the workspace {:?}",
                whole.get(package)
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{what} builds SDK crates with other features than `cargo build`: pin them in \
         hookspecs/features/Cargo.toml:\n{}",
        differ.join("\n")
    );
}

#[test]
fn every_selection_resolves_the_sdk_with_the_same_features() {
    let _turn = one_at_a_time();
    let sdk = sdk_packages(cargo);
    assert!(sdk.iter().any(|p| p.starts_with("tokio ")), "{sdk:?}");
    for (what, args) in [
        ("`cargo build`", &["-e", "normal,build"][..]),
        (
            "`cargo build -p app_plugin_hello_world`",
            &["-e", "normal,build", "-p", "app_plugin_hello_world"],
        ),
        (
            "`cargo test -p app_plugin_hello_world`",
            &["-e", "normal,build,dev", "-p", "app_plugin_hello_world"],
        ),
        (
            "`cargo test -p hookery`",
            &["-e", "normal,build,dev", "-p", "hookery"],
        ),
        (
            "`cargo clippy -p app`",
            &["-e", "normal,build", "-p", "app"],
        ),
        (
            "`cargo test -p hookspecs`",
            &["-e", "normal,build,dev", "-p", "hookspecs"],
        ),
    ] {
        assert_same_sdk(&cargo, &sdk, what, args);
    }
}

/// A plugin with its own direct dependencies on tokio (`full`), serde and
/// sqlx (with their default features), as a developer would write it.
fn extra_plugin(plugins: &Path, name: &str) {
    let dir = plugins.join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"dylib\"]\n\n[dependencies]\nhookspecs.workspace = true\n\
             tokio = {{ version = \"1\", features = [\"full\"] }}\nserde = \"1\"\nsqlx = \"0.8\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        "use hookspecs::prelude::*;\n\n#[derive(Default)]\npub struct Extra;\n\n#[hookimpl]\n\
         impl AppHooks for Extra {\n    async fn on_user_created(&self, _: &User, _: &HookContext) -> HookResult<()> {\n\
         \x20       tokio::task::yield_now().await;\n        Ok(())\n    }\n}\n\n\
         hookspecs::export_plugin!(Extra::default);\n",
    )
    .unwrap();
}

/// The tests of this file change or read the workspace: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_plugin_with_its_own_tokio_serde_and_sqlx_resolves_the_same_sdk() {
    let _turn = one_at_a_time();
    let scratch = tempfile::tempdir().unwrap();
    copy_sources(&workspace(), scratch.path());
    extra_plugin(&scratch.path().join("plugins"), "app_plugin_extra");
    let in_scratch = || {
        let mut cmd = cargo();
        cmd.current_dir(scratch.path());
        cmd
    };
    let sdk = sdk_packages(in_scratch);
    assert_same_sdk(
        &in_scratch,
        &sdk,
        "`cargo build -p app_plugin_extra` (tokio full, serde, sqlx)",
        &["-e", "normal,build", "-p", "app_plugin_extra"],
    );
    // And the plugin does not change what the rest of the workspace gets.
    let before = features(&cargo, &["-e", "normal,build"]);
    let after = features(&in_scratch, &["-e", "normal,build"]);
    for package in &sdk {
        assert_eq!(before.get(package), after.get(package), "{package}");
    }
}

/// The units a cargo command compiled (not fresh): `package-id target`, and
/// whether it is linked into binaries and plugins (a library, not a test
/// harness, a build script, a proc macro or clippy's metadata-only check).
fn compiled(args: &[&str]) -> Vec<(String, bool)> {
    let out = cargo()
        .args(args)
        .args(["--message-format=json"])
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["fresh"] == false)
        .map(|m| {
            let id = m["package_id"].as_str().unwrap_or_default();
            let name = m["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .replace('_', "-");
            let kinds = m["target"]["kind"].as_array().cloned().unwrap_or_default();
            let library = kinds
                .iter()
                .any(|k| k == "lib" || k == "rlib" || k == "dylib");
            let linked = library
                && m["profile"]["test"] == false
                && m["filenames"].as_array().is_some_and(|files| {
                    files
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|f| f.ends_with(".rlib") || f.ends_with(std::env::consts::DLL_SUFFIX))
                });
            (format!("{id} {name}"), linked)
        })
        .collect()
}

/// Puts the workspace back when dropped: removes the extra plugin, restores
/// Cargo.lock, and runs `cargo build`, so that whatever a failed check
/// left, the tests after this one find a consistent build.
struct Restore {
    extra: std::path::PathBuf,
    lock: Vec<u8>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.extra);
        let _ = std::fs::write(workspace().join("Cargo.lock"), &self.lock);
        let _ = cargo().args(["build", "--quiet"]).status();
    }
}

#[test]
fn cargo_commands_leave_the_sdk_the_app_and_the_plugins_as_they_are() {
    let _turn = one_at_a_time();
    let app = app_binary(); // builds the workspace first
    let sdk_library = app.with_file_name("libhookspecs.so");
    let stamp = || {
        std::fs::metadata(&sdk_library)
            .and_then(|m| m.modified())
            .unwrap()
    };
    let before = stamp();
    let sdk: BTreeSet<String> = sdk_packages(cargo)
        .iter()
        .map(|p| p.split(' ').next().unwrap().to_owned())
        .collect();
    let extra = "app_plugin_cargo_commands_extra";
    let _restore = Restore {
        extra: workspace().join("plugins").join(extra),
        lock: std::fs::read(workspace().join("Cargo.lock")).unwrap(),
    };
    for args in [
        &["build", "-p", "app_plugin_hello_world"][..],
        &["test", "-p", "app_plugin_hello_world", "--no-run"],
        &["test", "-p", "hookery", "--no-run"],
        &["clippy", "-p", "app"],
        &["build"],
        // A new plugin with its own dependencies (Cargo.lock changes too).
        &["build", "-p", extra],
    ] {
        if args.contains(&extra) {
            extra_plugin(&workspace().join("plugins"), extra);
        }
        // The SDK's libraries (not a package's own test harness, which a
        // first `cargo test -p` may have to compile, nor clippy's checks).
        let rebuilt: Vec<String> = compiled(args)
            .into_iter()
            .filter(|(unit, linked)| {
                *linked
                    && sdk.iter().any(|p| {
                        unit.contains(&format!("#{p}@")) || unit.contains(&format!("/{p}#"))
                    })
            })
            .map(|(unit, _)| unit)
            .collect();
        assert!(
            rebuilt.is_empty(),
            "`cargo {}` rebuilt SDK units: {rebuilt:?}",
            args.join(" ")
        );
        assert_eq!(
            stamp(),
            before,
            "`cargo {}` rebuilt {}",
            args.join(" "),
            sdk_library.display()
        );
    }
    // And the app still starts with every plugin loaded.
    let out = Command::new(&app)
        .args(["plugins", "list"])
        .env("APP_PLUGINS_DIR", workspace().join("plugins"))
        .env_remove("APP_CONFIG")
        .current_dir(workspace())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shipped = std::fs::read_dir(workspace().join("plugins"))
        .unwrap()
        .count();
    assert!(
        text.contains(&format!("plugins: {shipped} loaded, 0 disabled, 0 failed")),
        "{text}"
    );
}

#[test]
fn a_build_after_the_tests_rebuilds_nothing() {
    let _turn = one_at_a_time();
    app_binary(); // what the tests build, with the tests' environment
    let rebuilt = compiled(&["build"]);
    assert!(
        rebuilt.is_empty(),
        "`cargo build` after `cargo test` rebuilt {rebuilt:?}"
    );
}
