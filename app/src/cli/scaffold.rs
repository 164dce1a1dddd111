//! `app plugin new <name> [--component]`: a new plugin crate in the plugins
//! folder, from a template that implements one hook (and, native, one
//! route), and is loaded on the next `cargo run`: a native library, or a
//! WebAssembly component the app builds for `wasm32-wasip2` itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::plugins::discovery::{self, PREFIX};

/// Which kind of plugin to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// A Rust dylib in the app's process.
    Native,
    /// A WebAssembly component, sandboxed (its Cargo.toml says so under
    /// `[package.metadata.app-plugin]`).
    Component,
}

/// Creates `<dir>/app_plugin_<name>/` and returns its path.
pub fn new_plugin(dir: &Path, name: &str, template: Template) -> anyhow::Result<PathBuf> {
    // The rule the app loads plugins by: a name it would refuse is refused here.
    discovery::check_name(name).map_err(anyhow::Error::msg)?;
    let crate_name = format!("{PREFIX}{name}");
    let root = dir.join(&crate_name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("creating {}", root.display()))?;
    // `Plugin` ends it: a name's own CamelCase may be a keyword (`Self`,
    // `Box`) or a type the template uses (`User`, `Startup`).
    let type_name: String = name
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .chain(["Plugin".to_owned()])
        .collect();
    let (manifest, lib) = match template {
        Template::Native => (MANIFEST, LIB),
        Template::Component => (COMPONENT_MANIFEST, COMPONENT_LIB),
    };
    std::fs::write(
        root.join("Cargo.toml"),
        [PACKAGE, manifest].concat().replace("{crate}", &crate_name),
    )?;
    let lib = lib.replace("{name}", name).replace("{Type}", &type_name);
    std::fs::write(root.join("src").join("lib.rs"), lib)?;
    Ok(root)
}

/// What every plugin crate's Cargo.toml begins with.
const PACKAGE: &str = r#"[package]
name = "{crate}"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish = false

"#;

const MANIFEST: &str = r#"# A Rust dylib sharing the app's runtime through hookspecs: see README.md,
# "Write a plugin". Reach tokio, sqlx, serde... through hookspecs.
[lib]
crate-type = ["dylib"]

[dependencies]
hookspecs.workspace = true

# To test its hooks on the app's real services and a fresh database, and
# its routes end to end (README.md, "Test a plugin"):
# [dev-dependencies]
# app-testkit.workspace = true
"#;

const LIB: &str = r#"//! The `{name}` plugin.

use hookspecs::prelude::*;

#[derive(Default)]
pub struct {Type};

#[hookimpl]
impl AppHooks for {Type} {
    /// Startup: add routes here (served under /plugins/{name}/).
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        let routes = startup.routes();
        routes.get("/hello", |req: Request| async move {
            let who = req.identity().map(|i| i.name.clone());
            Ok(json!({"plugin": "{name}", "hello": who}))
        })?;
        Ok(())
    }

    /// Runs inside the transaction that created the user.
    async fn on_user_created(&self, user: &User, _ctx: &HookContext) -> HookResult<()> {
        tracing::info!(plugin = "{name}", "user {} created", user.username);
        Ok(())
    }
}

hookspecs::export_plugin!({Type}::default);
"#;

const COMPONENT_MANIFEST: &str = r#"# A WebAssembly component: the app builds it for wasm32-wasip2 and runs it
# sandboxed (README.md, "Native or sandboxed?"). Remove this table to make
# it a native plugin.
[package.metadata.app-plugin]
kind = "component"

# As a native plugin's: what the workspace's own build makes of it (never
# loaded). The app builds the component with `--crate-type cdylib`.
[lib]
crate-type = ["dylib"]

[dependencies]
hookspecs.workspace = true
"#;

const COMPONENT_LIB: &str = r#"//! The `{name}` plugin, a sandboxed component.

use hookspecs::prelude::*;

#[derive(Default)]
pub struct {Type};

#[hookimpl]
impl AppHooks for {Type} {
    /// Runs inside the transaction that created the user; an error vetoes
    /// the creation.
    async fn on_user_created(&self, user: &User, _ctx: &HookContext) -> HookResult<()> {
        tracing::info!(plugin = "{name}", "user {} created", user.username);
        Ok(())
    }
}

hookspecs::export_plugin!({Type}::default);
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_cannot_prefix_tables_or_starts_with_no_letter_is_refused() {
        let dir = std::env::temp_dir().join(format!("scaffold-names-{}", std::process::id()));
        for bad in ["", "_x", "2x", "Hello", "a-b", "a b", "é", "app"] {
            let error = new_plugin(&dir, bad, Template::Native).unwrap_err();
            let error = error.to_string();
            assert!(
                error.contains("is not a plugin name") || error.contains("the app's own plugin"),
                "{bad}: {error}"
            );
        }
        assert!(!dir.exists(), "nothing is written for a refused name");
    }

    #[test]
    fn a_scaffolded_component_is_found_as_a_component_crate() {
        let dir = std::env::temp_dir().join(format!("scaffold-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        new_plugin(&dir, "sandboxed", Template::Component).unwrap();
        new_plugin(&dir, "trusted", Template::Native).unwrap();
        let found = discovery::discover(&dir, Path::new("/build")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let kinds: Vec<(&str, bool, bool)> = found
            .iter()
            .map(|c| (c.name.as_str(), c.component_crate, c.is_component()))
            .collect();
        assert_eq!(
            kinds,
            [("sandboxed", true, true), ("trusted", false, false)]
        );
        assert_eq!(
            found[0].library,
            Path::new("/build/component-target/wasm32-wasip2/component/app_plugin_sandboxed.wasm")
        );
    }
}
