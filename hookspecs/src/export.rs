//! How a plugin library introduces itself to the app: the build
//! [`Fingerprint`] it was compiled against (checked through a C-ABI export
//! before any of its Rust code runs) and its [`PluginExport`].

use std::sync::Arc;

use hooks_core::Plugin;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::hooks::AppHooks;

mod build {
    include!(concat!(env!("OUT_DIR"), "/fingerprint.rs"));
}

/// The version of the loading protocol: this struct and the two exports.
pub const LOADER_VERSION: u32 = 2;

/// Identifies one build of the SDK. A plugin exports the one it was built
/// against as the data symbol `app_plugin_fingerprint`, which the app reads
/// from the library file (with [`Fingerprint::from_bytes`]) before loading
/// it: so a stale or foreign library is named as such even when the dynamic
/// loader could not load it at all.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Fingerprint {
    /// [`LOADER_VERSION`].
    pub loader_version: u32,
    /// `rustc -V`, NUL-padded.
    pub rustc: [u8; 96],
    /// Hash of the engine's and the SDK's sources and manifests.
    pub sdk: u64,
    /// Cargo profile (`debug`, `release`), NUL-padded.
    pub profile: [u8; 16],
    /// Hash of target, optimisation, debug info, rustflags and features.
    pub build: u64,
    /// A function of this SDK build. Its symbol name carries the hash cargo
    /// gives this build (features, dependency versions, profile): a library
    /// built against another build of the SDK then fails to load instead of
    /// loading with other types. Not part of the comparison (its value is
    /// an address).
    pub build_marker: fn(),
}

/// The fingerprint compiled into the SDK library this process runs on. It
/// is not inlined: a binary comparing it with its own [`FINGERPRINT`]
/// (compiled into the binary) learns whether the library beside it was
/// rebuilt from other sources since the binary was linked.
#[inline(never)]
pub fn library_fingerprint() -> Fingerprint {
    FINGERPRINT
}

/// The function [`Fingerprint::build_marker`] points to.
#[inline(never)]
pub fn build_marker() {}

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
    profile: padded(build::PROFILE),
    build: build::BUILD,
    build_marker,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

impl Fingerprint {
    /// The plain-data fields of a fingerprint stored in `bytes` (the
    /// contents of a library's `app_plugin_fingerprint` symbol, in this
    /// machine's byte order); `None` if `bytes` is too short for them.
    /// [`build_marker`](Self::build_marker) is left pointing to this SDK's.
    pub fn from_bytes(bytes: &[u8]) -> Option<Fingerprint> {
        use std::mem::offset_of;
        let field = |offset: usize, len: usize| bytes.get(offset..offset + len);
        let u64_at = |offset: usize| -> Option<u64> {
            Some(u64::from_ne_bytes(field(offset, 8)?.try_into().ok()?))
        };
        Some(Fingerprint {
            loader_version: u32::from_ne_bytes(
                field(offset_of!(Fingerprint, loader_version), 4)?
                    .try_into()
                    .ok()?,
            ),
            rustc: field(offset_of!(Fingerprint, rustc), 96)?.try_into().ok()?,
            sdk: u64_at(offset_of!(Fingerprint, sdk))?,
            profile: field(offset_of!(Fingerprint, profile), 16)?
                .try_into()
                .ok()?,
            build: u64_at(offset_of!(Fingerprint, build))?,
            build_marker,
        })
    }

