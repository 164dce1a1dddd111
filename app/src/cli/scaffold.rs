//! `app plugin new <name>`: a new plugin crate in the plugins folder, from a
//! template that compiles, implements one hook and one route, and is loaded
//! on the next `cargo run`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::plugins::discovery::PREFIX;

/// Creates `<dir>/app_plugin_<name>/` and returns its path.
pub fn new_plugin(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!(
            "`{name}` is not a plugin name: use lowercase letters, digits and `_`, starting with a letter"
        );
    }
    let crate_name = format!("{PREFIX}{name}");
    let root = dir.join(&crate_name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("creating {}", root.display()))?;
    let type_name: String = name
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    std::fs::write(
        root.join("Cargo.toml"),
        MANIFEST.replace("{crate}", &crate_name),
    )?;
    let lib = LIB.replace("{name}", name).replace("{Type}", &type_name);
    std::fs::write(root.join("src").join("lib.rs"), lib)?;
    Ok(root)
}

const MANIFEST: &str = r#"[package]
name = "{crate}"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish = false

# A Rust dylib sharing the app's runtime through hookspecs: see README.md,
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
