//! Building component crates: a crate in the plugin folder whose Cargo.toml
//! says `[package.metadata.app-plugin] kind = "component"` is built by the
//! app itself for `wasm32-wasip2` before it is loaded (at startup, and at
//! each reload), as Zed builds dev extensions. Cargo decides what is
//! stale: a crate that did not change costs one cargo run that compiles
//! nothing.
//!
//! The command is `cargo rustc --profile component --target wasm32-wasip2
//! --lib --crate-type cdylib` ([`PROFILE`], defined on the command line by
//! [`PROFILE_CONFIG`]): the crate type is given here, not taken from the
//! manifest, so a component crate may say `crate-type = ["dylib"]` as a
//! native plugin does (what the workspace's own build makes of every crate
//! in `plugins/`; cargo refuses a manifest naming both `dylib` and
//! `cdylib`).
//!
//! Building runs the crate's build script and proc-macros natively, as the
//! app's user: a component crate is only as safe as its source. The build
//! sees none of the app's environment (its database address, its
//! secrets) but where the toolchain is ([`KEPT_ENV`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The target components are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The cargo profile components are built with: `release`, optimized as
/// one unit with everything it links (LTO, one codegen unit). A
/// component's code is mostly the SDK's, serde's and std's: 14% fewer
/// instructions in the guest (8% of a hook call with one service call)
/// and a 37% smaller `.wasm`, for the same CPU time of a cold build; a
/// rebuild after an edit of the crate alone takes about 8 s instead of
/// 0.5 s (BENCHMARKS.md, "Eleventh session").
pub const PROFILE: &str = "component";

/// [`PROFILE`]'s definition, as `--config` values: given on the command
/// line, so that a crate outside this workspace (whose manifest cannot
/// know it) builds the same way; the workspace's Cargo.toml says the same
/// for builds by hand (a test checks). The compiler's flags are the
/// crate's own: this workspace's `.cargo/config.toml` gives
/// `wasm32-wasip2` its own, because its `-C prefer-dynamic` (for native
/// plugins) refuses LTO. Giving them here too would append them to those
/// (cargo concatenates lists), and a build by hand, without them, would
/// not reuse the app's.
pub const PROFILE_CONFIG: [&str; 3] = [
    r#"profile.component.inherits="release""#,
    "profile.component.lto=true",
    "profile.component.codegen-units=1",
];

/// The arguments of a cargo command that build with [`PROFILE`]: the
/// profile, then its definition.
pub fn profile_args() -> impl Iterator<Item = &'static str> {
    ["--profile", PROFILE]
        .into_iter()
        .chain(PROFILE_CONFIG.iter().flat_map(|c| ["--config", c]))
}

/// The variables of the app's environment a build is given: where cargo,
/// rustup and the compiler are, and which toolchain. Nothing else reaches
/// a build script.
const KEPT_ENV: [&str; 10] = [
    "PATH",
    "HOME",
    "TMPDIR",
    "CARGO_HOME",
    "CARGO_NET_OFFLINE",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_AUTO_INSTALL",
    "RUSTC",
    "RUSTC_WRAPPER",
];

/// The command that installs the `wasm32-wasip2` target.
pub const INSTALL: &str = "rustup target add wasm32-wasip2";

/// Where component crates are built: a target folder of their own beside
/// the app's binary (not the workspace's: no lock shared with a `cargo
/// build` of the app, and the same place for a crate outside the
/// workspace).
fn target_dir(build_dir: &Path) -> PathBuf {
    build_dir.join("component-target")
}

/// The component cargo builds for the crate `crate_name` (its library name,
/// `app_plugin_<name>`).
pub fn output(build_dir: &Path, crate_name: &str) -> PathBuf {
    target_dir(build_dir)
        .join(TARGET)
        .join(PROFILE)
        .join(format!("{crate_name}.{}", super::component::EXTENSION))
}

/// Builds the component crate in `crate_dir` (the plugin `name`) into
/// `output(build_dir, ..)`, logging when it starts and how long it took.
///
/// # Errors
///
/// The target is not installed (the message names the command that
/// installs it), cargo cannot be run, or the build fails (with cargo's
/// error lines).
pub fn build(crate_dir: &Path, name: &str, build_dir: &Path) -> Result<(), String> {
    if !target_installed() {
        return Err(format!(
            "it is a component crate, and the Rust toolchain lacks the {TARGET} target to build \
             it: install it with `{INSTALL}`, then restart the app (or reload the plugin)"
        ));
    }
    // A crate linked into the folder is built where it lives: cargo finds
    // its workspace (and the fields it inherits) from the real path.
    let crate_dir = &crate_dir
        .canonicalize()
        .unwrap_or_else(|_| crate_dir.to_owned());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["rustc", "--color", "never", "--target", TARGET])
        .args(profile_args())
        .args(["--lib", "--crate-type", "cdylib"])
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir(build_dir))
        // Cargo reads its configuration from the folder it runs in: the
        // crate's, as when its author builds it.
        .current_dir(crate_dir)
        .env_clear()
        .envs(kept_env(std::env::vars_os()));
    let shown = shown(&command);
    tracing::info!(
        "plugin {name}: building {} for {TARGET} ({shown})",
        crate_dir.display()
    );
    let started = Instant::now();
    let out = command
        .output()
        .map_err(|e| format!("cannot run cargo to build it for {TARGET}: {e}"))?;
    let took = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        tracing::warn!("plugin {name}: the build failed after {took:.1} s");
        return Err(format!(
            "its build for {TARGET} failed ({shown} in {}): {}",
            crate_dir.display(),
            errors(&log)
        ));
    }
    if log
        .lines()
        .any(|l| l.trim_start().starts_with("Compiling "))
    {
        tracing::info!("plugin {name}: built in {took:.1} s");
    } else {
        tracing::info!("plugin {name}: up to date, nothing rebuilt ({took:.1} s)");
    }
    Ok(())
}

