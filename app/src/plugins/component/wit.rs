//! The WIT package (hookspecs/wit/plugin.wit) as Rust: the bindings
//! wasmtime generates from it, its version, and the mappings between its
//! `hook` enum and the hooks of [`AppHooks`], and its `service` enum and
//! the SDK's table of [`Services`](hookspecs::Services) methods
//! ([`hookspecs::services::NAMES`]), which tests keep equal.

use std::sync::LazyLock;

use hooks_core::Spec;
use hookspecs::AppHooks;

wasmtime::component::bindgen!({
    path: "../hookspecs/wit",
    world: "plugin",
    exports: { default: async },
    // A service runs the app's operations, on the database: awaited on the
    // call's fiber while the component waits (to it, a blocking call).
    imports: {
        "app:plugin/host.call-service": async,
        "app:plugin/host.query": async,
        "app:plugin/host.execute": async,
        "app:plugin/outbound.send": async,
    },
});

/// The optional exports (`world optional`), on the types above: looked up
/// in each component, called when it has them.
pub mod optional {
    wasmtime::component::bindgen!({
        path: "../hookspecs/wit",
        world: "optional",
        exports: { default: async },
        with: { "app:plugin/types": crate::plugins::component::wit::app::plugin::types },
    });
}

pub use self::app::plugin::host::{Level, Service};
pub use self::app::plugin::types::{Hook, HookError, Manifest, Tier};
pub use self::optional::exports::app::plugin::migrations::{
    GuestIndices as MigrationsIndices, Migration,
};
pub use self::optional::exports::app::plugin::routes::{
    Guard as RouteGuard, GuestIndices as RoutesIndices, Method as RouteMethod, RouteDecl,
};

/// The interface's version, as the package line of the WIT file says.
pub const VERSION: &str = "1.3.0";

/// The exported interface's name prefix; the version follows the `@`.
pub const GUEST: &str = "app:plugin/guest@";

/// The WIT package's text, which says the order of its `hook` enum.
const WIT: &str = include_str!("../../../../hookspecs/wit/plugin.wit");

/// The cases of `enum <name> { ... }` in the WIT file, in order, kebab
/// case.
fn wit_enum(name: &str) -> impl Iterator<Item = &'static str> {
    let head = format!("enum {name} {{");
    let start = WIT
        .find(&head)
        .unwrap_or_else(|| panic!("the WIT file has `enum {name}`"))
        + head.len();
    let body = &WIT[start..];
    let body = &body[..body.find('}').expect("the enum ends")];
    body.split(',')
        .map(str::trim)
        .filter(|case| !case.is_empty())
}

/// For each case of the WIT enum `name`, by position, the one of `names`
/// (snake case) it names, or "" for none. Matched by name, not by position
/// in the SDK: a new case is added at the enum's end (a minor version), so
/// the cases of components built before it keep their meaning.
fn by_case(name: &str, names: &[&'static str]) -> Vec<&'static str> {
    wit_enum(name)
        .map(|case| {
            names
                .iter()
                .copied()
                .find(|n| hookspecs::services::wire_name(n) == case)
                .unwrap_or("")
        })
        .collect()
}

/// The [`AppHooks`] hook of each case of the `hook` enum.
static HOOK_NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let hooks: Vec<&'static str> = <dyn AppHooks as Spec>::HOOKS
        .iter()
        .map(|h| h.name)
        .collect();
    by_case("hook", &hooks)
});

/// The `Services` method of each case of the `service` enum.
static SERVICE_NAMES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| by_case("service", hookspecs::services::NAMES));

/// The name of the [`AppHooks`] hook for a `hook` of the interface.
pub fn hook_name(hook: Hook) -> &'static str {
    HOOK_NAMES[hook as usize]
}

/// The name of the `Services` method for a `service` of the interface.
pub fn service_name(service: Service) -> &'static str {
    SERVICE_NAMES[service as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wit_hook_enum_names_every_apphooks_hook_once() {
        let mut wit: Vec<&str> = wit_enum("hook").collect();
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
    fn the_wit_service_enum_names_every_sdk_service_once() {
        let mut wit: Vec<&str> = wit_enum("service").collect();
        let mut services: Vec<String> = hookspecs::services::NAMES
            .iter()
            .map(|s| hookspecs::services::wire_name(s))
            .collect();
        wit.sort_unstable();
        services.sort();
        assert_eq!(
            wit, services,
            "hookspecs/wit/plugin.wit's `enum service` must name each method of the SDK's \
             `Services` (hookspecs/src/services.rs) once: add a new one as a new case at the \
             enum's end (a minor version: raise the package's)"
        );
        assert_eq!(service_name(Service::PutMember), "put_member");
        assert_eq!(service_name(Service::DeleteMember), "delete_member");
    }

    #[test]
    fn the_version_is_the_wit_packages() {
        assert!(
            WIT.contains(&format!("package app:plugin@{VERSION};")),
            "VERSION must be the WIT package's version"
        );
    }
}
