//! The WIT package (hookspecs/wit/plugin.wit) as Rust: the bindings
//! wasmtime generates from it, its version, and the mapping between its
//! `hook` enum and the hooks of [`AppHooks`], which a test keeps equal.

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

/// The name of an [`AppHooks`] hook for a `hook` of the interface: the
/// enum lists the trait's hooks in the trait's order.
pub fn hook_name(hook: Hook) -> &'static str {
    <dyn AppHooks as Spec>::HOOKS[hook as usize].name
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIT: &str = include_str!("../../../../hookspecs/wit/plugin.wit");

    /// The body of `enum hook { ... }` in the WIT file, in order.
    fn wit_hooks() -> Vec<String> {
        let start = WIT
            .find("enum hook {")
            .expect("the WIT file has `enum hook`");
        let body = &WIT[start + "enum hook {".len()..];
        let body = &body[..body.find('}').expect("`enum hook` ends")];
        body.split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_wit_hook_enum_lists_every_apphooks_hook_in_order() {
        let hooks: Vec<String> = <dyn AppHooks as Spec>::HOOKS
            .iter()
            .map(|h| h.name.replace('_', "-"))
            .collect();
        assert_eq!(
            wit_hooks(),
            hooks,
            "hookspecs/wit/plugin.wit's `enum hook` must list AppHooks' hooks in the trait's \
             order: add the new hook there (a minor version: raise the package's)"
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