/// `command` as a shell would take it, for messages: a user can copy it to
/// rebuild by hand and see the whole of cargo's output.
fn shown(command: &Command) -> String {
    let quote = |arg: &std::ffi::OsStr| {
        let arg = arg.to_string_lossy();
        let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:".contains(c);
        if !arg.is_empty() && arg.chars().all(plain) {
            arg.into_owned()
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        }
    };
    std::iter::once(quote(command.get_program()))
        .chain(command.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Of the variables `vars`, those in [`KEPT_ENV`].
fn kept_env(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    vars.filter(|(key, _)| KEPT_ENV.iter().any(|kept| key == kept))
}

/// Cargo's error lines, at most a screenful: the first error with its
/// context, then the summary.
fn errors(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.starts_with("error"))
        .take(40)
        .collect();
    if lines.is_empty() {
        log.trim().to_owned()
    } else {
        lines.join("\n")
    }
}

/// Whether the compiler has the standard library for [`TARGET`]: the
/// folder `rustc --print target-libdir` names exists (rustup prints it
/// whether or not the target is installed). `RUSTC` names the compiler, as
/// for cargo.
pub fn target_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .is_some_and(|dir| Path::new(&dir).is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_shown_as_a_shell_would_take_it() {
        let mut command = Command::new("cargo");
        command.args(["rustc", "--config", r#"a.b="c""#, "", "/home/o'neil/x y"]);
        assert_eq!(
            shown(&command),
            r#"cargo rustc --config 'a.b="c"' '' '/home/o'\''neil/x y'"#
        );
    }

    #[test]
    fn the_error_lines_start_at_the_first_error() {
        let log = "   Compiling app_plugin_x v0.1.0\nerror[E0425]: cannot find value `y`\n  --> src/lib.rs:3:5\nerror: could not compile `app_plugin_x`\n";
        assert_eq!(
            errors(log),
            "error[E0425]: cannot find value `y`\n  --> src/lib.rs:3:5\nerror: could not compile `app_plugin_x`"
        );
        assert_eq!(errors("  something else\n"), "something else");
    }

    #[test]
    fn a_build_sees_only_where_the_toolchain_is() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("RUSTUP_TOOLCHAIN", "stable"),
            ("DATABASE_URL", "postgres://secret@db/app"),
            ("APP_ADMIN_TOKEN", "t0ken"),
            ("CARGO_PKG_NAME", "app"),
            ("RUSTC", "/opt/rustc"),
        ]
        .map(|(k, v)| (k.into(), v.into()));
        let kept: Vec<(std::ffi::OsString, std::ffi::OsString)> =
            kept_env(vars.into_iter()).collect();
        let keys: Vec<&str> = kept.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(keys, ["PATH", "RUSTUP_TOOLCHAIN", "RUSTC"]);
    }

    /// The workspace's own definition of the profile, for builds by hand
    /// and the benchmarks, is the one the app gives cargo.
    #[test]
    fn the_workspace_defines_the_profile_as_the_app_does() {
        fn merge(into: &mut toml::Table, from: toml::Table) {
            for (key, value) in from {
                match (into.get_mut(&key), value) {
                    (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
                    (_, value) => drop(into.insert(key, value)),
                }
            }
        }
        let mut given = toml::Table::new();
        for value in PROFILE_CONFIG {
            merge(&mut given, toml::from_str(value).unwrap());
        }
        let text = |path: &str| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            std::fs::read_to_string(root.join(path)).unwrap()
        };
        let read = |path: &str| -> toml::Table { toml::from_str(&text(path)).unwrap() };
        assert_eq!(
            read("Cargo.toml")["profile"][PROFILE],
            given["profile"][PROFILE]
        );
        // What lets LTO build in this workspace, given by its own config.
        assert_eq!(
            read(".cargo/config.toml")["target"][TARGET]["rustflags"],
            toml::Value::from(vec!["-C", "prefer-dynamic=no"])
        );
        // The benchmarks' copy (bench/load.py, COMPONENT_ARGS).
        let bench = text("bench/load.py");
        for value in PROFILE_CONFIG {
            assert!(
                bench.contains(&format!("'{value}'")),
                "bench/load.py lacks {value}"
            );
        }
    }
}
