//! A newcomer's first hour, exactly as README tells it, on a fresh clone
//! (no target/): `cargo run` builds the app and every plugin crate in
//! `plugins/` and serves; after an edit of a plugin and of the SDK, and a
//! new plugin scaffolded with `cargo run -- plugin new`, the same `cargo
//! run` serves the edited code and the new plugin.

use std::path::Path;
use std::time::Duration;

use e2e_tests::*;

/// A whole build of the workspace on a loaded 2-core machine fits well
/// inside this; it only bounds a build that hangs.
const BUILD: Duration = Duration::from_secs(20 * 60);

/// `cargo <args>` in `clone`, as a newcomer's shell runs it: none of the
/// test's own cargo or app variables, the app on a free port.
fn newcomer_cargo(clone: &Path, data: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = cargo();
    cmd.current_dir(clone).args(args);
    for var in [
        "CARGO_TARGET_DIR",
        "LD_LIBRARY_PATH",
        "APP_CONFIG",
        "APP_PLUGINS_DIR",
        "DATABASE_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("APP_LISTEN", "127.0.0.1:0")
        .env("APP_DATA_DIR", data)
        .env("APP_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

/// `cargo run` until it serves; the client and the running app.
fn cargo_run(clone: &Path, data: &Path) -> (Client, Proc) {
    let proc = Proc::spawn(newcomer_cargo(clone, data, &["run"]));
    let client = Client::new(proc.wait_listening_within(BUILD));
    (client, proc)
}

/// The plugins the app says it loaded (idle ones included: webhooks,
/// without a URL on a fresh clone).
fn loaded(client: &Client) -> Vec<String> {
    let report = expect(200, client.get("/api/admin/plugins", ADMIN));
    report["plugins"]
        .as_array()
        .expect("a plugin list")
        .iter()
        .filter(|p| {
            p["status"]
                .as_str()
                .is_some_and(|s| s.starts_with("loaded"))
        })
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

/// Stops the app as Ctrl-C would, and checks it stopped cleanly.
fn stop(proc: Proc) -> String {
    proc.signal("INT");
    let (status, output) = proc.finish();
    assert!(status.success(), "{output}");
    output
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("reading a source file");
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).expect("editing a source file");
}

#[test]
fn readme_cargo_run_builds_everything_on_a_fresh_clone_and_serves_each_edit() {
    let clone = tempfile::tempdir().expect("a folder for the clone");
    copy_sources(&workspace(), clone.path());
    // A fresh clone has the shipped plugins only, not what this
    // workspace's user added.
    for entry in std::fs::read_dir(clone.path().join("plugins")).expect("plugins/") {
        let path = entry.expect("plugins/").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !SHIPPED.iter().any(|s| name == format!("app_plugin_{s}")) {
            std::fs::remove_dir_all(&path).expect("removing a user's plugin from the clone");
        }
    }
    let data = tempfile::tempdir().expect("a data folder");

    let (client, proc) = cargo_run(clone.path(), data.path());
    let mut shipped = loaded(&client);
    assert_eq!(expect(200, client.get("/health", None))["status"], "ok");
    let output = stop(proc);
    assert!(output.contains("Hello, world!"), "{output}");
    shipped.retain(|name| name != "app");
    for name in SHIPPED {
        assert!(
            shipped.iter().any(|n| n == name),
            "{name} not loaded: {shipped:?}"
        );
    }

    // An edit of a plugin, an edit of the SDK, and a new plugin crate.
    edit(
        &clone
            .path()
            .join("plugins/app_plugin_hello_world/src/lib.rs"),
        "\"Hello, world!\"",
        "\"Hello, edited world!\"",
    );
    edit(
        &clone.path().join("hookspecs/src/lib.rs"),
        "mod util;\n",
        "mod util;\n\n/// What a newcomer added to the SDK.\npub const EDITED: bool = true;\n",
    );
    let scaffold = newcomer_cargo(
        clone.path(),
        data.path(),
        &["run", "--", "plugin", "new", "newcomer"],
    )
    .output()
    .expect("running cargo run -- plugin new");
    assert!(
        scaffold.status.success(),
        "{}",
        String::from_utf8_lossy(&scaffold.stderr)
    );

    let (client, proc) = cargo_run(clone.path(), data.path());
    let now = loaded(&client);
    assert!(now.iter().any(|n| n == "newcomer"), "{now:?}");
    expect(200, client.get("/plugins/newcomer/hello", ADMIN));
    let output = stop(proc);
    assert!(
        output.contains("Hello, edited world!") && !output.contains("Hello, world!"),
        "{output}"
    );
}
