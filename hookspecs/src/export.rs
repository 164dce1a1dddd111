//! How a plugin library introduces itself to the app: the build
//! [`Fingerprint`] it was compiled against (checked through a C-ABI export
//! before any of its Rust code runs) and its [`PluginExport`].

use hooks_core::Plugin;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::hooks::AppHooks;

mod build {
    include!(concat!(env!("OUT_DIR"), "/fingerprint.rs"));
}

/// The version of the loading protocol: this struct and the two exports.
pub const LOADER_VERSION: u32 = 1;

/// Identifies one build of the SDK. `#[repr(C)]` and plain data, so the app
/// can read a plugin's safely even when the plugin was built by another
/// compiler or against another SDK.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// [`LOADER_VERSION`].
    pub loader_version: u32,
    /// `rustc -V`, NUL-padded.
    pub rustc: [u8; 96],
    /// Hash of the engine's and the SDK's sources and manifests.
    pub sdk: u64,
    /// Hash of Cargo.lock (every dependency's exact version).
    pub lock: u64,
    /// Cargo profile (`debug`, `release`), NUL-padded.
    pub profile: [u8; 16],
    /// Hash of target, optimisation, debug info, rustflags and features.
    pub build: u64,
}

const fn padded<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() && i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The fingerprint of the SDK build this code is part of.
pub const FINGERPRINT: Fingerprint = Fingerprint {
    loader_version: LOADER_VERSION,
    rustc: padded(build::RUSTC),
    sdk: build::SDK,
    lock: build::LOCK,
    profile: padded(build::PROFILE),
    build: build::BUILD,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

impl Fingerprint {
    /// Why `other` (a plugin's) cannot be loaded by a build with `self`'s,
    /// naming the first part that differs; `None` if they match.
    pub fn mismatch(&self, other: &Fingerprint) -> Option<String> {
        if self.loader_version != other.loader_version {
            return Some(format!(
                "it speaks loader protocol {}, the app {}",
                other.loader_version, self.loader_version
            ));
        }
        if self.rustc != other.rustc {
            return Some(format!(
                "it was compiled by `{}`, the app by `{}`",
                text(&other.rustc),
                text(&self.rustc)
            ));
        }
        if self.profile != other.profile {
            return Some(format!(
                "it is a `{}` build, the app a `{}` build",
                text(&other.profile),
                text(&self.profile)
            ));
        }
        if self.sdk != other.sdk {
            return Some("it was built against other sources of hookspecs/hooks-core (the SDK changed since)".into());
        }
        if self.lock != other.lock {
            return Some(
                "it was built with other dependency versions (Cargo.lock changed since)".into(),
            );
        }
        if self.build != other.build {
            return Some("it was built with other flags or features".into());
        }
        None
    }
}

/// One migration of a plugin's own tables, in both SQL dialects. Tables
/// must be named `plugin_<name>_*`. Applied once, in version order, at
/// startup; recorded in `plugin_<name>_migrations`.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Order and identity (1, 2, ...).
    pub version: i64,
    /// A short description.
    pub name: &'static str,
    /// The SQL for SQLite (may hold several statements).
    pub sqlite: &'static str,
    /// The SQL for PostgreSQL.
    pub postgres: &'static str,
}

/// What a plugin library hands the app.
pub struct PluginExport {
    /// The plugin object and the hooks it implements.
    pub plugin: Plugin<dyn AppHooks>,
    /// The plugins it needs (by name): registered before it, and it fails
    /// if one of them did not load.
    pub requires: Vec<String>,
    /// Its own tables' migrations.
    pub migrations: &'static [Migration],
}

impl PluginExport {
    /// Wraps a `#[hookimpl]` plugin value.
    pub fn new<P: hooks_core::Implements<dyn AppHooks>>(plugin: P) -> Self {
        PluginExport {
            plugin: Plugin::new(plugin),
            requires: Vec::new(),
            migrations: &[],
        }
    }

    /// Declares its own tables' migrations.
    pub fn migrating(mut self, migrations: &'static [Migration]) -> Self {
        self.migrations = migrations;
        self
    }

