//! The WIT package (hookspecs/wit/plugin.wit) as Rust: the bindings
//! wasmtime generates from it, its version, and the mapping between its
//! `hook` enum and the hooks of [`AppHooks`], which a test keeps equal.

use std::sync::LazyLock;

use hooks_core::Spec;
use hookspecs::AppHooks;

wasmtime::component::bindgen!({
    path: "../hookspecs/wit",
    world: "plugin",
    exports: { default: async },
});

pub use self::app::plugin::host::Level;
pub use self::app::plugin::types::{Hook, HookError, Manifest, Tier};

/// The interface's version, as the package line of the WIT file says.
pub const VERSION: &str = "1.0.0";

/// The exported interface's name prefix; the version follows the `@`.
pub const GUEST: &str = "app:plugin/guest@";

/// The WIT package's text, which says the order of its `hook` enum.
const WIT: &str = include_str!("../../../../hookspecs/wit/plugin.wit");

/// The cases of `enum hook { ... }` in the WIT file, in order, kebab case.
fn wit_hooks() -> impl Iterator<Item = &'static str> {
    let start = WIT
        .find("enum hook {")
        .expect("the WIT file has `enum hook`")
        + "enum hook {".len();
    let body = &WIT[start..];
    let body = &body[..body.find('}').expect("`enum hook` ends")];
    body.split(',').map(str::trim).filter(|h| !h.is_empty())
}

/// The [`AppHooks`] hook of each case of the `hook` enum, by the case's
/// position. Matched by name, not by position in the trait: a new hook is
/// a new case at the enum's end (a minor version), so the cases of
/// components built before it keep their meaning.
static HOOK_NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    wit_hooks()
        .map(|case| {
            <dyn AppHooks as Spec>::HOOKS
                .iter()
                .find(|h| h.name.replace('_', "-") == case)
                .map_or("", |h| h.name)
        })
        .collect()
});

/// The name of the [`AppHooks`] hook for a `hook` of the interface.
pub fn hook_name(hook: Hook) -> &'static str {
    HOOK_NAMES[hook as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wit_hook_enum_names_every_apphooks_hook_once() {
        let mut wit: Vec<&str> = wit_hooks().collect();
        let mut hooks: Vec<String> = <dyn AppHooks as Spec>::HOOKS
            .iter()
            .map(|h| h.name.replace('_', "-"))
            .collect();
        wit.sort_unstable();
        hooks.sort();
        assert_eq!(
            wit, hooks,
            "hookspecs/wit/plugin.wit's `enum hook` must name each AppHooks hook once: add a \
             new hook as a new case at the enum's end (a minor version: raise the package's)"
        );
        assert_eq!(hook_name(Hook::OnUserCreated), "on_user_created");
        assert_eq!(
            hook_name(Hook::AfterMembershipDeleted),
            "after_membership_deleted"
        );
    }

    #[test]
    fn the_version_is_the_wit_packages() {
        assert!(
            WIT.contains(&format!("package app:plugin@{VERSION};")),
            "VERSION must be the WIT package's version"
        );
    }
}