    /// Why a plugin with fingerprint `other` cannot be loaded by a build
    /// with `self`'s, naming the first part that differs and what to do;
    /// `None` if they match.
    pub fn mismatch(&self, other: &Fingerprint) -> Option<String> {
        const REBUILD: &str = "rebuild it with the app: `cargo build` at the workspace root";
        if self.loader_version != other.loader_version {
            return Some(format!(
                "it speaks loader protocol {}, the app {}: {REBUILD}",
                other.loader_version, self.loader_version
            ));
        }
        if self.rustc != other.rustc {
            return Some(format!(
                "it was compiled by `{}`, the app by `{}`: {REBUILD}",
                text(&other.rustc),
                text(&self.rustc)
            ));
        }
        if self.profile != other.profile {
            let (theirs, ours) = (text(&other.profile), text(&self.profile));
            let flag = if ours == "release" { " --release" } else { "" };
            return Some(format!(
                "it is a `{theirs}` build, the app a `{ours}` build: plugins must come \
                 from the app's own build: `cargo build{flag}` at the workspace root, \
                 then take the library from target/{ours}/ (or use `app package`)"
            ));
        }
        if self.sdk != other.sdk {
            return Some(format!(
                "it was built against other sources of hookspecs/hooks-core (the SDK \
                 changed since): {REBUILD}"
            ));
        }
        if self.build != other.build {
            return Some(format!(
                "it was built with other flags or features: {REBUILD} (without RUSTFLAGS)"
            ));
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
    /// `Some(why)`: loaded but idle, see [`PluginExport::idle`].
    pub idle: Option<String>,
}

impl PluginExport {
    /// Wraps a `#[hookimpl]` plugin value.
    pub fn new<P: hooks_core::Implements<dyn AppHooks>>(plugin: P) -> Self {
        PluginExport {
            plugin: Plugin::new(plugin),
            requires: Vec::new(),
            migrations: &[],
            idle: None,
        }
    }

    /// A plugin that is loaded but has nothing to do until it is
    /// configured (a webhook sender without a URL): none of its hooks is
    /// called, and no after-commit delivery is recorded for it. `why` says
    /// what to set, for the load report (`loaded, idle: <why>`) and the
    /// startup log (one INFO line), e.g. ``"set `url` in [plugins.webhooks]"``.
    ///
    /// Return it from the constructor given to [`export_plugin!`](crate::export_plugin)
    /// when the configuration asks for nothing; a configuration that is
    /// wrong is an error instead (see [`IntoExport`]).
    pub fn idle(why: impl Into<String>) -> Self {
        PluginExport {
            plugin: Plugin::from_parts(Arc::new(Idle), &[][..]),
            requires: Vec::new(),
            migrations: &[],
            idle: Some(why.into()),
        }
    }

    /// Keeps only the hook implementations whose hook name `keep` accepts;
    /// the others are never called. For an after-commit hook left out, no
    /// delivery is made or listed: a plugin that wants some events only
    /// (the webhooks plugin's `events`) says so here rather than answering
    /// `Ok` to the rest, which would list them as delivered.
    pub fn only_hooks(mut self, keep: impl Fn(&str) -> bool) -> Self {
        let kept: Vec<hooks_core::ImplDecl> = self
            .plugin
            .impls()
            .iter()
            .filter(|decl| keep(decl.hook))
            .copied()
            .collect();
        self.plugin = Plugin::from_parts(self.plugin.object().clone(), kept);
        self
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

/// The plugin object of [`PluginExport::idle`]: implements no hook.
struct Idle;

impl AppHooks for Idle {}

/// What a constructor given to [`export_plugin!`](crate::export_plugin)
/// returns: the `#[hookimpl]` plugin value, a [`PluginExport`] (for
/// [`PluginExport::idle`]), or either in a `Result<_, String>`, whose error
/// fails the plugin at load with that message (name the setting).
pub trait IntoExport {
    /// The export the app registers.
    ///
    /// # Errors
    ///
    /// The constructor's own error.
    fn into_export(self) -> Result<PluginExport, String>;
}

impl<P: hooks_core::Implements<dyn AppHooks>> IntoExport for P {
    fn into_export(self) -> Result<PluginExport, String> {
        Ok(PluginExport::new(self))
    }
}

impl IntoExport for PluginExport {
    fn into_export(self) -> Result<PluginExport, String> {
        Ok(self)
    }
}

impl<T: IntoExport> IntoExport for Result<T, String> {
    fn into_export(self) -> Result<PluginExport, String> {
        self?.into_export()
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
    /// `static app_plugin_fingerprint: Fingerprint`, read from the file.
    pub const FINGERPRINT: &str = "app_plugin_fingerprint";
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
/// the plugin with the key named. The constructor returns anything
/// [`IntoExport`]: the plugin value, or a `Result<_, String>` to refuse a
/// bad setting, or [`PluginExport::idle`] when nothing is configured. Either form may end with
/// `requires = ["other", ...]` (the plugins this one needs) and then
/// `migrations = MIGRATIONS` (a `&'static [Migration]`: its own tables).
///
/// It defines the two exports the app's loader looks up: the SDK
/// fingerprint (a `#[repr(C)]` static, read from the file and checked
/// first) and the registration function (called only when the fingerprints
/// match).
#[macro_export]
macro_rules! export_plugin {
    ($constructor:expr, config = $config:ty
        $(, requires = [$($needs:literal),* $(,)?])? $(, migrations = $migrations:expr)? $(,)?) => {
        $crate::export_plugin!(@exports |table: &$crate::serde_json::Value| {
            let config: $config = $crate::configured(table)?;
            ::core::result::Result::Ok(
                $crate::IntoExport::into_export(($constructor)(config))?
                    .requiring(&[$($($needs),*)?])
                    $(.migrating($migrations))?,
            )
        });
    };
    ($constructor:expr
        $(, requires = [$($needs:literal),* $(,)?])? $(, migrations = $migrations:expr)? $(,)?) => {
        $crate::export_plugin!(@exports |_table: &$crate::serde_json::Value| {
            ::core::result::Result::Ok(
                $crate::IntoExport::into_export(($constructor)())?
                    .requiring(&[$($($needs),*)?])
                    $(.migrating($migrations))?,
            )
        });
    };
    (@exports $register:expr) => {
        // SAFETY: a unique, fixed symbol name per plugin library: the loader
        // protocol. No other item of the library may use these names.
        #[unsafe(no_mangle)]
        #[allow(non_upper_case_globals)]
        pub static app_plugin_fingerprint: $crate::Fingerprint = $crate::FINGERPRINT;

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