    /// Declares the plugins this one needs.
    pub fn requiring(mut self, plugins: &[&str]) -> Self {
        self.requires = plugins.iter().map(|p| (*p).to_owned()).collect();
        self
    }
}

/// A plugin's typed configuration from its `[plugins.<name>]` table
/// (`Value::Null` when there is none: the defaults). An unknown key or a
/// value of the wrong type is an error naming the key.
pub fn configured<C: DeserializeOwned + Default>(table: &Value) -> Result<C, String> {
    if table.is_null() {
        return Ok(C::default());
    }
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(table.clone(), &mut note);
    let config = serde_path_to_error::deserialize(de)
        .map_err(|e| format!("invalid configuration: `{}`: {}", e.path(), e.inner()))?;
    if !unknown.is_empty() {
        return Err(format!(
            "invalid configuration: unknown key `{}`",
            unknown.join("`, `")
        ));
    }
    Ok(config)
}

/// The symbol names the app looks up.
pub mod symbols {
    /// `extern "C" fn() -> Fingerprint`.
    pub const FINGERPRINT: &[u8] = b"app_plugin_fingerprint\0";
    /// `fn(&serde_json::Value) -> Result<PluginExport, String>`: gets the
    /// plugin's configuration table.
    pub const REGISTER: &[u8] = b"app_plugin_register\0";
}

/// Makes a crate a plugin library.
///
/// `hookspecs::export_plugin!(MyPlugin::default);` with a constructor taking
/// no argument, or `hookspecs::export_plugin!(MyPlugin::new, config = MyConfig);`
/// with one taking the plugin's typed configuration: `MyConfig` is
/// `Deserialize + Default` (derive with `#[serde(crate = "hookspecs::serde", default)]`)
/// and is read from `[plugins.<name>]`; an unknown key or a wrong type fails
/// the plugin with the key named. Either form may end with
/// `requires = ["other", ...]` (the plugins this one needs) and then
/// `migrations = MIGRATIONS` (a `&'static [Migration]`: its own tables).
///
/// It defines the two exports the app's loader looks up: the SDK
/// fingerprint (C ABI, plain data, checked first) and the registration
/// function (called only when the fingerprints match).
#[macro_export]
macro_rules! export_plugin {
    ($constructor:expr, config = $config:ty
        $(, requires = [$($needs:literal),* $(,)?])? $(, migrations = $migrations:expr)? $(,)?) => {
        $crate::export_plugin!(@exports |table: &$crate::serde_json::Value| {
            let config: $config = $crate::configured(table)?;
            ::core::result::Result::Ok(
                $crate::PluginExport::new(($constructor)(config))
                    .requiring(&[$($($needs),*)?])
                    $(.migrating($migrations))?,
            )
        });
    };
    ($constructor:expr
        $(, requires = [$($needs:literal),* $(,)?])? $(, migrations = $migrations:expr)? $(,)?) => {
        $crate::export_plugin!(@exports |_table: &$crate::serde_json::Value| {
            ::core::result::Result::Ok(
                $crate::PluginExport::new(($constructor)())
                    .requiring(&[$($($needs),*)?])
                    $(.migrating($migrations))?,
            )
        });
    };
    (@exports $register:expr) => {
        // SAFETY: a unique, fixed symbol name per plugin library: the loader
        // protocol. No other item of the library may use these names.
        #[unsafe(no_mangle)]
        pub extern "C" fn app_plugin_fingerprint() -> $crate::Fingerprint {
            $crate::FINGERPRINT
        }

        // SAFETY: as above; the app calls it only after the fingerprints
        // matched, i.e. with the same compiler and the same SDK build.
        #[unsafe(no_mangle)]
        pub fn app_plugin_register(
            table: &$crate::serde_json::Value,
        ) -> ::core::result::Result<$crate::PluginExport, ::std::string::String> {
            let register: fn(&$crate::serde_json::Value) -> ::core::result::Result<$crate::PluginExport, ::std::string::String> = $register;
            register(table)
        }
    };
}
