//! What a plugin library hands the app: its [`PluginExport`] (the plugin,
//! what it requires, its migrations), built by [`export_plugin!`]. How the
//! app finds and checks the library is the [`loader`](crate::loader)
//! protocol.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use hooks_core::{ImplDecl, Plugin};

use crate::hooks::{AppHooks, Change};

/// One migration of a plugin's own tables, in both SQL dialects. Tables
/// must be named `plugin_<name>_*`. Applied once, in version order, at
/// startup (and, for a component, at each reload); recorded in
/// `plugin_<name>_migrations`. A component's are checked first, every
/// statement of both texts ([`check_migration`](crate::sql::check_migration)).
/// Nothing to do in a plugin for that: `export_plugin!`'s `migrations =`
/// serves both builds.
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

/// A plugin's typed configuration from its `[plugins.<name>]` table
/// (`Value::Null` when there is none: the defaults). An unknown key or a
/// value of the wrong type is an error naming the key. What
/// [`export_plugin!`](crate::export_plugin)`(..., config = C)` calls, for
/// a native plugin and a component alike.
///
/// # Errors
///
/// The key that is unknown or of the wrong type, named.
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
    /// Wraps a `#[hookimpl]` plugin value. Its catch-all hooks
    /// (`on_change`, `after_change`) are registered as the specific hooks
    /// they stand for, those it does not implement itself (see
    /// [`AppHooks`], "Every change at once").
    pub fn new<P: hooks_core::Implements<dyn AppHooks>>(plugin: P) -> Self {
        PluginExport {
            plugin: expand_catch_alls(Plugin::new(plugin)),
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
    /// `Ok` to the rest, which would list them as delivered. A catch-all
    /// (`after_change`) is by then the specific hooks it stands for, so
    /// `keep` narrows it the same way.
    ///
    /// ```
    /// use hookspecs::prelude::*;
    /// use hookspecs::PluginExport;
    ///
    /// struct Notifier;
    /// #[hookimpl]
    /// impl AppHooks for Notifier {
    ///     async fn after_user_created(&self, _: &User, _: &Delivery, _: &HookContext) -> HookResult<()> {
    ///         Ok(())
    ///     }
    ///     async fn after_space_created(&self, _: &Space, _: &Delivery, _: &HookContext) -> HookResult<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// // Configured to hear about users only:
    /// let wanted = ["user.created"];
    /// let export = PluginExport::new(Notifier)
    ///     .only_hooks(|hook| Change::event_of(hook).is_some_and(|e| wanted.contains(&e)));
    /// let kept: Vec<_> = export.plugin.impls().iter().map(|d| d.hook).collect();
    /// assert_eq!(kept, ["after_user_created"]);
    /// ```
    pub fn only_hooks(mut self, keep: impl Fn(&str) -> bool) -> Self {
        let kept: Vec<ImplDecl> = self
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

/// `plugin` with its catch-all hooks (`on_change`, `after_change`)
/// registered as the specific hooks they stand for, those it does not
/// implement itself, with the catch-all's options (see [`AppHooks`],
/// "Every change at once"); a catch-all wrapper stays as it is, and is
/// never called. [`PluginExport::new`] does it; the host does it
/// to a plugin it registers otherwise (linked in). Doing it twice changes
/// nothing.
pub fn expand_catch_alls(plugin: Plugin<dyn AppHooks>) -> Plugin<dyn AppHooks> {
    let declared = plugin.impls();
    let mut impls: Vec<ImplDecl> = Vec::new();
    for decl in declared {
        // A wrapper's call goes to `<hook>_wrapper`, which a catch-all
        // wrapper does not provide for the hooks it would stand for.
        let covered = if decl.wrapper {
            Vec::new()
        } else {
            covered_by(decl.hook)
        };
        if covered.is_empty() {
            impls.push(*decl);
        }
        for hook in covered {
            if !declared.iter().any(|own| own.hook == hook) {
                impls.push(ImplDecl { hook, ..*decl });
            }
        }
    }
    Plugin::from_parts(plugin.object().clone(), impls)
}

/// The in-transaction catch-all hook: a plugin implementing it hears every
/// `on_*` hook it does not implement itself.
const ON_CHANGE: &str = "on_change";
/// The after-commit catch-all hook, likewise for `after_*`.
const AFTER_CHANGE: &str = "after_change";

/// The hooks a catch-all stands for: every `on_*` for [`ON_CHANGE`], every
/// `after_*` for [`AFTER_CHANGE`], none for any other hook.
fn covered_by(catch_all: &str) -> Vec<&'static str> {
    let kinds = Change::KINDS.iter();
    match catch_all {
        ON_CHANGE => kinds.map(|k| k.on_hook).collect(),
        AFTER_CHANGE => kinds.map(|k| k.after_hook).collect(),
        _ => Vec::new(),
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
/// match): see [`loader`](crate::loader).
///
/// ```
/// use hookspecs::prelude::*;
/// use hookspecs::{Migration, PluginExport};
///
/// #[derive(Default, serde::Deserialize)]
/// #[serde(crate = "hookspecs::serde", default)]
/// pub struct GreeterConfig {
///     greeting: Option<String>,
/// }
///
/// pub struct Greeter(String);
///
/// impl Greeter {
///     fn new(config: GreeterConfig) -> Result<PluginExport, String> {
///         match config.greeting {
///             None => Ok(PluginExport::idle("set `greeting` in [plugins.greeter]")),
///             Some(g) if g.is_empty() => Err("`greeting` must not be empty".into()),
///             Some(g) => Ok(PluginExport::new(Greeter(g))),
///         }
///     }
/// }
///
/// #[hookimpl]
/// impl AppHooks for Greeter {
///     async fn on_user_created(&self, user: &User, _ctx: &HookContext) -> HookResult<()> {
///         tracing::info!("{} {}", self.0, user.username);
///         Ok(())
///     }
/// }
///
/// const MIGRATIONS: &[Migration] = &[Migration {
///     version: 1,
///     name: "greetings",
///     sqlite: "CREATE TABLE plugin_greeter_greetings (user_id INTEGER PRIMARY KEY)",
///     postgres: "CREATE TABLE plugin_greeter_greetings (user_id BIGINT PRIMARY KEY)",
/// }];
///
/// hookspecs::export_plugin!(
///     Greeter::new,
///     config = GreeterConfig,
///     requires = ["audit_log"],
///     migrations = MIGRATIONS,
/// );
///
/// // What the app's loader calls, with the plugin's `[plugins.greeter]` table:
/// let table = serde_json::json!({"greeting": "hello"});
/// let export = app_plugin_register(&table).unwrap();
/// assert_eq!(export.requires, ["audit_log"]);
/// assert!(export.idle.is_none());
/// let wrong = serde_json::json!({"greting": "hello"});
/// assert_eq!(
///     app_plugin_register(&wrong).err().unwrap(),
///     "invalid configuration: unknown key `greting`"
/// );
/// ```
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
        #[cfg(not(target_family = "wasm"))]
        #[unsafe(no_mangle)]
        #[allow(non_upper_case_globals)]
        pub static app_plugin_fingerprint: $crate::loader::Fingerprint = $crate::loader::FINGERPRINT;

        // SAFETY: as above; the app calls it only after the fingerprints
        // matched, i.e. with the same compiler and the same SDK build.
        #[cfg_attr(not(target_family = "wasm"), unsafe(no_mangle))]
        pub fn app_plugin_register(
            table: &$crate::serde_json::Value,
        ) -> ::core::result::Result<$crate::PluginExport, ::std::string::String> {
            let register: fn(&$crate::serde_json::Value) -> ::core::result::Result<$crate::PluginExport, ::std::string::String> = $register;
            register(table)
        }

        // A component (wasm32-wasip2): the WIT package's `guest` export,
        // answered from the same registration.
        #[cfg(target_family = "wasm")]
        struct AppPluginComponent;

        #[cfg(target_family = "wasm")]
        impl $crate::guest::bindings::exports::app::plugin::guest::Guest for AppPluginComponent {
            fn describe() -> $crate::guest::bindings::app::plugin::types::Manifest {
                $crate::guest::describe(app_plugin_register)
            }

            fn call(
                hook: $crate::guest::bindings::app::plugin::types::Hook,
                args: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, $crate::guest::bindings::app::plugin::types::HookError> {
                $crate::guest::call(app_plugin_register, hook, args)
            }
        }

        // Its routes: `on_plugins_loaded` run in the component.
        #[cfg(target_family = "wasm")]
        impl $crate::guest::bindings::exports::app::plugin::routes::Guest for AppPluginComponent {
            fn start() -> ::core::result::Result<
                ::std::vec::Vec<$crate::guest::bindings::exports::app::plugin::routes::RouteDecl>,
                $crate::guest::bindings::app::plugin::types::HookError,
            > {
                $crate::guest::start(app_plugin_register)
            }

            fn handle(
                route: u32,
                request: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, $crate::guest::bindings::app::plugin::types::HookError> {
                $crate::guest::handle(app_plugin_register, route, request)
            }
        }

        // Its migrations, which the host checks and runs.
        #[cfg(target_family = "wasm")]
        impl $crate::guest::bindings::exports::app::plugin::migrations::Guest for AppPluginComponent {
            fn all() -> ::std::vec::Vec<$crate::guest::bindings::exports::app::plugin::migrations::Migration> {
                $crate::guest::migrations(app_plugin_register)
            }
        }

        #[cfg(target_family = "wasm")]
        $crate::guest::bindings::export_component!(AppPluginComponent);
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Delivery, HookContext, User};
    use hooks_core::prelude::*;

    struct Both;

    #[hookimpl]
    impl AppHooks for Both {
        #[hookimpl(priority = 5)]
        async fn after_change(&self, _: &Delivery, _: &HookContext) -> HookResult<()> {
            Ok(())
        }
        async fn after_user_created(
            &self,
            _: &User,
            _: &Delivery,
            _: &HookContext,
        ) -> HookResult<()> {
            Ok(())
        }
    }

    #[test]
    fn a_catch_all_stands_for_the_hooks_not_implemented_with_its_options_once() {
        let export = PluginExport::new(Both);
        let impls = export.plugin.impls().to_vec();
        let hooks: Vec<&str> = impls.iter().map(|d| d.hook).collect();
        assert_eq!(hooks.len(), 9, "{hooks:?}");
        assert_eq!(
            hooks.iter().filter(|h| **h == "after_user_created").count(),
            1
        );
        assert!(!hooks.contains(&"after_change") && !hooks.iter().any(|h| h.starts_with("on_")));
        let own = impls
            .iter()
            .find(|d| d.hook == "after_user_created")
            .unwrap();
        assert_eq!(own.priority, 0);
        let stood_for = impls
            .iter()
            .find(|d| d.hook == "after_space_deleted")
            .unwrap();
        assert_eq!(stood_for.priority, 5);
        // Expanding again changes nothing.
        let again = expand_catch_alls(export.plugin);
        assert_eq!(again.impls(), &impls[..]);
    }
}
